"""Where a trained model's binary errors against truth sit: recall, FPR and ROC AUC by the
exposure's sky level (and seeing), and what the false positives on clean CCDs are taken for.

    .venv/bin/python benchmarks/errors_by_conditions.py RUN_DIR [--model cnn-multilabel] [--side test]

RUN_DIR is a quality run's output: the model's ``predictions_{side}.parquet`` (its own threshold
from model.json) and the simulator's per-CCD table ``RUN_DIR/archive/labels/ccds.parquet``
(``truth_clean``, ``truth_detectable``, and the observing conditions ``sky``, ``seeing`` the
simulator records). Pandas only, no Spark or TensorFlow: seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import os

import numpy as np


def _auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def main(argv=None) -> int:
    """One table per condition, then the false positives' most probable classes."""
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--model", default="cnn-multilabel")
    ap.add_argument("--side", default="test", choices=("val", "test"))
    a = ap.parse_args(argv)
    md = os.path.join(a.run_dir, "models", a.model)
    meta = json.load(open(os.path.join(md, "model.json")))
    pred = pd.read_parquet(os.path.join(md, f"predictions_{a.side}.parquet"))
    ccds = pd.read_parquet(os.path.join(a.run_dir, "archive", "labels", "ccds.parquet"))
    k = pred.merge(ccds.rename(columns={"ccd": "ccdnum"}), on=["expnum", "ccdnum"], how="inner", validate="one_to_one")
    k = k[k.truth_clean | k.truth_detectable].copy()
    k["flag"] = k.p_artifact >= meta["threshold"]
    print(f"{md} ({a.side}): {len(k)} CCDs detectable or clean, threshold {meta['threshold']:.3f}")
    for cond in ("sky", "seeing"):
        if cond not in k.columns:
            print(f"no {cond} column in ccds.parquet")
            continue
        k["bin"] = pd.qcut(k[cond], 3)
        print(f"\nby {cond} (terciles of the CCDs)")
        print("| range | exposures | detectable | recall | clean | FPR | AUC |")
        print("|---|---|---|---|---|---|---|")
        for b, g in k.groupby("bin", observed=True):
            d, c = g.truth_detectable.to_numpy(bool), g.truth_clean.to_numpy(bool)
            print(
                f"| {_num(b.left)}-{_num(b.right)} | {g.expnum.nunique()} | {d.sum()} | {g.flag[d].mean():.3f} "
                f"| {c.sum()} | {g.flag[c].mean():.3f} | {_auc(d, g.p_artifact.to_numpy()):.3f} |"
            )
    fp = k[k.truth_clean & k.flag]
    if len(fp) and "probs" in fp.columns:
        classes = meta["classes"]
        top = collections.Counter(classes[i] for i in np.stack(fp["probs"].to_numpy()).argmax(1))
        print(f"\n{len(fp)} false positives on clean CCDs, by their most probable class: {top.most_common()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
