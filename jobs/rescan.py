"""spark-submit jobs/rescan.py --input ROOT [--input ROOT2] [--labels FILE.json ...] --store STORE_URI
       --model MODEL_DIR [--model MODEL_DIR2] --output PREDICTIONS_URI [--config FILE]

The scheduled full-archive re-scan: incremental preprocess of the archive into the store, then
incremental inference with every --model into the predictions table. Nothing that did not change
is reprocessed or rescored. One JSON summary line ("changed": false when there was nothing to do).
--every SECONDS [--times N]: the warm mode, one long-lived process (and SparkSession) that re-scans
every SECONDS, one JSON line per run; a run that finds the store busy is skipped.
Exit codes: 0 ok, 2 bad arguments/config/model, 3 Java/Spark, 4 store problem,
75 another rescan (or writer) holds the lock: retry later, 1 other.

    crontab:  17 6 * * *  cd /opt/artifactspark && ./submit.sh rescan --input /data/des --labels /data/checker.json --store /data/store --model /models/cnn --output /data/predictions >> /var/log/artifactspark.log 2>&1
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import add_config_master_args, run_job


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", action="append", required=True, help="archive root; repeatable")
    p.add_argument("--labels", action="append", default=[], help="exposure-checker JSON export; repeatable")
    p.add_argument("--store", required=True, help="feature store root")
    p.add_argument("--model", action="append", required=True, help="model directory; repeatable")
    p.add_argument("--output", required=True, help="predictions table root")
    p.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="warm mode: stay up and re-scan every SECONDS in one SparkSession (one JSON line per run)",
    )
    p.add_argument("--times", type=int, default=0, help="with --every: stop after this many runs (0: never)")
    add_config_master_args(p)
    args = p.parse_args(argv)

    def job(spark, cfg):
        from artifactspark.serve.rescan import run_rescan, run_rescan_every

        a = (args.input, args.labels, args.store, args.model, args.output, cfg)
        if args.every is not None:
            return run_rescan_every(spark, args.every, args.times, *a)
        return run_rescan(spark, *a)

    return run_job("artifactspark-rescan", args, job, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
