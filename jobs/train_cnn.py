"""spark-submit jobs/train_cnn.py --store STORE_URI --model-dir DIR --problem binary|multiclass|multilabel
       [--split FILE] [--set KEY=VALUE ...] [--shard I --num-shards N] [--config FILE]

Trains the CNN (TensorFlow; [train] architecture: "strided" by default, "paper" for the
reference) from the Petastorm feature store on a train/val/test split by exposure, picks the
decision threshold on validation by [train] threshold_rule, and writes the
model, model.json, the val/test predictions, history.json and metrics.json into --model-dir.
Prints one JSON summary line; exit codes as every job (0 ok, 2 bad input, 4 store problem).
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import add_train_args, parse_overrides, run_job
from artifactspark.models.trainingdata import PROBLEMS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_args(p)
    p.add_argument(
        "--problem",
        choices=PROBLEMS,
        default="multilabel",
        help="multilabel (default: the main model; its 'any artifact' head gives P(artifact), and its "
        "binary and many-class views are written under MODEL_DIR/views), binary or multiclass",
    )
    p.add_argument("--shard", type=int, help="this worker's shard of the training rows (row groups), 0-based")
    p.add_argument("--num-shards", type=int, help="number of shards (one per training worker)")
    args = p.parse_args(argv)
    if (args.shard is None) != (args.num_shards is None) or (
        args.num_shards is not None and not 0 <= args.shard < args.num_shards
    ):
        p.error("--shard and --num-shards go together, with 0 <= shard < num-shards")

    def job(spark, cfg):
        from artifactspark.models.cnn import train_cnn
        from artifactspark.models.training import prepare
        from artifactspark.models.trainingdata import train_config

        tc = train_config(cfg, parse_overrides(args.set))
        ts = prepare(spark, args.store, args.problem, cfg, tc, args.split, args.store_version)
        return train_cnn(ts, args.model_dir, tc, args.shard, args.num_shards)

    return run_job("artifactspark-train-cnn", args, job, output=args.model_dir)


if __name__ == "__main__":
    sys.exit(main())
