"""python jobs/report.py --model-dir DIR [--model-dir DIR2 ...] --out OUT [--truth truth.parquet] [--target-fnr F]

Evaluation report of trained models (written by jobs/train_cnn.py / jobs/train_svm.py): OUT/report.html,
OUT/report.md, OUT/report.json and PNG figures. Needs no Spark (it reads plain files).
Prints one JSON summary line on stdout; exit code 0 on success, 2 on bad arguments or inputs, 1 otherwise.
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import run_plain


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", action="append", required=True,
                   help="a training job's output directory (model.json, predictions_test.parquet); repeatable")
    p.add_argument("--out", required=True, help="directory for report.html, report.md, report.json and the PNGs")
    p.add_argument("--truth", help="the simulator's truth table (ROOT/labels/truth.parquet): adds recall vs strength")
    p.add_argument("--target-fnr", type=float,
                   help="re-choose each model's threshold on its validation predictions for this FNR "
                        "(default: the threshold stored in model.json)")
    p.add_argument("--config", help="accepted for submit.sh compatibility; the report needs no pipeline config")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from artifactspark.metrics import ModelDirError
    from artifactspark.report import ReportInputError, build_report

    return run_plain("artifactspark-report",
                     lambda: build_report(args.model_dir, args.out, truth_path=args.truth, target_fnr=args.target_fnr),
                     usage_errors=(ModelDirError, ReportInputError))


if __name__ == "__main__":
    sys.exit(main())
