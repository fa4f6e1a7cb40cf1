"""Evaluation numbers for the artifact classifiers (numpy; pandas/pyarrow to read files and join tables).

One source of numbers: :func:`summarize_model` computes everything for one model directory from
its ``model.json`` and ``predictions_test.parquet``; the report (:mod:`artifactspark.evaluate.report`) and
the training jobs' ``metrics.json`` both use it, so a number never differs between the two.

Conventions, everywhere in this module:

* **Flagging.** A CCD is flagged as an artifact when ``p >= threshold`` (ties flag).
* **Zero division.** A ratio whose denominator is 0 is defined as **0.0** (recall with no
  positives, FPR with no negatives, precision with nothing predicted, F1 with P + R = 0).
  The counts (``support``, ``positives``, ...) sit next to every ratio so such cases are visible.
* **Averages over no class** (a macro-F1 where no class reaches ``min_support``) are ``None``:
  there is nothing to average, and 0 would read as a measured failure.
* Class indices are positions in the model's ``classes`` list; the confusion matrices have the
  true class on the rows and the predicted class on the columns.
* **ROC AUC** (:func:`roc_auc`) is the Mann-Whitney statistic (ties count one half); ``None``
  when there is no positive or no negative.

Against the simulator's truth (:func:`truth_evaluation`; simulated archives only): the truth's
``ccds.parquet`` says per CCD whether it is clean (nothing injected), holds a *detectable*
artifact (a feature above its class's documented floor, ``artifactspark.sim.detect``) or only
*below-floor* ones. Recall is measured on the detectable CCDs, the FPR on the clean ones; the
below-floor CCDs are reported on their own and never enter either. Beside every figure against
the volunteer labels stands its **ceiling**: the same figure of a perfect truth model (flags
exactly the detectable CCDs, names the truth's primary class, its multi-hot vector is the
detectable classes), scored against the volunteer labels on the same CCDs; the volunteers' misses
and mistakes cap every volunteer-label figure at the ceiling.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from ..errors import ArtifactSparkError

NO_ARTIFACT = "no artifact"
PROBLEMS = ("binary", "multiclass", "multilabel")
_EPS_COUNT = 1e-9  # target_fnr * positives is floored with this slack (0.29 * 100 -> 29, not 28)


class ModelDirError(ArtifactSparkError):
    """A model directory lacks a file of the training jobs' contract, or a file breaks it."""


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _ratio(num, den) -> float:
    return float(num) / float(den) if den else 0.0


def _as01(y, name="y_true01") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}")
    if y.dtype == bool:
        return y
    if y.size and not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise ValueError(f"{name} must hold only 0/1 (or booleans); found {bad.tolist()}: "
                         "drop unlabelled rows (label -1) first")
    return y.astype(bool)


def _scores(p, n, name="p") -> np.ndarray:
    p = np.asarray(p)
    if p.ndim != 1 or p.shape[0] != n:
        raise ValueError(f"{name} must be one-dimensional with {n} entries (one per label), got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(p)).sum())} NaN/inf values: "
                         "the model's predictions are broken; re-run its evaluation")
    return p


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% for z = 1.96) of a proportion k/n; (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    ph = k / n
    den = 1.0 + z * z / n
    centre = (ph + z * z / (2 * n)) / den
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def jsonable(obj):
    """``obj`` with numpy scalars/arrays turned into Python ones and NaN/inf into None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


# --------------------------------------------------------------------------------------------
# binary: threshold, curve, metrics
# --------------------------------------------------------------------------------------------

def threshold_for_fnr(y_true01, p, target_fnr: float) -> float:
    """The largest threshold t whose false-negative rate (share of positives with p < t) is <= target_fnr.

    A CCD is flagged when ``p >= t``. With the positives' scores sorted ascending
    s[0] <= s[1] <= ... and k = floor(target_fnr * positives) misses allowed, t = s[k]: every
    t' > s[k] misses at least k + 1 positives. Ties need no special case: positives tied at s[k]
    are all flagged (p >= t), so the FNR reached can be below the target but never above it.

    * ``target_fnr = 0``: t is the lowest positive score (no positive missed).
    * ``target_fnr >= 1`` (every positive may be missed): there is no largest t; the smallest
      value above every score is returned (flags nothing).
    * No positives at all: the FNR is undefined; returns **0.5** (the plain argmax rule), so a
      caller must check the positive count before trusting the threshold.

    Choose t on the validation set and evaluate it on the test set.
    """
    y = _as01(y_true01)
    p = _scores(p, y.shape[0])
    target = float(target_fnr)
    if not (0.0 <= target <= 1.0) or math.isnan(target):
        raise ValueError(f"target_fnr must be in [0, 1], got {target_fnr!r}")
    pos = np.sort(p[y])
    n_pos = pos.shape[0]
    if n_pos == 0:
        return 0.5
    k = int(math.floor(target * n_pos + _EPS_COUNT))
    if k >= n_pos:
        top = p.max()
        return float(np.nextafter(top, np.array(np.inf, dtype=p.dtype)))
    return float(pos[k])


def fpr_fnr_curve(y_true01, p) -> dict:
    """FPR and FNR at every distinct score used as threshold (flag = p >= t), thresholds ascending.

    Returns ``{"thresholds", "fpr", "fnr"}`` (numpy arrays of equal length). At the lowest
    threshold everything is flagged (FNR 0); the "flag nothing" end (FPR 0, FNR 1) is not a
    distinct score and is not included. Zero-division rule: FPR is 0 without negatives, FNR is 0
    without positives. The paper's fig. 5.
    """
    y = _as01(y_true01)
    p = _scores(p, y.shape[0])
    thr = np.unique(p)
    pos = np.sort(p[y])
    neg = np.sort(p[~y])
    fn = np.searchsorted(pos, thr, side="left")                 # positives with p < t
    fp = neg.shape[0] - np.searchsorted(neg, thr, side="left")  # negatives with p >= t
    fnr = fn / pos.shape[0] if pos.shape[0] else np.zeros(thr.shape)
    fpr = fp / neg.shape[0] if neg.shape[0] else np.zeros(thr.shape)
    return {"thresholds": thr.astype(np.float64), "fpr": np.asarray(fpr, dtype=np.float64),
            "fnr": np.asarray(fnr, dtype=np.float64)}


def binary_metrics(y_true01, p, threshold: float) -> dict:
    """Counts and rates of ``flag = p >= threshold`` against 0/1 truth (zero division -> 0).

    Keys: n, positives, negatives, tp, fp, tn, fn, recall (= TPR), fpr, fnr, precision,
    accuracy, f1, threshold.
    """
    y = _as01(y_true01)
    p = _scores(p, y.shape[0])
    flag = p >= threshold
    tp = int(np.sum(flag & y))
    fp = int(np.sum(flag & ~y))
    fn = int(np.sum(~flag & y))
    tn = int(np.sum(~flag & ~y))
    pos, neg = tp + fn, fp + tn
    recall = _ratio(tp, pos)
    precision = _ratio(tp, tp + fp)
    return {"n": pos + neg, "positives": pos, "negatives": neg, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "recall": recall, "fpr": _ratio(fp, neg), "fnr": _ratio(fn, pos), "precision": precision,
            "accuracy": _ratio(tp + tn, pos + neg),
            "f1": _ratio(2 * precision * recall, precision + recall), "threshold": float(threshold)}


def best_recall_at_fpr(curve: dict, max_fpr: float) -> dict:
    """The curve point with the highest recall among those with FPR <= max_fpr (ties: larger threshold).

    Informational only when the curve is the test set's: a threshold picked on the test set is
    optimistic. Returns ``{"threshold", "recall", "fpr"}``, or recall 0 / threshold None if no
    point qualifies.
    """
    ok = np.flatnonzero(curve["fpr"] <= max_fpr)
    if ok.size == 0:
        return {"threshold": None, "recall": 0.0, "fpr": None}
    rec = 1.0 - curve["fnr"][ok]
    i = ok[np.flatnonzero(rec == rec.max())[-1]]
    return {"threshold": float(curve["thresholds"][i]), "recall": float(1.0 - curve["fnr"][i]),
            "fpr": float(curve["fpr"][i])}


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = xs.shape[0]
    starts = np.r_[0, np.flatnonzero(xs[1:] != xs[:-1]) + 1] if n else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], n] if n else np.zeros(0, dtype=np.int64)
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def roc_auc(y_true01, score) -> float | None:
    """Area under the ROC curve of ``score`` for 0/1 truth: the probability that a random positive
    scores above a random negative, ties counting one half (Mann-Whitney U / (P x N)).

    ``None`` when there is no positive or no negative (the area is undefined, and 0 or 0.5 would
    read as a measurement).
    """
    y = _as01(y_true01)
    s = _scores(score, y.shape[0], "score")
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(s)
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def per_class_auc(y_true, scores, class_names, min_support: int = 20) -> dict:
    """ROC AUC of ``scores[:, j]`` against ``y_true[:, j]`` (0/1) for every class j.

    Returns ``{"per_class": [{name, positives, negatives, auc}], "mean_auc", "mean_auc_classes"
    (the mean over the classes with >= min_support positives and >= 1 negative), "mean_auc_all",
    "mean_auc_all_classes" (over every class with >= 1 positive and >= 1 negative)}``; a mean over
    no class is None.
    """
    y = np.asarray(y_true).astype(bool)
    sc = np.asarray(scores, dtype=np.float64)
    k = len(class_names)
    if y.ndim != 2 or y.shape[1] != k or sc.shape != y.shape:
        raise ValueError(f"y_true {y.shape} and scores {sc.shape} must both be (n, {k})")
    rows = []
    for j, name in enumerate(class_names):
        pos = int(y[:, j].sum())
        rows.append({"name": name, "positives": pos, "negatives": int(y.shape[0] - pos),
                     "auc": roc_auc(y[:, j], sc[:, j])})
    used = [r for r in rows if r["auc"] is not None and r["positives"] >= min_support]
    defined = [r for r in rows if r["auc"] is not None]
    mean = lambda rr: float(np.mean([r["auc"] for r in rr])) if rr else None  # noqa: E731
    return {"per_class": rows, "mean_auc": mean(used), "mean_auc_classes": [r["name"] for r in used],
            "mean_auc_all": mean(defined), "mean_auc_all_classes": [r["name"] for r in defined],
            "min_support": int(min_support)}


# --------------------------------------------------------------------------------------------
# many-class
# --------------------------------------------------------------------------------------------

def _labels(y, n, name) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(f"{name} holds class indices outside [0, {n}): {np.unique(y[(y < 0) | (y >= n)])[:5].tolist()}")
    return y


def confusion_matrix(y_true, y_pred, n: int) -> np.ndarray:
    """n x n counts, rows = true class index, columns = predicted class index (int64)."""
    yt = _labels(y_true, n, "y_true")
    yp = _labels(y_pred, n, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred differ in length: {yt.shape[0]} vs {yp.shape[0]}")
    return np.bincount(yt * n + yp, minlength=n * n).reshape(n, n).astype(np.int64)


def _prf_rows(tp, support, predicted, class_names, min_support, extra=None) -> list[dict]:
    rows = []
    for i, name in enumerate(class_names):
        if support[i] < min_support:
            continue
        prec = _ratio(tp[i], predicted[i])
        rec = _ratio(tp[i], support[i])
        row = {"index": i, "name": name, "support": int(support[i]), "predicted": int(predicted[i]),
               "tp": int(tp[i]), "precision": prec, "recall": rec, "f1": _ratio(2 * prec * rec, prec + rec)}
        if extra is not None:
            row.update(extra(i))
        rows.append(row)
    return rows


def per_class_prf(y_true, y_pred, class_names, min_support: int = 0) -> list[dict]:
    """Precision, recall, F1 per class of a single-label problem (zero division -> 0).

    One dict per class with at least ``min_support`` true examples, in class order:
    index, name, support (true examples), predicted (times predicted), tp, precision, recall, f1.
    """
    n = len(class_names)
    cm = confusion_matrix(y_true, y_pred, n)
    return _prf_rows(np.diag(cm), cm.sum(axis=1), cm.sum(axis=0), list(class_names), min_support)


def macro_from_rows(rows: list[dict], min_support: int = 20) -> tuple[float | None, list[str]]:
    """Mean F1 of the rows with support >= min_support, and their names (None if there is none)."""
    used = [r for r in rows if r["support"] >= min_support]
    if not used:
        return None, []
    return float(np.mean([r["f1"] for r in used])), [r["name"] for r in used]


def macro_f1(y_true, y_pred, class_names, min_support: int = 20) -> tuple[float | None, list[str]]:
    """Unweighted mean F1 over the classes with at least ``min_support`` true examples.

    Returns ``(value, names of the classes averaged)``; ``(None, [])`` when no class qualifies.
    """
    return macro_from_rows(per_class_prf(y_true, y_pred, class_names), min_support)


def binary_by_true_class(true_class, label, flagged, class_names) -> dict:
    """Binary decisions broken down by true class (the paper's fig. 7).

    ``true_class``: primary_class per CCD (taxonomy index, -1 none), or a 2-D multi_hot array
    (then a CCD counts once in each of its classes' rows). ``label``: 1 artifact, 0 clean (other
    values, i.e. unlabelled rows, are skipped). ``flagged``: the binary decision per CCD.

    Returns ``{"rows": class_names + ["no artifact"], "cols": ["no artifact", "artifact"],
    "counts": int64 array (len(rows) x 2), "unassigned": [not flagged, flagged] counts of
    artifact CCDs without any class (not in the matrix), "skipped": unlabelled rows}``.
    Clean CCDs (label 0) go to the last row whatever their class column says.
    """
    names = list(class_names)
    k = len(names)
    lab = np.asarray(label).astype(np.int64)
    flag = np.asarray(flagged).astype(bool)
    tc = np.asarray(true_class)
    if lab.ndim != 1 or flag.shape != lab.shape or tc.shape[0] != lab.shape[0]:
        raise ValueError(f"true_class, label and flagged must have one entry per CCD: "
                         f"{tc.shape}, {lab.shape}, {flag.shape}")
    counts = np.zeros((k + 1, 2), dtype=np.int64)
    unassigned = np.zeros(2, dtype=np.int64)
    col = flag.astype(np.int64)
    clean = lab == 0
    art = lab == 1
    np.add.at(counts[k], col[clean], 1)
    if tc.ndim == 2:
        if tc.shape[1] != k:
            raise ValueError(f"multi_hot has {tc.shape[1]} columns, class_names {k}")
        mh = tc[art].astype(bool)
        for j in range(k):
            np.add.at(counts[j], col[art][mh[:, j]], 1)
        none = ~mh.any(axis=1)
        np.add.at(unassigned, col[art][none], 1)
    else:
        pc = tc.astype(np.int64)[art]
        if pc.size and pc.max() >= k:
            raise ValueError(f"primary_class holds indices >= {k}: {np.unique(pc[pc >= k])[:5].tolist()}")
        ok = pc >= 0
        np.add.at(counts, (pc[ok], col[art][ok]), 1)
        np.add.at(unassigned, col[art][~ok], 1)
    return {"rows": names + [NO_ARTIFACT], "cols": [NO_ARTIFACT, "artifact"], "counts": counts,
            "unassigned": unassigned, "skipped": int(np.sum(~(clean | art)))}


def multilabel_prf(multi_hot, probs, class_thresholds, class_names, min_support: int = 0) -> list[dict]:
    """Per-class precision/recall/F1 of a multi-label model: class j predicted when probs[:, j] >= class_thresholds[j].

    Same row format as :func:`per_class_prf` plus ``threshold``; zero division -> 0.
    """
    y = np.asarray(multi_hot).astype(bool)
    pr = np.asarray(probs, dtype=np.float64)
    th = np.asarray(class_thresholds, dtype=np.float64)
    k = len(class_names)
    if y.ndim != 2 or y.shape[1] != k or pr.shape != y.shape or th.shape != (k,):
        raise ValueError(f"multi_hot {y.shape}, probs {pr.shape} and class_thresholds {th.shape} must be "
                         f"(n, {k}), (n, {k}) and ({k},)")
    pred = pr >= th[None, :]
    tp = np.sum(pred & y, axis=0)
    return _prf_rows(tp, y.sum(axis=0), pred.sum(axis=0), list(class_names), min_support,
                     extra=lambda i: {"threshold": float(th[i])})


# --------------------------------------------------------------------------------------------
# recall against the simulator's truth
# --------------------------------------------------------------------------------------------

def _strength_edges(s: np.ndarray, bins) -> np.ndarray:
    if np.ndim(bins) == 0:
        nb = int(bins)
        if nb < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        edges = np.unique(np.quantile(s, np.linspace(0.0, 1.0, nb + 1)))
    else:
        edges = np.unique(np.asarray(bins, dtype=np.float64))
        if edges.size < 2:
            raise ValueError("bins as edges needs at least two distinct values")
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    return edges


STRENGTH_COLUMNS = ("sn_binned", "snr", "amplitude")


def strength_floor(strength, detectable) -> dict:
    """Where a class's floor sits on a strength axis, estimated from its features.

    ``strength`` and ``detectable`` (per feature). The floor rules combine several measures
    (``artifactspark.sim.detect``), so no single strength value separates the detectable features
    from the others exactly; this returns the threshold t (one of the strengths) that misplaces
    the fewest features under "detectable iff strength >= t" (ties: the smallest t), as
    ``{"value", "misplaced", "detectable", "below_floor"}``. ``value`` is None when every
    feature is on the same side (no floor inside the data: all detectable, or all below).
    """
    s = np.asarray(strength, dtype=np.float64)
    d = np.asarray(detectable).astype(bool)
    ok = np.isfinite(s)
    s, d = s[ok], d[ok]
    n_det, n_below = int(d.sum()), int((~d).sum())
    out = {"value": None, "misplaced": 0, "detectable": n_det, "below_floor": n_below}
    if n_det == 0 or n_below == 0:
        return out
    cand = np.unique(s)
    det_s, below_s = np.sort(s[d]), np.sort(s[~d])
    errors = np.searchsorted(det_s, cand, side="left") + (n_below - np.searchsorted(below_s, cand, side="left"))
    i = int(np.argmin(errors))
    out.update(value=float(cand[i]), misplaced=int(errors[i]))
    return out


def _pick_strength(g, prefer) -> tuple[str | None, np.ndarray | None]:
    for name in prefer:
        if name in g.columns:
            v = g[name].to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isfinite(v).any():
                return name, v
    return None, None


def recall_vs_strength(truth_df, preds_df, threshold: float, bins=5, strength=STRENGTH_COLUMNS, floor_from=None):
    """Detection rate of injected artifacts against their strength, per class (simulated data only).

    ``truth_df``: the simulator's truth table (expnum, ccd or ccdnum, cls, and strength columns;
    optional amplitude, reported, detectable). ``preds_df``: a model's predictions (expnum,
    ccdnum, p_artifact). Only truth rows on CCDs present in ``preds_df`` (the test split) count; a
    truth row is detected when its CCD has ``p_artifact >= threshold`` (a CCD-level decision: the
    model does not say which artifact it saw).

    Strength, per class, is the first column of ``strength`` holding a finite value for the class
    (default: ``sn_binned``, the S/N in the 8x8-binned image, then ``snr``, then ``amplitude``,
    e.g. Guiding whose snr is NaN); rows with no finite strength are dropped and counted in
    ``n_no_strength`` of the class. ``bins``: an int (per-class quantile bins, so each bin holds
    about the same number of rows; fewer when values repeat) or a sequence of edges shared by all
    classes (values outside the edges are dropped).

    Returns a pandas DataFrame, one row per (class, bin): cls, strength (the column used), bin,
    lo, hi, n, detected, recall (0 when n = 0), reported and volunteer_recall (the volunteers'
    rate in the same bin, when the truth has ``reported``), n_no_strength. When the truth has
    ``detectable``, also: n_below_floor (features of the bin below their floor), below_floor
    (True when most of the bin's features are below the floor), and per class floor_strength /
    floor_misplaced (:func:`strength_floor` over the class's features in ``floor_from``, by
    default the rows used here; None when the floor lies outside the data).
    """
    import pandas as pd

    t = truth_df.copy()
    if "ccdnum" not in t.columns:
        if "ccd" not in t.columns:
            raise ValueError("the truth table needs a ccd (or ccdnum) column")
        t = t.rename(columns={"ccd": "ccdnum"})
    for c in ("expnum", "cls"):
        if c not in t.columns:
            raise ValueError(f"the truth table has no {c!r} column; columns: {list(t.columns)}")
    if not any(c in t.columns for c in strength):
        raise ValueError(f"the truth table has none of the strength columns {list(strength)}; "
                         f"columns: {list(t.columns)}")
    for c in ("expnum", "ccdnum", "p_artifact"):
        if c not in preds_df.columns:
            raise ValueError(f"the predictions have no {c!r} column")
    p = preds_df[["expnum", "ccdnum", "p_artifact"]].copy()
    p["expnum"] = p["expnum"].astype(np.int64)
    p["ccdnum"] = p["ccdnum"].astype(np.int64)
    if p.duplicated(["expnum", "ccdnum"]).any():
        raise ValueError("the predictions hold a CCD (expnum, ccdnum) more than once")
    t["expnum"] = t["expnum"].astype(np.int64)
    t["ccdnum"] = t["ccdnum"].astype(np.int64)
    m = t.merge(p, on=["expnum", "ccdnum"], how="inner")
    m["detected"] = m["p_artifact"].to_numpy() >= threshold
    has_rep = "reported" in m.columns
    has_det = "detectable" in m.columns
    ref = None
    if has_det:
        ref = floor_from if floor_from is not None else m
        if "detectable" not in ref.columns:
            raise ValueError("floor_from needs a detectable column")
    out = []
    for cls in sorted(m["cls"].unique()):
        g = m[m["cls"] == cls]
        name, s = _pick_strength(g, strength)
        if name is None:
            continue
        fin = np.isfinite(s)
        n_no = int((~fin).sum())
        det = g["detected"].to_numpy()[fin]
        rep = _bool(g["reported"])[fin] if has_rep else None
        below = ~_bool(g["detectable"])[fin] if has_det else None
        floor = None
        if has_det:
            rg = ref[ref["cls"] == cls]
            floor = strength_floor(rg[name].to_numpy(dtype=np.float64, na_value=np.nan) if name in rg.columns
                                   else np.zeros(0), _bool(rg["detectable"]))
        s = s[fin]
        edges = _strength_edges(s, bins)
        idx = np.searchsorted(edges, s, side="right") - 1
        idx[s == edges[-1]] = len(edges) - 2      # the last bin is closed on the right
        inside = (idx >= 0) & (idx <= len(edges) - 2)
        for b in range(len(edges) - 1):
            sel = inside & (idx == b)
            n = int(sel.sum())
            row = {"cls": cls, "strength": name, "bin": b, "lo": float(edges[b]), "hi": float(edges[b + 1]),
                   "n": n, "detected": int(det[sel].sum()), "recall": _ratio(det[sel].sum(), n),
                   "n_no_strength": n_no}
            if has_rep:
                row["reported"] = int(rep[sel].sum())
                row["volunteer_recall"] = _ratio(rep[sel].sum(), n)
            if has_det:
                nb = int(below[sel].sum())
                row.update(n_below_floor=nb, below_floor=bool(n and 2 * nb > n),
                           floor_strength=floor["value"], floor_misplaced=floor["misplaced"])
            out.append(row)
    cols = ["cls", "strength", "bin", "lo", "hi", "n", "detected", "recall"]
    cols += (["reported", "volunteer_recall"] if has_rep else []) + ["n_no_strength"]
    cols += ["n_below_floor", "below_floor", "floor_strength", "floor_misplaced"] if has_det else []
    return pd.DataFrame(out, columns=cols)


# --------------------------------------------------------------------------------------------
# evaluation against the simulator's truth
# --------------------------------------------------------------------------------------------

#: Columns the simulator adds for the detectability floor; older archives lack them.
TRUTH_FLOOR_COLUMNS = ("sn_binned", "contrast", "n_sharp", "floor_rule", "detectable")
#: The ones this module reads (contrast and n_sharp only explain the floor).
TRUTH_FLOOR_USED = ("sn_binned", "floor_rule", "detectable")
CCD_TRUTH_COLUMNS = ("detectable_classes", "truth_clean", "truth_detectable", "primary_class_truth")
ERASED_BY_BINNING = "erased_by_binning"
#: Per test CCD: "detectable" (>= 1 feature above its floor), "clean" (nothing injected),
#: "below_floor" (only features below their floor), "unmatched" (not in the truth's CCD table).
CATEGORIES = ("detectable", "clean", "below_floor", "unmatched")


class TruthTableError(ArtifactSparkError):
    """The simulator's truth tables are missing or unreadable."""


def resolve_truth_paths(path: str) -> tuple[str, str | None]:
    """``(truth.parquet, ccds.parquet or None)`` for a labels directory, an archive root (with
    ``labels/``) or the path of ``truth.parquet`` itself; ccds.parquet is looked for beside it."""
    path = str(path)
    if os.path.isdir(path):
        for d in (path, os.path.join(path, "labels")):
            if os.path.isfile(os.path.join(d, "truth.parquet")):
                path = os.path.join(d, "truth.parquet")
                break
        else:
            raise TruthTableError(f"{path}: no truth.parquet in this directory (nor in its labels/); pass the "
                                  "simulator's ROOT/labels directory or its truth.parquet")
    elif not os.path.isfile(path):
        raise TruthTableError(f"{path}: no such truth table; pass the simulator's ROOT/labels directory (or "
                              "ROOT/labels/truth.parquet), or leave the truth out (real data)")
    ccds = os.path.join(os.path.dirname(os.path.abspath(path)), "ccds.parquet")
    return path, (ccds if os.path.isfile(ccds) else None)


def load_truth(path: str):
    """Read the simulator's truth: ``(truth_df, ccds_df or None, {"truth": path, "ccds": path or None})``.

    ``path``: see :func:`resolve_truth_paths`. Raises :class:`TruthTableError` for a missing or
    unreadable table or one without expnum, ccd and cls; missing floor columns are not an error
    (:func:`prepare_truth` falls back and warns).
    """
    import pyarrow.parquet as pq

    tpath, cpath = resolve_truth_paths(path)
    frames = []
    for p in (tpath, cpath):
        if p is None:
            frames.append(None)
            continue
        try:
            frames.append(pq.read_table(p).to_pandas())
        except Exception as e:  # noqa: BLE001 - any reader failure means a broken file
            raise TruthTableError(f"{p}: not a readable Parquet file ({type(e).__name__}: {e})") from e
    truth_df, ccds_df = frames
    cols = set(truth_df.columns)
    if not {"expnum", "cls"} <= cols or not ({"ccd", "ccdnum"} & cols):
        raise TruthTableError(f"{tpath}: a truth table needs expnum, ccd and cls columns; has {sorted(cols)}")
    if ccds_df is not None and (not {"expnum"} <= set(ccds_df.columns) or not ({"ccd", "ccdnum"} & set(ccds_df.columns))):
        raise TruthTableError(f"{cpath}: the CCD table needs expnum and ccd columns; has {list(ccds_df.columns)}")
    return truth_df, ccds_df, {"truth": tpath, "ccds": cpath}


def _classes_tuple(v) -> tuple:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ()
    return tuple(sorted({str(x) for x in v}))


def _opt_str(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def _bool(series) -> np.ndarray:
    """A column of booleans that may hold None/NaN (missing = False) as a numpy bool array."""
    return series.astype("boolean").fillna(False).to_numpy(dtype=bool)


def _keys_int64(df):
    if "ccdnum" not in df.columns:
        df = df.rename(columns={"ccd": "ccdnum"})
    df["expnum"] = df["expnum"].astype(np.int64)
    df["ccdnum"] = df["ccdnum"].astype(np.int64)
    return df


def _ccds_from_features(f):
    """Per-CCD truth derived from the feature rows (every CCD here has at least one feature)."""
    import pandas as pd

    keys = ["expnum", "ccdnum"]
    if not len(f):
        return pd.DataFrame({"expnum": np.zeros(0, np.int64), "ccdnum": np.zeros(0, np.int64), "classes": [],
                             "detectable_classes": [], "truth_clean": np.zeros(0, bool),
                             "truth_detectable": np.zeros(0, bool), "primary_class_truth": []})
    classes = f.groupby(keys, sort=True)["cls"].agg(lambda c: tuple(sorted(set(c))))
    d = f[f["detectable"]]
    det_cls = d.groupby(keys)["cls"].agg(lambda c: tuple(sorted(set(c))))
    ranked = d.assign(_r=d["_rank"].fillna(-np.inf)).sort_values(
        keys + ["_r", "cls"], ascending=[True, True, False, True], kind="mergesort")
    primary = ranked.groupby(keys)["cls"].first()
    out = pd.DataFrame({"classes": classes})
    out["detectable_classes"] = [det_cls.get(k, ()) for k in out.index]
    out["truth_clean"] = False
    out["truth_detectable"] = [len(v) > 0 for v in out["detectable_classes"]]
    out["primary_class_truth"] = [primary.get(k) for k in out.index]
    return out.reset_index()


def prepare_truth(truth_df, ccds_df=None) -> dict:
    """The truth tables normalised for :func:`truth_evaluation` (computed once, shared by models).

    Returns ``{"features": DataFrame (one row per injected feature: expnum, ccdnum, cls,
    detectable, floor_rule, the strength columns, ...), "ccds": DataFrame (one row per CCD:
    expnum, ccdnum, classes, detectable_classes (tuples), truth_clean, truth_detectable,
    primary_class_truth), "has_ccds_table", "fallback", "missing_columns", "warnings"}``.

    Older archives: without ``detectable`` every injected feature counts as detectable; without
    the per-CCD columns they are derived from the features (a CCD of ccds.parquet without a
    feature is clean; without ccds.parquet at all, a test CCD absent from truth.parquet is
    clean). Each fallback adds a warning.
    """
    import pandas as pd

    warnings = []
    f = _keys_int64(pd.DataFrame(truth_df).copy())
    if "cls" not in f.columns:
        raise TruthTableError(f"the truth table has no cls column; columns: {list(f.columns)}")
    f["cls"] = f["cls"].astype(str)
    missing = [c for c in TRUTH_FLOOR_USED if c not in f.columns]
    if "detectable" in f.columns:
        f["detectable"] = _bool(f["detectable"])
    else:
        f["detectable"] = True
    if "floor_rule" not in f.columns:
        f["floor_rule"] = None
    if missing:
        warnings.append(f"truth.parquet lacks {missing} (an archive simulated before the detectability floor): "
                        + ("every injected feature counts as detectable, so nothing is below the floor and the "
                           "floor figures are empty" if "detectable" in missing else
                           "the figures use the columns present"))
    rank_col = next((c for c in ("sn_binned", "snr") if c in f.columns), None)
    f["_rank"] = f[rank_col].astype(np.float64) if rank_col else np.nan
    derived = _ccds_from_features(f)
    missing_c = []
    if ccds_df is None:
        warnings.append("no ccds.parquet beside truth.parquet: the per-CCD truth is derived from truth.parquet, "
                        "and a test CCD without a truth row counts as clean")
        c = derived
    else:
        c = _keys_int64(pd.DataFrame(ccds_df).copy())
        if c.duplicated(["expnum", "ccdnum"]).any():
            warnings.append(f"ccds.parquet holds {int(c.duplicated(['expnum', 'ccdnum']).sum())} duplicate CCD rows; "
                            "the first of each is used")
            c = c.drop_duplicates(["expnum", "ccdnum"])
        missing_c = [x for x in CCD_TRUTH_COLUMNS if x not in c.columns]
        orphans = derived[["expnum", "ccdnum"]].merge(c[["expnum", "ccdnum"]], how="left", indicator=True)
        n_orphan = int((orphans["_merge"] == "left_only").sum())
        if n_orphan:
            warnings.append(f"{n_orphan} CCDs have truth rows but no ccds.parquet row (tables of different runs?); "
                            "they are left out")
        if missing_c:
            warnings.append(f"ccds.parquet lacks {missing_c} (an older archive): the per-CCD truth is derived from "
                            "truth.parquet (a CCD without a truth row is clean)")
            c = c[["expnum", "ccdnum"]].merge(derived, how="left", on=["expnum", "ccdnum"])
            c["classes"] = [v if isinstance(v, tuple) else () for v in c["classes"]]
            c["detectable_classes"] = [v if isinstance(v, tuple) else () for v in c["detectable_classes"]]
            c["truth_clean"] = [len(v) == 0 for v in c["classes"]]
            c["truth_detectable"] = [len(v) > 0 for v in c["detectable_classes"]]
            c["primary_class_truth"] = [_opt_str(v) for v in c["primary_class_truth"]]
        else:
            c["detectable_classes"] = [_classes_tuple(v) for v in c["detectable_classes"]]
            c["truth_clean"] = _bool(c["truth_clean"])
            c["truth_detectable"] = _bool(c["truth_detectable"])
            c["primary_class_truth"] = [_opt_str(v) for v in c["primary_class_truth"]]
            if "classes" in c.columns:
                c["classes"] = [_classes_tuple(v) for v in c["classes"]]
            else:
                d = c[["expnum", "ccdnum"]].merge(derived[["expnum", "ccdnum", "classes"]], how="left")
                c["classes"] = [v if isinstance(v, tuple) else () for v in d["classes"]]
            if "detectable" not in missing:     # cross-check the two tables
                chk = c[["expnum", "ccdnum", "truth_detectable", "truth_clean"]].merge(
                    derived[["expnum", "ccdnum", "truth_detectable"]], how="left", on=["expnum", "ccdnum"],
                    suffixes=("", "_f"), indicator=True)
                has_f = chk["_merge"] == "both"
                bad = int(((chk["truth_detectable"].to_numpy(dtype=bool) != _bool(chk["truth_detectable_f"]))
                           | (chk["truth_clean"].to_numpy(dtype=bool) == has_f.to_numpy())).sum())
                if bad:
                    warnings.append(f"ccds.parquet and truth.parquet disagree on {bad} CCDs (truth_clean / "
                                    "truth_detectable vs the feature rows); ccds.parquet is used")
    cols = ["expnum", "ccdnum", "classes", "detectable_classes", "truth_clean", "truth_detectable",
            "primary_class_truth"]
    c = c[cols].reset_index(drop=True)
    return {"features": f, "ccds": c, "has_ccds_table": ccds_df is not None,
            "fallback": bool(missing or missing_c or ccds_df is None),
            "missing_columns": {"truth.parquet": missing, "ccds.parquet": missing_c if ccds_df is not None else None},
            "strength_rank": rank_col, "warnings": warnings}


def _taxonomy(meta: dict, width: int) -> list:
    classes = list(meta["classes"])
    tax = list(meta.get("taxonomy") or (classes[:-1] if meta["problem"] == "multiclass" else
                                        classes if meta["problem"] == "multilabel" else []))
    return tax if len(tax) == width else [f"class {i}" for i in range(width)]


def manyclass_prediction(meta: dict, probs, p_artifact, threshold: float):
    """The class a model names per CCD (object array of class names), or None for a binary model.

    multiclass: ``classes[argmax(probs)]`` (its last class is "no artifact"); multilabel: the
    most probable class when ``p_artifact >= threshold``, else "no artifact".
    """
    classes = np.asarray(meta["classes"], dtype=object)
    probs = np.asarray(probs)
    if meta["problem"] == "multiclass":
        return classes[probs.argmax(axis=1)] if len(probs) else np.zeros(0, dtype=object)
    if meta["problem"] == "multilabel":
        top = classes[probs.argmax(axis=1)] if len(probs) else np.zeros(0, dtype=object)
        return np.where(np.asarray(p_artifact) >= threshold, top, NO_ARTIFACT).astype(object)
    return None


def manyclass_scores(true_names, pred_names, artifact_classes, min_support: int = 20) -> dict:
    """Single-label scores of class-name labels: accuracy, per-class rows (:func:`per_class_prf`),
    macro-F1 over the artifact classes (not "no artifact") with >= min_support true examples.

    Names outside ``artifact_classes`` (other than "no artifact") get their own rows after them.
    """
    tn = [str(x) for x in true_names]
    pn = [str(x) for x in pred_names]
    art = [c for c in artifact_classes if c != NO_ARTIFACT]
    extra = sorted({x for x in tn + pn if x not in art and x != NO_ARTIFACT})
    names = art + extra + [NO_ARTIFACT]
    pos = {n: i for i, n in enumerate(names)}
    yt = np.array([pos[x] for x in tn], dtype=np.int64)
    yp = np.array([pos[x] for x in pn], dtype=np.int64)
    rows = per_class_prf(yt, yp, names)
    macro, used = macro_from_rows([r for r in rows if r["name"] != NO_ARTIFACT], min_support)
    return {"n": int(yt.size), "accuracy": _ratio(np.sum(yt == yp), yt.size), "macro_f1": macro,
            "macro_f1_classes": used, "min_support": int(min_support), "per_class": rows, "labels": names,
            "confusion": confusion_matrix(yt, yp, len(names))}


def volunteer_class_names(label, primary_class, taxonomy) -> np.ndarray:
    """The volunteers' class per CCD: "no artifact" for label 0, ``taxonomy[primary_class]`` for
    label 1; None for an artifact CCD without a class or an unlabelled CCD."""
    lab = np.asarray(label).astype(np.int64)
    pc = np.asarray(primary_class).astype(np.int64)
    tax = list(taxonomy)
    return np.array([NO_ARTIFACT if lb == 0 else (tax[c] if lb == 1 and 0 <= c < len(tax) else None)
                     for lb, c in zip(lab, pc)], dtype=object)


def truth_ccd_frame(meta: dict, pred: dict, ccds_df=None, truth_df=None, threshold: float | None = None,
                    tables: dict | None = None):
    """One row per predicted CCD (in the order of ``pred``'s arrays) joined with the truth.

    ``pred``: :func:`load_predictions` arrays; the truth as ``truth_df``/``ccds_df`` or as
    ``tables`` from :func:`prepare_truth`. Columns: expnum, ccdnum, label, primary_class,
    y_true, p_artifact, flag (p_artifact >= threshold), category (:data:`CATEGORIES`),
    detectable_classes, classes, truth_class (the primary class for detectable CCDs, "no artifact"
    for clean ones, None otherwise), pred_class (:func:`manyclass_prediction`, None for binary
    models), binary_correct (flag == detectable, None off detectable/clean CCDs), class_correct
    (pred_class == truth_class, None where either is None).
    """
    import pandas as pd

    tables = tables if tables is not None else prepare_truth(truth_df, ccds_df)
    thr = float(meta["threshold"] if threshold is None else threshold)
    n = len(pred["expnum"])
    fr = pd.DataFrame({"expnum": np.asarray(pred["expnum"]).astype(np.int64),
                       "ccdnum": np.asarray(pred["ccdnum"]).astype(np.int64),
                       "label": np.asarray(pred["label"]).astype(np.int64),
                       "primary_class": np.asarray(pred["primary_class"]).astype(np.int64),
                       "y_true": np.asarray(pred["y_true"]).astype(np.int64),
                       "p_artifact": np.asarray(pred["p_artifact"], dtype=np.float64), "_i": np.arange(n)})
    m = fr.merge(tables["ccds"], how="left", on=["expnum", "ccdnum"], indicator=True)
    m = m.sort_values("_i").reset_index(drop=True)
    matched = (m["_merge"] == "both").to_numpy()
    det = _bool(m["truth_detectable"]) & matched
    clean = _bool(m["truth_clean"]) & matched & ~det
    if not tables["has_ccds_table"]:
        clean |= ~matched                       # no CCD table: absent from truth.parquet = clean
    cat = np.where(det, "detectable", np.where(clean, "clean", np.where(matched, "below_floor", "unmatched")))
    m["category"] = cat
    m["flag"] = m["p_artifact"].to_numpy() >= thr
    m["detectable_classes"] = [v if isinstance(v, tuple) else () for v in m["detectable_classes"]]
    m["classes"] = [v if isinstance(v, tuple) else () for v in m["classes"]]
    prim = [_opt_str(v) for v in m["primary_class_truth"]]
    m["truth_class"] = [p if c == "detectable" else (NO_ARTIFACT if c == "clean" else None)
                        for p, c in zip(prim, cat)]
    pc = manyclass_prediction(meta, pred["probs"], m["p_artifact"].to_numpy(), thr)
    m["pred_class"] = list(pc) if pc is not None else [None] * n
    on = (cat == "detectable") | (cat == "clean")
    m["binary_correct"] = [bool(f == d) if o else None for f, d, o in zip(m["flag"], det, on)]
    m["class_correct"] = [None if (t is None or p is None) else bool(t == p)
                          for t, p in zip(m["truth_class"], m["pred_class"])]
    return m.drop(columns=["_merge", "_i", "primary_class_truth", "truth_clean", "truth_detectable"])


def _wilson_rate(k, n) -> dict:
    return {"n": int(n), "k": int(k), "rate": _ratio(k, n), "ci95": wilson_interval(int(k), int(n))}


def _binary_with_ci(y, score, thr) -> dict:
    b = binary_metrics(y, score, thr)
    b["recall_ci95"] = wilson_interval(b["tp"], b["positives"])
    b["fpr_ci95"] = wilson_interval(b["fp"], b["negatives"])
    b["roc_auc"] = roc_auc(y, score)
    return b


def _volunteer_figures(meta, probs, p_art, label, primary_class, y_true, multi_hot, flag_scores, thr,
                       class_names_pred, indicator, min_support, taxonomy) -> dict:
    """The volunteer-label figures of one scorer, with the model's rules (see truth_evaluation)."""
    problem, classes = meta["problem"], list(meta["classes"])
    k = len(classes)
    lab = label.astype(bool)
    out = {"n": int(lab.size), "binary": _binary_with_ci(lab, flag_scores, thr)}
    # accuracy and per-class rows under the model's own rules (as summarize_predictions)
    if problem == "binary":
        yp = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
        out["accuracy"] = _ratio(np.sum(yp == label), lab.size)
        rows = per_class_prf(label, yp, classes)
        out["per_class"] = rows
        out["macro_f1"], out["macro_f1_classes"] = macro_from_rows(rows, min_support)
    elif problem == "multiclass":
        ok = (y_true >= 0) & (y_true < k)
        yp = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
        yp[(probs.max(axis=1) if len(probs) else yp) <= 0] = k     # no output at all: a class the model lacks
        out["accuracy"] = _ratio(np.sum(yp[ok] == y_true[ok]), int(ok.sum()))
        rows = [r for r in per_class_prf(y_true[ok], yp[ok], classes + ["(not a model class)"]) if r["index"] < k]
        out["per_class"] = rows
        out["macro_f1"], out["macro_f1_classes"] = macro_from_rows([r for r in rows if r["name"] != NO_ARTIFACT],
                                                                   min_support)
    else:
        out["accuracy"] = _ratio(np.sum((p_art >= 0.5) == lab), lab.size)
        ct = np.asarray(meta["class_thresholds"], dtype=np.float64)
        rows = multilabel_prf(multi_hot, probs, ct, classes)
        out["per_class"] = rows
        out["macro_f1"], out["macro_f1_classes"] = macro_from_rows(rows, min_support)
        out["subset_accuracy"] = _ratio(np.sum(((probs >= ct[None, :]) == multi_hot.astype(bool)).all(axis=1)),
                                        lab.size)
    out["error"] = 1.0 - out["accuracy"]
    # many-class view vs the volunteers' primary class, multi-label AUC vs their multi-hot vector
    vol = volunteer_class_names(label, primary_class, taxonomy)
    keep = np.array([v is not None for v in vol], dtype=bool)
    if class_names_pred is not None:
        art = list(taxonomy) if problem == "binary" else [c for c in classes if c != NO_ARTIFACT]
        mc = manyclass_scores(vol[keep], class_names_pred[keep], art, min_support)
        out["manyclass"] = {x: mc[x] for x in ("n", "accuracy", "macro_f1", "macro_f1_classes", "per_class")}
    else:
        out["manyclass"] = None
    out["multilabel"] = per_class_auc(multi_hot, indicator, taxonomy, min_support) if indicator is not None else None
    return out


def truth_evaluation(meta: dict, pred: dict, ccds_df, truth_df, threshold: float | None = None,
                     min_support: int = 20, tables: dict | None = None) -> dict:
    """A model's predictions scored against the simulator's truth, JSON-ready (no Spark).

    ``meta``: the model.json dict; ``pred``: :func:`load_predictions` arrays (test side);
    ``ccds_df`` / ``truth_df``: the simulator's ccds.parquet (or None) and truth.parquet as
    DataFrames, or ``tables`` from :func:`prepare_truth` (then those two are ignored). Joined on
    (expnum, ccdnum == ccd). ``threshold``: the binary decision on p_artifact (default
    model.json's); ``min_support``: the examples a class needs to enter an average.

    Keys (counts beside every ratio, Wilson 95% intervals as ``*_ci95``):

    * ``test_ccds``: test CCDs per category (detectable / clean / below_floor / unmatched);
    * ``binary``: recall over detectable CCDs, FPR over clean ones, ROC AUC of p_artifact
      (detectable vs clean), accuracy over both, and ``below_floor`` (n, flagged, flagged_share)
      kept apart;
    * ``per_class``: per class, over the test CCDs where it is detectable: n, detected, recall,
      recall_ci95, meets_min_support, n_below_floor_only (test CCDs where it was injected but is
      below its floor), volunteer_recall; ``per_class_min_recall`` (the worst class with >=
      min_support);
    * ``recall_vs_strength``: :func:`recall_vs_strength` rows (strength sn_binned, else snr),
      bins with most features below the floor marked; ``strength_floor`` per class;
    * ``floor``: share of artifact CCDs below the floor (archive, test), per class the share of
      features below it and their floor rules, ``erased_by_binning`` (classes the 8x8 binning
      erases), ``never_detectable`` classes;
    * ``manyclass`` (multiclass and multilabel models, else None): predicted class vs the truth's
      primary class ("no artifact" for clean CCDs; below-floor-only CCDs left out): accuracy,
      macro-F1 over artifact classes with >= min_support, per-class rows, confusion;
    * ``multilabel`` (multilabel models, else None): per-class ROC AUC of probs[:, c] against "c
      detectable on the CCD" (below-floor-only CCDs left out), mean_auc over classes with >=
      min_support positives, mean_auc_all over every class with a positive and a negative;
    * ``volunteer`` and ``ceiling``: the same figures against the volunteer labels (labelled
      test CCDs with a truth row) for the model and for a perfect truth model (flags exactly the
      detectable CCDs, names primary_class_truth, multi-hot = detectable_classes): binary
      (recall, FPR, accuracy, ...), accuracy / per_class / macro_f1 under the model's own rules,
      manyclass (macro-F1 vs the volunteers' primary class), multilabel (mean AUC vs their
      multi-hot vector; the model's only for multilabel models), and the ceiling's
      binary_by_true_class (:func:`binary_by_true_class`);
    * ``warnings``, ``fallback`` (older archive: columns derived), threshold, min_support.
    """
    tables = tables if tables is not None else prepare_truth(truth_df, ccds_df)
    problem, classes = meta["problem"], list(meta["classes"])
    thr = float(meta["threshold"] if threshold is None else threshold)
    warnings = list(tables["warnings"])
    fr = truth_ccd_frame(meta, pred, threshold=thr, tables=tables)
    cat = fr["category"].to_numpy()
    flag = fr["flag"].to_numpy(dtype=bool)
    p_art = fr["p_artifact"].to_numpy()
    det, clean, below, unm = (cat == "detectable"), (cat == "clean"), (cat == "below_floor"), (cat == "unmatched")
    probs = np.asarray(pred["probs"], dtype=np.float64)
    multi_hot = np.asarray(pred["multi_hot"])
    taxonomy = _taxonomy(meta, multi_hot.shape[1] if multi_hot.ndim == 2 else 0)
    if unm.any():
        warnings.append(f"{int(unm.sum())} test CCDs are not in the truth's CCD table (is it the archive these "
                        "models were trained on?); they are left out of every truth figure")
    det_no_primary = det & np.array([c is None for c in fr["truth_class"]], dtype=bool)
    if det_no_primary.any():
        warnings.append(f"{int(det_no_primary.sum())} detectable test CCDs have no primary_class_truth; they are "
                        "left out of the many-class figures")
    ev = {"threshold": thr, "min_support": int(min_support), "fallback": tables["fallback"],
          "missing_columns": tables["missing_columns"], "n": int(len(fr)),
          "test_ccds": {c: int((cat == c).sum()) for c in CATEGORIES}}

    # ---- binary vs truth
    on = det | clean
    tp, fp = int((flag & det).sum()), int((flag & clean).sum())
    nd, nc = int(det.sum()), int(clean.sum())
    ev["binary"] = {"n_detectable": nd, "detected": tp, "recall": _ratio(tp, nd), "recall_ci95": wilson_interval(tp, nd),
                    "n_clean": nc, "false_positives": fp, "fpr": _ratio(fp, nc), "fpr_ci95": wilson_interval(fp, nc),
                    "accuracy": _ratio(tp + nc - fp, nd + nc), "roc_auc": roc_auc(det[on], p_art[on]),
                    "below_floor": {"n": int(below.sum()), "flagged": int((flag & below).sum()),
                                    "flagged_share": _ratio((flag & below).sum(), below.sum())}}

    # ---- per class vs truth
    order = {c: i for i, c in enumerate(taxonomy)}
    feats = tables["features"]
    keys = fr[["expnum", "ccdnum"]].drop_duplicates()
    ft = feats.merge(keys, on=["expnum", "ccdnum"], how="inner")        # features on test CCDs
    present_any = ft.groupby(["expnum", "ccdnum", "cls"])["detectable"].any().reset_index()
    below_pairs = present_any[~present_any["detectable"]]
    n_below_only = below_pairs.groupby("cls").size().to_dict()
    labelled = np.isin(fr["label"].to_numpy(), (0, 1))
    lab1 = fr["label"].to_numpy() == 1
    dcls = fr["detectable_classes"].tolist()
    all_cls = sorted({c for v in dcls for c in v} | set(n_below_only), key=lambda c: (order.get(c, len(order)), c))
    rows = []
    for c in all_cls:
        has = det & np.array([c in v for v in dcls], dtype=bool)
        n, k = int(has.sum()), int((has & flag).sum())
        nl = int((has & labelled).sum())
        rows.append({"cls": c, "n": n, "detected": k, "recall": _ratio(k, n), "recall_ci95": wilson_interval(k, n),
                     "meets_min_support": n >= min_support, "n_below_floor_only": int(n_below_only.get(c, 0)),
                     "volunteer_labelled": nl, "volunteer_recall": _ratio((has & lab1).sum(), nl)})
    ev["per_class"] = rows
    q = [r for r in rows if r["meets_min_support"]]
    worst = min(q, key=lambda r: r["recall"]) if q else None
    ev["per_class_min_recall"] = {"recall": worst["recall"] if worst else None, "cls": worst["cls"] if worst else None,
                                  "classes": [r["cls"] for r in q]}

    # ---- recall vs strength, the floor
    import pandas as pd
    rvs = recall_vs_strength(feats, pd.DataFrame({"expnum": fr["expnum"], "ccdnum": fr["ccdnum"], "p_artifact": p_art}),
                             thr, floor_from=feats)
    if len(rvs):
        rvs = rvs.assign(_o=rvs["cls"].map(lambda c: order.get(c, len(order)))).sort_values(
            ["_o", "cls", "bin"], kind="stable").drop(columns="_o").reset_index(drop=True)
    ev["recall_vs_strength"] = rvs.to_dict(orient="records")
    sf = {}
    for c, g in feats.groupby("cls"):
        name, s = _pick_strength(g, STRENGTH_COLUMNS)
        if name is not None:
            sf[c] = {"strength": name, **strength_floor(s, g["detectable"].to_numpy(dtype=bool))}
    ev["strength_floor"] = sf
    ccds_all = tables["ccds"]
    art_all = ~ccds_all["truth_clean"].to_numpy(dtype=bool)
    det_all = ccds_all["truth_detectable"].to_numpy(dtype=bool)
    n_art_test = int((det | below).sum())
    per_cls_floor = []
    for c, g in feats.groupby("cls"):
        gt = ft[ft["cls"] == c]
        rules = g["floor_rule"].dropna().astype(str).value_counts().to_dict()
        nb, nbt = int((~g["detectable"]).sum()), int((~gt["detectable"]).sum())
        per_cls_floor.append({"cls": c, "features": int(len(g)), "below_floor": nb,
                              "share_below_floor": _ratio(nb, len(g)), "floor_rules": rules,
                              "test_features": int(len(gt)), "test_below_floor": nbt,
                              "test_share_below_floor": _ratio(nbt, len(gt))})
    per_cls_floor.sort(key=lambda r: (order.get(r["cls"], len(order)), r["cls"]))
    ev["floor"] = {
        "archive": {"ccds": int(len(ccds_all)) if tables["has_ccds_table"] else None,
                    "artifact_ccds": int(art_all.sum()), "below_floor_ccds": int((art_all & ~det_all).sum()),
                    "share_below_floor": _ratio((art_all & ~det_all).sum(), art_all.sum())},
        "test": {"ccds": int((~unm).sum()), "artifact_ccds": n_art_test, "below_floor_ccds": int(below.sum()),
                 "share_below_floor": _ratio(below.sum(), n_art_test)},
        "per_class": per_cls_floor,
        "erased_by_binning": sorted(feats.loc[feats["floor_rule"].astype(str) == ERASED_BY_BINNING, "cls"].unique().tolist()),
        "never_detectable": sorted(r["cls"] for r in per_cls_floor if r["features"] and r["below_floor"] == r["features"]),
        "rules": _floor_rules()}

    # ---- many-class vs truth
    tc = np.array(fr["truth_class"].tolist(), dtype=object)
    pcls = np.array(fr["pred_class"].tolist(), dtype=object)
    mc_rows = np.array([t is not None for t in tc], dtype=bool)
    art_classes = [c for c in classes if c != NO_ARTIFACT]
    if problem in ("multiclass", "multilabel"):
        mc = manyclass_scores(tc[mc_rows], pcls[mc_rows], art_classes, min_support)
        mc["rule"] = ("argmax(probs)" if problem == "multiclass" else
                      f"argmax(probs) when p_artifact >= {thr:.4g}, else '{NO_ARTIFACT}'")
        mc["excluded_below_floor"] = int(below.sum())
        ev["manyclass"] = mc
    else:
        ev["manyclass"] = None

    # ---- multi-label vs truth
    det_ind = np.array([[c in v for c in classes] for v in dcls], dtype=bool).reshape(len(fr), len(classes))
    if problem == "multilabel":
        ml = per_class_auc(det_ind[on], probs[on], classes, min_support)
        ml["n"] = int(on.sum())
        ml["excluded_below_floor"] = int(below.sum())
        ev["multilabel"] = ml
    else:
        ev["multilabel"] = None

    # ---- volunteer labels: the model and the perfect truth model (the ceiling)
    L = labelled & ~unm
    lab = fr["label"].to_numpy()[L]
    pcv = fr["primary_class"].to_numpy()[L]
    ytv = fr["y_true"].to_numpy()[L]
    mhv = multi_hot[L] if multi_hot.ndim == 2 else np.zeros((int(L.sum()), 0))
    tax_ind = np.array([[c in v for c in taxonomy] for v in dcls], dtype=bool).reshape(len(fr), len(taxonomy))
    ev["volunteer"] = _volunteer_figures(
        meta, probs[L], p_art[L], lab, pcv, ytv, mhv, p_art[L], thr,
        pcls[L] if problem in ("multiclass", "multilabel") else None,
        _ml_scores(meta, probs[L], taxonomy) if problem == "multilabel" else None, min_support, taxonomy)
    # the perfect truth model's outputs in the model's own format
    det_l = det[L]
    if problem == "binary":
        c_probs = np.stack([~det_l, det_l], axis=1).astype(np.float64)
    elif problem == "multiclass":
        pos = {c: i for i, c in enumerate(classes)}
        tcl = [t if d else NO_ARTIFACT for t, d in zip(fr["truth_class"].to_numpy()[L], det_l)]
        c_probs = np.zeros((len(tcl), len(classes)))
        for i, t in enumerate(tcl):
            if t in pos:
                c_probs[i, pos[t]] = 1.0        # else an all-zero row: a class the model lacks, always wrong
    else:
        c_probs = det_ind[L].astype(np.float64)
    c_names = np.array([(t if t is not None else NO_ARTIFACT) if d else NO_ARTIFACT
                        for t, d in zip(fr["truth_class"].to_numpy()[L], det_l)], dtype=object)
    c_meta = dict(meta)
    if problem == "multilabel":
        c_meta["class_thresholds"] = [0.5] * len(classes)
    ceil = _volunteer_figures(c_meta, c_probs, det_l.astype(np.float64), lab, pcv, ytv, mhv,
                              det_l.astype(np.float64), 0.5, c_names, tax_ind[L].astype(np.float64),
                              min_support, taxonomy)
    ev["volunteer"]["binary_by_true_class"] = binary_by_true_class(pcv, lab, p_art[L] >= thr, taxonomy)
    ceil["binary"]["threshold"] = None
    ceil["binary_by_true_class"] = binary_by_true_class(pcv, lab, det_l, taxonomy)
    ev["ceiling"] = ceil
    ev["warnings"] = warnings
    return jsonable(ev)


def _ml_scores(meta, probs, taxonomy):
    """probs re-ordered to the taxonomy's columns (a class the model lacks scores 0)."""
    pos = {c: i for i, c in enumerate(meta["classes"])}
    out = np.zeros((probs.shape[0], len(taxonomy)))
    for j, c in enumerate(taxonomy):
        if c in pos:
            out[:, j] = probs[:, pos[c]]
    return out


def _floor_rules() -> dict | None:
    """The simulator's documented floors (``artifactspark.sim.detect.FLOORS``), if importable."""
    try:
        from ..sim.detect import FLOORS
    except Exception:  # noqa: BLE001 - an older tree without the floors: nothing to quote
        return None
    return dict(FLOORS)


def truth_correctness(frame, problem: str) -> dict:
    """Per CCD (expnum, ccdnum) -> right or wrong against the truth, for paired comparisons.

    binary: flag == detectable (detectable and clean CCDs); multiclass / multilabel: the named
    class == the truth's class (detectable CCDs with a primary class and clean CCDs). ``frame``:
    :func:`truth_ccd_frame`.
    """
    col = "binary_correct" if problem == "binary" else "class_correct"
    return {(int(e), int(c)): bool(v) for e, c, v in zip(frame["expnum"], frame["ccdnum"], frame[col])
            if v is not None}



# --------------------------------------------------------------------------------------------
# one model directory
# --------------------------------------------------------------------------------------------

PRED_COLUMNS = ("expnum", "ccdnum", "label", "primary_class", "multi_hot", "y_true", "probs", "p_artifact")


def read_model_json(model_dir: str) -> dict:
    """``model_dir/model.json``, checked for the keys the evaluation needs."""
    path = os.path.join(model_dir, "model.json")
    if not os.path.isdir(model_dir):
        raise ModelDirError(f"{model_dir}: no such model directory; pass the --out directory of "
                            "jobs/train_cnn.py or jobs/train_svm.py")
    if not os.path.isfile(path):
        raise ModelDirError(f"{model_dir}: no model.json, so this is not a finished training run; "
                            "re-run the training job into this directory (it writes model.json last)")
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise ModelDirError(f"{path}: not readable JSON ({e}); re-run the training job") from e
    missing = [k for k in ("name", "kind", "problem", "classes", "threshold", "split") if k not in meta]
    if missing:
        raise ModelDirError(f"{path}: missing keys {missing}; it was written by an older or foreign "
                            "training job: re-run jobs/train_cnn.py / jobs/train_svm.py")
    if meta["problem"] not in PROBLEMS:
        raise ModelDirError(f"{path}: problem {meta['problem']!r} is not one of {list(PROBLEMS)}")
    if meta["problem"] == "multilabel" and len(meta.get("class_thresholds") or []) != len(meta["classes"]):
        raise ModelDirError(f"{path}: a multilabel model needs class_thresholds with one value per class "
                            f"({len(meta['classes'])})")
    return meta


def _list_column(table, name: str, width: int, dtype) -> np.ndarray:
    import pyarrow.compute as pc

    col = table.column(name).combine_chunks()
    if col.null_count:
        raise ValueError(f"column {name} has {col.null_count} null cells")
    if len(col) == 0:
        return np.zeros((0, width), dtype=dtype)
    lens = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if (lens != width).any():
        raise ValueError(f"column {name} must hold lists of length {width}; found lengths "
                         f"{np.unique(lens)[:5].tolist()}")
    return col.flatten().to_numpy(zero_copy_only=False).astype(dtype).reshape(len(col), width)


def load_predictions(model_dir: str, split: str = "test", meta: dict | None = None) -> dict:
    """Arrays of ``model_dir/predictions_<split>.parquet`` (the contract's columns), checked.

    Returns a dict of numpy arrays: expnum, ccdnum, label, primary_class, y_true, p_artifact
    (1-D), multi_hot (n x 26), probs (n x len(classes)); plus "frame": a pandas DataFrame with
    the 1-D columns (for joins) and "warnings": contract deviations that do not stop evaluation.
    p_artifact is checked against probs (binary probs[1], multiclass 1 - probs[-1], multilabel
    max(probs)) except for a multilabel model with ``"any_head": true`` in model.json, whose
    p_artifact is its own "any artifact" output.
    """
    import pyarrow.parquet as pq

    meta = meta if meta is not None else read_model_json(model_dir)
    path = os.path.join(model_dir, f"predictions_{split}.parquet")
    if not os.path.isfile(path):
        raise ModelDirError(f"{model_dir}: no predictions_{split}.parquet; the training job writes it after "
                            f"evaluating on the {split} split: re-run it into this directory")
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - any reader failure means a broken file
        raise ModelDirError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e}); re-run the "
                            "training job") from e
    missing = [c for c in PRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ModelDirError(f"{path}: missing columns {missing} (has {table.column_names}); re-run the "
                            "training job")
    k = len(meta["classes"])
    n_tax = len(meta.get("taxonomy") or []) or None
    try:
        probs = _list_column(table, "probs", k, np.float64)
        mh_width = n_tax or (len(table.column("multi_hot")[0].as_py()) if table.num_rows else 0)
        multi_hot = _list_column(table, "multi_hot", mh_width, np.int8)
    except ValueError as e:
        raise ModelDirError(f"{path}: {e} (model.json lists {k} classes); re-run the training job") from e
    out = {c: table.column(c).to_numpy() for c in PRED_COLUMNS if c not in ("probs", "multi_hot")}
    out["probs"], out["multi_hot"] = probs, multi_hot
    for c in ("expnum", "ccdnum", "label", "primary_class", "y_true"):
        out[c] = out[c].astype(np.int64)
    out["p_artifact"] = out["p_artifact"].astype(np.float64)
    if not np.isfinite(out["p_artifact"]).all() or not np.isfinite(probs).all():
        raise ModelDirError(f"{path}: NaN/inf probabilities; the model diverged or the export is broken: "
                            "re-train")
    warnings = []
    problem = meta["problem"]
    if problem == "binary":
        derived = probs[:, 1] if k == 2 else None
    elif problem == "multiclass":
        derived = 1.0 - probs[:, -1]
    elif meta.get("any_head"):
        derived = None          # p_artifact is the "any artifact" head's output, not max(probs)
    else:
        derived = probs.max(axis=1) if k else None
    if derived is not None and out["p_artifact"].size:
        off = np.abs(derived - out["p_artifact"]) > 1e-4
        if off.any():
            warnings.append(f"{split}: p_artifact disagrees with probs in {int(off.sum())} rows "
                            "(contract: binary probs[1], multiclass 1 - probs[-1], multilabel max(probs) unless "
                            "model.json has any_head); "
                            "p_artifact is used as stored")
    import pandas as pd
    frame = pd.DataFrame({c: out[c] for c in ("expnum", "ccdnum", "label", "primary_class", "y_true", "p_artifact")})
    if "band" in table.column_names:
        frame["band"] = table.column("band").to_numpy(zero_copy_only=False)
    if frame.duplicated(["expnum", "ccdnum"]).any():
        raise ModelDirError(f"{path}: a CCD (expnum, ccdnum) appears more than once; re-run the training job")
    split_meta = meta.get("split") or {}
    if split_meta.get(split):
        foreign = np.setdiff1d(np.unique(out["expnum"]), np.asarray(split_meta[split], dtype=np.int64))
        if foreign.size:
            warnings.append(f"{split}: {foreign.size} exposures in the predictions are not in model.json's "
                            f"{split} split (e.g. {foreign[:3].tolist()}): the split and the predictions disagree")
    out["frame"], out["warnings"] = frame, warnings
    return out


def accuracy_rule(problem: str) -> str:
    return {"binary": "argmax(probs) == label",
            "multiclass": "argmax(probs) == y_true (26 classes + no artifact)",
            "multilabel": "artifact yes/no: (p_artifact >= 0.5) == label"}[problem]


def summarize_predictions(meta: dict, pred: dict, threshold: float | None = None, min_support: int = 20,
                          curve: bool = False) -> dict:
    """All numbers of one model from its model.json dict and :func:`load_predictions` arrays.

    ``threshold``: the binary decision threshold on p_artifact (default: model.json's, chosen on
    the validation set). ``curve=True`` adds the FPR/FNR curve arrays (large) under "curve".
    """
    problem, classes = meta["problem"], list(meta["classes"])
    k = len(classes)
    taxonomy = list(meta.get("taxonomy") or (classes[:-1] if problem == "multiclass" else
                                            classes if problem == "multilabel" else []))
    thr = float(meta["threshold"] if threshold is None else threshold)
    warnings = list(pred.get("warnings", []))
    label = pred["label"]
    keep = np.isin(label, (0, 1))
    if not keep.all():
        warnings.append(f"{int((~keep).sum())} rows with label outside 0/1 left out of every number")
    lab = label[keep].astype(bool)
    p_art = pred["p_artifact"][keep]
    probs = pred["probs"][keep]
    yt = pred["y_true"][keep]
    n = int(keep.sum())
    if n == 0:
        warnings.append("no labelled test CCD in the predictions: every number is empty")
    split = meta.get("split") or {}
    s = {"name": meta["name"], "kind": meta.get("kind"), "problem": problem, "version": meta.get("version"),
         "config_hash": meta.get("config_hash"),
         "split": {"id": split.get("id"), "seed": split.get("seed"), "fractions": split.get("fractions"),
                   "exposures": {x: len(split.get(x) or []) for x in ("train", "val", "test")}},
         "classes": classes, "n": n, "n_exposures": int(np.unique(pred["expnum"][keep]).size),
         "threshold": thr,
         "threshold_source": (f"model.json ({meta.get('threshold_rule') or 'chosen on the validation set'})"
                              if threshold is None else "override"),
         "target_fnr": meta.get("target_fnr"), "min_support": int(min_support),
         "derived_from": meta.get("derived_from"), "any_head": bool(meta.get("any_head", False))}
    bm = binary_metrics(lab, p_art, thr)
    bm["recall_ci95"] = wilson_interval(bm["tp"], bm["positives"])
    bm["fpr_ci95"] = wilson_interval(bm["fp"], bm["negatives"])
    bm["roc_auc"] = roc_auc(lab, p_art)
    s["binary"] = bm
    cur = fpr_fnr_curve(lab, p_art)
    s["best_recall_at_fpr_0.10_on_test"] = best_recall_at_fpr(cur, 0.10)
    s["best_recall_at_fpr_0.05_on_test"] = best_recall_at_fpr(cur, 0.05)
    if curve:
        s["curve"] = cur
    if problem in ("binary", "multiclass"):
        pred_cls = probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
        ok = (yt >= 0) & (yt < k)
        if not ok.all():
            warnings.append(f"{int((~ok).sum())} rows with y_true outside the {k} classes left out of the "
                            "many-class numbers")
        yt_ok, pc_ok = yt[ok], pred_cls[ok]
        s["accuracy"] = _ratio(np.sum(yt_ok == pc_ok), yt_ok.size)
        cm = confusion_matrix(yt_ok, pc_ok, k)
        s["confusion"] = {"labels": classes, "matrix": cm}
        rows = per_class_prf(yt_ok, pc_ok, classes)
        s["per_class"] = rows
        if problem == "multiclass":
            # the headline macro-F1 is over the artifact classes: "no artifact" (large, easy) would
            # otherwise carry the average, alone when no artifact class reaches min_support
            art_rows = [r for r in rows if r["name"] != NO_ARTIFACT]
            s["macro_f1"], s["macro_f1_classes"] = macro_from_rows(art_rows, min_support)
            s["macro_f1_all_classes"], s["macro_f1_all_classes_used"] = macro_from_rows(rows, min_support)
        else:
            s["macro_f1"], s["macro_f1_classes"] = macro_from_rows(rows, min_support)
    else:
        s["accuracy"] = _ratio(np.sum((p_art >= 0.5) == lab), n)
        ct = meta["class_thresholds"]
        rows = multilabel_prf(pred["multi_hot"][keep], probs, ct, classes)
        s["per_class"] = rows
        s["macro_f1"], s["macro_f1_classes"] = macro_from_rows(rows, min_support)
        predm = probs >= np.asarray(ct, dtype=np.float64)[None, :]
        s["subset_accuracy"] = _ratio(np.sum((predm == pred["multi_hot"][keep].astype(bool)).all(axis=1)), n)
        mh = pred["multi_hot"][keep]
        if mh.shape[1] == k:
            auc = per_class_auc(mh, probs, classes, min_support)
            for r, a in zip(rows, auc["per_class"]):
                r["roc_auc"] = a["auc"]
            s["mean_auc"], s["mean_auc_classes"] = auc["mean_auc"], auc["mean_auc_classes"]
            s["mean_auc_all"], s["mean_auc_all_classes"] = auc["mean_auc_all"], auc["mean_auc_all_classes"]
        else:
            warnings.append(f"multi_hot has {mh.shape[1]} columns but the model {k} classes: no per-class ROC AUC")
            s["mean_auc"], s["mean_auc_classes"], s["mean_auc_all"], s["mean_auc_all_classes"] = None, [], None, []
    if problem in ("multiclass", "multilabel"):
        vol = volunteer_class_names(label[keep], pred["primary_class"][keep],
                                    _taxonomy(meta, pred["multi_hot"].shape[1]))
        ok = np.array([v is not None for v in vol], dtype=bool)
        named = manyclass_prediction(meta, probs, p_art, thr)
        mc = manyclass_scores(vol[ok], named[ok], [c for c in classes if c != NO_ARTIFACT], min_support)
        s["manyclass_view"] = {"rule": ("argmax(probs)" if problem == "multiclass" else
                                        f"argmax(probs) when p_artifact >= {thr:.4g}, else '{NO_ARTIFACT}'"),
                               "truth": "volunteers' primary class ('no artifact' for clean CCDs)",
                               **{x: mc[x] for x in ("n", "accuracy", "macro_f1", "macro_f1_classes")}}
    s["accuracy_rule"] = accuracy_rule(problem)
    s["error"] = 1.0 - s["accuracy"]
    names = taxonomy if taxonomy else [f"class {i}" for i in range(pred["multi_hot"].shape[1])]
    if len(names) != pred["multi_hot"].shape[1]:
        names = [f"class {i}" for i in range(pred["multi_hot"].shape[1])]
    s["binary_by_true_class"] = binary_by_true_class(pred["primary_class"][keep], label[keep], p_art >= thr, names)
    s["warnings"] = warnings
    return s


def summarize_model(model_dir: str, split: str = "test", threshold: float | None = None,
                    min_support: int = 20, truth: str | None = None) -> dict:
    """Every number for one model directory, JSON-ready (plain Python types; NaN -> None).

    Reads ``model.json`` and ``predictions_<split>.parquet``. Keys: name, kind, problem, version,
    config_hash, split (id, seed, fractions, exposure counts), classes, n, n_exposures, threshold,
    threshold_source, target_fnr, min_support, binary (:func:`binary_metrics` at the threshold on
    label vs p_artifact, plus recall_ci95 / fpr_ci95), best_recall_at_fpr_0.10_on_test
    (optimistic, informational), accuracy / error / accuracy_rule, per_class (every output class),
    macro_f1 and macro_f1_classes (mean F1 over the classes with >= min_support true examples;
    multiclass: over the 26 artifact classes only, "no artifact" excluded; binary: over
    both outputs), macro_f1_all_classes / macro_f1_all_classes_used (multiclass: "no artifact"
    included), confusion (binary, multiclass), subset_accuracy (multilabel),
    binary_by_true_class (fig. 7), warnings; added since: derived_from, any_head, binary.roc_auc,
    best_recall_at_fpr_0.05_on_test, manyclass_view (multiclass/multilabel: the named class vs the
    volunteers' primary class), mean_auc / mean_auc_all (multilabel, per-class ROC AUC vs the
    volunteers' multi-hot vector). Raises :class:`ModelDirError` for a directory that breaks the
    training jobs' file contract.

    ``truth``: the simulator's labels directory or its truth.parquet (ccds.parquet is read from
    beside it): adds "truth", :func:`truth_evaluation` of these predictions (plus "source", the
    files read); :class:`TruthTableError` when it cannot be read.
    """
    meta = read_model_json(model_dir)
    pred = load_predictions(model_dir, split, meta)
    s = summarize_predictions(meta, pred, threshold, min_support)
    s["model_dir"] = str(model_dir)
    s["evaluated_on"] = split
    if truth is not None:
        truth_df, ccds_df, source = load_truth(truth)
        t = truth_evaluation(meta, pred, ccds_df, truth_df, s["threshold"], min_support)
        t["source"] = source
        s["truth"] = t
    return jsonable(s)
