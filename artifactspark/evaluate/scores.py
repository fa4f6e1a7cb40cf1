"""Scores of a classifier's outputs against labels (numpy): binary (the threshold for an FNR,
the FPR/FNR curve, the metrics at a threshold, ROC AUC) and ROC AUC per class.

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
"""

from __future__ import annotations

import math

import numpy as np

_EPS_COUNT = 1e-9  # target_fnr * positives is floored with this slack (0.29 * 100 -> 29, not 28)


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
        raise ValueError(
            f"{name} must hold only 0/1 (or booleans); found {bad.tolist()}: drop unlabelled rows (label -1) first"
        )
    return y.astype(bool)


def _scores(p, n, name="p") -> np.ndarray:
    p = np.asarray(p)
    if p.ndim != 1 or p.shape[0] != n:
        raise ValueError(f"{name} must be one-dimensional with {n} entries (one per label), got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise ValueError(
            f"{name} holds {int((~np.isfinite(p)).sum())} NaN/inf values: "
            "the model's predictions are broken; re-run its evaluation"
        )
    return p


def _bool(series) -> np.ndarray:
    """A column of booleans that may hold None/NaN (missing = False) as a numpy bool array."""
    return series.astype("boolean").fillna(False).to_numpy(dtype=bool)


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
    fn = np.searchsorted(pos, thr, side="left")  # positives with p < t
    fp = neg.shape[0] - np.searchsorted(neg, thr, side="left")  # negatives with p >= t
    fnr = fn / pos.shape[0] if pos.shape[0] else np.zeros(thr.shape)
    fpr = fp / neg.shape[0] if neg.shape[0] else np.zeros(thr.shape)
    return {
        "thresholds": thr.astype(np.float64),
        "fpr": np.asarray(fpr, dtype=np.float64),
        "fnr": np.asarray(fnr, dtype=np.float64),
    }


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
    return {
        "n": pos + neg,
        "positives": pos,
        "negatives": neg,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "recall": recall,
        "fpr": _ratio(fp, neg),
        "fnr": _ratio(fn, pos),
        "precision": precision,
        "accuracy": _ratio(tp + tn, pos + neg),
        "f1": _ratio(2 * precision * recall, precision + recall),
        "threshold": float(threshold),
    }


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
    return {
        "threshold": float(curve["thresholds"][i]),
        "recall": float(1.0 - curve["fnr"][i]),
        "fpr": float(curve["fpr"][i]),
    }


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
        rows.append(
            {"name": name, "positives": pos, "negatives": int(y.shape[0] - pos), "auc": roc_auc(y[:, j], sc[:, j])}
        )
    used = [r for r in rows if r["auc"] is not None and r["positives"] >= min_support]
    defined = [r for r in rows if r["auc"] is not None]
    mean = lambda rr: float(np.mean([r["auc"] for r in rr])) if rr else None  # noqa: E731
    return {
        "per_class": rows,
        "mean_auc": mean(used),
        "mean_auc_classes": [r["name"] for r in used],
        "mean_auc_all": mean(defined),
        "mean_auc_all_classes": [r["name"] for r in defined],
        "min_support": int(min_support),
    }
