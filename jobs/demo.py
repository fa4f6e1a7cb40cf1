"""The end-to-end demo on the embedded default: local Spark, a generated sample archive.

    ./submit.sh demo [--size tiny|small|medium|large] [--out DIR] [--seed S]

1. simulates a DES-format archive with injected artifacts and exposure-checker labels
   (artifactspark.sim; full-size 4096x2048 CCDs, RICE-compressed);
2. preprocesses it into a Petastorm feature store;
3. trains the CNN (multi-label, with binary and many-class views) and the SVM (binary and many-class)
   on one split by exposure;
4. scores the whole store with the CNN into a predictions table (batch inference);
5. writes the report (confusion matrices, FPR/FNR curve, error vs epoch, learning curves,
   recall vs artifact strength, CNN vs SVM) and a gallery with one PNG per class;
and prints where to look. Running it again reuses what did not change: the archive, the store
(the second preprocess skips every input), the models (when no CCD changed) and the predictions.
"""
import argparse
import os
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import run_job
from artifactspark.demo import SIZES, run_demo


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="small",
                   help="tiny: 5 exposures x 4 CCDs (the test); small: 12 x 20 (~15 min on 2 cores); "
                        "medium: 30 x 61; large: 60 x 61")
    p.add_argument("--out", default="out/demo", help="folder for the archive, store, models, predictions, report")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--config", help="pipeline config TOML (default: conf/pipeline.toml)")
    p.add_argument("--master", help="Spark master (default local[*])")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    return run_job("artifactspark-demo", args, lambda spark, cfg: run_demo(spark, cfg, args.size, out, args.seed), output=out)


if __name__ == "__main__":
    sys.exit(main())
