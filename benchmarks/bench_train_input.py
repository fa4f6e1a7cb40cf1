"""Training input pipeline: Petastorm (store -> make_reader -> tf.data) versus in-memory arrays.

  .venv/bin/python benchmarks/bench_train_input.py --store STORE [--config FILE] [--problem binary] \
      [--steps 60] [--rounds 2]

The shipped network and input channels ([train] defaults; target >= 100 img/s on 2 cores).
Same model, same process, same training rows: ``model.fit`` for ``--steps`` steps fed (a) by
``trainingdata.train_stream`` (the job's Petastorm pipeline: decode, flips, shuffle, batch,
prefetch) and (b) by ``tf.data.Dataset.from_tensor_slices`` over the same rows already decoded in
memory, with the same flips, shuffle, batch and prefetch. Alternates a/b for ``--rounds`` and
reports the median images per second of each and their ratio (target: Petastorm >= 0.9 x memory).
The Petastorm arm opens a new stream per round; its cache keeps rows only after one full pass
over the training side, so with ``--steps`` x batch below that it measures the uncached feed.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--config")
    ap.add_argument("--problem", default="multilabel")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rows", type=int, default=512, help="training rows the memory arm repeats")
    args = ap.parse_args()
    import numpy as np
    import tensorflow as tf

    from artifactspark.config import load_config
    from artifactspark.logs import setup_logging
    from artifactspark.models.cnn import build_model, load_side, n_outputs
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import augment_flips, class_weights, train_config, train_stream
    from artifactspark.spark import get_spark

    setup_logging("WARNING")
    cfg = load_config(args.config)
    tc = train_config(cfg)
    spark = get_spark("bench-train-input", "local[1]")
    ts = prepare(spark, args.store, args.problem, cfg, tc)
    spark.stop()
    keys, x, y = load_side(ts, "train", tc)
    # the memory arm repeats --rows rows: all ~2200 training rows of the quality run's store,
    # held twice (the array and tf.data's copy) beside the Petastorm arm's cache, exceed 24 GB
    x, y = x[: args.rows].copy(), y[: args.rows]
    n_out = n_outputs(args.problem, len(ts.classes), tc)
    if args.problem == "multilabel":
        w, sw = None, np.ones(len(x), np.float32)
    else:
        w = class_weights(np.asarray(y, int), n_out)
        sw = w[np.asarray(y, int)].astype(np.float32)
    mem = (
        tf.data.Dataset.from_tensor_slices((x, y, sw))
        .repeat()
        .map(lambda a, b, c: (augment_flips(a), b, c), num_parallel_calls=2)
        .shuffle(tc.shuffle_buffer, seed=tc.seed)
        .batch(tc.batch_size)
        .prefetch(2)
    )
    model = build_model(x.shape[1:], n_out, args.problem, tc)
    rates = {"petastorm": [], "memory": []}

    def timed(ds):
        model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)  # warm-up: first batches, graph
        t = time.perf_counter()
        model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        return args.steps * tc.batch_size / (time.perf_counter() - t)

    for r in range(args.rounds):
        rates["memory"].append(timed(mem))
        with train_stream(ts.features_uri, ts.split["train"], args.problem, len(ts.taxonomy), tc, w) as ds:
            rates["petastorm"].append(timed(ds))
        print(
            f"round {r + 1}: memory {rates['memory'][-1]:.1f} img/s, petastorm {rates['petastorm'][-1]:.1f} img/s",
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(
        json.dumps(
            {
                "train_rows": int(len(x)),
                "image_shape": list(x.shape[1:]),
                "batch_size": tc.batch_size,
                "steps": args.steps,
                "rounds": args.rounds,
                "memory_img_per_s": round(med["memory"], 1),
                "petastorm_img_per_s": round(med["petastorm"], 1),
                "ratio": round(med["petastorm"] / med["memory"], 3),
                "all": rates,
            }
        )
    )


if __name__ == "__main__":
    main()
