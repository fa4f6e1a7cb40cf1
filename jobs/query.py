"""spark-submit jobs/query.py --store STORE_URI [--predictions PRED_URI] [--json] [--limit N] QUESTION ...

What data engineers ask of the store and the predictions table (see artifactspark/serve/query.py):

  flagged   [--class NAME] [--band B] [--nite N | --nite-from N --nite-to N] [--model-version V]
            CCDs the model flags (or whose predicted classes include NAME), with their labels
  exposures [--min-flagged N] [--class NAME] [--band B] [--nite-from N] [--nite-to N] [--model-version V]
            exposures with at least N flagged CCDs, most flagged first
  disagree  [--model-version V] [--band B] [--nite-from N] [--nite-to N]
            confusion matrix flagged vs volunteer label, and the CCDs where they disagree
  near      (--row R --col C | --x X --y Y) [--radius PIXELS] [--class NAME] [--band B] [--nite...] [--model-version V]
            flagged CCDs (predicted as NAME) whose heatmap's hot region is within PIXELS (default 256)
            of a position: numpy (row, col) of the full-resolution CCD, or the checker's (x, y) in
            the config's [labels] orientation
  hot       EXPNUM CCDNUM [--model-version V]
            the hot region of one CCD: its hot tiles per map with pixel and checker ranges
  sql "SELECT ..."
            any Spark SQL over the views features, labels, quarantine, manifest, predictions, models

Without --model-version the most recently scored model version is used (the output says which).
Prints a table (or, with --json, one JSON object per row), then the JSON summary line.
Exit codes: 0 success, 2 bad arguments (unknown class, bad night range, bad SQL), 4 no store /
no predictions table, 1 anything else.
"""

import argparse
import sys

import _bootstrap  # noqa: F401

from artifactspark.cli import add_config_master_args, run_job


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="feature store root (local path or Hadoop URI)")
    p.add_argument("--predictions", help="predictions table root (jobs/infer.py's output)")
    add_config_master_args(p)
    out = argparse.ArgumentParser(add_help=False)  # also accepted after the question
    out.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON lines instead of a table")
    out.add_argument(
        "--limit", type=int, default=argparse.SUPPRESS, help="print at most N rows (default 200; 0 = no limit)"
    )
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--limit", type=int, default=200, help="print at most N rows (default 200; 0 = no limit)")

    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument("--band", help="one band, e.g. g")
    scope.add_argument("--nite", type=int, help="one night, YYYYMMDD")
    scope.add_argument("--nite-from", type=int, help="first night, YYYYMMDD (inclusive)")
    scope.add_argument("--nite-to", type=int, help="last night, YYYYMMDD (inclusive)")
    scope.add_argument("--model-version", help="model version (default: the most recently scored)")

    sub = p.add_subparsers(dest="question", required=True, metavar="flagged|exposures|disagree|near|hot|sql")
    f = sub.add_parser("flagged", parents=[scope, out], help="flagged CCDs")
    f.add_argument("--class", dest="cls", help="a class name, e.g. Satellite (case and taxonomy aliases accepted)")
    e = sub.add_parser("exposures", parents=[scope, out], help="exposures with many flagged CCDs")
    e.add_argument("--min-flagged", type=int, default=1, help="at least N flagged CCDs (default 1)")
    e.add_argument("--class", dest="cls", help="count CCDs predicted as this class")
    sub.add_parser("disagree", parents=[scope, out], help="predictions vs volunteer labels")
    n = sub.add_parser("near", parents=[scope, out], help="flagged CCDs with an artifact near a position")
    for k in ("row", "col", "x", "y"):
        n.add_argument(f"--{k}", type=float, help=f"position: {k} ({'numpy' if k in ('row', 'col') else 'checker'})")
    n.add_argument("--radius", type=float, default=256.0, help="pixels (full resolution, default 256)")
    n.add_argument("--class", dest="cls", help="a class name: CCDs predicted as it, its menu group's map")
    h = sub.add_parser("hot", parents=[out], help="the hot region of one CCD")
    h.add_argument("expnum", type=int)
    h.add_argument("ccdnum", type=int)
    h.add_argument("--model-version", help="model version (default: the most recently scored)")
    s = sub.add_parser("sql", parents=[out], help="any Spark SQL over the views")
    s.add_argument("query", nargs="+", help='the SQL, e.g. "SELECT band, count(*) FROM features GROUP BY band"')
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def job(spark, cfg):
        from artifactspark.serve import query as q
        from artifactspark.serve.printing import print_result

        limit = args.limit if args.limit > 0 else None
        scope = {
            k: getattr(args, k) for k in ("band", "nite", "nite_from", "nite_to", "model_version") if hasattr(args, k)
        }
        if args.question == "flagged":
            res = q.flagged(spark, args.store, args.predictions, cls=args.cls, limit=limit, **scope)
        elif args.question == "exposures":
            res = q.exposures(
                spark, args.store, args.predictions, min_flagged=args.min_flagged, cls=args.cls, limit=limit, **scope
            )
        elif args.question == "disagree":
            res = q.disagreements(spark, args.store, args.predictions, limit=limit, **scope)
        elif args.question == "near":
            from artifactspark.serve.where import near

            pos = {k: getattr(args, k) for k in ("row", "col", "x", "y")}
            res = near(
                spark,
                args.store,
                args.predictions,
                **pos,
                radius=args.radius,
                cls=args.cls,
                lc=cfg.labels,
                limit=limit,
                **scope,
            )
        elif args.question == "hot":
            from artifactspark.serve.where import hot_region

            res = hot_region(
                spark, args.store, args.predictions, args.expnum, args.ccdnum, args.model_version, cfg.labels
            )
        else:
            res = q.sql(spark, " ".join(args.query), args.store, args.predictions, limit=limit)
        return print_result(res, as_json=args.json, command=args.question)

    return run_job("artifactspark-query", args, job)


if __name__ == "__main__":
    sys.exit(main())
