"""Simulator throughput: full-size CCDs per second per core including compression and writing,
and peak memory per task (max RSS of a worker process).

  .venv/bin/python benchmarks/bench_simulate.py [--ccds 6] [--procs 1 2] [--out /tmp/bench_sim]

Each worker is a fresh process that simulates --ccds full-size (4096 x 2048) CCDs of different
exposures with the default [simulate] settings (artifact share 0.5) and writes them (.fz); the
first CCD (GalSim/fitsio imports, templates) is timed separately as warm-up. With --procs 2 two
workers run at once: CCDs/s/core = total CCDs / wall / procs. Prints one JSON line per setting.
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def worker(args):
    wid, n, out = args
    from artifactspark.config import load_config
    from artifactspark.sim.archive import simulate_ccd
    from artifactspark.sim.config import sim_config

    cfg = load_config(None)
    sc = sim_config(cfg)
    shape = tuple(cfg.input.ccd_shape)
    t0 = time.time()
    simulate_ccd(sc, 1, 1000 + wid, 1, shape, sc.ccds, out, cfg.labels, tuple(cfg.taxonomy.classes))
    warm = time.time() - t0
    times = []
    for k in range(n):
        t = time.time()
        simulate_ccd(
            sc, 1, wid * 100 + k, 2 + (k * 7) % 60, shape, sc.ccds, out, cfg.labels, tuple(cfg.taxonomy.classes)
        )
        times.append(time.time() - t)
    return {"warmup_s": warm, "times": times, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ccds", type=int, default=6, help="timed CCDs per worker")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", default="/tmp/bench_sim")
    a = p.parse_args()
    ctx = mp.get_context("spawn")
    for procs in a.procs:
        shutil.rmtree(a.out, ignore_errors=True)
        with ctx.Pool(procs) as pool:
            res = pool.map(worker, [(w, a.ccds, a.out) for w in range(procs)])
        # throughput from the per-task times of the timed (post-warm-up) CCDs, all workers concurrent
        wall = max(sum(r["times"]) for r in res)
        total = sum(len(r["times"]) for r in res)
        per_ccd = [t for r in res for t in r["times"]]
        print(
            json.dumps(
                {
                    "procs": procs,
                    "ccds": total,
                    "ccd_per_s_per_core": round(total / wall / procs, 3),
                    "seconds_per_ccd_mean": round(sum(per_ccd) / len(per_ccd), 3),
                    "seconds_per_ccd_max": round(max(per_ccd), 3),
                    "warmup_s": round(max(r["warmup_s"] for r in res), 2),
                    "peak_rss_mb_per_task": round(max(r["max_rss_mb"] for r in res), 1),
                    "cpu_count": os.cpu_count(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
