"""Many-class and multi-label scores (numpy): confusion matrices, per-class precision, recall and
F1, macro-F1, the binary decision by true class, and the class a model names (its many-class
view). Conventions: :mod:`artifactspark.evaluate.scores`."""

from __future__ import annotations

import numpy as np

from .context import context_probs
from .scores import _ratio

NO_ARTIFACT = "no artifact"


def _labels(y, n, name) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(
            f"{name} holds class indices outside [0, {n}): {np.unique(y[(y < 0) | (y >= n)])[:5].tolist()}"
        )
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
        row = {
            "index": i,
            "name": name,
            "support": int(support[i]),
            "predicted": int(predicted[i]),
            "tp": int(tp[i]),
            "precision": prec,
            "recall": rec,
            "f1": _ratio(2 * prec * rec, prec + rec),
        }
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
        raise ValueError(
            f"true_class, label and flagged must have one entry per CCD: {tc.shape}, {lab.shape}, {flag.shape}"
        )
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
    return {
        "rows": names + [NO_ARTIFACT],
        "cols": [NO_ARTIFACT, "artifact"],
        "counts": counts,
        "unassigned": unassigned,
        "skipped": int(np.sum(~(clean | art))),
    }


def multilabel_prf(multi_hot, probs, class_thresholds, class_names, min_support: int = 0) -> list[dict]:
    """Per-class precision/recall/F1 of a multi-label model: class j predicted when probs[:, j] >= class_thresholds[j].

    Same row format as :func:`per_class_prf` plus ``threshold``; zero division -> 0.
    """
    y = np.asarray(multi_hot).astype(bool)
    pr = np.asarray(probs, dtype=np.float64)
    th = np.asarray(class_thresholds, dtype=np.float64)
    k = len(class_names)
    if y.ndim != 2 or y.shape[1] != k or pr.shape != y.shape or th.shape != (k,):
        raise ValueError(
            f"multi_hot {y.shape}, probs {pr.shape} and class_thresholds {th.shape} must be "
            f"(n, {k}), (n, {k}) and ({k},)"
        )
    pred = pr >= th[None, :]
    tp = np.sum(pred & y, axis=0)
    return _prf_rows(
        tp, y.sum(axis=0), pred.sum(axis=0), list(class_names), min_support, extra=lambda i: {"threshold": float(th[i])}
    )


def _taxonomy(meta: dict, width: int) -> list:
    classes = list(meta["classes"])
    tax = list(
        meta.get("taxonomy")
        or (classes[:-1] if meta["problem"] == "multiclass" else classes if meta["problem"] == "multilabel" else [])
    )
    return tax if len(tax) == width else [f"class {i}" for i in range(width)]


def manyclass_prediction(meta: dict, probs, p_artifact, threshold: float, expnum=None):
    """The class a model names per CCD (object array of class names), or None for a binary model.

    multiclass: ``classes[argmax(probs)]`` (its last class is "no artifact"); multilabel: the
    most probable class when ``p_artifact >= threshold``, else "no artifact", the whole-exposure
    classes capped at their exposure's median when model.json has ``exposure_context`` and
    ``expnum`` (each CCD's exposure) is given (:mod:`.context`).
    """
    classes = np.asarray(meta["classes"], dtype=object)
    probs = np.asarray(context_probs(meta, np.asarray(probs), expnum))
    if meta["problem"] == "multiclass":
        return classes[probs.argmax(axis=1)] if len(probs) else np.zeros(0, dtype=object)
    if meta["problem"] == "multilabel":
        top = classes[probs.argmax(axis=1)] if len(probs) else np.zeros(0, dtype=object)
        return np.where(np.asarray(p_artifact) >= threshold, top, NO_ARTIFACT).astype(object)
    return None


def manyclass_rule(meta: dict, threshold: float) -> str:
    """How :func:`manyclass_prediction` names the class, in words (for metrics and the report)."""
    rule = (
        "argmax(probs)"
        if meta["problem"] == "multiclass"
        else f"argmax(probs) when p_artifact >= {threshold:.4g}, else '{NO_ARTIFACT}'"
    )
    ctx = meta.get("exposure_context")
    if ctx and ctx.get("classes"):
        rule += f"; probs of {', '.join(ctx['classes'])} capped at their exposure's median (evaluate/context.py)"
    return rule


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
    return {
        "n": int(yt.size),
        "accuracy": _ratio(np.sum(yt == yp), yt.size),
        "macro_f1": macro,
        "macro_f1_classes": used,
        "min_support": int(min_support),
        "per_class": rows,
        "labels": names,
        "confusion": confusion_matrix(yt, yp, len(names)),
    }


def volunteer_class_names(label, primary_class, taxonomy) -> np.ndarray:
    """The volunteers' class per CCD: "no artifact" for label 0, ``taxonomy[primary_class]`` for
    label 1; None for an artifact CCD without a class or an unlabelled CCD."""
    lab = np.asarray(label).astype(np.int64)
    pc = np.asarray(primary_class).astype(np.int64)
    tax = list(taxonomy)
    return np.array(
        [NO_ARTIFACT if lb == 0 else (tax[c] if lb == 1 and 0 <= c < len(tax) else None) for lb, c in zip(lab, pc)],
        dtype=object,
    )
