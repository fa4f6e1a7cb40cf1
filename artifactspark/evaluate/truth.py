"""Against the simulator's truth (:func:`truth_evaluation`; simulated archives only): the truth's
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

import numpy as np

from .classes import (
    NO_ARTIFACT,
    _taxonomy,
    binary_by_true_class,
    macro_from_rows,
    manyclass_prediction,
    manyclass_rule,
    manyclass_scores,
    multilabel_prf,
    per_class_prf,
    volunteer_class_names,
)
from .scores import _bool, _ratio, binary_metrics, jsonable, per_class_auc, roc_auc, wilson_interval
from .strength import STRENGTH_COLUMNS, _pick_strength, recall_vs_strength, strength_floor
from .truthtables import CATEGORIES, ERASED_BY_BINNING, _opt_str, prepare_truth


def truth_ccd_frame(
    meta: dict, pred: dict, ccds_df=None, truth_df=None, threshold: float | None = None, tables: dict | None = None
):
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
    fr = pd.DataFrame(
        {
            "expnum": np.asarray(pred["expnum"]).astype(np.int64),
            "ccdnum": np.asarray(pred["ccdnum"]).astype(np.int64),
            "label": np.asarray(pred["label"]).astype(np.int64),
            "primary_class": np.asarray(pred["primary_class"]).astype(np.int64),
            "y_true": np.asarray(pred["y_true"]).astype(np.int64),
            "p_artifact": np.asarray(pred["p_artifact"], dtype=np.float64),
            "_i": np.arange(n),
        }
    )
    m = fr.merge(tables["ccds"], how="left", on=["expnum", "ccdnum"], indicator=True)
    m = m.sort_values("_i").reset_index(drop=True)
    matched = (m["_merge"] == "both").to_numpy()
    det = _bool(m["truth_detectable"]) & matched
    clean = _bool(m["truth_clean"]) & matched & ~det
    if not tables["has_ccds_table"]:
        clean |= ~matched  # no CCD table: absent from truth.parquet = clean
    cat = np.where(det, "detectable", np.where(clean, "clean", np.where(matched, "below_floor", "unmatched")))
    m["category"] = cat
    m["flag"] = m["p_artifact"].to_numpy() >= thr
    m["detectable_classes"] = [v if isinstance(v, tuple) else () for v in m["detectable_classes"]]
    m["classes"] = [v if isinstance(v, tuple) else () for v in m["classes"]]
    prim = [_opt_str(v) for v in m["primary_class_truth"]]
    m["truth_class"] = [p if c == "detectable" else (NO_ARTIFACT if c == "clean" else None) for p, c in zip(prim, cat)]
    pc = manyclass_prediction(meta, pred["probs"], m["p_artifact"].to_numpy(), thr, pred["expnum"])
    m["pred_class"] = list(pc) if pc is not None else [None] * n
    on = (cat == "detectable") | (cat == "clean")
    m["binary_correct"] = [bool(f == d) if o else None for f, d, o in zip(m["flag"], det, on)]
    m["class_correct"] = [
        None if (t is None or p is None) else bool(t == p) for t, p in zip(m["truth_class"], m["pred_class"])
    ]
    return m.drop(columns=["_merge", "_i", "primary_class_truth", "truth_clean", "truth_detectable"])


def _wilson_rate(k, n) -> dict:
    return {"n": int(n), "k": int(k), "rate": _ratio(k, n), "ci95": wilson_interval(int(k), int(n))}


def _binary_with_ci(y, score, thr) -> dict:
    b = binary_metrics(y, score, thr)
    b["recall_ci95"] = wilson_interval(b["tp"], b["positives"])
    b["fpr_ci95"] = wilson_interval(b["fp"], b["negatives"])
    b["roc_auc"] = roc_auc(y, score)
    return b


def _volunteer_figures(
    meta,
    probs,
    p_art,
    label,
    primary_class,
    y_true,
    multi_hot,
    flag_scores,
    thr,
    class_names_pred,
    indicator,
    min_support,
    taxonomy,
) -> dict:
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
        yp[(probs.max(axis=1) if len(probs) else yp) <= 0] = k  # no output at all: a class the model lacks
        out["accuracy"] = _ratio(np.sum(yp[ok] == y_true[ok]), int(ok.sum()))
        rows = [r for r in per_class_prf(y_true[ok], yp[ok], classes + ["(not a model class)"]) if r["index"] < k]
        out["per_class"] = rows
        out["macro_f1"], out["macro_f1_classes"] = macro_from_rows(
            [r for r in rows if r["name"] != NO_ARTIFACT], min_support
        )
    else:
        out["accuracy"] = _ratio(np.sum((p_art >= 0.5) == lab), lab.size)
        ct = np.asarray(meta["class_thresholds"], dtype=np.float64)
        rows = multilabel_prf(multi_hot, probs, ct, classes)
        out["per_class"] = rows
        out["macro_f1"], out["macro_f1_classes"] = macro_from_rows(rows, min_support)
        out["subset_accuracy"] = _ratio(
            np.sum(((probs >= ct[None, :]) == multi_hot.astype(bool)).all(axis=1)), lab.size
        )
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


def truth_evaluation(
    meta: dict,
    pred: dict,
    ccds_df,
    truth_df,
    threshold: float | None = None,
    min_support: int = 20,
    tables: dict | None = None,
) -> dict:
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
        warnings.append(
            f"{int(unm.sum())} test CCDs are not in the truth's CCD table (is it the archive these "
            "models were trained on?); they are left out of every truth figure"
        )
    det_no_primary = det & np.array([c is None for c in fr["truth_class"]], dtype=bool)
    if det_no_primary.any():
        warnings.append(
            f"{int(det_no_primary.sum())} detectable test CCDs have no primary_class_truth; they are "
            "left out of the many-class figures"
        )
    ev = {
        "threshold": thr,
        "min_support": int(min_support),
        "fallback": tables["fallback"],
        "missing_columns": tables["missing_columns"],
        "n": int(len(fr)),
        "test_ccds": {c: int((cat == c).sum()) for c in CATEGORIES},
    }

    # ---- binary vs truth
    on = det | clean
    tp, fp = int((flag & det).sum()), int((flag & clean).sum())
    nd, nc = int(det.sum()), int(clean.sum())
    ev["binary"] = {
        "n_detectable": nd,
        "detected": tp,
        "recall": _ratio(tp, nd),
        "recall_ci95": wilson_interval(tp, nd),
        "n_clean": nc,
        "false_positives": fp,
        "fpr": _ratio(fp, nc),
        "fpr_ci95": wilson_interval(fp, nc),
        "accuracy": _ratio(tp + nc - fp, nd + nc),
        "roc_auc": roc_auc(det[on], p_art[on]),
        "below_floor": {
            "n": int(below.sum()),
            "flagged": int((flag & below).sum()),
            "flagged_share": _ratio((flag & below).sum(), below.sum()),
        },
    }

    # ---- per class vs truth
    order = {c: i for i, c in enumerate(taxonomy)}
    feats = tables["features"]
    keys = fr[["expnum", "ccdnum"]].drop_duplicates()
    ft = feats.merge(keys, on=["expnum", "ccdnum"], how="inner")  # features on test CCDs
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
        rows.append(
            {
                "cls": c,
                "n": n,
                "detected": k,
                "recall": _ratio(k, n),
                "recall_ci95": wilson_interval(k, n),
                "meets_min_support": n >= min_support,
                "n_below_floor_only": int(n_below_only.get(c, 0)),
                "volunteer_labelled": nl,
                "volunteer_recall": _ratio((has & lab1).sum(), nl),
            }
        )
    ev["per_class"] = rows
    q = [r for r in rows if r["meets_min_support"]]
    worst = min(q, key=lambda r: r["recall"]) if q else None
    ev["per_class_min_recall"] = {
        "recall": worst["recall"] if worst else None,
        "cls": worst["cls"] if worst else None,
        "classes": [r["cls"] for r in q],
    }

    # ---- recall vs strength, the floor
    import pandas as pd

    rvs = recall_vs_strength(
        feats,
        pd.DataFrame({"expnum": fr["expnum"], "ccdnum": fr["ccdnum"], "p_artifact": p_art}),
        thr,
        floor_from=feats,
    )
    if len(rvs):
        rvs = (
            rvs.assign(_o=rvs["cls"].map(lambda c: order.get(c, len(order))))
            .sort_values(["_o", "cls", "bin"], kind="stable")
            .drop(columns="_o")
            .reset_index(drop=True)
        )
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
        per_cls_floor.append(
            {
                "cls": c,
                "features": int(len(g)),
                "below_floor": nb,
                "share_below_floor": _ratio(nb, len(g)),
                "floor_rules": rules,
                "test_features": int(len(gt)),
                "test_below_floor": nbt,
                "test_share_below_floor": _ratio(nbt, len(gt)),
            }
        )
    per_cls_floor.sort(key=lambda r: (order.get(r["cls"], len(order)), r["cls"]))
    ev["floor"] = {
        "archive": {
            "ccds": int(len(ccds_all)) if tables["has_ccds_table"] else None,
            "artifact_ccds": int(art_all.sum()),
            "below_floor_ccds": int((art_all & ~det_all).sum()),
            "share_below_floor": _ratio((art_all & ~det_all).sum(), art_all.sum()),
        },
        "test": {
            "ccds": int((~unm).sum()),
            "artifact_ccds": n_art_test,
            "below_floor_ccds": int(below.sum()),
            "share_below_floor": _ratio(below.sum(), n_art_test),
        },
        "per_class": per_cls_floor,
        "erased_by_binning": sorted(
            feats.loc[feats["floor_rule"].astype(str) == ERASED_BY_BINNING, "cls"].unique().tolist()
        ),
        "never_detectable": sorted(
            r["cls"] for r in per_cls_floor if r["features"] and r["below_floor"] == r["features"]
        ),
        "rules": _floor_rules(),
    }

    # ---- many-class vs truth
    tc = np.array(fr["truth_class"].tolist(), dtype=object)
    pcls = np.array(fr["pred_class"].tolist(), dtype=object)
    mc_rows = np.array([t is not None for t in tc], dtype=bool)
    art_classes = [c for c in classes if c != NO_ARTIFACT]
    if problem in ("multiclass", "multilabel"):
        mc = manyclass_scores(tc[mc_rows], pcls[mc_rows], art_classes, min_support)
        mc["rule"] = manyclass_rule(meta, thr)
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
        meta,
        probs[L],
        p_art[L],
        lab,
        pcv,
        ytv,
        mhv,
        p_art[L],
        thr,
        pcls[L] if problem in ("multiclass", "multilabel") else None,
        _ml_scores(meta, probs[L], taxonomy) if problem == "multilabel" else None,
        min_support,
        taxonomy,
    )
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
                c_probs[i, pos[t]] = 1.0  # else an all-zero row: a class the model lacks, always wrong
    else:
        c_probs = det_ind[L].astype(np.float64)
    c_names = np.array(
        [
            (t if t is not None else NO_ARTIFACT) if d else NO_ARTIFACT
            for t, d in zip(fr["truth_class"].to_numpy()[L], det_l)
        ],
        dtype=object,
    )
    c_meta = dict(meta)
    if problem == "multilabel":
        c_meta["class_thresholds"] = [0.5] * len(classes)
    ceil = _volunteer_figures(
        c_meta,
        c_probs,
        det_l.astype(np.float64),
        lab,
        pcv,
        ytv,
        mhv,
        det_l.astype(np.float64),
        0.5,
        c_names,
        tax_ind[L].astype(np.float64),
        min_support,
        taxonomy,
    )
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
    return {(int(e), int(c)): bool(v) for e, c, v in zip(frame["expnum"], frame["ccdnum"], frame[col]) if v is not None}
