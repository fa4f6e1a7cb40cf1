"""The shipped CNN's speed on 2 cores: training steps and scoring, as shipped against the
implementation before session 20 (the baseline), alternated in one process.

  .venv/bin/python benchmarks/bench_forward.py [--rounds 6] [--steps 10] [--score 128]

Baseline = ``tf.math.asinh`` in the input layer, the line layer's local sky as one 15 x 15
2-D average pool, and scoring by eager model calls; shipped = ``layers.fast_asinh``,
``layers.box_mean`` (separable) and ``layers.predict`` through one ``tf.function``. Both arms
build the same network ([train] defaults, the same initial weights) and see the same
random full-size inputs (N, 512, 256, 6), in memory, so the feed is not measured (see
bench_train_input.py). Every training step (``train_on_batch``, batch 16) and every scoring
batch (64 CCDs) is timed, the arms alternating in short rounds; the figures are images per
second at the median step (the machine has slow spells that a mean over a long run would mix
into one arm). Prints them per round (cumulative), the ratios shipped / baseline, and the
largest difference of the two arms' outputs on the same weights (they compute the same function).
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
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per round and arm")
    ap.add_argument("--score", type=int, default=128, help="CCDs scored per round and arm")
    args = ap.parse_args()
    import numpy as np
    import tensorflow as tf

    from artifactspark.config import load_config
    from artifactspark.models import layers
    from artifactspark.models.cnn import build_model, n_outputs
    from artifactspark.models.trainingdata import train_config

    cfg = load_config(None)
    tc = train_config(cfg)
    shape = (512, 256, len(tc.channels))
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(max(8 * tc.batch_size, args.score), *shape))).astype(np.float32)
    x[..., tc.channels.index("mask_frac")] = (rng.random(x.shape[:-1]) < 0.02).astype(np.float32)
    n_out = n_outputs("multilabel", len(cfg.taxonomy.classes), tc)
    y = (rng.random((len(x), n_out)) < 0.1).astype(np.float32)
    batches = [(x[i : i + tc.batch_size], y[i : i + tc.batch_size]) for i in range(0, 8 * tc.batch_size, tc.batch_size)]
    shipped = (layers.fast_asinh, layers.box_mean, layers.predict)

    def baseline_box(t, box):
        return tf.nn.avg_pool2d(t, box, 1, "SAME")

    def baseline_predict(model, v, batch_size=64):
        out = [model(v[i : i + batch_size], training=False).numpy() for i in range(0, len(v), batch_size)]
        return np.concatenate(out)

    arms = {"baseline": (tf.math.asinh, baseline_box, baseline_predict), "shipped": shipped}

    def use(name):  # the layers look these up when they run (eager) or are traced
        layers.fast_asinh, layers.box_mean = arms[name][:2]
        return arms[name][2]

    models = {}
    for name in arms:
        use(name)
        tf.keras.utils.set_random_seed(0)
        models[name] = build_model(shape, n_out, "multilabel", tc, 1000)
        for xb, yb in batches[:3]:
            models[name].train_on_batch(xb, yb)  # trace the train step
    # per-step times, the arms alternated in short rounds; medians resist the machine's slow spells
    steps = {f"{a}_{k}": [] for a in arms for k in ("train", "score")}
    for r in range(args.rounds):
        for name in arms:
            predict, m = use(name), models[name]
            for i in range(args.steps):
                xb, yb = batches[i % len(batches)]
                t = time.perf_counter()
                m.train_on_batch(xb, yb)
                steps[f"{name}_train"].append(time.perf_counter() - t)
            predict(m, x[:16])  # warm (the shipped arm traces its graph once)
            for i in range(0, args.score, 64):
                t = time.perf_counter()
                predict(m, x[i : i + 64])
                steps[f"{name}_score"].append((time.perf_counter() - t) / len(x[i : i + 64]))
        print(
            f"round {r + 1}: "
            + ", ".join(
                f"{k} {(tc.batch_size if k.endswith('train') else 1) / statistics.median(v):.1f} img/s"
                for k, v in steps.items()
            ),
            flush=True,
        )
    med = {k: round((tc.batch_size if k.endswith("train") else 1) / statistics.median(v), 1) for k, v in steps.items()}
    # the same function: copy the shipped weights into the baseline network and compare outputs
    models["baseline"].set_weights(models["shipped"].get_weights())
    a = use("baseline")(models["baseline"], x[:64])
    b = use("shipped")(models["shipped"], x[:64])
    print(
        json.dumps(
            {
                "rounds": args.rounds,
                "steps": args.steps,
                "batch_size": tc.batch_size,
                "img_per_s_at_the_median_step": med,
                "train_ratio": round(med["shipped_train"] / med["baseline_train"], 3),
                "score_ratio": round(med["shipped_score"] / med["baseline_score"], 3),
                "max_output_diff": float(np.abs(a - b).max()),
                "steps_timed": {k: len(v) for k, v in steps.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
