"""spark-submit jobs/train_svm.py --store STORE_URI --model-dir DIR --problem binary|multiclass
       [--kernel linear|rbf] [--split FILE] [--set KEY=VALUE ...] [--config FILE]

Trains the paper's SVM baseline (scikit-learn) on pixels collected from the feature store with
Spark, on the same split by exposure as the CNN (pass --split CNN_DIR/model.json to be sure),
records the learning curve (training and test error against training-set size) and writes the
model, model.json, the val/test predictions and metrics.json into --model-dir.
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import add_train_args, parse_overrides, run_job


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(p)
    p.add_argument("--problem", choices=("binary", "multiclass"), default="binary")
    p.add_argument("--kernel", choices=("linear", "rbf"), default="linear")
    args = p.parse_args(argv)

    def job(spark, cfg):
        from artifactspark.models.svm import train_svm
        from artifactspark.models.training import prepare
        from artifactspark.models.trainingdata import train_config

        tc = train_config(cfg, parse_overrides(args.set))
        ts = prepare(spark, args.store, args.problem, cfg, tc, args.split, args.store_version)
        return train_svm(spark, ts, args.model_dir, tc, args.kernel)

    return run_job("artifactspark-train-svm", args, job, output=args.model_dir)


if __name__ == "__main__":
    sys.exit(main())
