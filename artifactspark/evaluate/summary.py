"""One model directory's numbers: its ``model.json`` and ``predictions_<split>.parquet`` read and
checked, and every number of the model computed from them.

One source of numbers: :func:`summarize_model` computes everything for one model directory; the
report (:mod:`artifactspark.evaluate.report`) and the training jobs' ``metrics.json`` both use it,
so a number never differs between the two.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import ArtifactSparkError
from .classes import (
    NO_ARTIFACT,
    _taxonomy,
    binary_by_true_class,
    confusion_matrix,
    macro_from_rows,
    manyclass_prediction,
    manyclass_rule,
    manyclass_scores,
    multilabel_prf,
    per_class_prf,
    volunteer_class_names,
)
from .scores import (
    _ratio,
    best_recall_at_fpr,
    binary_metrics,
    fpr_fnr_curve,
    jsonable,
    per_class_auc,
    roc_auc,
    wilson_interval,
)
from .truth import truth_evaluation
from .truthtables import load_truth

PROBLEMS = ("binary", "multiclass", "multilabel")
PRED_COLUMNS = ("expnum", "ccdnum", "label", "primary_class", "multi_hot", "y_true", "probs", "p_artifact")


class ModelDirError(ArtifactSparkError):
    """A model directory lacks a file of the training jobs' contract, or a file breaks it."""


def read_model_json(model_dir: str) -> dict:
    """``model_dir/model.json``, checked for the keys the evaluation needs."""
    path = os.path.join(model_dir, "model.json")
    if not os.path.isdir(model_dir):
        raise ModelDirError(
            f"{model_dir}: no such model directory; pass the --out directory of jobs/train_cnn.py or jobs/train_svm.py"
        )
    if not os.path.isfile(path):
        raise ModelDirError(
            f"{model_dir}: no model.json, so this is not a finished training run; "
            "re-run the training job into this directory (it writes model.json last)"
        )
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise ModelDirError(f"{path}: not readable JSON ({e}); re-run the training job") from e
    missing = [k for k in ("name", "kind", "problem", "classes", "threshold", "split") if k not in meta]
    if missing:
        raise ModelDirError(
            f"{path}: missing keys {missing}; it was written by an older or foreign "
            "training job: re-run jobs/train_cnn.py / jobs/train_svm.py"
        )
    if meta["problem"] not in PROBLEMS:
        raise ModelDirError(f"{path}: problem {meta['problem']!r} is not one of {list(PROBLEMS)}")
    if meta["problem"] == "multilabel" and len(meta.get("class_thresholds") or []) != len(meta["classes"]):
        raise ModelDirError(
            f"{path}: a multilabel model needs class_thresholds with one value per class ({len(meta['classes'])})"
        )
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
        raise ValueError(
            f"column {name} must hold lists of length {width}; found lengths {np.unique(lens)[:5].tolist()}"
        )
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
        raise ModelDirError(
            f"{model_dir}: no predictions_{split}.parquet; the training job writes it after "
            f"evaluating on the {split} split: re-run it into this directory"
        )
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - any reader failure means a broken file
        raise ModelDirError(
            f"{path}: not a readable Parquet file ({type(e).__name__}: {e}); re-run the training job"
        ) from e
    missing = [c for c in PRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ModelDirError(f"{path}: missing columns {missing} (has {table.column_names}); re-run the training job")
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
        raise ModelDirError(f"{path}: NaN/inf probabilities; the model diverged or the export is broken: re-train")
    warnings = []
    problem = meta["problem"]
    if problem == "binary":
        derived = probs[:, 1] if k == 2 else None
    elif problem == "multiclass":
        derived = 1.0 - probs[:, -1]
    elif meta.get("any_head"):
        derived = None  # p_artifact is the "any artifact" head's output, not max(probs)
    else:
        derived = probs.max(axis=1) if k else None
    if derived is not None and out["p_artifact"].size:
        off = np.abs(derived - out["p_artifact"]) > 1e-4
        if off.any():
            warnings.append(
                f"{split}: p_artifact disagrees with probs in {int(off.sum())} rows "
                "(contract: binary probs[1], multiclass 1 - probs[-1], multilabel max(probs) unless "
                "model.json has any_head); "
                "p_artifact is used as stored"
            )
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
            warnings.append(
                f"{split}: {foreign.size} exposures in the predictions are not in model.json's "
                f"{split} split (e.g. {foreign[:3].tolist()}): the split and the predictions disagree"
            )
    out["frame"], out["warnings"] = frame, warnings
    return out


def accuracy_rule(problem: str) -> str:
    """How ``accuracy`` is counted for ``problem``, in words (for the report)."""
    return {
        "binary": "argmax(probs) == label",
        "multiclass": "argmax(probs) == y_true (26 classes + no artifact)",
        "multilabel": "artifact yes/no: (p_artifact >= 0.5) == label",
    }[problem]


def summarize_predictions(
    meta: dict, pred: dict, threshold: float | None = None, min_support: int = 20, curve: bool = False
) -> dict:
    """All numbers of one model from its model.json dict and :func:`load_predictions` arrays.

    ``threshold``: the binary decision threshold on p_artifact (default: model.json's, chosen on
    the validation set). ``curve=True`` adds the FPR/FNR curve arrays (large) under "curve".
    """
    problem, classes = meta["problem"], list(meta["classes"])
    k = len(classes)
    taxonomy = list(
        meta.get("taxonomy")
        or (classes[:-1] if problem == "multiclass" else classes if problem == "multilabel" else [])
    )
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
    s = {
        "name": meta["name"],
        "kind": meta.get("kind"),
        "problem": problem,
        "version": meta.get("version"),
        "config_hash": meta.get("config_hash"),
        "split": {
            "id": split.get("id"),
            "seed": split.get("seed"),
            "fractions": split.get("fractions"),
            "exposures": {x: len(split.get(x) or []) for x in ("train", "val", "test")},
        },
        "classes": classes,
        "n": n,
        "n_exposures": int(np.unique(pred["expnum"][keep]).size),
        "threshold": thr,
        "threshold_source": (
            f"model.json ({meta.get('threshold_rule') or 'chosen on the validation set'})"
            if threshold is None
            else "override"
        ),
        "target_fnr": meta.get("target_fnr"),
        "min_support": int(min_support),
        "derived_from": meta.get("derived_from"),
        "any_head": bool(meta.get("any_head", False)),
    }
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
            warnings.append(
                f"{int((~ok).sum())} rows with y_true outside the {k} classes left out of the many-class numbers"
            )
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
        vol = volunteer_class_names(
            label[keep], pred["primary_class"][keep], _taxonomy(meta, pred["multi_hot"].shape[1])
        )
        ok = np.array([v is not None for v in vol], dtype=bool)
        named = manyclass_prediction(meta, probs, p_art, thr, pred["expnum"][keep])
        mc = manyclass_scores(vol[ok], named[ok], [c for c in classes if c != NO_ARTIFACT], min_support)
        s["manyclass_view"] = {
            "rule": manyclass_rule(meta, thr),
            "truth": "volunteers' primary class ('no artifact' for clean CCDs)",
            **{x: mc[x] for x in ("n", "accuracy", "macro_f1", "macro_f1_classes")},
        }
    s["accuracy_rule"] = accuracy_rule(problem)
    s["error"] = 1.0 - s["accuracy"]
    names = taxonomy if taxonomy else [f"class {i}" for i in range(pred["multi_hot"].shape[1])]
    if len(names) != pred["multi_hot"].shape[1]:
        names = [f"class {i}" for i in range(pred["multi_hot"].shape[1])]
    s["binary_by_true_class"] = binary_by_true_class(pred["primary_class"][keep], label[keep], p_art >= thr, names)
    s["warnings"] = warnings
    return s


def summarize_model(
    model_dir: str, split: str = "test", threshold: float | None = None, min_support: int = 20, truth: str | None = None
) -> dict:
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
