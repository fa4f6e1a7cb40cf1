"""spark-submit jobs/vacuum.py --store STORE_URI [--keep N] [--config FILE]

Remove the feature store's versions older than the newest N ([store] keep_versions by default)
and every file no kept version refers to. The current version is never touched. Takes the
store's writer lock; completes an interrupted commit and upgrades a store written before
versions first. Prints one JSON summary line; exit code 0 on success, 2 on bad arguments,
4 on a store problem, 75 when a run holds the store.
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import add_config_master_args, run_job


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="feature store root written by jobs/preprocess.py")
    p.add_argument("--keep", type=int, help="versions to keep, current included (default [store] keep_versions)")
    add_config_master_args(p)
    args = p.parse_args(argv)

    def job(spark, cfg):
        from artifactspark.features.store import run_vacuum

        return run_vacuum(spark, args.store, args.keep if args.keep is not None else cfg.store.keep_versions)

    return run_job("artifactspark-vacuum", args, job, output=args.store)


if __name__ == "__main__":
    sys.exit(main())
