"""The evaluation report: figures, tables and the issue's targets for one or more trained models.

:func:`build_report` reads model directories written by the training jobs (model.json,
predictions_test.parquet, history.json or learning_curve.json; see :mod:`artifactspark.metrics`
for the numbers) and writes into ``out_dir``:

* ``report.md`` and ``report.html``: the same content (the HTML shows the PNGs with relative
  ``<img src=...>`` paths, so the directory can be moved or served as it is);
* ``*.png``: per model the many-class confusion matrix (fig. 6; per-class bars for multilabel
  models), the binary decision by true class (fig. 7), FPR vs FNR coloured by threshold (fig. 5),
  error vs epoch (CNN, fig. 4) or the learning curve (SVM, fig. 2), and recall vs artifact
  strength per class when the simulator's truth table is given;
* ``report.json``: every number shown (plus the plotted curve points).

No Spark: everything is read from plain files.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import math
import os
import re

import numpy as np

from .errors import ArtifactSparkError
from .metrics import (NO_ARTIFACT, ModelDirError, jsonable, load_predictions, read_model_json,
                      recall_vs_strength, summarize_predictions, threshold_for_fnr)

log = logging.getLogger("artifactspark.report")

# The targets (issue 4).
TARGET_RECALL = 0.98
TARGET_FPR = 0.10
TARGET_MACRO_F1 = 0.80
TARGET_MIN_SUPPORT = 20
CURVE_POINTS = 4000          # at most this many curve points are plotted / stored in report.json
ANNOTATE_MAX_CLASSES = 30    # confusion matrices up to this size get their counts written in the cells


class ReportInputError(ArtifactSparkError):
    """The report's inputs (model directories, truth table, output location) are unusable."""


# --------------------------------------------------------------------------------------------
# the document: one list of blocks, rendered as Markdown and as HTML
# --------------------------------------------------------------------------------------------

class _Doc:
    def __init__(self):
        self.blocks = []

    def h(self, level, text):
        self.blocks.append(("h", level, text))

    def p(self, text):
        self.blocks.append(("p", text))

    def warn(self, text):
        self.blocks.append(("warn", text))

    def table(self, header, rows):
        self.blocks.append(("table", header, rows))

    def img(self, src, alt):
        self.blocks.append(("img", src, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "warn":
                out.append("> **Warning:** " + b[1])
            elif b[0] == "table":
                cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
                out.append("| " + " | ".join(cell(c) for c in b[1]) + " |")
                out.append("|" + "---|" * len(b[1]))
                out.extend("| " + " | ".join(cell(c) for c in r) + " |" for r in b[2])
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1]})")
            out.append("")
        return "\n".join(out)

    def html(self, title) -> str:
        e = html.escape
        out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>",
               "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
               "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;"
               "text-align:right}th{background:#eee}td:first-child{text-align:left}"
               ".warn{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em}"
               "img{max-width:100%;border:1px solid #ddd;margin:.3em 0}</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "warn":
                out.append(f"<p class=\"warn\"><b>Warning:</b> {e(b[1])}</p>")
            elif b[0] == "table":
                out.append("<table><tr>" + "".join(f"<th>{e(str(c))}</th>" for c in b[1]) + "</tr>")
                out.extend("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
                out.append("</table>")
            elif b[0] == "img":
                out.append(f"<p><img src=\"{e(b[1])}\" alt=\"{e(b[2])}\"></p>")
        out.append("</body></html>")
        return "\n".join(out)


def _f(x, nd=3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}f}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


# --------------------------------------------------------------------------------------------
# figures (matplotlib, Agg)
# --------------------------------------------------------------------------------------------

def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, tight=True, dpi=110):
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    _plt().close(fig)


def _row_norm(counts: np.ndarray) -> np.ndarray:
    tot = counts.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, counts / np.where(tot > 0, tot, 1), np.nan)


def fig_confusion(counts, row_labels, col_labels, title, path, xlabel="predicted", ylabel="true"):
    """Row-normalised confusion matrix; cell counts written when the matrix is small."""
    plt = _plt()
    counts = np.asarray(counts)
    norm = _row_norm(counts)
    nr, nc = counts.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * nc + 3), max(3.0, 0.3 * nr + 2)))
    cmap = plt.get_cmap("Blues").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(nc))
    ax.set_xticklabels(col_labels, rotation=0 if nc <= 3 else 90, fontsize=7)
    ax.set_yticks(range(nr))
    ax.set_yticklabels([f"{lab} ({int(t)})" for lab, t in zip(row_labels, counts.sum(axis=1))], fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel} (test CCDs)")
    ax.set_title(title, fontsize=9)
    if max(nr, nc) <= ANNOTATE_MAX_CLASSES:
        fs = 8 if nc <= 10 else 5
        for i in range(nr):
            for j in range(nc):
                if counts[i, j]:
                    ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=fs,
                            color="white" if norm[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.04, label="fraction of the true class's CCDs")
    _save(fig, path)


def fig_curve(curve, chosen, title, path, target_fnr=None):
    """FPR vs FNR, each point coloured by its threshold; the chosen threshold marked (fig. 5)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.6))
    sc = ax.scatter(curve["fpr"], curve["fnr"], c=curve["thresholds"], cmap="viridis", s=8,
                    vmin=0.0, vmax=1.0)
    fig.colorbar(sc, ax=ax, label="threshold on p_artifact (flag if p >= threshold)")
    ax.plot([chosen["fpr"]], [chosen["fnr"]], marker="*", color="red", markersize=15, linestyle="none",
            label=f"chosen threshold {chosen['threshold']:.3g}: FPR {chosen['fpr']:.3f}, FNR {chosen['fnr']:.3f}")
    ax.axvline(TARGET_FPR, color="grey", linestyle="--", linewidth=0.8, label=f"FPR {TARGET_FPR}")
    ax.axhline(1 - TARGET_RECALL, color="grey", linestyle=":", linewidth=0.8, label=f"FNR {1 - TARGET_RECALL:.2f}")
    if target_fnr is not None and abs(target_fnr - (1 - TARGET_RECALL)) > 1e-9:
        ax.axhline(target_fnr, color="orange", linestyle=":", linewidth=0.8, label=f"target FNR {target_fnr}")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("false negative rate")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    _save(fig, path)


def fig_history(hist, title, path):
    """Train (dashed), validation (dotted) and test (solid) error against epoch; loss beside (fig. 4)."""
    plt = _plt()
    ep = hist["epoch"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style, lab in (("train_error", "--", "train"), ("val_error", ":", "validation"), ("test_error", "-", "test")):
        if hist.get(key):
            a1.plot(ep, hist[key], style, marker=".", label=lab)
    for key, style, lab in (("loss", "--", "train loss"), ("val_loss", ":", "validation loss")):
        if hist.get(key):
            a2.plot(ep, hist[key], style, marker=".", label=lab)
    if hist.get("best_epoch") is not None:
        for a in (a1, a2):
            a.axvline(hist["best_epoch"], color="grey", linewidth=0.8, label=f"best epoch {hist['best_epoch']}")
    a1.set_xlabel("epoch")
    a1.set_ylabel("error (1 - accuracy)")
    a2.set_xlabel("epoch")
    a2.set_ylabel("cross-entropy loss")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def fig_learning_curve(lc, title, path):
    """Training (dashed) and test (solid) error against the number of training examples (fig. 2)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lc["n_train"], lc["train_error"], "--", marker="o", label="train")
    ax.plot(lc["n_train"], lc["test_error"], "-", marker="o", label="test")
    if len(lc["n_train"]) > 1 and min(lc["n_train"]) > 0 and max(lc["n_train"]) / min(lc["n_train"]) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("error (1 - accuracy)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def fig_per_class(rows, title, path):
    """Precision, recall, F1 per class (multilabel models, which have no single-label confusion)."""
    plt = _plt()
    rows = [r for r in rows if r["support"] or r["predicted"]]
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(rows) + 2), 4))
    x = np.arange(len(rows))
    for off, key in ((-0.27, "precision"), (0.0, "recall"), (0.27, "f1")):
        ax.bar(x + off, [r[key] for r in rows], width=0.27, label=key)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['name']} ({r['support']})" for r in rows], rotation=90, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def fig_recall_strength(df, title, path):
    """Small multiples: per class, recall of injected artifacts against strength bins (and the volunteers')."""
    plt = _plt()
    classes = list(dict.fromkeys(df["cls"]))
    nc = min(5, max(1, len(classes)))
    nr = max(1, math.ceil(len(classes) / nc))
    h = 2.2 * nr + 0.5
    fig, axes = plt.subplots(nr, nc, figsize=(2.6 * nc, h), squeeze=False, sharey=True)
    for ax, cls in zip(axes.flat, classes):
        g = df[(df["cls"] == cls) & (df["n"] > 0)]
        lo, hi = g["lo"].to_numpy(), g["hi"].to_numpy()
        pos = (lo > 0).all()
        x = np.sqrt(lo * hi) if pos else (lo + hi) / 2
        ax.plot(x, g["recall"], marker="o", label="model")
        if "volunteer_recall" in g.columns:
            ax.plot(x, g["volunteer_recall"], marker=".", color="grey", linestyle=":", label="volunteers")
        if pos and len(x) and hi.max() / max(lo.min(), 1e-300) > 10:
            from matplotlib.ticker import NullFormatter
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{cls} (n={int(g['n'].sum())})", fontsize=7)
        ax.set_xlabel(g["strength"].iloc[0] if len(g) else "", fontsize=7)
        ax.tick_params(which="both", labelsize=6)
    for ax in list(axes.flat)[len(classes):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("recall")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9, y=1 - 0.08 / h, va="top")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.45 / h, top=1 - 0.75 / h, hspace=0.7, wspace=0.15)
    _save(fig, path, tight=False, dpi=90)


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

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
            warnings.append(f"{meta['name']}: the validation predictions have no artifact CCD, so no threshold "
                            f"can be chosen for FNR {target_fnr}; 0.5 used")
        threshold = threshold_for_fnr(val["label"][keep], val["p_artifact"][keep], target_fnr)
    s = summarize_predictions(meta, pred, threshold, min_support, curve=True)
    if threshold is not None:
        s["threshold_source"] = f"chosen on the validation set for target FNR {target_fnr} (report --target-fnr)"
        s["target_fnr"] = float(target_fnr)
    s["model_dir"] = str(model_dir)
    s["evaluated_on"] = "test"
    hpath = os.path.join(model_dir, "history.json")
    lpath = os.path.join(model_dir, "learning_curve.json")
    s["history"] = _check_series(_read_json_opt(hpath, "history", warnings),
                                 ["epoch", "train_error", "val_error", "test_error", "loss", "val_loss"], hpath, warnings)
    s["learning_curve"] = _check_series(_read_json_opt(lpath, "learning curve", warnings),
                                        ["n_train", "train_error", "test_error"], lpath, warnings)
    if s["kind"] == "cnn" and s["history"] is None:
        warnings.append(f"{s['name']}: no usable history.json, so no error-vs-epoch figure")
    if s["kind"] == "svm" and s["learning_curve"] is None:
        warnings.append(f"{s['name']}: no usable learning_curve.json, so no learning-curve figure")
    return s, pred


def _read_truth(path):
    import pandas as pd
    import pyarrow.parquet as pq

    if not os.path.isfile(path):
        raise ReportInputError(f"{path}: no such truth table; pass the simulator's ROOT/labels/truth.parquet "
                               "or leave --truth out")
    try:
        df = pq.read_table(path).to_pandas()
    except Exception as e:  # noqa: BLE001
        raise ReportInputError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from e
    need = {"expnum", "cls", "snr"}
    if not need <= set(df.columns) or not ({"ccd", "ccdnum"} & set(df.columns)):
        raise ReportInputError(f"{path}: a truth table needs expnum, ccd, cls, snr columns; has {list(df.columns)}")
    return pd.DataFrame(df)


def _subsample(curve, k=CURVE_POINTS):
    n = len(curve["thresholds"])
    if n <= k:
        return curve
    idx = np.unique(np.linspace(0, n - 1, k).round().astype(int))
    return {key: np.asarray(v)[idx] for key, v in curve.items()}


# --------------------------------------------------------------------------------------------
# comparisons and targets
# --------------------------------------------------------------------------------------------

def _mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar (binomial) p-value for b vs c discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    return min(1.0, 2.0 * sum(math.exp(v) for v in logs))


def _headline(s):
    """(metric name, value) used for CNN vs SVM: binary -> accuracy, else macro-F1."""
    if s["problem"] == "binary":
        return "accuracy", s["accuracy"]
    return f"macro-F1 (classes with >= {s['min_support']} test examples)", s["macro_f1"]


def _correct(s, pred):
    """Per test CCD (expnum, ccdnum) -> was the model right under its accuracy rule."""
    keep = np.isin(pred["label"], (0, 1))
    if s["problem"] == "multilabel":
        ok = (pred["p_artifact"] >= 0.5) == (pred["label"] == 1)
    else:
        ok = pred["probs"].argmax(axis=1) == pred["y_true"]
    return {(int(e), int(c)): bool(o) for e, c, o, k in zip(pred["expnum"], pred["ccdnum"], ok, keep) if k}


def _compare(models, preds):
    """CNN vs SVM for every (split id, problem) holding both kinds."""
    out = []
    for i, a in enumerate(models):
        for j, b in enumerate(models):
            if a["kind"] != "cnn" or b["kind"] != "svm" or a["problem"] != b["problem"] \
                    or a["split"]["id"] != b["split"]["id"]:
                continue
            metric, va = _headline(a)
            _, vb = _headline(b)
            ca, cb = _correct(a, preds[i]), _correct(b, preds[j])
            common = ca.keys() & cb.keys()
            bb = sum(1 for key in common if ca[key] and not cb[key])
            cc = sum(1 for key in common if cb[key] and not ca[key])
            beats = None if va is None or vb is None else bool(va > vb)
            out.append({"split_id": a["split"]["id"], "problem": a["problem"], "cnn": a["name"], "svm": b["name"],
                        "metric": metric, "cnn_value": va, "svm_value": vb, "cnn_beats_svm": beats,
                        "common_test_ccds": len(common), "cnn_right_svm_wrong": bb, "svm_right_cnn_wrong": cc,
                        "mcnemar_p": _mcnemar_p(bb, cc)})
    return out


def _size(s):
    b = s["binary"]
    return f"{s['n']} CCDs ({b['positives']} artifact, {b['negatives']} clean; {s['n_exposures']} exposures)"


def _targets(models, comparisons):
    rows = []
    bin_cnn = [s for s in models if s["kind"] == "cnn" and s["problem"] == "binary"]
    for s in bin_cnn:
        b = s["binary"]
        assessable = b["positives"] > 0 and b["negatives"] > 0
        met = b["recall"] >= TARGET_RECALL and b["fpr"] <= TARGET_FPR
        note = [] if assessable else ["the test set lacks artifact or clean CCDs, so recall or FPR is undefined"]
        if b["positives"] and b["recall_ci95"][0] < TARGET_RECALL <= b["recall_ci95"][1]:
            note.append("recall's 95% interval straddles 0.98: the test set does not resolve the target")
        if b["negatives"] and b["fpr_ci95"][0] <= TARGET_FPR < b["fpr_ci95"][1]:
            note.append("FPR's 95% interval straddles 0.10")
        if b["positives"]:
            note.append(f"one missed artifact = {1 / b['positives']:.4f} recall")
        rows.append({"target": f"binary CNN recall >= {TARGET_RECALL} at FPR <= {TARGET_FPR}", "model": s["name"],
                     "split_id": s["split"]["id"],
                     "measured": (f"recall {b['recall']:.4f} [95% {b['recall_ci95'][0]:.3f}-{b['recall_ci95'][1]:.3f}], "
                                  f"FPR {b['fpr']:.4f} [95% {b['fpr_ci95'][0]:.3f}-{b['fpr_ci95'][1]:.3f}] at threshold "
                                  f"{s['threshold']:.4g} ({s['threshold_source']})"),
                     "test_set": _size(s), "n_test": s["n"],
                     "status": "NOT ASSESSED" if not assessable else ("MET" if met else "NOT MET"),
                     "note": "; ".join(note)})
    if not bin_cnn:
        rows.append({"target": f"binary CNN recall >= {TARGET_RECALL} at FPR <= {TARGET_FPR}", "model": "-",
                     "split_id": None, "measured": "no binary CNN among the models", "test_set": "-", "n_test": 0,
                     "status": "NOT ASSESSED", "note": ""})
    mc = [s for s in models if s["problem"] == "multiclass"]
    for s in mc:
        v = s["macro_f1"]
        used = s["macro_f1_classes"]
        rows.append({"target": f"multiclass macro-F1 >= {TARGET_MACRO_F1} over classes with >= {TARGET_MIN_SUPPORT} "
                               "test examples", "model": s["name"], "split_id": s["split"]["id"],
                     "measured": (f"macro-F1 {_f(v, 4)} over {len(used)} of {len(s['classes']) - 1} artifact "
                                  f"classes with >= {s['min_support']} test examples"),
                     "test_set": _size(s), "n_test": s["n"],
                     "status": "NOT ASSESSED" if v is None else ("MET" if v >= TARGET_MACRO_F1 else "NOT MET"),
                     "note": "; ".join(x for x in (
                         (f"only these {len(used)} classes are covered: the test set is too small for the others"
                          if 0 < len(used) < len(s["classes"]) - 1 else ""),
                         (f"with '{NO_ARTIFACT}' as a class: {_f(s.get('macro_f1_all_classes'), 4)} over "
                          f"{len(s.get('macro_f1_all_classes_used') or [])} classes"),
                         ("" if s["min_support"] == TARGET_MIN_SUPPORT else
                          f"computed with min_support {s['min_support']}, not the target's {TARGET_MIN_SUPPORT}"))
                         if x)})
    if not mc:
        rows.append({"target": f"multiclass macro-F1 >= {TARGET_MACRO_F1} over classes with >= {TARGET_MIN_SUPPORT} "
                               "test examples", "model": "-", "split_id": None,
                     "measured": "no multiclass model among the models", "test_set": "-", "n_test": 0,
                     "status": "NOT ASSESSED", "note": ""})
    for c in comparisons:
        st = "NOT ASSESSED" if c["cnn_beats_svm"] is None else ("MET" if c["cnn_beats_svm"] else "NOT MET")
        rows.append({"target": "CNN beats SVM", "model": f"{c['cnn']} vs {c['svm']}", "split_id": c["split_id"],
                     "measured": (f"{c['problem']} {c['metric']}: CNN {_f(c['cnn_value'], 4)} vs SVM "
                                  f"{_f(c['svm_value'], 4)}"),
                     "test_set": f"{c['common_test_ccds']} common test CCDs", "n_test": c["common_test_ccds"],
                     "status": st,
                     "note": (f"CNN right & SVM wrong on {c['cnn_right_svm_wrong']} CCDs, the reverse on "
                              f"{c['svm_right_cnn_wrong']}; exact McNemar p = {c['mcnemar_p']:.3g}")})
    if not comparisons:
        rows.append({"target": "CNN beats SVM", "model": "-", "split_id": None,
                     "measured": "no CNN and SVM of the same problem on the same split", "test_set": "-",
                     "n_test": 0, "status": "NOT ASSESSED", "note": ""})
    return rows


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------

def build_report(model_dirs, out_dir, truth_path=None, target_fnr=None, min_support: int = TARGET_MIN_SUPPORT) -> dict:
    """Write report.md, report.html, report.json and the PNG figures for ``model_dirs`` into ``out_dir``.

    ``truth_path``: the simulator's truth table (adds recall vs strength per class).
    ``target_fnr``: re-choose each model's threshold on its validation predictions
    (predictions_val.parquet) for this FNR instead of using model.json's threshold.
    Returns a small summary (paths, counts, target statuses) for the job's JSON line.
    Raises :class:`~artifactspark.metrics.ModelDirError` for a directory breaking the training
    jobs' file contract and :class:`ReportInputError` for other unusable inputs.
    """
    dirs = [str(d) for d in (model_dirs or [])]
    if not dirs:
        raise ReportInputError("no model directory given; pass --model-dir DIR (repeatable)")
    if target_fnr is not None and not (0.0 <= float(target_fnr) <= 1.0):
        raise ReportInputError(f"target FNR {target_fnr} is not in [0, 1]")
    truth = _read_truth(truth_path) if truth_path else None
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ReportInputError(f"{out_dir}: cannot create the output directory ({e})") from e

    warnings: list[str] = []
    models, preds = [], []
    for d in dirs:
        s, pred = _load_model(d, target_fnr, min_support, warnings)
        warnings.extend(f"{s['name']}: {w}" for w in s.pop("warnings"))
        models.append(s)
        preds.append(pred)

    slugs, seen = [], {}
    for s in models:
        base = _slug(s["name"])
        seen[base] = seen.get(base, 0) + 1
        slugs.append(base if seen[base] == 1 else f"{base}_{seen[base]}")

    split_ids = list(dict.fromkeys(s["split"]["id"] for s in models))
    if len(split_ids) > 1:
        warnings.insert(0, f"the models were evaluated on different splits ({', '.join(map(str, split_ids))}): "
                           "numbers are comparable only within one split's table")
    for sid in split_ids:
        group = [i for i, s in enumerate(models) if s["split"]["id"] == sid]
        sets = {i: set(zip(preds[i]["expnum"].tolist(), preds[i]["ccdnum"].tolist())) for i in group}
        first = group[0]
        for i in group[1:]:
            if sets[i] != sets[first]:
                warnings.append(f"split {sid}: {models[i]['name']} and {models[first]['name']} were evaluated on "
                                f"different test CCDs ({len(sets[i])} vs {len(sets[first])}; "
                                f"{len(sets[i] & sets[first])} in common) although they name the same split")

    # ---- figures and per-model extras
    for s, pred, slug in zip(models, preds, slugs):
        figs = {}
        title = f"{s['name']} ({s['kind']}, {s['problem']}; test n={s['n']})"
        if "confusion" in s:
            figs["confusion"] = f"{slug}_confusion.png"
            fig_confusion(np.asarray(s["confusion"]["matrix"]), s["classes"], s["classes"],
                          f"{title}: confusion, row-normalised (counts in cells)", os.path.join(out_dir, figs["confusion"]))
        else:
            figs["per_class"] = f"{slug}_per_class.png"
            fig_per_class(s["per_class"], f"{title}: per-class P/R/F1 at the class thresholds",
                          os.path.join(out_dir, figs["per_class"]))
        bbt = s["binary_by_true_class"]
        figs["binary_by_true_class"] = f"{slug}_binary_by_true_class.png"
        fig_confusion(np.asarray(bbt["counts"]), bbt["rows"], bbt["cols"],
                      f"{title}: flag (p_artifact >= {s['threshold']:.3g}) by true class",
                      os.path.join(out_dir, figs["binary_by_true_class"]), xlabel="predicted (binary)")
        curve = _subsample(s.pop("curve"))
        s["curve_plotted"] = curve
        b = s["binary"]
        chosen = {"threshold": s["threshold"], "fpr": b["fpr"], "fnr": b["fnr"]}
        if len(curve["thresholds"]):
            figs["fpr_fnr"] = f"{slug}_fpr_fnr.png"
            fig_curve(curve, chosen, f"{title}: FPR vs FNR", os.path.join(out_dir, figs["fpr_fnr"]), s.get("target_fnr"))
        if s["history"]:
            figs["history"] = f"{slug}_error_vs_epoch.png"
            fig_history(s["history"], f"{title}: error vs epoch", os.path.join(out_dir, figs["history"]))
        if s["learning_curve"]:
            figs["learning_curve"] = f"{slug}_learning_curve.png"
            fig_learning_curve(s["learning_curve"], f"{title}: learning curve", os.path.join(out_dir, figs["learning_curve"]))
        if truth is not None:
            df = recall_vs_strength(truth, pred["frame"], s["threshold"])
            tax = list(s["binary_by_true_class"]["rows"][:-1])
            order = {c: i for i, c in enumerate(tax)}
            df = df.sort_values(["cls", "bin"], key=lambda col: col.map(order).fillna(len(order)) if col.name == "cls" else col,
                                kind="stable").reset_index(drop=True)
            s["recall_vs_strength"] = df.to_dict(orient="records")
            if len(df):
                figs["recall_vs_strength"] = f"{slug}_recall_vs_strength.png"
                fig_recall_strength(df, f"{title}: recall of injected artifacts vs strength (test CCDs)",
                                    os.path.join(out_dir, figs["recall_vs_strength"]))
            else:
                warnings.append(f"{s['name']}: no truth row falls on a test CCD (is the truth table from the "
                                "archive these models were trained on?)")
        s["figures"] = figs

    comparisons = _compare(models, preds)
    targets = _targets(models, comparisons)

    # ---- the document
    doc = _Doc()
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    doc.h(1, "artifactspark model report")
    doc.p(f"Generated {now} from {len(models)} model director{'y' if len(models) == 1 else 'ies'}. Every number is "
          "computed on the held-out test split (predictions_test.parquet); thresholds were chosen on the "
          "validation split.")
    for w in warnings:
        doc.warn(w)
    doc.h(2, "Targets (issue 4)")
    doc.p("MET / NOT MET compare the point estimates with the target; the notes give the uncertainty "
          "(Wilson 95% intervals, exact McNemar test) and the test-set size.")
    doc.table(["target", "model", "split", "measured", "test set", "status", "note"],
              [[t["target"], t["model"], t["split_id"] or "-", t["measured"], t["test_set"], t["status"], t["note"]]
               for t in targets])
    for sid in split_ids:
        group = [s for s in models if s["split"]["id"] == sid]
        doc.h(2, f"Models on split {sid}")
        doc.table(["model", "kind", "problem", "test CCDs (artifact)", "accuracy", "threshold", "recall", "FPR",
                   "precision", f"macro-F1 (>= {min_support} ex.)"],
                  [[s["name"], s["kind"], s["problem"], f"{s['n']} ({s['binary']['positives']})", _f(s["accuracy"], 4),
                    _f(s["threshold"], 4), _f(s["binary"]["recall"], 4), _f(s["binary"]["fpr"], 4),
                    _f(s["binary"]["precision"], 4),
                    f"{_f(s['macro_f1'], 4)} ({len(s['macro_f1_classes'])} classes)"] for s in group])
    for s in models:
        b = s["binary"]
        doc.h(2, f"Model {s['name']}")
        doc.p(f"{s['kind']} / {s['problem']}, version {s.get('version')}, config {s.get('config_hash')}, "
              f"directory {s['model_dir']}. Split {s['split']['id']} (seed {s['split']['seed']}; exposures train "
              f"{s['split']['exposures']['train']}, val {s['split']['exposures']['val']}, test "
              f"{s['split']['exposures']['test']}). Test set: {_size(s)}.")
        doc.p(f"Accuracy {_f(s['accuracy'], 4)} (rule: {s['accuracy_rule']}). Binary decision p_artifact >= "
              f"{s['threshold']:.4g}, {s['threshold_source']}; target FNR {s.get('target_fnr')}, measured test FNR "
              f"{_f(b['fnr'], 4)}.")
        doc.table(["n", "artifact", "clean", "TP", "FP", "TN", "FN", "recall", "recall 95%", "FPR", "FPR 95%",
                   "FNR", "precision", "accuracy", "F1"],
                  [[b["n"], b["positives"], b["negatives"], b["tp"], b["fp"], b["tn"], b["fn"], _f(b["recall"], 4),
                    f"{_f(b['recall_ci95'][0])}-{_f(b['recall_ci95'][1])}", _f(b["fpr"], 4),
                    f"{_f(b['fpr_ci95'][0])}-{_f(b['fpr_ci95'][1])}", _f(b["fnr"], 4), _f(b["precision"], 4),
                    _f(b["accuracy"], 4), _f(b["f1"], 4)]])
        br = s["best_recall_at_fpr_0.10_on_test"]
        doc.p(f"For orientation only (threshold picked on the test set itself, hence optimistic): the best test "
              f"recall with FPR <= {TARGET_FPR} is {_f(br['recall'], 4)} at threshold {_f(br['threshold'], 4)}.")
        extra = ""
        if s["problem"] == "multiclass":
            extra = (f" (artifact classes; with '{NO_ARTIFACT}' as a class: {_f(s['macro_f1_all_classes'], 4)} "
                     f"over {len(s['macro_f1_all_classes_used'])} classes)")
        if s["problem"] == "multilabel":
            extra = f"; exact-match (all 26 classes right) accuracy {_f(s['subset_accuracy'], 4)}"
        doc.p(f"Macro-F1 {_f(s['macro_f1'], 4)} over the {len(s['macro_f1_classes'])} classes with >= "
              f"{s['min_support']} test examples{extra}.")
        shown = [r for r in s["per_class"] if r["support"] or r["predicted"]]
        hidden = len(s["per_class"]) - len(shown)
        hdr = ["class", "support", "predicted", "precision", "recall", "F1"]
        if s["problem"] == "multilabel":
            hdr.append("threshold")
        doc.table(hdr, [[r["name"], r["support"], r["predicted"], _f(r["precision"]), _f(r["recall"]), _f(r["f1"])]
                        + ([_f(r["threshold"])] if s["problem"] == "multilabel" else []) for r in shown])
        if hidden:
            doc.p(f"{hidden} classes with no test example and never predicted are not listed.")
        bbt = s["binary_by_true_class"]
        doc.p("Binary decision by true class (fig. 7; primary class of each artifact CCD):")
        doc.table(["true class", "CCDs", "flagged", "not flagged", "flagged share"],
                  [[name, int(sum(c)), int(c[1]), int(c[0]), _f(c[1] / sum(c)) if sum(c) else "n/a"]
                   for name, c in zip(bbt["rows"], bbt["counts"]) if sum(c)])
        if sum(bbt["unassigned"]):
            doc.p(f"{int(sum(bbt['unassigned']))} artifact CCDs without a class are not in this table "
                  f"({int(bbt['unassigned'][1])} flagged).")
        figs = s["figures"]
        for key, alt in (("confusion", "confusion matrix (fig. 6)"), ("per_class", "per-class precision/recall/F1"),
                         ("binary_by_true_class", "binary decision by true class (fig. 7)"),
                         ("fpr_fnr", "FPR vs FNR coloured by threshold (fig. 5)"),
                         ("history", "error vs epoch (fig. 4)"), ("learning_curve", "learning curve (fig. 2)")):
            if key in figs:
                doc.img(figs[key], f"{s['name']}: {alt}")
        if s["history"] and s["history"].get("best_epoch") is not None:
            h = s["history"]
            i = h["epoch"].index(h["best_epoch"]) if h["best_epoch"] in h["epoch"] else None
            if i is not None:
                doc.p(f"Best epoch {h['best_epoch']} (chosen on validation): train error {_f(h['train_error'][i], 4)}, "
                      f"validation error {_f(h['val_error'][i], 4)}"
                      + (f", test error {_f(h['test_error'][i], 4)}" if h.get("test_error") else "") + ".")
        if s["learning_curve"]:
            lc = s["learning_curve"]
            doc.table(["training examples", "train error", "test error"],
                      [[n, _f(a, 4), _f(t, 4)] for n, a, t in zip(lc["n_train"], lc["train_error"], lc["test_error"])])
        if s.get("recall_vs_strength"):
            doc.p("Recall of the simulator's injected artifacts on test CCDs (a truth row counts as detected when "
                  "its CCD is flagged), per class and strength bin; 'volunteers' is the share the simulated "
                  "volunteers reported:")
            doc.table(["class", "strength", "bin", "n", "model recall", "volunteers"],
                      [[r["cls"], r["strength"], f"{r['lo']:.3g}-{r['hi']:.3g}", r["n"], _f(r["recall"]),
                        _f(r.get("volunteer_recall"))] for r in s["recall_vs_strength"] if r["n"]])
            if "recall_vs_strength" in figs:
                doc.img(figs["recall_vs_strength"], f"{s['name']}: recall vs strength per class")
    doc.h(2, "Definitions")
    doc.p("A CCD is flagged as an artifact when p_artifact >= threshold (binary: probs[1]; multiclass: "
          "1 - p(no artifact); multilabel: the largest class probability). Recall = TP / artifact CCDs, FPR = "
          "FP / clean CCDs, FNR = 1 - recall; a ratio with a zero denominator is reported as 0. Confusion matrices: "
          "rows are true classes (normalised per row, counts in the cells), columns predicted. Macro-F1 is the "
          "unweighted mean of per-class F1 over the classes with at least the stated number of true test "
          "examples (multiclass: the 26 artifact classes; 'no artifact' is reported beside it).")

    md = doc.markdown()
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "report.html"), "w") as f:
        f.write(doc.html("artifactspark model report"))
    report = {"generated": now, "targets_definition": {"binary_recall": TARGET_RECALL, "binary_fpr": TARGET_FPR,
                                                       "macro_f1": TARGET_MACRO_F1, "min_support": TARGET_MIN_SUPPORT},
              "models": models, "comparisons": comparisons, "targets": targets, "warnings": warnings,
              "split_ids": split_ids, "truth": str(truth_path) if truth_path else None}
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(jsonable(report), f, indent=1, sort_keys=True)
    n_figs = sum(len(s["figures"]) for s in models)
    log.info("report for %d models written to %s (%d figures)", len(models), out_dir, n_figs)
    return {"out": str(out_dir), "report": os.path.join(str(out_dir), "report.html"), "models": len(models),
            "figures": n_figs, "warnings": len(warnings), "split_ids": jsonable(split_ids),
            "targets": [{"target": t["target"], "model": t["model"], "status": t["status"]} for t in targets]}


__all__ = ["build_report", "ReportInputError", "ModelDirError", "TARGET_RECALL", "TARGET_FPR", "TARGET_MACRO_F1",
           "TARGET_MIN_SUPPORT"]
