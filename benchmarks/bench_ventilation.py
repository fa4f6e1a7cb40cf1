"""One-epoch Petastorm reads: the wait for the ventilator before (the epoch's whole hand-out
awaited under petastorm's workers x 4 bound: up to its 60 s timeout) and after session 20's fix
(the bound lifted first), alternated in one process on the same store and side.

  .venv/bin/python benchmarks/bench_ventilation.py --store STORE [--split MODEL_DIR/model.json] \
      [--side val] [--rounds 2]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def old_wait(reader, timeout=60.0):
    """versions._wait_for_ventilation as of 88d1805 (the baseline)."""
    vent = getattr(reader, "ventilator", None)
    if vent is None or getattr(vent, "_iterations", None) != 1:
        return
    deadline = time.monotonic() + timeout
    while not vent.completed() and time.monotonic() < deadline:
        time.sleep(0.001)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--split", help="a split file or model.json (default: the split made from [train] seed)")
    ap.add_argument("--side", default="val", choices=["train", "val", "test"])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from artifactspark.config import load_config
    from artifactspark.features import versions
    from artifactspark.logs import setup_logging
    from artifactspark.models.cnn import load_side
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import train_config
    from artifactspark.spark import get_spark

    setup_logging("WARNING")
    cfg = load_config(None)
    tc = train_config(cfg)
    spark = get_spark("bench-ventilation", "local[1]")
    ts = prepare(spark, args.store, "multilabel", cfg, tc, args.split)
    spark.stop()
    new_wait = versions._wait_for_ventilation
    for r in range(args.rounds):
        for name, wait in (("before", old_wait), ("after", new_wait)):
            versions._wait_for_ventilation = wait
            t = time.perf_counter()
            _, x, _ = load_side(ts, args.side, tc)
            dt = time.perf_counter() - t
            print(f"round {r + 1} {name}: load_side({args.side}) {len(x)} CCDs in {dt:.1f} s", flush=True)
    versions._wait_for_ventilation = new_wait


if __name__ == "__main__":
    main()
