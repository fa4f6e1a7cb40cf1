"""spark-submit jobs/preprocess.py --input ROOT_OR_URI [--labels FILE.json ...] --output STORE_URI
                                  [--prune] [--config FILE]

DES single-epoch FITS archive -> Petastorm feature store (incremental, idempotent).
Prints one JSON summary line on stdout; exit code 0 on success, 2 on bad arguments or config.
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import add_config_master_args, run_job


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--input",
        action="append",
        required=True,
        help="archive root (local path or Hadoop URI); repeat for several roots",
    )
    p.add_argument("--labels", action="append", default=[], help="exposure-checker JSON export; repeatable")
    p.add_argument("--output", required=True, help="feature store root (local path or Hadoop URI)")
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove the rows of inputs gone from the archive (default: keep them and count them as 'vanished')",
    )
    add_config_master_args(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def job(spark, cfg):
        from artifactspark.features.preprocess import run_preprocess

        return run_preprocess(spark, args.input, args.output, cfg, args.labels, prune=args.prune)

    return run_job("artifactspark-preprocess", args, job, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
