"""The SVM (scikit-learn): the paper's baseline, on the downsampled pixels collected from the store.

Features: the stored (already binned, stretched) image, block-meaned further by
``[train] svm_coarsen`` (the paper tried larger coarse-graining too), flattened and standardised.
Linear or Gaussian (RBF) kernel; balanced class weights when ``[train] class_weights``.
The learning curve (paper figure 2) refits on growing random subsets of the training side and
records training and test error.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from ..errors import ConfigError, StoreError
from ..features.store import Store
from .channels import level_spec, store_columns
from .training import TrainingSet
from .trainingdata import TrainConfig, collect_svm_features

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
KERNELS = ("linear", "rbf")


def make_svm(kernel: str, tc: TrainConfig, probability: bool):
    """A scikit-learn pipeline: standard scaling, then an SVC with ``[train]``'s C and class weights."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(
        StandardScaler(),
        SVC(
            kernel=kernel,
            C=tc.svm_c,
            probability=probability,
            class_weight="balanced" if tc.class_weights else None,
            random_state=tc.seed,
        ),
    )


def learning_curve(Xtr, ytr, Xte, yte, kernel: str, tc: TrainConfig) -> dict:
    """Train and test error of SVMs trained on growing random subsets of the training side."""
    rng = np.random.default_rng(tc.seed)
    n = len(ytr)
    sizes = sorted({int(s) for s in np.linspace(max(10, n // tc.learning_curve_points), n, tc.learning_curve_points)})
    curve = {"n_train": [], "train_error": [], "test_error": []}
    perm = rng.permutation(n)
    for s in sizes:
        sub = perm[:s]
        if len(np.unique(ytr[sub])) < 2:
            continue
        m = make_svm(kernel, tc, probability=False).fit(Xtr[sub], ytr[sub])
        curve["n_train"].append(s)
        curve["train_error"].append(float(np.mean(m.predict(Xtr[sub]) != ytr[sub])))
        curve["test_error"].append(float(np.mean(m.predict(Xte) != yte)) if len(yte) else float("nan"))
        log.info(
            "svm learning curve: n=%d train error %.3f test error %.3f",
            s,
            curve["train_error"][-1],
            curve["test_error"][-1],
        )
    return curve


def train_svm(spark, ts: TrainingSet, model_dir: str, tc: TrainConfig, kernel: str = "linear") -> dict:
    """Train the SVM on ``ts`` (binary or multiclass) into ``model_dir``; the job summary."""
    import joblib

    from . import modelio
    from .training import finish

    if kernel not in KERNELS:
        raise ConfigError(f"unknown kernel {kernel!r}: use one of {list(KERNELS)}")
    if ts.problem == "multilabel":
        raise ConfigError("the SVM handles the binary and multiclass problems; use train_cnn.py for multilabel")
    t0 = time.time()
    os.makedirs(model_dir, exist_ok=True)
    n_classes, n_out = len(ts.taxonomy), len(ts.classes)
    # one pass over the store for all three sides, split on the driver (rows stay sorted by key)
    keys_all, X_all, y_all = collect_svm_features(
        spark,
        Store(spark, ts.store_uri).pinned(ts.features_uri.number),
        [e for s in ("train", "val", "test") for e in ts.split[s]],
        ts.problem,
        n_classes,
        tc.svm_coarsen,
        tc.channels,
        tc.standardize,
        level_spec(ts.store_meta.get("config")),
    )
    sides = {}
    for side in ("train", "val", "test"):
        m = keys_all["expnum"].isin(ts.split[side]).to_numpy()
        sides[side] = (keys_all[m].reset_index(drop=True), X_all[m], y_all[m])
        log.info("svm: %s side %d CCDs x %d features collected", side, int(m.sum()), X_all.shape[-1])
    keys, Xtr, ytr = sides["train"]
    if len(ytr) > tc.svm_max_train:
        keep = np.sort(np.random.default_rng(tc.seed).permutation(len(ytr))[: tc.svm_max_train])
        Xtr, ytr = Xtr[keep], ytr[keep]
        log.info("svm: training on a random %d of %d training CCDs ([train] svm_max_train)", len(ytr), len(keys))
    if len(np.unique(ytr)) < 2:
        raise StoreError(f"the training side has a single class ({np.unique(ytr)}): the SVM needs two")
    curve = learning_curve(Xtr, ytr, sides["test"][1], sides["test"][2], kernel, tc)
    t_fit = time.time()
    model = make_svm(kernel, tc, probability=True).fit(Xtr, ytr)
    fit_seconds = time.time() - t_fit
    joblib.dump(model, os.path.join(model_dir, MODEL_FILE))
    modelio.write_json(os.path.join(model_dir, "learning_curve.json"), curve)
    preds = {}
    for side in ("val", "test"):
        k, X, y = sides[side]
        probs = modelio.svm_probs(model, X, ts.problem, n_out) if len(X) else np.zeros((0, n_out), np.float32)
        preds[side] = (k, probs, y)
    extra = {
        "kernel": kernel,
        "input": {
            "fields": list(tc.channels),
            "columns": store_columns(tc.channels),
            "level": level_spec(ts.store_meta.get("config")),
            "image_shape": list(ts.store_meta["image_shape"]),
            "coarsen": tc.svm_coarsen,
            "standardize": tc.standardize,
            "n_features": int(Xtr.shape[1]),
        },
        "timing": {"fit_seconds": round(fit_seconds, 2)},
        "train_rows_used": int(len(ytr)),
    }
    return finish(ts, model_dir, "svm", MODEL_FILE, tc, extra, preds, t0)
