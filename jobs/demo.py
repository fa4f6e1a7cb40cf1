"""The end-to-end demo on the embedded default: local Spark, a generated sample archive.

    ./submit.sh demo [--size small|medium|large] [--out DIR] [--seed S]

1. simulates a DES-format archive with injected artifacts and exposure-checker labels
   (artifactspark.sim; full-size 4096x2048 CCDs, RICE-compressed);
2. runs the preprocess job on it into a Petastorm feature store;
3. writes one PNG per artifact class (the gallery) and prints where to look.
Running it again reuses the archive and the store: the second preprocess skips every input.
"""
import argparse
import json
import os
import sys
import time

import _bootstrap  # noqa: F401

from artifactspark.cli import run_job

SIZES = {"tiny": (1, "1-4"), "small": (3, "1-8"), "medium": (10, "1-62"), "large": (50, "1-62")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="small",
                   help="tiny: 1 exposure x 4 CCDs (the test); small: 3 x 8 (~2 min on 2 cores); medium: 10 x 61; large: 50 x 61")
    p.add_argument("--out", default="out/demo", help="folder for the archive, the store and the plots")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--config", help="pipeline config TOML (default: conf/pipeline.toml)")
    p.add_argument("--master", help="Spark master (default local[*])")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    archive, store, gallery = (os.path.join(out, d) for d in ("archive", "store", "gallery"))

    def job(spark, cfg):
        from artifactspark.preprocess import run_preprocess
        from artifactspark.sim.archive import run_simulation
        from artifactspark.sim.gallery import make_gallery
        from artifactspark.des import parse_ccd_list

        n_exp, ccds = SIZES[args.size]
        steps = {}
        labels = os.path.join(archive, "labels", "checker_export.json")
        t = time.time()
        if os.path.exists(labels):
            print(f"[1/3] sample archive already at {archive}: reusing it", file=sys.stderr, flush=True)
            steps["simulate"] = {"reused": archive}
        else:
            print(f"[1/3] simulating {n_exp} exposures x CCDs {ccds} into {archive}", file=sys.stderr, flush=True)
            steps["simulate"] = run_simulation(spark, archive, n_exp, cfg, ccds=parse_ccd_list(ccds), seed=args.seed)
        print(f"      {time.time() - t:.0f} s", file=sys.stderr, flush=True)
        t = time.time()
        print(f"[2/3] preprocess -> feature store {store}", file=sys.stderr, flush=True)
        steps["preprocess"] = run_preprocess(spark, [archive], store, cfg, [labels])
        print(f"      {time.time() - t:.0f} s: {json.dumps({k: steps['preprocess'][k] for k in ('inputs', 'stored', 'quarantined', 'skipped')})}",
              file=sys.stderr, flush=True)
        print(f"[3/3] gallery -> {gallery}", file=sys.stderr, flush=True)
        steps["gallery"] = make_gallery(archive, gallery, cfg)
        print("\nWhere to look:\n"
              f"  archive (DES layout)   {archive}\n"
              f"  labels + truth         {os.path.join(archive, 'labels')}\n"
              f"  feature store          {store}/features  (Petastorm; Parquet partitioned by band/nite)\n"
              f"  quarantine / manifest  {store}/quarantine, {store}/manifest\n"
              f"  one PNG per class      {gallery}\n", file=sys.stderr, flush=True)
        return {"job": "demo", "size": args.size, "out": out,
                "preprocess": {k: steps["preprocess"][k] for k in ("inputs", "stored", "quarantined", "skipped", "seconds")},
                "gallery_pngs": len([f for f in os.listdir(gallery) if f.endswith(".png")])}

    return run_job("artifactspark-demo", args, job)


if __name__ == "__main__":
    sys.exit(main())
