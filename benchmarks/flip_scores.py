"""Flip-averaged scores (``[train] score_flips``) as an A/B on one trained multi-label CNN: the same
weights, the same validation and test CCDs, the scoring the only change. For each mode the
threshold is chosen on validation by the model's own rule, then the test side is measured against
the simulator's truth (recall over CCDs with a detectable artifact, FPR over CCDs with none).

    .venv/bin/python benchmarks/flip_scores.py RUN_DIR [--model cnn-multilabel] [--truth PATH]

RUN_DIR is a quality run's output (``RUN_DIR/store``, ``RUN_DIR/models/MODEL``); the truth is the
simulator's per-CCD table (default ``RUN_DIR/archive/labels/ccds.parquet``). Modes: one pass,
left-right averaged (2 passes), all four flips (4 passes).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

MODES = ("one pass", "left-right", "four flips")


def main(argv=None) -> int:
    """Score, choose, measure; one line per mode."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--model", default="cnn-multilabel")
    ap.add_argument("--truth", default=None)
    a = ap.parse_args(argv)
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from artifactspark.config import load_config
    from artifactspark.logs import setup_logging
    from artifactspark.models import modelio
    from artifactspark.models.cnn import load_side
    from artifactspark.models.layers import predict
    from artifactspark.models.training import choose_threshold, prepare
    from artifactspark.models.trainingdata import TrainConfig, train_config
    from artifactspark.spark import get_spark

    setup_logging("WARNING")
    model_dir = os.path.join(a.run_dir, "models", a.model)
    pred = modelio.Predictor(model_dir)
    if pred.problem != "multilabel":
        raise SystemExit(f"{model_dir}: needs a multi-label CNN")
    cfg = load_config(None)
    known = {f.name for f in dataclasses.fields(TrainConfig)}  # the model's settings that still exist
    tc = train_config(cfg, {k: v for k, v in pred.meta.get("train_config", {}).items() if k in known})
    spark = get_spark("flip-scores", "local[1]")
    ts = prepare(spark, os.path.join(a.run_dir, "store"), "multilabel", cfg, tc, os.path.join(model_dir, "model.json"))
    spark.stop()
    sides = {s: load_side(ts, s, tc) for s in ("val", "test")}
    truth = pd.read_parquet(a.truth or os.path.join(a.run_dir, "archive", "labels", "ccds.parquet"))
    truth = truth.rename(columns={"ccd": "ccdnum"})
    classes = pred.meta["classes"]
    print(f"{model_dir}: val {len(sides['val'][1])}, test {len(sides['test'][1])} CCDs")

    def score(x, mode):  # one pass and four flips: the shipped layers.predict; left-right only here
        if mode == "left-right":
            return (predict(pred.model, x) + predict(pred.model, np.ascontiguousarray(x[:, :, ::-1]))) / 2
        return predict(pred.model, x, flips=mode == "four flips")

    for mode in MODES:
        t0 = time.time()
        out = {}
        for s, (keys, x, _) in sides.items():
            out[s] = (keys, *modelio.split_outputs(pred.meta, score(x, mode)))
        thr, _ = choose_threshold(out["val"][0], out["val"][2], tc)
        keys, probs, pa = out["test"]
        k = pd.DataFrame({"expnum": keys["expnum"], "ccdnum": keys["ccdnum"]}).merge(
            truth, on=["expnum", "ccdnum"], how="left", validate="one_to_one"
        )
        det, cln = k.truth_detectable.to_numpy(bool), k.truth_clean.to_numpy(bool)
        sel = det | cln
        aucs = []
        for i, name in enumerate(classes):
            y = np.array([name in list(d) for d in k.detectable_classes])[sel]
            if y.sum() >= 20:
                aucs.append(roc_auc_score(y, probs[sel, i]))
        print(
            f"{mode:10s}: threshold {thr:.3f} | test vs truth: AUC {roc_auc_score(det[sel], pa[sel]):.4f}, "
            f"recall {(pa[det] >= thr).mean():.3f} ({det.sum()}), FPR {(pa[cln] >= thr).mean():.3f} ({cln.sum()}), "
            f"mean class AUC {np.mean(aucs):.3f} over {len(aucs)} | {time.time() - t0:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
