"""Evaluation numbers for the artifact classifiers (pure numpy; pandas/pyarrow only to read files).

One source of numbers: :func:`summarize_model` computes everything for one model directory from
its ``model.json`` and ``predictions_test.parquet``; the report (:mod:`artifactspark.report`) and
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
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .errors import ArtifactSparkError

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


def recall_vs_strength(truth_df, preds_df, threshold: float, bins=5):
    """Detection rate of injected artifacts against their strength, per class (simulated data only).

    ``truth_df``: the simulator's truth table (expnum, ccd or ccdnum, cls, snr, optional amplitude,
    optional reported). ``preds_df``: a model's predictions (expnum, ccdnum, p_artifact). Only
    truth rows on CCDs present in ``preds_df`` (the test split) count; a truth row is detected
    when its CCD has ``p_artifact >= threshold`` (a CCD-level decision: the model does not say
    which artifact it saw).

    Strength is ``snr``; a class whose snr is NaN in every row (Guiding: its strength is the
    ellipticity) uses ``amplitude``; rows with no finite strength are dropped and counted in
    ``n_no_strength`` of the class. ``bins``: an int (per-class quantile bins, so each bin holds
    about the same number of rows; fewer when values repeat) or a sequence of edges shared by all
    classes (values outside the edges are dropped).

    Returns a pandas DataFrame, one row per (class, bin): cls, strength ("snr"/"amplitude"),
    bin, lo, hi, n, detected, recall (0 when n = 0), reported and volunteer_recall (the
    volunteers' rate in the same bin, when the truth has ``reported``), n_no_strength.
    """
    import pandas as pd

    t = truth_df.copy()
    if "ccdnum" not in t.columns:
        if "ccd" not in t.columns:
            raise ValueError("the truth table needs a ccd (or ccdnum) column")
        t = t.rename(columns={"ccd": "ccdnum"})
    for c in ("expnum", "cls", "snr"):
        if c not in t.columns:
            raise ValueError(f"the truth table has no {c!r} column; columns: {list(t.columns)}")
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
    out = []
    for cls in sorted(m["cls"].unique()):
        g = m[m["cls"] == cls]
        name = "snr"
        s = g["snr"].to_numpy(dtype=np.float64)
        if not np.isfinite(s).any() and "amplitude" in g.columns:
            name, s = "amplitude", g["amplitude"].to_numpy(dtype=np.float64)
        fin = np.isfinite(s)
        n_no = int((~fin).sum())
        if not fin.any():
            continue
        det = g["detected"].to_numpy()[fin]
        rep = g["reported"].fillna(False).to_numpy(dtype=bool)[fin] if has_rep else None
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
            out.append(row)
    cols = ["cls", "strength", "bin", "lo", "hi", "n", "detected", "recall"]
    cols += (["reported", "volunteer_recall"] if has_rep else []) + ["n_no_strength"]
    return pd.DataFrame(out, columns=cols)


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
    else:
        derived = probs.max(axis=1) if k else None
    if derived is not None and out["p_artifact"].size:
        off = np.abs(derived - out["p_artifact"]) > 1e-4
        if off.any():
            warnings.append(f"{split}: p_artifact disagrees with probs in {int(off.sum())} rows "
                            "(contract: binary probs[1], multiclass 1 - probs[-1], multilabel max(probs)); "
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
         "target_fnr": meta.get("target_fnr"), "min_support": int(min_support)}
    bm = binary_metrics(lab, p_art, thr)
    bm["recall_ci95"] = wilson_interval(bm["tp"], bm["positives"])
    bm["fpr_ci95"] = wilson_interval(bm["fp"], bm["negatives"])
    s["binary"] = bm
    cur = fpr_fnr_curve(lab, p_art)
    s["best_recall_at_fpr_0.10_on_test"] = best_recall_at_fpr(cur, 0.10)
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
    s["accuracy_rule"] = accuracy_rule(problem)
    s["error"] = 1.0 - s["accuracy"]
    names = taxonomy if taxonomy else [f"class {i}" for i in range(pred["multi_hot"].shape[1])]
    if len(names) != pred["multi_hot"].shape[1]:
        names = [f"class {i}" for i in range(pred["multi_hot"].shape[1])]
    s["binary_by_true_class"] = binary_by_true_class(pred["primary_class"][keep], label[keep], p_art >= thr, names)
    s["warnings"] = warnings
    return s


def summarize_model(model_dir: str, split: str = "test", threshold: float | None = None,
                    min_support: int = 20) -> dict:
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
    binary_by_true_class (fig. 7), warnings. Raises :class:`ModelDirError` for a directory that
    breaks the training jobs' file contract.
    """
    meta = read_model_json(model_dir)
    s = summarize_predictions(meta, load_predictions(model_dir, split, meta), threshold, min_support)
    s["model_dir"] = str(model_dir)
    s["evaluated_on"] = split
    return jsonable(s)
