"""Train CNN variants on one store and one split, score each against the simulator's truth.

  .venv/bin/python benchmarks/variants_cnn.py --store STORE --truth ARCHIVE/labels --split MODEL_JSON \
      --out DIR --variant 'NAME:PROBLEM:KEY=VALUE;KEY=VALUE' ...

One JSON line per variant: validation/test AUC and recall/FPR at the validation-chosen threshold,
against truth and against the volunteer labels, epochs run and training images per second.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_variant(text):
    """NAME:PROBLEM:KEY=VALUE;KEY=VALUE (TOML values; ';' separates, so lists may hold commas)."""
    import tomllib

    name, problem, *rest = text.split(":", 2)
    over = {}
    for kv in rest[0].split(";") if rest and rest[0] else []:
        k, v = kv.split("=", 1)
        over[k.strip()] = tomllib.loads(f"v = {v}")["v"]
    return name, problem, over


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", action="append", required=True)
    a = ap.parse_args()
    from artifactspark.config import load_config
    from artifactspark.evaluate.metrics import summarize_model
    from artifactspark.logs import setup_logging
    from artifactspark.models.cnn import train_cnn
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import train_config
    from artifactspark.spark import get_spark

    setup_logging("WARNING")
    cfg = load_config(None)
    spark = get_spark("variants", "local[2]")
    for text in a.variant:
        name, problem, over = parse_variant(text)
        tc = train_config(cfg, over)
        ts = prepare(spark, a.store, problem, cfg, tc, a.split)
        md = os.path.join(a.out, name)
        t = time.time()
        train_cnn(ts, md, tc)
        m = json.load(open(os.path.join(md, "model.json")))
        ev = summarize_model(md, truth=a.truth)
        tb, vb = ev["truth"]["binary"], ev["binary"]
        print(
            json.dumps(
                {
                    "variant": name,
                    "problem": problem,
                    "over": over,
                    "epochs_run": m["epochs_run"],
                    "best_epoch": m["best_epoch"],
                    "img_per_s": m["timing"]["images_per_second"],
                    "threshold": round(m["threshold"], 4),
                    "truth": {"auc": tb.get("roc_auc"), "recall": tb["recall"], "fpr": tb["fpr"]},
                    "volunteers": {"auc": vb.get("roc_auc"), "recall": vb["recall"], "fpr": vb["fpr"]},
                    "ml_mean_auc_all": (ev["truth"].get("multilabel") or {}).get("mean_auc_all"),
                    "seconds": round(time.time() - t),
                }
            ),
            flush=True,
        )
    spark.stop()


if __name__ == "__main__":
    main()
