"""The evaluation report: figures, tables and the issue's targets for one or more trained models.

:func:`build_report` reads model directories written by the training jobs (model.json,
predictions_test.parquet, history.json or learning_curve.json; see :mod:`artifactspark.evaluate.metrics`
for the numbers) and, for simulated data, the simulator's truth (truth.parquet and
ccds.parquet), and writes into ``out_dir``:

* ``report.md`` and ``report.html``: the same content (the HTML shows the PNGs with relative
  ``<img src=...>`` paths, so the directory can be moved or served as it is);
* ``*.png``: per model the many-class confusion matrix (fig. 6; per-class bars for multilabel
  models), the binary decision by true class (fig. 7), FPR vs FNR coloured by threshold (fig. 5,
  with the ceiling marked), error vs epoch (CNN, fig. 4) or the learning curve (SVM, fig. 2), and
  with the truth: recall vs artifact strength per class with the detectability floor marked;
* ``report.json``: every number shown (plus the plotted curve points).

The targets (issue 9) are measured against the simulator's truth: recall on CCDs with a
*detectable* artifact (above its class's floor), FPR on *clean* CCDs; CCDs whose artifacts are
all below the floor are reported apart. Each target row says MET / NOT MET / NOT ASSESSED and
why (the figure, the test-set size, what limits it); without a truth table (real data) the
truth rows are NOT ASSESSED. The same figures against the volunteer labels follow as
informational rows, each beside its **ceiling** (a perfect truth model scored against the
volunteer labels): their goal is the target capped by the ceiling, since no model can beat the
labels' own errors. Every volunteer-label figure in the document is printed with its ceiling
when the truth is given.

No Spark: everything is read from plain files.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os

import numpy as np

from ..errors import ArtifactSparkError
from .document import _Doc, _f, _slug, _vc
from .figures import fig_confusion, fig_curve, fig_history, fig_learning_curve, fig_per_class, fig_recall_strength
from .scores import jsonable, threshold_for_fnr
from .sections import _doc_model, _doc_truth_overview
from .summary import ModelDirError, load_predictions, read_model_json, summarize_predictions
from .targetdefs import (
    NO_TRUTH,
    TARGET_CLASS_RECALL,
    TARGET_FPR,
    TARGET_MACRO_F1,
    TARGET_MCNEMAR_P,
    TARGET_MEAN_AUC,
    TARGET_MIN_SUPPORT,
    TARGET_RECALL,
)
from .targets import _compare, _targets
from .truth import truth_ccd_frame, truth_evaluation
from .truthtables import TruthTableError, load_truth, prepare_truth

log = logging.getLogger("artifactspark.evaluate.report")
CURVE_POINTS = 4000  # at most this many curve points are plotted / stored in report.json


class ReportInputError(ArtifactSparkError):
    """The report's inputs (model directories, truth table, output location) are unusable."""


def _read_json_opt(path, what, warnings):
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        warnings.append(f"{path}: unreadable {what} ({e}); figure left out")
        return None


def _check_series(d, keys, path, warnings):
    if d is None:
        return None
    lens = {k: len(d.get(k) or []) for k in keys}
    need = lens[keys[0]]
    if need == 0 or any(lens[k] not in (0, need) for k in keys) or any(lens[k] == 0 for k in keys[:2]):
        warnings.append(f"{path}: series of unequal or zero length {lens}; figure left out")
        return None
    return d


def _load_model(model_dir, target_fnr, min_support, warnings):
    meta = read_model_json(model_dir)
    pred = load_predictions(model_dir, "test", meta)
    threshold = None
    if target_fnr is not None:
        val = load_predictions(model_dir, "val", meta)
        keep = np.isin(val["label"], (0, 1))
        if not np.any(val["label"][keep] == 1):
            warnings.append(
                f"{meta['name']}: the validation predictions have no artifact CCD, so no threshold "
                f"can be chosen for FNR {target_fnr}; 0.5 used"
            )
        threshold = threshold_for_fnr(val["label"][keep], val["p_artifact"][keep], target_fnr)
    s = summarize_predictions(meta, pred, threshold, min_support, curve=True)
    if threshold is not None:
        s["threshold_source"] = f"chosen on the validation set for target FNR {target_fnr} (report --target-fnr)"
        s["target_fnr"] = float(target_fnr)
    s["model_dir"] = str(model_dir)
    s["evaluated_on"] = "test"
    hpath = os.path.join(model_dir, "history.json")
    lpath = os.path.join(model_dir, "learning_curve.json")
    s["history"] = _check_series(
        _read_json_opt(hpath, "history", warnings),
        ["epoch", "train_error", "val_error", "test_error", "loss", "val_loss"],
        hpath,
        warnings,
    )
    s["learning_curve"] = _check_series(
        _read_json_opt(lpath, "learning curve", warnings), ["n_train", "train_error", "test_error"], lpath, warnings
    )
    if s["kind"] == "cnn" and s["history"] is None:
        warnings.append(f"{s['name']}: no usable history.json, so no error-vs-epoch figure")
    if s["kind"] == "svm" and s["learning_curve"] is None:
        warnings.append(f"{s['name']}: no usable learning_curve.json, so no learning-curve figure")
    return s, pred, meta


def _read_truth(path):
    """The simulator's truth as :func:`~artifactspark.evaluate.metrics.prepare_truth` tables, and the files read."""
    try:
        truth_df, ccds_df, source = load_truth(path)
        return prepare_truth(truth_df, ccds_df), source
    except TruthTableError as e:
        raise ReportInputError(str(e)) from e


def _subsample(curve, k=CURVE_POINTS):
    n = len(curve["thresholds"])
    if n <= k:
        return curve
    idx = np.unique(np.linspace(0, n - 1, k).round().astype(int))
    return {key: np.asarray(v)[idx] for key, v in curve.items()}


def build_report(
    model_dirs,
    out_dir,
    truth_path=None,
    target_fnr=None,
    min_support: int = TARGET_MIN_SUPPORT,
    footprints_path=None,
) -> dict:
    """Write report.md, report.html, report.json and the PNG figures for ``model_dirs`` into ``out_dir``.

    ``truth_path``: the simulator's labels directory or its truth.parquet (ccds.parquet is read
    from beside it): adds every figure against the truth, the ceilings of the volunteer-label
    figures, recall vs strength with the floor, and makes the issue's targets assessable;
    without it (real data) the truth rows are NOT ASSESSED.
    ``footprints_path``: benchmarks/heat_footprints.py's table, the truth positions of the
    localisation section (issue 12, ``evaluate.localise``; models with ``heatmaps_test.parquet``).
    ``target_fnr``: re-choose each model's threshold on its validation predictions
    (predictions_val.parquet) for this FNR instead of using model.json's threshold.
    Returns a small summary (paths, counts, target statuses) for the job's JSON line.
    Raises :class:`~artifactspark.evaluate.metrics.ModelDirError` for a directory breaking the training
    jobs' file contract and :class:`ReportInputError` for other unusable inputs.
    """
    dirs = [str(d) for d in (model_dirs or [])]
    if not dirs:
        raise ReportInputError("no model directory given; pass --model-dir DIR (repeatable)")
    if target_fnr is not None and not (0.0 <= float(target_fnr) <= 1.0):
        raise ReportInputError(f"target FNR {target_fnr} is not in [0, 1]")
    tables, source = _read_truth(truth_path) if truth_path else (None, None)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ReportInputError(f"{out_dir}: cannot create the output directory ({e})") from e

    warnings: list[str] = []
    models, preds, frames = [], [], []
    if tables is not None:
        warnings.extend(f"truth: {w}" for w in tables["warnings"])
    for d in dirs:
        s, pred, meta = _load_model(d, target_fnr, min_support, warnings)
        warnings.extend(f"{s['name']}: {w}" for w in s.pop("warnings"))
        frame = None
        if tables is not None:
            s["truth"] = truth_evaluation(meta, pred, None, None, s["threshold"], min_support, tables=tables)
            s["truth"]["source"] = source
            warnings.extend(f"{s['name']}: truth: {w}" for w in s["truth"]["warnings"] if w not in tables["warnings"])
            frame = truth_ccd_frame(meta, pred, threshold=s["threshold"], tables=tables)
        models.append(s)
        preds.append(pred)
        frames.append(frame)

    slugs, seen = [], {}
    for s in models:
        base = _slug(s["name"])
        seen[base] = seen.get(base, 0) + 1
        slugs.append(base if seen[base] == 1 else f"{base}_{seen[base]}")

    split_ids = list(dict.fromkeys(s["split"]["id"] for s in models))
    if len(split_ids) > 1:
        warnings.insert(
            0,
            f"the models were evaluated on different splits ({', '.join(map(str, split_ids))}): "
            "numbers are comparable only within one split's table",
        )
    for sid in split_ids:
        group = [i for i, s in enumerate(models) if s["split"]["id"] == sid]
        sets = {i: set(zip(preds[i]["expnum"].tolist(), preds[i]["ccdnum"].tolist())) for i in group}
        first = group[0]
        for i in group[1:]:
            if sets[i] != sets[first]:
                warnings.append(
                    f"split {sid}: {models[i]['name']} and {models[first]['name']} were evaluated on "
                    f"different test CCDs ({len(sets[i])} vs {len(sets[first])}; "
                    f"{len(sets[i] & sets[first])} in common) although they name the same split"
                )

    # ---- figures and per-model extras
    for s, slug in zip(models, slugs):
        figs = {}
        t = s.get("truth")
        title = f"{s['name']} ({s['kind']}, {s['problem']}; test n={s['n']})"
        if "confusion" in s:
            figs["confusion"] = f"{slug}_confusion.png"
            fig_confusion(
                np.asarray(s["confusion"]["matrix"]),
                s["classes"],
                s["classes"],
                f"{title}: confusion, row-normalised (counts in cells)",
                os.path.join(out_dir, figs["confusion"]),
            )
        else:
            figs["per_class"] = f"{slug}_per_class.png"
            fig_per_class(
                s["per_class"],
                f"{title}: per-class P/R/F1 at the class thresholds",
                os.path.join(out_dir, figs["per_class"]),
            )
        bbt = s["binary_by_true_class"]
        figs["binary_by_true_class"] = f"{slug}_binary_by_true_class.png"
        fig_confusion(
            np.asarray(bbt["counts"]),
            bbt["rows"],
            bbt["cols"],
            f"{title}: flag (p_artifact >= {s['threshold']:.3g}) by true class",
            os.path.join(out_dir, figs["binary_by_true_class"]),
            xlabel="predicted (binary)",
        )
        curve = _subsample(s.pop("curve"))
        s["curve_plotted"] = curve
        b = s["binary"]
        chosen = {"threshold": s["threshold"], "fpr": b["fpr"], "fnr": b["fnr"]}
        if len(curve["thresholds"]):
            figs["fpr_fnr"] = f"{slug}_fpr_fnr.png"
            fig_curve(
                curve,
                chosen,
                f"{title}: FPR vs FNR (volunteer labels)",
                os.path.join(out_dir, figs["fpr_fnr"]),
                s.get("target_fnr"),
                ceiling={"fpr": t["ceiling"]["binary"]["fpr"], "fnr": t["ceiling"]["binary"]["fnr"]} if t else None,
            )
        if s["history"]:
            figs["history"] = f"{slug}_error_vs_epoch.png"
            fig_history(s["history"], f"{title}: error vs epoch", os.path.join(out_dir, figs["history"]))
        if s["learning_curve"]:
            figs["learning_curve"] = f"{slug}_learning_curve.png"
            fig_learning_curve(
                s["learning_curve"], f"{title}: learning curve", os.path.join(out_dir, figs["learning_curve"])
            )
        if t is not None:
            s["recall_vs_strength"] = t["recall_vs_strength"]
            if any(r["n"] for r in t["recall_vs_strength"]):
                figs["recall_vs_strength"] = f"{slug}_recall_vs_strength.png"
                fig_recall_strength(
                    t["recall_vs_strength"],
                    f"{title}: recall of injected artifacts vs strength (test CCDs; grey: mostly below the floor)",
                    os.path.join(out_dir, figs["recall_vs_strength"]),
                    t["strength_floor"],
                )
            else:
                warnings.append(
                    f"{s['name']}: no truth row falls on a test CCD (is the truth table from the "
                    "archive these models were trained on?)"
                )
        s["figures"] = figs

    comparisons = _compare(models, preds, frames)
    targets = _targets(models, comparisons)

    # ---- the document
    doc = _Doc()
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    doc.h(1, "artifactspark model report")
    doc.p(
        f"Generated {now} from {len(models)} model director{'y' if len(models) == 1 else 'ies'}. Every number is "
        "computed on the held-out test split (predictions_test.parquet); thresholds were chosen on the "
        "validation split. "
        + (
            f"Truth: {source['truth']}."
            if source
            else f"No truth table was given ({NO_TRUTH}): the targets against the truth are not assessed and the "
            "volunteer-label figures have no ceiling."
        )
    )
    for w in warnings:
        doc.warn(w)
    doc.h(2, "Targets (issue 9)")
    doc.p(
        "Against the simulator's truth: recall on CCDs with a detectable artifact (above its class's floor), FPR on "
        "clean CCDs; CCDs with only below-floor artifacts are in neither. MET / NOT MET compare the point estimate "
        "with the target; the reason gives the uncertainty (Wilson 95% intervals, exact McNemar test), the test-set "
        "size and what limits the figure. The volunteer-label rows are informational: each stands beside its "
        "ceiling (a perfect truth model scored against the same labels) and its goal is the target capped by the "
        "ceiling."
    )
    doc.table(
        ["target", "basis", "model", "role", "split", "measured", "test set", "status", "reason"],
        [
            [
                t["target"],
                t["basis"],
                t["model"],
                t["role"],
                t["split_id"] or "-",
                t["measured"],
                t["test_set"],
                t["status"],
                t["reason"],
            ]
            for t in targets
        ],
    )
    if tables is not None:
        _doc_truth_overview(doc, models, source, min_support)
    for sid in split_ids:
        group = [s for s in models if s["split"]["id"] == sid]
        doc.h(2, f"Models on split {sid}")
        doc.p(
            "Against the volunteer labels"
            + (
                ", each figure with its ceiling (a perfect truth model against the same labels)."
                if tables is not None
                else "."
            )
        )
        doc.table(
            [
                "model",
                "kind",
                "problem",
                "test CCDs (artifact)",
                "accuracy",
                "threshold",
                "recall",
                "FPR",
                "precision",
                f"macro-F1 (>= {min_support} ex.)",
            ],
            [
                [
                    s["name"],
                    s["kind"],
                    s["problem"],
                    f"{s['n']} ({s['binary']['positives']})",
                    _vc(s, s["accuracy"], ["accuracy"]),
                    _f(s["threshold"], 4),
                    _vc(s, s["binary"]["recall"], ["binary", "recall"]),
                    _vc(s, s["binary"]["fpr"], ["binary", "fpr"]),
                    _vc(s, s["binary"]["precision"], ["binary", "precision"]),
                    f"{_vc(s, s['macro_f1'], ['macro_f1'])} ({len(s['macro_f1_classes'])} classes)",
                ]
                for s in group
            ],
        )
    for s in models:
        _doc_model(doc, s)
    from .localise import localisation_section  # issue 12

    localisation = localisation_section(doc, dirs, out_dir, truth_path, footprints_path)
    doc.h(2, "Definitions")
    doc.p(
        "A CCD is flagged as an artifact when p_artifact >= threshold (binary: probs[1]; multiclass: "
        "1 - p(no artifact); multilabel: the largest class probability, or the model's own 'any artifact' output). "
        "Recall = TP / artifact CCDs, FPR = FP / clean CCDs, FNR = 1 - recall; a ratio with a zero denominator is "
        "reported as 0. Confusion matrices: rows are true classes (normalised per row, counts in the cells), columns "
        "predicted. Macro-F1 is the unweighted mean of per-class F1 over the classes with at least the stated number "
        "of true test examples (multiclass: the 26 artifact classes; 'no artifact' is reported beside it). Against "
        "the truth, a CCD's class is the class of its detectable feature with the largest binned S/N; a multilabel "
        "model names its most probable class when it flags the CCD. ROC AUC counts ties as one half. The ceiling of "
        "a volunteer-label figure is that figure for a perfect truth model (flags exactly the detectable CCDs, names "
        "the truth's class, its multi-hot vector is the detectable classes) on the same labelled test CCDs."
    )

    md = doc.markdown()
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "report.html"), "w") as f:
        f.write(doc.html("artifactspark model report"))
    report = {
        "generated": now,
        "targets_definition": {
            "binary_recall": TARGET_RECALL,
            "binary_fpr": TARGET_FPR,
            "class_recall": TARGET_CLASS_RECALL,
            "macro_f1": TARGET_MACRO_F1,
            "mean_auc": TARGET_MEAN_AUC,
            "mcnemar_p": TARGET_MCNEMAR_P,
            "min_support": TARGET_MIN_SUPPORT,
        },
        "models": models,
        "comparisons": comparisons,
        "targets": targets,
        "warnings": warnings,
        "split_ids": split_ids,
        "truth": source,
        "localisation": localisation,
    }
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(jsonable(report), f, indent=1, sort_keys=True)
    n_figs = sum(len(s["figures"]) for s in models)
    log.info("report for %d models written to %s (%d figures)", len(models), out_dir, n_figs)
    return {
        "out": str(out_dir),
        "report": os.path.join(str(out_dir), "report.html"),
        "models": len(models),
        "figures": n_figs,
        "warnings": len(warnings),
        "split_ids": jsonable(split_ids),
        "targets": [
            {"target": t["target"], "basis": t["basis"], "model": t["model"], "status": t["status"]} for t in targets
        ],
    }


__all__ = [
    "build_report",
    "ReportInputError",
    "ModelDirError",
    "TARGET_RECALL",
    "TARGET_FPR",
    "TARGET_CLASS_RECALL",
    "TARGET_MACRO_F1",
    "TARGET_MEAN_AUC",
    "TARGET_MCNEMAR_P",
    "TARGET_MIN_SUPPORT",
    "NO_TRUTH",
]
