"""Inference throughput and memory: the Spark job versus a local loop over the same images.

  .venv/bin/python benchmarks/bench_infer.py --store STORE --model MODEL_DIR [--config FILE] [--cores 1 2]

In one script run, on the same stored CCDs and the same model:
  1. the baseline: one process loads the model once, reads the store's rows with pyarrow in
     batches of ``[infer] batch_size``, decodes them and calls the same ``Predictor.predict`` the
     executors call: CCDs per second on one core (TF limited to one thread); and the model alone
     on ``--in-memory`` rows held decoded in memory (the loop of the issue-5 figures);
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


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


ONE_THREAD = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def loop(store: str, model: str, batch: int, in_memory: int):
    """The local loop: read the store's rows batch by batch with pyarrow, decode, ``Predictor.predict``
    (what a user without Spark would run). Also the model alone on ``in_memory`` decoded rows."""
    import numpy as np
    import pyarrow.parquet as pq
    import tensorflow as tf

    from artifactspark.features.store import decode_ndarray
    from artifactspark.features.versions import open_version
    from artifactspark.models.channels import is_plane
    from artifactspark.models.modelio import Predictor

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    p = Predictor(model)
    files = sorted(open_version(store).arrow_dataset().files)

    def batches():  # file by file, one batch in memory at a time (no readahead)
        for path in files:
            for b in pq.ParquetFile(path).iter_batches(batch_size=batch, columns=p.columns):
                yield {
                    c: np.stack([decode_ndarray(v) for v in b.column(c).to_pylist()])
                    if is_plane(c)
                    else b.column(c).to_numpy()
                    for c in p.columns
                }

    first = next(batches())
    p.predict({f: v[:batch] for f, v in first.items()})  # warm-up (graph, allocations)
    t0 = time.perf_counter()
    n = 0
    for planes in batches():
        p.predict(planes)
        n += len(planes["image"])
    stream = time.perf_counter() - t0
    held, k = [], 0
    for planes in batches():
        held.append(planes)
        k += len(planes["image"])
        if k >= in_memory:
            break
    t0 = time.perf_counter()
    for planes in held:
        p.predict(planes)
    return n, stream, k, time.perf_counter() - t0


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
    ap.add_argument("--in-memory", type=int, default=256, help="rows for the model-only (decoded, in memory) rate")
    ap.add_argument("--spark-only", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--loop-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from artifactspark.config import load_config
    from artifactspark.logs import setup_logging
    from artifactspark.serve.infer import infer_config

    setup_logging("WARNING")
    batch = infer_config(load_config(args.config)).batch_size
    if args.loop_only:
        n, secs, k, ksecs = loop(args.store, args.model, batch, args.in_memory)
        print(json.dumps({"n": n, "seconds": secs, "k": k, "k_seconds": ksecs}))
        return
    if args.spark_only:
        wall, s, peak = spark_run(args.store, args.model, args.config, args.spark_only, args.out)
        print(json.dumps({"wall": wall, "summary": s, "peak": peak}))
        return
    base = [sys.executable, __file__, "--store", args.store, "--model", args.model, "--out", args.out]
    base += ["--in-memory", str(args.in_memory)] + (["--config", args.config] if args.config else [])
    r = json.loads(
        subprocess.run(
            base + ["--loop-only"], env={**os.environ, **ONE_THREAD}, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    n, loop_rate = r["n"], r["n"] / r["seconds"]
    model_rate = r["k"] / r["k_seconds"]
    res = {"ccds": n, "loop_ccd_per_s": round(loop_rate, 2), "batch_size": batch, "load_loop": load()}
    res["model_only_ccd_per_s"] = round(model_rate, 2)
    print(
        f"loop (read + decode + predict): {n} CCDs in {r['seconds']:.2f} s = {loop_rate:.2f} CCD/s on 1 core; "
        f"model alone on {r['k']} decoded CCDs: {model_rate:.2f} CCD/s; load {load()}",
        flush=True,
    )
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
                f"spark{c}_ratio_to_model_only": round(rate / model_rate, 3),
                f"spark{c}_timings": s.get("timings"),
                f"load_spark{c}": load(),
            }
        )
        print(
            f"spark local[{c}]: {wall:.1f} s = {rate:.2f} CCD/s/core (ratio {rate / loop_rate:.3f}); scoring+write "
            f"{s['score_seconds']} s (ratio {score_rate / loop_rate:.3f}); peak worker RSS {peak / 2**20:.0f} MB; "
            f"phases {s.get('timings')}; load {load()}",
            flush=True,
        )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
