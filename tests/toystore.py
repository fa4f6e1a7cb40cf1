"""A separable toy archive + store for the training and inference tests.

Small CCDs (256 x 128, noise 10 e-) in N exposures; every CCD is one of three kinds, drawn
with a fixed seed: clean, "Satellite" (a bright 3-pixel-wide diagonal streak) or "A/B jump"
(the right amplifier half 30 e- higher). Volunteer reports say exactly that (clean = "OK"),
so a model that learns anything beats chance by a wide margin.
"""

from __future__ import annotations

import os

import numpy as np
from desarchive import make_planes, write_pair

from artifactspark.features.labels import make_report, write_reports

TOY_CONF = """
[input]
ccd_shape = [256, 128]
[store]
rowgroup_size_mb = 1
ccds_per_task = 4
[train]
batch_size = 8
epochs = 20
learning_rate = 0.003
stem = 2
net_filters = [8, 16]
conv_filters = [4, 8]
kernel_size = 3
pool_size = 2
dense_units = [16, 8]
dropout = 0.0   # the toy set is tiny and clean: measured robust across seeds 0-3 only without dropout
early_stopping_patience = 0
shuffle_buffer = 64
svm_coarsen = 2
learning_curve_points = 3
"""

KINDS = ("clean", "Satellite", "A/B jump")
FIRST_EXP = 400001


def toy_planes(kind: str, seed: int):
    sci, msk, wgt, bkg = make_planes(seed)
    if kind == "Satellite":
        rows = np.arange(sci.shape[0])
        cols = (rows * (sci.shape[1] - 1) / (sci.shape[0] - 1)).astype(int)
        for d in (-1, 0, 1):
            c = np.clip(cols + d, 0, sci.shape[1] - 1)
            sci[rows, c] += 200.0
    elif kind == "A/B jump":
        sci[:, sci.shape[1] // 2 :] += 30.0
    return sci, msk, wgt, bkg


def build_toy(root: str, n_exposures: int = 10, ccds=(1, 2, 3, 4, 5, 6), seed: int = 11) -> dict:
    """Writes the archive and ROOT/labels.json; returns {(expnum, ccd): kind}."""
    rng = np.random.default_rng(seed)
    kinds, reports, qa = {}, [], 1
    for i in range(n_exposures):
        exp = FIRST_EXP + i
        band = "gr"[i % 2]
        nite = "20131115" if i < n_exposures // 2 else "20131116"
        for ccd in ccds:
            kind = KINDS[rng.choice(3, p=[0.5, 0.25, 0.25])]
            kinds[(exp, ccd)] = kind
            write_pair(root, exp, ccd, band=band, nite=nite, planes=toy_planes(kind, exp * 100 + ccd))
            reports.append(make_report(qa, exp, ccd, band, "OK" if kind == "clean" else kind, x=100, y=60))
            qa += 1
    os.makedirs(root, exist_ok=True)
    write_reports(reports, os.path.join(root, "labels.json"))
    return kinds
