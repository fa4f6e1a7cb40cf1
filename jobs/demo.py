"""./submit.sh demo [--size tiny|small|medium|large] [--out DIR] [--seed S]"""

import argparse
import os
import sys

import _bootstrap  # noqa: F401

from artifactspark import demo
from artifactspark.cli import run_job


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__ + "\n\n" + demo.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--size",
        choices=sorted(demo.SIZES),
        default="small",
        help="tiny: 5 exposures x 4 CCDs (the test); small: 12 x 20 (~15 min on 2 cores); "
        "medium: 30 x 61; large: 60 x 61",
    )
    p.add_argument("--out", default="out/demo", help="folder for the archive, store, models, predictions, report")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--config", help="pipeline config TOML (default: conf/pipeline.toml)")
    p.add_argument("--master", help="Spark master (default local[*])")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    return run_job(
        "artifactspark-demo", args, lambda spark, cfg: demo.run_demo(spark, cfg, args.size, out, args.seed), output=out
    )


if __name__ == "__main__":
    sys.exit(main())
