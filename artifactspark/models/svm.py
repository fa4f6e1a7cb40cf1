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


def learning_curve(Xtr, ytr, Xte, yte, kernel: str, tc: TrainConfig, final=None) -> tuple[dict, object]:
    """Train and test error of SVMs trained on growing random subsets of the training side.

    With ``final`` (a callable), it runs beside the curve's fits on the same pool and its result
    is returned second. The fits run on ``[train] svm_jobs`` threads: libsvm releases the GIL,
    so two fits use two cores, and each fit is the same as it would be alone (its own seed)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(tc.seed)
    n = len(ytr)
    sizes = sorted({int(s) for s in np.linspace(max(10, n // tc.learning_curve_points), n, tc.learning_curve_points)})
    perm = rng.permutation(n)
    subsets = [perm[:s] for s in sizes if len(np.unique(ytr[perm[:s]])) >= 2]

    def point(sub):
        m = make_svm(kernel, tc, probability=False).fit(Xtr[sub], ytr[sub])
        train_error = float(np.mean(m.predict(Xtr[sub]) != ytr[sub]))
        test_error = float(np.mean(m.predict(Xte) != yte)) if len(yte) else float("nan")
        log.info("svm learning curve: n=%d train error %.3f test error %.3f", len(sub), train_error, test_error)
        return len(sub), train_error, test_error

    with ThreadPoolExecutor(max_workers=tc.svm_jobs) as pool:
        # the longest jobs first: the final fit, then the curve from its largest subset down
        fin = pool.submit(final) if final is not None else None
        points = [pool.submit(point, sub) for sub in subsets[::-1]][::-1]
        got = [f.result() for f in points]
        model = fin.result() if fin is not None else None
    curve = {
        "n_train": [g[0] for g in got],
        "train_error": [g[1] for g in got],
        "test_error": [g[2] for g in got],
    }
    return curve, model


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

    def final():
        t_fit = time.time()
        model = make_svm(kernel, tc, probability=True).fit(Xtr, ytr)
        return model, time.time() - t_fit

    curve, (model, fit_seconds) = learning_curve(Xtr, ytr, sides["test"][1], sides["test"][2], kernel, tc, final)
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
