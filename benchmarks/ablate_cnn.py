"""The CNN's measures against overfitting, measured one by one on one split.

  .venv/bin/python benchmarks/ablate_cnn.py --store STORE [--config FILE] [--problem binary] [--epochs 25] [--out DIR]

Trains the paper's reference configuration (no class weights, no flips, no batch norm, no early
stopping, no per-image standardisation, dropout 0.5), then each measure switched on alone, then
the shipped defaults. Every run uses the same split by exposure and seed; the threshold is chosen
on validation. Reports validation loss/error at the best epoch and test accuracy, recall and FPR
at the chosen threshold (the test side is never used to choose anything). One JSON line per run.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PAPER = {
    "class_weights": False,
    "augment": False,
    "batch_norm": False,
    "early_stopping_patience": 0,
    "standardize": False,
    "dropout": 0.5,
}
VARIANTS = [
    ("paper", {}),
    ("+standardize", {"standardize": True}),
    ("+class_weights", {"class_weights": True}),
    ("+augment", {"augment": True}),
    ("+batch_norm", {"batch_norm": True}),
    ("+early_stopping", {"early_stopping_patience": 6}),
    ("shipped defaults", None),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--config")
    ap.add_argument("--problem", default="binary")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "data" / "ablation"))
    args = ap.parse_args()
    from artifactspark.config import load_config
    from artifactspark.logs import setup_logging
    from artifactspark.models.cnn import train_cnn
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import train_config
    from artifactspark.spark import get_spark

    setup_logging("WARNING")
    cfg = load_config(args.config)
    spark = get_spark("bench-ablation", "local[2]")
    rows = []
    for name, over in VARIANTS:
        tc = train_config(cfg, {"epochs": args.epochs, **(PAPER if over is not None else {}), **(over or {})})
        ts = prepare(spark, args.store, args.problem, cfg, tc)
        md = os.path.join(args.out, name.strip("+").replace(" ", "_"))
        s = train_cnn(ts, md, tc)
        h = json.load(open(os.path.join(md, "history.json")))
        best = h["best_epoch"] - 1
        b = s["test"]["binary"]
        row = {
            "variant": name,
            "epochs_run": len(h["epoch"]),
            "best_epoch": h["best_epoch"],
            "val_loss": round(h["val_loss"][best], 4),
            "val_error": round(h["val_error"][best], 3),
            "train_error_last": round(h["train_error"][-1], 3),
            "test_accuracy": round(s["test"]["accuracy"], 3),
            "test_recall": round(b["recall"], 3),
            "test_fpr": round(b["fpr"], 3),
            "threshold": round(s["threshold"], 4),
            "split": s["split"],
            "rows": s["rows"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
