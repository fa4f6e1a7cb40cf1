"""Simulated DES archive with injected artifacts and exposure-checker labels (issue 3).

  spark-submit jobs/simulate.py --output ROOT --exposures N [--ccds 1,2,5-9] [--seed S] [--config FILE]
  python jobs/simulate.py gallery --archive ROOT --out DIR [--config FILE]

Writes ROOT/<NITE>/D<EXPNUM>/p<att>/red/{immask,bkg}/..., ROOT/labels/checker_export.json,
ROOT/labels/truth.parquet (+ truth.csv) and ROOT/labels/ccds.parquet; prints one JSON summary line.
Exit code 0 on success, 2 on bad arguments or config.
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import EXIT_USAGE, add_config_master_args, run_job  # noqa: E402
from artifactspark.io.des import parse_ccd_list as parse_ccds  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, help="archive root to write (local path)")
    p.add_argument("--exposures", type=int, required=True, help="number of exposures")
    p.add_argument("--ccds", help="CCDNUMs, e.g. '1-10,31' (default: [simulate] ccds, all but the dead CCD 61)")
    p.add_argument("--seed", type=int, default=0)
    add_config_master_args(p)
    return p


def gallery_main(argv) -> int:
    from artifactspark.logs import emit_summary, setup_logging

    p = argparse.ArgumentParser(prog="simulate.py gallery", description="one PNG per class of a simulated archive")
    p.add_argument("--archive", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config")
    args = p.parse_args(argv)
    setup_logging()
    from artifactspark.config import load_config
    from artifactspark.errors import ArtifactSparkError
    from artifactspark.sim.gallery import make_gallery

    try:
        summary = make_gallery(args.archive, args.out, load_config(args.config))
    except (ArtifactSparkError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    emit_summary(summary)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "gallery":
        return gallery_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        ccds = parse_ccds(args.ccds) if args.ccds else None
    except ValueError:
        print(f"error: --ccds {args.ccds!r}: expected a list like '1-10,31'", file=sys.stderr)
        return EXIT_USAGE
    if args.exposures < 1:
        print("error: --exposures must be >= 1", file=sys.stderr)
        return EXIT_USAGE

    def job(spark, cfg):
        from artifactspark.sim.archive import run_simulation

        return run_simulation(spark, args.output, args.exposures, cfg, ccds=ccds, seed=args.seed)

    return run_job("artifactspark-simulate", args, job, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
