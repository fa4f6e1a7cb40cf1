"""Inference throughput and memory: the Spark job versus a local loop over the same images.

  .venv/bin/python benchmarks/bench_infer.py --store STORE --model MODEL_DIR [--config FILE] [--cores 1 2]

In one script run, on the same stored CCDs and the same model:
  1. the baseline: one process loads the model once, holds every stored image in memory
     (decoded) and calls the same ``Predictor.predict`` the executors call, in batches of
     ``[infer] batch_size``: CCDs per second on one core (TF limited to one thread);
  2. the Spark job (``run_infer``: read the store, skip nothing, score on the executors, write the
     predictions table) into a fresh table on local[c], in a fresh process each (cold JVM, as a
     spark-submit job): CCDs per second per core over the whole run and over the scoring write
     alone, their ratios to the loop, and the peak RSS of any Python worker.
Prints one JSON line at the end.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchcommon import RSSWatcher  # noqa: E402

ONE_THREAD = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def loop(store: str, model: str, batch: int):
    import numpy as np
    import pyarrow.dataset as ds
    import tensorflow as tf

    from artifactspark.features.store import decode_ndarray
    from artifactspark.models.channels import is_plane
    from artifactspark.models.modelio import Predictor

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    p = Predictor(model)
    t = ds.dataset(os.path.join(store, "features"), partitioning="hive").to_table(columns=p.columns)
    planes = {
        c: np.stack([decode_ndarray(b) for b in t.column(c).to_pylist()]) if is_plane(c) else t.column(c).to_numpy()
        for c in p.columns
    }
    n = len(planes["image"])
    p.predict({f: v[:batch] for f, v in planes.items()})  # warm-up (graph, allocations)
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        p.predict({f: v[i : i + batch] for f, v in planes.items()})
    return n, time.perf_counter() - t0


def spark_run(store, model, cfg_path, cores, out):
    from artifactspark.config import load_config
    from artifactspark.serve.infer import run_infer
    from artifactspark.spark import get_spark

    spark = get_spark(f"bench-infer-{cores}", master=f"local[{cores}]", conf={"spark.ui.enabled": "false"})
    spark.range(4).count()
    shutil.rmtree(out, ignore_errors=True)
    w = RSSWatcher()
    w.start()
    t = time.perf_counter()
    s = run_infer(spark, store, model, out, load_config(cfg_path))
    wall = time.perf_counter() - t
    w.stop.set()
    w.join()
    spark.stop()
    return wall, s, w.peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--config")
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "data" / "bench-predictions"))
    ap.add_argument("--spark-only", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--loop-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from artifactspark.config import load_config
    from artifactspark.logs import setup_logging
    from artifactspark.serve.infer import infer_config

    setup_logging("WARNING")
    batch = infer_config(load_config(args.config)).batch_size
    if args.loop_only:
        n, secs = loop(args.store, args.model, batch)
        print(json.dumps({"n": n, "seconds": secs}))
        return
    if args.spark_only:
        wall, s, peak = spark_run(args.store, args.model, args.config, args.spark_only, args.out)
        print(json.dumps({"wall": wall, "summary": s, "peak": peak}))
        return
    base = [sys.executable, __file__, "--store", args.store, "--model", args.model, "--out", args.out] + (
        ["--config", args.config] if args.config else []
    )
    r = json.loads(
        subprocess.run(
            base + ["--loop-only"], env={**os.environ, **ONE_THREAD}, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    n, loop_rate = r["n"], r["n"] / r["seconds"]
    res = {"ccds": n, "loop_ccd_per_s": round(loop_rate, 2), "batch_size": batch}
    print(f"loop: {n} CCDs in {r['seconds']:.2f} s = {loop_rate:.2f} CCD/s on 1 core", flush=True)
    for c in args.cores:
        env = {**os.environ, **ONE_THREAD}
        out = subprocess.run(base + ["--spark-only", str(c)], env=env, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        wall, s, peak = r["wall"], r["summary"], r["peak"]
        assert s["scored"] == n and s["predictions_rows"] == n, s
        rate, score_rate = n / wall / c, n / s["score_seconds"] / c
        res.update(
            {
                f"spark{c}_seconds": round(wall, 1),
                f"spark{c}_ccd_per_s_per_core": round(rate, 2),
                f"spark{c}_ratio_to_loop": round(rate / loop_rate, 3),
                f"spark{c}_score_write_seconds": s["score_seconds"],
                f"spark{c}_score_ratio_to_loop": round(score_rate / loop_rate, 3),
                f"spark{c}_peak_worker_rss_mb": round(peak / 2**20),
            }
        )
        print(
            f"spark local[{c}]: {wall:.1f} s = {rate:.2f} CCD/s/core (ratio {rate / loop_rate:.3f}); scoring+write "
            f"{s['score_seconds']} s (ratio {score_rate / loop_rate:.3f}); peak worker RSS {peak / 2**20:.0f} MB",
            flush=True,
        )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
