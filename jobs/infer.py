"""spark-submit jobs/infer.py --store STORE_URI --model MODEL_DIR --output PREDICTIONS_URI [--config FILE]

Scores every CCD of the feature store with a trained model (CNN or SVM, from its model.json) on
the executors and appends one row per CCD and model version to the predictions table (Parquet,
partitioned by band and nite). Incremental: CCDs already scored by this model version are
skipped, so a re-run adds nothing. Refuses a model trained on a different preprocessing config.
Prints one JSON summary line; exit codes: 0 ok, 2 bad input, 4 store problem, 1 other.
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import add_config_master_args, run_job


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="feature store root written by jobs/preprocess.py")
    p.add_argument("--model", required=True, help="model directory written by jobs/train_cnn.py or train_svm.py")
    p.add_argument("--output", required=True, help="predictions table root (local path or Hadoop URI)")
    add_config_master_args(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def job(spark, cfg):
        from artifactspark.serve.infer import run_infer

        return run_infer(spark, args.store, args.model, args.output, cfg)

    return run_job("artifactspark-infer", args, job, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
