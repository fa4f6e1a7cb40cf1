"""How well the Radon line S/N alone (lines.py, the CNN's LineSN layer) finds tracks.

    .venv/bin/python benchmarks/line_feature.py --store STORE --truth ARCHIVE/labels \
        [--split MODEL_DIR/model.json] [--side test]

For the CCDs of one side of a model's split (or every labelled CCD), the largest line S/N of
each CCD, computed exactly as the network sees it (Standardize, then LineSN), against the
simulator's truth: its quantiles on clean CCDs, on CCDs with a detectable Satellite or Airplane,
and on the other artifact CCDs, and the ROC AUC of tracks against clean. One JSON line.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRACKS = ("Satellite", "Airplane")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--truth", required=True, help="the archive's labels folder (ccds.parquet)")
    ap.add_argument("--split", help="a model.json whose split to use (default: every labelled CCD)")
    ap.add_argument("--side", default="test", choices=("train", "val", "test"))
    a = ap.parse_args()

    import pandas as pd

    from artifactspark.evaluate.scores import roc_auc
    from artifactspark.models.layers import line_layer, standardize_layer
    from artifactspark.models.trainingdata import read_rows

    ccds = pd.read_parquet(os.path.join(a.truth, "ccds.parquet")).rename(columns={"ccd": "ccdnum"})
    expnums = sorted(ccds.expnum.unique())
    if a.split:
        expnums = json.load(open(a.split))["split"][a.side]
    uri = "file://" + os.path.abspath(os.path.join(a.store, "features"))
    rows = read_rows(uri, expnums, ["expnum", "ccdnum", "image", "mask_frac"], "multilabel")
    x = np.stack([rows["image"].astype(np.float32), rows["mask_frac"].astype(np.float32)], -1)
    prep, lines = standardize_layer()(), line_layer()(k=1, mask_index=1)
    top = np.concatenate([lines(prep(x[i : i + 16])).numpy()[:, 0] for i in range(0, len(x), 16)])
    k = pd.DataFrame({"expnum": rows["expnum"], "ccdnum": rows["ccdnum"], "line": top}).merge(
        ccds, on=["expnum", "ccdnum"]
    )
    track = k.detectable_classes.apply(lambda v: any(c in TRACKS for c in list(v)))
    groups = {"clean": k[k.truth_clean], "tracks": k[track], "other_artifacts": k[~k.truth_clean & ~track]}
    out = {"ccds": len(k), "side": a.side if a.split else "all"}
    for name, g in groups.items():
        out[name] = {
            "n": len(g),
            "quantiles_50_90_99_max": np.quantile(g.line, [0.5, 0.9, 0.99, 1.0]).round(2).tolist() if len(g) else None,
        }
    if len(groups["tracks"]) and len(groups["clean"]):
        y = np.r_[np.ones(len(groups["tracks"])), np.zeros(len(groups["clean"]))]
        out["auc_tracks_vs_clean"] = round(float(roc_auc(y, np.r_[groups["tracks"].line, groups["clean"].line])), 4)
        out["tracks_above_clean_max"] = int((groups["tracks"].line > groups["clean"].line.max()).sum())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
