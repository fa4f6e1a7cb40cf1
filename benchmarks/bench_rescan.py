"""The scheduled re-scan, cold (a process per run, as cron starts ``./submit.sh rescan``) against warm
(``jobs/rescan.py --every``: one long-lived process and SparkSession).

  .venv/bin/python benchmarks/bench_rescan.py --archive ARCHIVE --model MODEL_DIR [--n 100] [--rounds 3]

``--n`` CCDs of ARCHIVE are hard-linked into a tree of their own (as bench_preprocess.py does),
a first rescan builds the store and the predictions (timed, reported apart), then, on the unchanged
tree, in the same script run:
  * cold: ``--rounds`` runs of ``jobs/rescan.py`` each in a fresh process (Python start, imports,
    JVM, planning, the run): wall seconds per run;
  * warm: one ``jobs/rescan.py --every 0 --times ROUNDS+1`` process: the seconds of each run after
    the first (the first pays the cold planning), and the process's wall time.
Prints one JSON line at the end; the load average with each part.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench_preprocess import linked_archive  # noqa: E402

JOB = str(HERE.parent / "jobs" / "rescan.py")


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def run(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        print(r.stdout[-2000:], r.stderr[-3000:], file=sys.stderr)
        raise SystemExit(r.returncode)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    return wall, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--data", default="/work/scale-data/rescan")
    args = ap.parse_args()
    os.makedirs(args.data, exist_ok=True)
    root = linked_archive(args.archive, args.n, args.data)
    store, preds = os.path.join(args.data, f"store-{args.n}"), os.path.join(args.data, f"predictions-{args.n}")
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(preds, ignore_errors=True)
    base = [sys.executable, JOB, "--input", root, "--store", store, "--model", args.model, "--output", preds]
    base += ["--master", args.master]
    res = {"ccds": args.n, "master": args.master}
    wall, lines = run(base)
    assert lines[-1]["changed"], lines
    res.update(first_run_wall_seconds=round(wall, 1), load_first=load())
    print(f"first run (builds store + predictions): {wall:.1f} s, load {load()}", flush=True)
    cold = []
    for _ in range(args.rounds):
        wall, lines = run(base)
        assert not lines[-1]["changed"], lines
        cold.append(round(wall, 1))
    res.update(cold_noop_wall_seconds=cold, load_cold=load())
    print(f"cold no-op runs (process wall): {cold}, load {load()}", flush=True)
    wall, lines = run(base + ["--every", "0", "--times", str(args.rounds + 1)])
    assert len(lines) == args.rounds + 1 and not any(x["changed"] for x in lines), lines
    warm = [x["seconds"] for x in lines]
    res.update(
        warm_process_wall_seconds=round(wall, 1),
        warm_first_run_seconds=warm[0],
        warm_noop_seconds=warm[1:],
        load_warm=load(),
    )
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    res["warm_over_cold_median"] = round(med(warm[1:]) / med(cold), 3)
    print(f"warm: process {wall:.1f} s, runs {warm} (first pays the planning), load {load()}", flush=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
