"""python jobs/report.py --model-dir DIR [--model-dir DIR2 ...] --out OUT [--truth ROOT/labels] [--target-fnr F]

Evaluation report of trained models (written by jobs/train_cnn.py / jobs/train_svm.py): OUT/report.html,
OUT/report.md, OUT/report.json and PNG figures. Needs no Spark (it reads plain files).

With --truth (simulated archives: the simulator's ROOT/labels directory, or its truth.parquet with ccds.parquet
beside it) the issue's targets are measured against the truth: recall on CCDs with an artifact above its class's
detectability floor, FPR on clean CCDs, per-class recall, many-class macro-F1 vs the truth's primary class,
multi-label per-class ROC AUC, CNN vs SVM (McNemar); every figure against the volunteer labels is printed beside its
ceiling (a perfect truth model scored against the same labels). Without it (real data) those targets are NOT ASSESSED.
Prints one JSON summary line on stdout; exit code 0 on success, 2 on bad arguments or inputs, 1 otherwise.
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import run_plain


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model-dir",
        action="append",
        required=True,
        help="a training job's output directory (model.json, predictions_test.parquet); repeatable",
    )
    p.add_argument("--out", required=True, help="directory for report.html, report.md, report.json and the PNGs")
    p.add_argument(
        "--truth",
        metavar="PATH",
        help="simulated data only: the simulator's labels directory (ROOT/labels) or its truth.parquet; "
        "ccds.parquet is read from beside it. Adds the figures against the truth, the ceilings of "
        "the volunteer-label figures and recall vs strength with the detectability floor, and makes "
        "the targets assessable (without it they are NOT ASSESSED: no truth table, real data)",
    )
    p.add_argument(
        "--footprints",
        metavar="PATH",
        help="simulated data: the truth footprints of the test CCDs (benchmarks/heat_footprints.py) for the "
        "localisation section's pointing accuracy and coverage (default: the truth's clicked points)",
    )
    p.add_argument(
        "--target-fnr",
        type=float,
        help="re-choose each model's threshold on its validation predictions for this FNR "
        "(default: the threshold stored in model.json)",
    )
    p.add_argument("--config", help="accepted for submit.sh compatibility; the report needs no pipeline config")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from artifactspark.evaluate.metrics import ModelDirError, TruthTableError
    from artifactspark.evaluate.report import ReportInputError, build_report

    return run_plain(
        "artifactspark-report",
        lambda: build_report(
            args.model_dir, args.out, truth_path=args.truth, target_fnr=args.target_fnr, footprints_path=args.footprints
        ),
        usage_errors=(ModelDirError, ReportInputError, TruthTableError),
        output=args.out,
    )


if __name__ == "__main__":
    sys.exit(main())
