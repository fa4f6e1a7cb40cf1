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
import html
import json
import logging
import math
import os
import re

import numpy as np

from ..errors import ArtifactSparkError
from .metrics import (NO_ARTIFACT, ModelDirError, TruthTableError, jsonable, load_predictions, load_truth,
                      prepare_truth, read_model_json, summarize_predictions, threshold_for_fnr, truth_ccd_frame,
                      truth_correctness, truth_evaluation)

log = logging.getLogger("artifactspark.evaluate.report")

# The targets (issue 9), measured against the simulator's truth.
TARGET_RECALL = 0.98         # binary: recall on CCDs with a detectable artifact ...
TARGET_FPR = 0.05            # ... at this FPR on clean CCDs
TARGET_CLASS_RECALL = 0.90   # every class above its floor with >= TARGET_MIN_SUPPORT test CCDs
TARGET_MACRO_F1 = 0.85       # many-class macro-F1 vs the truth's primary class
TARGET_MEAN_AUC = 0.95       # multi-label mean per-class ROC AUC
TARGET_MCNEMAR_P = 0.05      # CNN beats SVM: exact McNemar test in the CNN's favour
TARGET_MIN_SUPPORT = 20
NO_TRUTH = "no truth table (real data)"
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


def fig_curve(curve, chosen, title, path, target_fnr=None, ceiling=None):
    """FPR vs FNR, each point coloured by its threshold; the chosen threshold marked (fig. 5).

    ``ceiling``: ``{"fpr", "fnr"}`` of the perfect truth model against the same volunteer labels
    (marked with a black cross), when the truth is known."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.6))
    sc = ax.scatter(curve["fpr"], curve["fnr"], c=curve["thresholds"], cmap="viridis", s=8,
                    vmin=0.0, vmax=1.0)
    fig.colorbar(sc, ax=ax, label="threshold on p_artifact (flag if p >= threshold)")
    ax.plot([chosen["fpr"]], [chosen["fnr"]], marker="*", color="red", markersize=15, linestyle="none",
            label=f"chosen threshold {chosen['threshold']:.3g}: FPR {chosen['fpr']:.3f}, FNR {chosen['fnr']:.3f}")
    if ceiling is not None:
        ax.plot([ceiling["fpr"]], [ceiling["fnr"]], marker="P", color="black", markersize=11, linestyle="none",
                label=f"ceiling (perfect truth model): FPR {ceiling['fpr']:.3f}, FNR {ceiling['fnr']:.3f}")
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


def fig_recall_strength(rows, title, path, floors=None):
    """Small multiples: per class, recall of injected artifacts against strength bins (and the volunteers').

    ``rows``: :func:`artifactspark.evaluate.metrics.recall_vs_strength` records. Bins where most features
    are below their class's detectability floor are shaded grey and drawn with open markers;
    the dashed red line is the class's floor on this strength axis (``floors``: class ->
    :func:`artifactspark.evaluate.metrics.strength_floor` dict with "strength"), when it lies inside the data.
    """
    plt = _plt()
    import pandas as pd
    df = pd.DataFrame(rows)
    floors = floors or {}
    classes = list(dict.fromkeys(df["cls"]))
    nc = min(5, max(1, len(classes)))
    nr = max(1, math.ceil(len(classes) / nc))
    h = 2.3 * nr + 0.7
    fig, axes = plt.subplots(nr, nc, figsize=(2.7 * nc, h), squeeze=False, sharey=True)
    has_floor = "below_floor" in df.columns
    for ax, cls in zip(axes.flat, classes):
        g = df[(df["cls"] == cls) & (df["n"] > 0)]
        lo, hi = g["lo"].to_numpy(dtype=float), g["hi"].to_numpy(dtype=float)
        pos = bool(len(lo)) and (lo > 0).all()
        x = np.sqrt(lo * hi) if pos else (lo + hi) / 2
        below = g["below_floor"].fillna(False).to_numpy(dtype=bool) if has_floor else np.zeros(len(g), bool)
        for a_, b_, bl in zip(lo, hi, below):
            if bl:
                ax.axvspan(a_, b_ if b_ > a_ else a_ * 1.05 + 1e-9, color="#dddddd", zorder=0)
        rec = g["recall"].to_numpy(dtype=float)
        ax.plot(x, rec, color="C0", zorder=2, label="model")
        ax.scatter(x[~below], rec[~below], color="C0", zorder=3, s=18)
        ax.scatter(x[below], rec[below], facecolors="white", edgecolors="C0", zorder=3, s=18,
                   label="bin mostly below the floor")
        if "volunteer_recall" in g.columns:
            ax.plot(x, g["volunteer_recall"], marker=".", color="grey", linestyle=":", label="volunteers")
        fl = floors.get(cls) or {}
        strength = g["strength"].iloc[0] if len(g) else ""
        if fl.get("value") is not None and fl.get("strength") == strength:
            ax.axvline(fl["value"], color="red", linestyle="--", linewidth=1, label="floor")
        if pos and len(x) and hi.max() / max(lo.min(), 1e-300) > 10:
            from matplotlib.ticker import NullFormatter
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.05, 1.05)
        nb = int(g["n_below_floor"].sum()) if "n_below_floor" in g.columns else 0
        ax.set_title(f"{cls} (n={int(g['n'].sum())}" + (f", {nb} below floor)" if has_floor else ")"), fontsize=7)
        ax.set_xlabel(strength, fontsize=7)
        ax.tick_params(which="both", labelsize=6)
    for ax in list(axes.flat)[len(classes):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("recall")
    handles, labels = {}, []
    for ax in axes.flat:
        for hnd, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, hnd)
    fig.legend(list(handles.values()), list(handles.keys()), fontsize=6, loc="lower center", ncol=len(handles),
               frameon=False)
    fig.suptitle(title, fontsize=9, y=1 - 0.08 / h, va="top")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.75 / h, top=1 - 0.75 / h, hspace=0.75, wspace=0.15)
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


def _is_cnn(s) -> bool:
    """A CNN, or a derived (binary / multiclass) view of one (model.json ``derived_from``)."""
    return s["kind"] == "cnn" or (bool(s.get("derived_from")) and s["kind"] != "svm")


def _headline(s):
    """(metric name, value) used for CNN vs SVM against the volunteer labels: binary -> accuracy, else macro-F1."""
    if s["problem"] == "binary":
        return "accuracy", s["accuracy"]
    return f"macro-F1 (classes with >= {s['min_support']} test examples)", s["macro_f1"]


def _truth_headline(s):
    """(metric name, value) for CNN vs SVM against the truth."""
    t = s.get("truth") or {}
    if s["problem"] == "binary":
        return ("accuracy vs truth (detectable vs clean CCDs, at the model's threshold)",
                (t.get("binary") or {}).get("accuracy"))
    return (f"macro-F1 vs the truth's primary class (classes with >= {s['min_support']} test CCDs)",
            (t.get("manyclass") or {}).get("macro_f1"))


def _correct(s, pred):
    """Per test CCD (expnum, ccdnum) -> was the model right under its accuracy rule (volunteer labels)."""
    keep = np.isin(pred["label"], (0, 1))
    if s["problem"] == "multilabel":
        ok = (pred["p_artifact"] >= 0.5) == (pred["label"] == 1)
    else:
        ok = pred["probs"].argmax(axis=1) == pred["y_true"]
    return {(int(e), int(c)): bool(o) for e, c, o, k in zip(pred["expnum"], pred["ccdnum"], ok, keep) if k}


def _paired(ca: dict, cb: dict) -> dict:
    """Exact McNemar test of two models' per-CCD correctness on their common CCDs."""
    common = ca.keys() & cb.keys()
    b = sum(1 for key in common if ca[key] and not cb[key])
    c = sum(1 for key in common if cb[key] and not ca[key])
    p = _mcnemar_p(b, c)
    return {"common_test_ccds": len(common), "cnn_right_svm_wrong": b, "svm_right_cnn_wrong": c, "mcnemar_p": p,
            "significant": bool(b > c and p < TARGET_MCNEMAR_P)}


def _compare(models, preds, frames=None):
    """CNN (or a derived view of one) vs SVM for every (split id, problem) holding both kinds.

    Against the volunteer labels (each model's accuracy rule) and, with the truth (``frames``:
    per model :func:`~artifactspark.evaluate.metrics.truth_ccd_frame` or None), against the truth under
    "truth". ``significant``: the CNN is right on more of the discordant CCDs and the exact
    McNemar p < TARGET_MCNEMAR_P.
    """
    frames = frames or [None] * len(models)
    out = []
    for i, a in enumerate(models):
        for j, b in enumerate(models):
            if not _is_cnn(a) or b["kind"] != "svm" or a["problem"] != b["problem"] \
                    or a["split"]["id"] != b["split"]["id"]:
                continue
            metric, va = _headline(a)
            _, vb = _headline(b)
            row = {"split_id": a["split"]["id"], "problem": a["problem"], "cnn": a["name"], "svm": b["name"],
                   "metric": metric, "cnn_value": va, "svm_value": vb,
                   "cnn_beats_svm": None if va is None or vb is None else bool(va > vb)}
            row.update(_paired(_correct(a, preds[i]), _correct(b, preds[j])))
            row["truth"] = None
            if frames[i] is not None and frames[j] is not None:
                tm, ta = _truth_headline(a)
                _, tb = _truth_headline(b)
                tr = {"metric": tm, "cnn_value": ta, "svm_value": tb,
                      "cnn_beats_svm": None if ta is None or tb is None else bool(ta > tb)}
                tr.update(_paired(truth_correctness(frames[i], a["problem"]),
                                  truth_correctness(frames[j], b["problem"])))
                row["truth"] = tr
            out.append(row)
    return out


def _size(s):
    b = s["binary"]
    return f"{s['n']} CCDs ({b['positives']} artifact, {b['negatives']} clean; {s['n_exposures']} exposures)"


def _truth_size(s):
    tc = s["truth"]["test_ccds"]
    return (f"{tc['detectable']} detectable-artifact and {tc['clean']} clean test CCDs ({tc['below_floor']} with only "
            f"below-floor artifacts left out" + (f", {tc['unmatched']} without truth" if tc["unmatched"] else "")
            + f"; {s['n_exposures']} exposures)")


def _ci(ci) -> str:
    return f"[95% {ci[0]:.3f}-{ci[1]:.3f}]"


def _status(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _role(s, problem: str) -> str:
    if s["kind"] == "svm":
        return "informational (SVM; the target is the CNN's)"
    if s["problem"] != problem:
        return f"informational (the {s['problem']} model's view)"
    return "target"


def _row(target_id, target, basis, model, split_id, measured, test_set, n_test, status, reason, role="target",
         **extra) -> dict:
    r = {"id": target_id, "target": target, "basis": basis, "role": role, "model": model, "split_id": split_id,
         "measured": measured, "test_set": test_set, "n_test": int(n_test or 0), "status": status,
         "reason": reason or "-"}
    r.update(extra)
    return r


def _ms_note(s) -> str:
    return ("" if s["min_support"] == TARGET_MIN_SUPPORT else
            f"computed with min_support {s['min_support']}, not the target's {TARGET_MIN_SUPPORT}")


def _join(parts) -> str:
    return "; ".join(p for p in parts if p)


T_BINARY = (f"binary vs truth: recall >= {TARGET_RECALL} on CCDs with a detectable artifact at FPR <= {TARGET_FPR} "
            "on clean CCDs")
T_CLASS = (f"every class above its floor with >= {TARGET_MIN_SUPPORT} test CCDs has recall >= {TARGET_CLASS_RECALL} "
           "(vs truth)")
T_MANY = (f"many-class macro-F1 >= {TARGET_MACRO_F1} vs the truth's primary class (classes with >= "
          f"{TARGET_MIN_SUPPORT} test CCDs)")
T_ML = f"multi-label mean per-class ROC AUC >= {TARGET_MEAN_AUC} vs truth (classes with >= {TARGET_MIN_SUPPORT} positives)"
T_CVS = f"CNN beats SVM vs truth (exact McNemar p < {TARGET_MCNEMAR_P})"
V_BINARY = f"volunteer labels: binary recall >= {TARGET_RECALL} at FPR <= {TARGET_FPR} (capped by the ceiling)"
V_CLASS = (f"volunteer labels: every class with >= {TARGET_MIN_SUPPORT} test CCDs flagged >= {TARGET_CLASS_RECALL} "
           "(capped by the ceiling)")
V_MANY = f"volunteer labels: many-class macro-F1 >= {TARGET_MACRO_F1} (capped by the ceiling)"
V_ML = f"volunteer labels: multi-label mean per-class ROC AUC >= {TARGET_MEAN_AUC} (capped by the ceiling)"
V_CVS = f"volunteer labels: CNN beats SVM (exact McNemar p < {TARGET_MCNEMAR_P})"
INFO = "informational (volunteer labels)"


def _targets_truth(models, comparisons) -> list:
    """The issue-9 target rows, against the simulator's truth."""
    rows = []
    # ---- binary
    bin_models = [s for s in models if s["problem"] == "binary"]
    for s in bin_models:
        role, sid, t = _role(s, "binary"), s["split"]["id"], s.get("truth")
        if t is None:
            rows.append(_row("binary_truth", T_BINARY, "truth", s["name"], sid, "-", _size(s), s["n"],
                             "NOT ASSESSED", NO_TRUTH, role))
            continue
        b = t["binary"]
        nd, nc = b["n_detectable"], b["n_clean"]
        measured = (f"recall {b['recall']:.4f} {_ci(b['recall_ci95'])} ({b['detected']}/{nd}), FPR {b['fpr']:.4f} "
                    f"{_ci(b['fpr_ci95'])} ({b['false_positives']}/{nc}) at threshold {s['threshold']:.4g}; "
                    f"ROC AUC {_f(b['roc_auc'], 4)}")
        reason = []
        if nd == 0 or nc == 0:
            status = "NOT ASSESSED"
            reason.append("the test set has no CCD with a detectable artifact" if nd == 0 else
                          "the test set has no clean CCD")
        else:
            ok_r, ok_f = b["recall"] >= TARGET_RECALL, b["fpr"] <= TARGET_FPR
            status = _status(ok_r and ok_f)
            if not ok_r:
                reason.append(f"recall {TARGET_RECALL - b['recall']:.4f} short of {TARGET_RECALL}")
            if not ok_f:
                reason.append(f"FPR {b['fpr'] - TARGET_FPR:.4f} above {TARGET_FPR}")
            if ok_r and ok_f:
                reason.append("both point estimates meet the target")
            if b["recall_ci95"][0] < TARGET_RECALL <= b["recall_ci95"][1]:
                reason.append(f"recall's 95% interval straddles {TARGET_RECALL}: {nd} detectable test CCDs do not "
                              f"resolve the target (one miss = {1 / nd:.4f} recall)")
            if b["fpr_ci95"][0] <= TARGET_FPR < b["fpr_ci95"][1]:
                reason.append(f"FPR's 95% interval straddles {TARGET_FPR} ({nc} clean test CCDs)")
        bf = b["below_floor"]
        if bf["n"]:
            reason.append(f"{bf['n']} test CCDs with only below-floor artifacts are not counted (flagged "
                          f"{bf['flagged']}, share {bf['flagged_share']:.3f})")
        reason.append(f"threshold {s['threshold_source']}")
        rows.append(_row("binary_truth", T_BINARY, "truth", s["name"], sid, measured, _truth_size(s), nd + nc,
                         status, _join(reason), role))
    if not any(_is_cnn(s) for s in bin_models):
        rows.append(_row("binary_truth", T_BINARY, "truth", "-", None,
                         "no binary CNN (nor a binary view of the multilabel CNN) among the models", "-", 0,
                         "NOT ASSESSED", "no binary CNN model given"))
    # ---- per class
    for s in bin_models:
        role, sid, t = _role(s, "binary"), s["split"]["id"], s.get("truth")
        if t is None:
            rows.append(_row("class_recall_truth", T_CLASS, "truth", s["name"], sid, "-", _size(s), s["n"],
                             "NOT ASSESSED", NO_TRUTH, role))
            continue
        pc = t["per_class"]
        q = [r for r in pc if r["n"] >= TARGET_MIN_SUPPORT]
        few = [r for r in pc if 0 < r["n"] < TARGET_MIN_SUPPORT]
        erased = t["floor"]["erased_by_binning"]
        extra = [(f"not covered (< {TARGET_MIN_SUPPORT} detectable test CCDs): "
                  + ", ".join(f"{r['cls']} ({r['n']})" for r in few)) if few else "",
                 (f"never above the floor (erased by the 8x8 binning): {', '.join(erased)}") if erased else ""]
        test_set = (f"{len(q)} classes with >= {TARGET_MIN_SUPPORT} of the {t['test_ccds']['detectable']} "
                    "detectable-artifact test CCDs")
        if not q:
            big = max(pc, key=lambda r: r["n"]) if pc else None
            rows.append(_row("class_recall_truth", T_CLASS, "truth", s["name"], sid,
                             f"no class is detectable on >= {TARGET_MIN_SUPPORT} test CCDs", test_set, 0,
                             "NOT ASSESSED",
                             _join([f"the test set is too small (largest: {big['cls']}, {big['n']} CCDs)" if big else
                                    "no detectable artifact on the test CCDs"] + extra), role))
            continue
        worst = min(q, key=lambda r: r["recall"])
        failing = [r for r in q if r["recall"] < TARGET_CLASS_RECALL]
        measured = (f"lowest recall {worst['recall']:.4f} {_ci(worst['recall_ci95'])} ({worst['cls']}, "
                    f"{worst['detected']}/{worst['n']}) over {len(q)} classes")
        reason = [(f"below {TARGET_CLASS_RECALL}: " + ", ".join(f"{r['cls']} {r['recall']:.3f} ({r['n']})" for r in failing))
                  if failing else f"all {len(q)} classes reach {TARGET_CLASS_RECALL}"] + extra
        rows.append(_row("class_recall_truth", T_CLASS, "truth", s["name"], sid, measured, test_set,
                         sum(r["n"] for r in q), _status(not failing), _join(reason), role))
    if not any(_is_cnn(s) for s in bin_models):
        rows.append(_row("class_recall_truth", T_CLASS, "truth", "-", None, "no binary CNN among the models", "-", 0,
                         "NOT ASSESSED", "no binary CNN model given"))
    # ---- many-class
    for s in [m for m in models if m["problem"] in ("multiclass", "multilabel")]:
        role, sid, t = _role(s, "multiclass"), s["split"]["id"], s.get("truth")
        if t is None:
            rows.append(_row("manyclass_truth", T_MANY, "truth", s["name"], sid, "-", _size(s), s["n"],
                             "NOT ASSESSED", NO_TRUTH, role))
            continue
        mc = t["manyclass"]
        v, used = mc["macro_f1"], mc["macro_f1_classes"]
        art = [r for r in mc["per_class"] if r["name"] != NO_ARTIFACT and r["support"]]
        measured = (f"macro-F1 {_f(v, 4)} over {len(used)} artifact classes with >= {s['min_support']} test CCDs "
                    f"(accuracy {mc['accuracy']:.4f}; class = {mc['rule']})")
        test_set = (f"{mc['n']} test CCDs (detectable with a primary class, or clean; {mc['excluded_below_floor']} "
                    "below-floor-only CCDs left out)")
        if v is None:
            big = max(art, key=lambda r: r["support"]) if art else None
            reason = [f"no artifact class is the truth's primary class of >= {s['min_support']} test CCDs: the test "
                      "set is too small" + (f" (largest: {big['name']}, {big['support']})" if big else ""), _ms_note(s)]
            status = "NOT ASSESSED"
        else:
            urows = [r for r in art if r["name"] in used]
            weak = min(urows, key=lambda r: r["f1"])
            reason = [f"weakest class {weak['name']} F1 {weak['f1']:.3f} ({weak['support']} CCDs)",
                      (f"{len(art) - len(used)} artifact classes with fewer test CCDs are not in the average"
                       if len(art) > len(used) else ""), _ms_note(s)]
            status = _status(v >= TARGET_MACRO_F1)
        rows.append(_row("manyclass_truth", T_MANY, "truth", s["name"], sid, measured, test_set, mc["n"], status,
                         _join(reason), role))
    if not any(_is_cnn(s) and s["problem"] == "multiclass" for s in models):
        rows.append(_row("manyclass_truth", T_MANY, "truth", "-", None,
                         "no multiclass CNN (nor a multiclass view of the multilabel CNN) among the models", "-", 0,
                         "NOT ASSESSED", "no multiclass CNN model given"))
    # ---- multi-label
    ml_models = [s for s in models if s["problem"] == "multilabel"]
    for s in ml_models:
        role, sid, t = _role(s, "multilabel"), s["split"]["id"], s.get("truth")
        if t is None:
            rows.append(_row("multilabel_auc_truth", T_ML, "truth", s["name"], sid, "-", _size(s), s["n"],
                             "NOT ASSESSED", NO_TRUTH, role))
            continue
        ml = t["multilabel"]
        v = ml["mean_auc"]
        measured = (f"mean ROC AUC {_f(v, 4)} over {len(ml['mean_auc_classes'])} classes with >= {s['min_support']} "
                    f"positive test CCDs (over every class with a positive and a negative: {_f(ml['mean_auc_all'], 4)}, "
                    f"{len(ml['mean_auc_all_classes'])} classes)")
        test_set = f"{ml['n']} test CCDs (detectable or clean; {ml['excluded_below_floor']} below-floor-only left out)"
        used = [r for r in ml["per_class"] if r["name"] in ml["mean_auc_classes"]]
        if v is None:
            status, reason = "NOT ASSESSED", [f"no class is detectable on >= {s['min_support']} test CCDs: the test "
                                              "set is too small", _ms_note(s)]
        else:
            weak = min(used, key=lambda r: r["auc"])
            status = _status(v >= TARGET_MEAN_AUC)
            reason = [f"weakest class {weak['name']} AUC {weak['auc']:.3f} ({weak['positives']} positives)", _ms_note(s)]
        rows.append(_row("multilabel_auc_truth", T_ML, "truth", s["name"], sid, measured, test_set, ml["n"], status,
                         _join(reason), role))
    if not ml_models:
        rows.append(_row("multilabel_auc_truth", T_ML, "truth", "-", None, "no multilabel model among the models", "-",
                         0, "NOT ASSESSED", "no multilabel CNN model given"))
    # ---- CNN vs SVM
    for c in comparisons:
        tr = c["truth"]
        who = f"{c['cnn']} vs {c['svm']}"
        if tr is None:
            rows.append(_row("cnn_vs_svm_truth", T_CVS, "truth", who, c["split_id"], "-", "-", 0, "NOT ASSESSED",
                             NO_TRUTH, problem=c["problem"]))
            continue
        b, cc, p = tr["cnn_right_svm_wrong"], tr["svm_right_cnn_wrong"], tr["mcnemar_p"]
        measured = (f"{c['problem']} {tr['metric']}: CNN {_f(tr['cnn_value'], 4)} vs SVM {_f(tr['svm_value'], 4)}; "
                    f"CNN right & SVM wrong on {b} CCDs, the reverse on {cc}; exact McNemar p = {p:.3g}")
        if tr["significant"]:
            reason = "the CNN is right on significantly more of the CCDs where the two disagree"
        elif b <= cc:
            reason = "the CCDs where the two disagree do not favour the CNN"
        else:
            reason = f"p = {p:.3g} >= {TARGET_MCNEMAR_P}: {b + cc} discordant CCDs do not resolve the difference"
        rows.append(_row("cnn_vs_svm_truth", T_CVS, "truth", who, c["split_id"], measured,
                         f"{tr['common_test_ccds']} common test CCDs (detectable or clean)", tr["common_test_ccds"],
                         _status(tr["significant"]), reason, problem=c["problem"]))
    if not comparisons:
        rows.append(_row("cnn_vs_svm_truth", T_CVS, "truth", "-", None,
                         "no CNN and SVM of the same problem on the same split", "-", 0, "NOT ASSESSED",
                         "no CNN/SVM pair given"))
    return rows


def _capped(value, ceiling, target, higher=True):
    """(status, goal, reason) of a volunteer-label figure whose goal is the target capped by the ceiling."""
    if value is None:
        return "NOT ASSESSED", None, "the figure is undefined on this test set"
    if ceiling is None:
        goal = target
        why = f"no ceiling ({NO_TRUTH}): against the plain target {target}"
    else:
        goal = min(target, ceiling) if higher else max(target, ceiling)
        share = f"; the model reaches {value / ceiling:.1%} of the ceiling" if higher and ceiling else ""
        why = (f"goal {'>=' if higher else '<='} {goal:.4f} = the target {target} capped by the ceiling "
               f"{ceiling:.4f}{share}")
    ok = value >= goal if higher else value <= goal
    return _status(ok), goal, why


def _cl(t, value) -> str:
    """The suffix ' (ceiling x)' when the truth is known (``t``), else an empty string."""
    return f" (ceiling {_f(value, 4)})" if t else ""


def _targets_volunteer(models, comparisons) -> list:
    """The same figures against the volunteer labels, each beside its ceiling (informational rows)."""
    rows = []
    for s in [m for m in models if m["problem"] == "binary"]:
        t, sid = s.get("truth"), s["split"]["id"]
        vb = t["volunteer"]["binary"] if t else s["binary"]
        cb = t["ceiling"]["binary"] if t else None
        st_r, goal_r, why_r = _capped(vb["recall"], cb["recall"] if cb else None, TARGET_RECALL)
        st_f, goal_f, why_f = _capped(vb["fpr"], cb["fpr"] if cb else None, TARGET_FPR, higher=False)
        measured = (f"recall {vb['recall']:.4f}{_cl(t, cb['recall'] if cb else None)}, FPR {vb['fpr']:.4f}"
                    f"{_cl(t, cb['fpr'] if cb else None)}")
        status = ("NOT ASSESSED" if not (vb["positives"] and vb["negatives"]) else
                  _status(st_r == "MET" and st_f == "MET"))
        rows.append(_row("binary_volunteers", V_BINARY, "volunteers", s["name"], sid, measured,
                         f"{vb['n']} labelled test CCDs ({vb['positives']} artifact, {vb['negatives']} clean)", vb["n"],
                         status, _join([f"recall: {why_r}", f"FPR: {why_f}"]), INFO,
                         ceiling={"recall": cb["recall"] if cb else None, "fpr": cb["fpr"] if cb else None}))
        # per volunteer class: flagged share
        bbt = t["volunteer"]["binary_by_true_class"] if t else s["binary_by_true_class"]
        cbt = t["ceiling"]["binary_by_true_class"] if t else None
        q = []
        for i, name in enumerate(bbt["rows"][:-1]):
            n = int(sum(bbt["counts"][i]))
            if n >= TARGET_MIN_SUPPORT:
                share = bbt["counts"][i][1] / n
                cn = int(sum(cbt["counts"][i])) if cbt else 0
                csh = cbt["counts"][i][1] / cn if cbt and cn else None
                st, goal, _ = _capped(share, csh, TARGET_CLASS_RECALL)
                q.append((name, n, share, csh, st))
        if not q:
            rows.append(_row("class_recall_volunteers", V_CLASS, "volunteers", s["name"], sid,
                             f"no volunteer class has >= {TARGET_MIN_SUPPORT} test CCDs", f"{vb['positives']} artifact CCDs",
                             0, "NOT ASSESSED", "the test set is too small", INFO))
        else:
            worst = min(q, key=lambda r: r[2])
            fail = [r for r in q if r[4] != "MET"]
            rows.append(_row("class_recall_volunteers", V_CLASS, "volunteers", s["name"], sid,
                             f"lowest flagged share {worst[2]:.4f} ({worst[0]}, {worst[1]} CCDs){_cl(t, worst[3])} "
                             f"over {len(q)} classes",
                             f"{len(q)} volunteer classes with >= {TARGET_MIN_SUPPORT} test CCDs", sum(r[1] for r in q),
                             _status(not fail),
                             _join([("short of the goal: " + ", ".join(f"{r[0]} {r[2]:.3f}{_cl(t, r[3])}"
                                                                       for r in fail)) if fail else
                                    f"every class reaches min({TARGET_CLASS_RECALL}, its ceiling)",
                                    "" if cbt else f"no ceiling ({NO_TRUTH}): against the plain target"]), INFO))
    for s in [m for m in models if m["problem"] in ("multiclass", "multilabel")]:
        t, sid = s.get("truth"), s["split"]["id"]
        mv = t["volunteer"]["manyclass"] if t else s["manyclass_view"]
        cv = t["ceiling"]["manyclass"]["macro_f1"] if t else None
        st, goal, why = _capped(mv["macro_f1"], cv, TARGET_MACRO_F1)
        rows.append(_row("manyclass_volunteers", V_MANY, "volunteers", s["name"], sid,
                         f"macro-F1 {_f(mv['macro_f1'], 4)}{_cl(t, cv)} over {len(mv['macro_f1_classes'])} "
                         f"classes with >= {s['min_support']} test CCDs",
                         f"{mv['n']} labelled test CCDs with a volunteer class", mv["n"], st,
                         why if mv["macro_f1"] is not None else
                         f"no artifact class has >= {s['min_support']} volunteer-labelled test CCDs", INFO,
                         ceiling=cv))
    for s in [m for m in models if m["problem"] == "multilabel"]:
        t, sid = s.get("truth"), s["split"]["id"]
        v = t["volunteer"]["multilabel"]["mean_auc"] if t else s.get("mean_auc")
        n_cls = len(t["volunteer"]["multilabel"]["mean_auc_classes"] if t else s.get("mean_auc_classes") or [])
        cv = t["ceiling"]["multilabel"]["mean_auc"] if t else None
        st, goal, why = _capped(v, cv, TARGET_MEAN_AUC)
        rows.append(_row("multilabel_auc_volunteers", V_ML, "volunteers", s["name"], sid,
                         f"mean ROC AUC {_f(v, 4)}{_cl(t, cv)} over {n_cls} classes with >= {s['min_support']} "
                         "volunteer positives", _size(s), s["n"], st,
                         why if v is not None else f"no class has >= {s['min_support']} volunteer positives", INFO,
                         ceiling=cv))
    for c in comparisons:
        b, cc, p = c["cnn_right_svm_wrong"], c["svm_right_cnn_wrong"], c["mcnemar_p"]
        rows.append(_row("cnn_vs_svm_volunteers", V_CVS, "volunteers", f"{c['cnn']} vs {c['svm']}", c["split_id"],
                         (f"{c['problem']} {c['metric']}: CNN {_f(c['cnn_value'], 4)} vs SVM {_f(c['svm_value'], 4)}; "
                          f"CNN right & SVM wrong on {b} CCDs, the reverse on {cc}; exact McNemar p = {p:.3g}"),
                         f"{c['common_test_ccds']} common labelled test CCDs", c["common_test_ccds"],
                         _status(c["significant"]),
                         "a paired test has no ceiling: both models face the same label errors", INFO,
                         problem=c["problem"]))
    return rows


def _targets(models, comparisons) -> list:
    """Every target row: against the truth (issue 9), then against the volunteer labels (informational)."""
    return _targets_truth(models, comparisons) + _targets_volunteer(models, comparisons)


# --------------------------------------------------------------------------------------------
# the document
# --------------------------------------------------------------------------------------------

def _vc(s, value, key_path, nd=4) -> str:
    """A volunteer-label figure, with its ceiling when the truth is known (``key_path`` into truth.ceiling)."""
    t = s.get("truth")
    if not t:
        return _f(value, nd)
    c = t["ceiling"]
    for k in key_path:
        c = None if c is None else c.get(k)
    return f"{_f(value, nd)} (ceiling {_f(c, nd)})"


def _doc_truth_overview(doc, models, source, min_support):
    first = models[0]["truth"]
    fl = first["floor"]
    doc.h(2, "The simulator's truth and the detectability floor")
    doc.p(f"Truth: {source.get('truth')}; CCD table: {source.get('ccds') or 'none (derived from the truth table)'}. "
          "A test CCD is 'detectable' when at least one injected feature is above its class's floor, 'clean' when "
          "nothing was injected, 'below floor' when every injected feature is below its floor; recall is measured "
          "on detectable CCDs, the FPR on clean ones, and below-floor CCDs are reported apart.")
    a = fl["archive"]
    doc.p(f"Whole archive: {a['below_floor_ccds']} of {a['artifact_ccds']} artifact CCDs ({_f(a['share_below_floor'])}) "
          f"have only below-floor artifacts" + (f" ({a['ccds']} CCDs in all)." if a["ccds"] is not None else "."))
    seen = set()
    for s in models:
        sid = s["split"]["id"]
        if sid in seen:
            continue
        seen.add(sid)
        tt = s["truth"]["floor"]["test"]
        doc.p(f"Test side of split {sid}: {tt['below_floor_ccds']} of {tt['artifact_ccds']} artifact CCDs "
              f"({_f(tt['share_below_floor'])}) have only below-floor artifacts.")
    if fl.get("rules"):
        doc.table(["floor rule", "a feature is detectable when"], [[k, v] for k, v in fl["rules"].items()])
    erased = fl["erased_by_binning"]
    doc.p("Classes erased by the 8x8 binning (never above the floor; their CCDs are neither detectable nor clean): "
          + (", ".join(erased) if erased else "none in this truth table") + ".")
    if fl["never_detectable"] and set(fl["never_detectable"]) - set(erased):
        doc.p("Classes with no feature above the floor in this archive: " + ", ".join(fl["never_detectable"]) + ".")
    doc.table(["class", "features", "below floor", "share below floor", "floor rule", "test features",
               "test below floor"],
              [[r["cls"], r["features"], r["below_floor"], _f(r["share_below_floor"]),
                ", ".join(f"{k} ({v})" for k, v in r["floor_rules"].items()) or "-", r["test_features"],
                r["test_below_floor"]] for r in fl["per_class"]])
    doc.p("Against the truth, per model (figures on the test split):")
    doc.table(["model", "problem", "detectable / clean / below floor", "recall", "FPR", "ROC AUC",
               "below-floor flagged", f"many-class macro-F1 (>= {min_support})", "multi-label mean AUC"],
              [[s["name"], s["problem"],
                f"{s['truth']['test_ccds']['detectable']} / {s['truth']['test_ccds']['clean']} / "
                f"{s['truth']['test_ccds']['below_floor']}",
                f"{_f(s['truth']['binary']['recall'], 4)} {_ci(s['truth']['binary']['recall_ci95'])}",
                f"{_f(s['truth']['binary']['fpr'], 4)} {_ci(s['truth']['binary']['fpr_ci95'])}",
                _f(s["truth"]["binary"]["roc_auc"], 4), _f(s["truth"]["binary"]["below_floor"]["flagged_share"]),
                _f((s["truth"]["manyclass"] or {}).get("macro_f1"), 4),
                _f((s["truth"]["multilabel"] or {}).get("mean_auc"), 4)] for s in models])


def _doc_model_truth(doc, s, figs):
    t = s["truth"]
    b, vb, cb = t["binary"], t["volunteer"]["binary"], t["ceiling"]["binary"]
    tc = t["test_ccds"]
    doc.h(3, f"{s['name']} against the simulator's truth")
    doc.p(f"Test CCDs: {tc['detectable']} with a detectable artifact, {tc['clean']} clean, {tc['below_floor']} with only "
          f"below-floor artifacts ({b['below_floor']['flagged']} flagged, share {_f(b['below_floor']['flagged_share'])}; "
          f"in no figure below)" + (f", {tc['unmatched']} not in the truth's CCD table" if tc["unmatched"] else "")
          + f". Threshold {s['threshold']:.4g}.")
    mc, ml = t["manyclass"], t["multilabel"]
    vmc, cmc = t["volunteer"]["manyclass"], t["ceiling"]["manyclass"]
    vml, cml = t["volunteer"]["multilabel"], t["ceiling"]["multilabel"]
    rows = [["recall", f"{_f(b['recall'], 4)} {_ci(b['recall_ci95'])}", _f(vb["recall"], 4), _f(cb["recall"], 4)],
            ["FPR", f"{_f(b['fpr'], 4)} {_ci(b['fpr_ci95'])}", _f(vb["fpr"], 4), _f(cb["fpr"], 4)],
            ["accuracy of the flag", _f(b["accuracy"], 4), _f(vb["accuracy"], 4), _f(cb["accuracy"], 4)],
            ["ROC AUC of p_artifact", _f(b["roc_auc"], 4), _f(vb["roc_auc"], 4), _f(cb["roc_auc"], 4)]]
    if mc is not None:
        rows.append([f"many-class macro-F1 (>= {s['min_support']})", _f(mc["macro_f1"], 4),
                     _f(vmc["macro_f1"] if vmc else None, 4), _f(cmc["macro_f1"] if cmc else None, 4)])
    if ml is not None:
        rows.append(["multi-label mean ROC AUC", _f(ml["mean_auc"], 4), _f(vml["mean_auc"] if vml else None, 4),
                     _f(cml["mean_auc"] if cml else None, 4)])
    doc.table(["figure", "vs truth", "vs volunteer labels", "ceiling (perfect truth model vs volunteer labels)"], rows)
    doc.p(f"Recall per class against the truth (test CCDs where the class is detectable; classes with >= "
          f"{s['min_support']} CCDs enter the target; 'volunteers' is the share the volunteers labelled as artifacts):")
    doc.table(["class", "CCDs", "detected", "recall", "recall 95%", f">= {s['min_support']}", "below-floor-only CCDs",
               "volunteers"],
              [[r["cls"], r["n"], r["detected"], _f(r["recall"]), f"{_f(r['recall_ci95'][0])}-{_f(r['recall_ci95'][1])}",
                "yes" if r["meets_min_support"] else "no", r["n_below_floor_only"],
                _f(r["volunteer_recall"]) if r["volunteer_labelled"] else "n/a"] for r in t["per_class"]])
    if mc is not None:
        doc.p(f"Many-class against the truth's primary class (class = {mc['rule']}): accuracy {_f(mc['accuracy'], 4)} on "
              f"{mc['n']} CCDs; macro-F1 {_f(mc['macro_f1'], 4)} over {len(mc['macro_f1_classes'])} classes.")
        doc.table(["class", "support", "predicted", "precision", "recall", "F1"],
                  [[r["name"], r["support"], r["predicted"], _f(r["precision"]), _f(r["recall"]), _f(r["f1"])]
                   for r in mc["per_class"] if r["support"] or r["predicted"]])
    if ml is not None:
        doc.p(f"Multi-label ROC AUC per class against 'the class is detectable on the CCD' ({ml['n']} CCDs): mean "
              f"{_f(ml['mean_auc'], 4)} over {len(ml['mean_auc_classes'])} classes with >= {s['min_support']} positives; "
              f"{_f(ml['mean_auc_all'], 4)} over all {len(ml['mean_auc_all_classes'])} classes with a positive and a "
              "negative.")
        doc.table(["class", "positives", "negatives", "ROC AUC"],
                  [[r["name"], r["positives"], r["negatives"], _f(r["auc"])] for r in ml["per_class"] if r["positives"]])
    rvs = [r for r in t["recall_vs_strength"] if r["n"]]
    if rvs:
        doc.p("Recall of the injected features on test CCDs per class and strength bin (a feature counts as detected "
              "when its CCD is flagged; 'volunteers' is the share the simulated volunteers reported; 'below floor' "
              "counts the bin's features below their class's floor, and bins where they are the majority are shaded "
              "in the figure; the dashed line is the class's floor on this axis):")
        has_vol = "volunteer_recall" in rvs[0]
        doc.table(["class", "strength", "bin", "n", "below floor", "model recall"] + (["volunteers"] if has_vol else []),
                  [[r["cls"], r["strength"], f"{r['lo']:.3g}-{r['hi']:.3g}", r["n"], r.get("n_below_floor", "-"),
                    _f(r["recall"])] + ([_f(r.get("volunteer_recall"))] if has_vol else []) for r in rvs])
    if "recall_vs_strength" in figs:
        doc.img(figs["recall_vs_strength"], f"{s['name']}: recall vs strength per class, floor marked")


def _doc_model(doc, s):
    b = s["binary"]
    t = s.get("truth")
    doc.h(2, f"Model {s['name']}")
    derived = f" Derived view of {s['derived_from']}." if s.get("derived_from") else ""
    anyh = " p_artifact is the model's 'any artifact' output." if s.get("any_head") else ""
    doc.p(f"{s['kind']} / {s['problem']}, version {s.get('version')}, config {s.get('config_hash')}, "
          f"directory {s['model_dir']}. Split {s['split']['id']} (seed {s['split']['seed']}; exposures train "
          f"{s['split']['exposures']['train']}, val {s['split']['exposures']['val']}, test "
          f"{s['split']['exposures']['test']}). Test set: {_size(s)}.{derived}{anyh}")
    doc.p(f"Against the volunteer labels{' (ceiling: a perfect truth model against the same labels)' if t else ''}: "
          f"accuracy {_vc(s, s['accuracy'], ['accuracy'])} (rule: {s['accuracy_rule']}). Binary decision p_artifact >= "
          f"{s['threshold']:.4g}, {s['threshold_source']}; target FNR {s.get('target_fnr')}, measured test FNR "
          f"{_vc(s, b['fnr'], ['binary', 'fnr'])}.")
    hdr = ["", "n", "artifact", "clean", "TP", "FP", "TN", "FN", "recall", "recall 95%", "FPR", "FPR 95%",
           "FNR", "precision", "accuracy", "F1"]

    def brow(who, x):
        return [who, x["n"], x["positives"], x["negatives"], x["tp"], x["fp"], x["tn"], x["fn"], _f(x["recall"], 4),
                f"{_f(x['recall_ci95'][0])}-{_f(x['recall_ci95'][1])}", _f(x["fpr"], 4),
                f"{_f(x['fpr_ci95'][0])}-{_f(x['fpr_ci95'][1])}", _f(x["fnr"], 4), _f(x["precision"], 4),
                _f(x["accuracy"], 4), _f(x["f1"], 4)]
    doc.table(hdr, [brow("model", b)] + ([brow("ceiling", t["ceiling"]["binary"])] if t else []))
    br = s["best_recall_at_fpr_0.05_on_test"]
    ceil_pt = ""
    if t:
        ceil_pt = (f" (the ceiling's single operating point: recall {_f(t['ceiling']['binary']['recall'], 4)} at FPR "
                   f"{_f(t['ceiling']['binary']['fpr'], 4)})")
    doc.p(f"For orientation only (threshold picked on the test set itself, hence optimistic): the best test "
          f"recall with FPR <= {TARGET_FPR} is {_f(br['recall'], 4)} at threshold {_f(br['threshold'], 4)}{ceil_pt}.")
    extra = ""
    if s["problem"] == "multiclass":
        extra = (f" (artifact classes; with '{NO_ARTIFACT}' as a class: {_f(s['macro_f1_all_classes'], 4)} "
                 f"over {len(s['macro_f1_all_classes_used'])} classes)")
    if s["problem"] == "multilabel":
        extra = (f"; exact-match (all classes right) accuracy {_vc(s, s['subset_accuracy'], ['subset_accuracy'])}; "
                 f"mean per-class ROC AUC {_vc(s, s.get('mean_auc'), ['multilabel', 'mean_auc'])} over "
                 f"{len(s.get('mean_auc_classes') or [])} classes with >= {s['min_support']} positives; many-class view "
                 f"({s['manyclass_view']['rule']}) macro-F1 "
                 f"{_vc(s, s['manyclass_view']['macro_f1'], ['manyclass', 'macro_f1'])}")
    doc.p(f"Macro-F1 {_vc(s, s['macro_f1'], ['macro_f1'])} over the {len(s['macro_f1_classes'])} classes with >= "
          f"{s['min_support']} test examples{extra}.")
    shown = [r for r in s["per_class"] if r["support"] or r["predicted"]]
    hidden = len(s["per_class"]) - len(shown)
    hdr = ["class", "support", "predicted", "precision", "recall", "F1"]
    if t:
        hdr += ["ceiling precision", "ceiling recall", "ceiling F1"]
    if s["problem"] == "multilabel":
        hdr += ["threshold", "ROC AUC"]
    cpc = {r["name"]: r for r in (t["ceiling"]["per_class"] if t else [])}
    doc.table(hdr, [[r["name"], r["support"], r["predicted"], _f(r["precision"]), _f(r["recall"]), _f(r["f1"])]
                    + ([_f(cpc.get(r["name"], {}).get(k)) for k in ("precision", "recall", "f1")] if t else [])
                    + ([_f(r["threshold"]), _f(r.get("roc_auc"))] if s["problem"] == "multilabel" else [])
                    for r in shown])
    if hidden:
        doc.p(f"{hidden} classes with no test example and never predicted are not listed.")
    bbt = s["binary_by_true_class"]
    cbt = t["ceiling"]["binary_by_true_class"] if t else None
    doc.p("Binary decision by true class (fig. 7; primary class of each artifact CCD per the volunteers):")
    doc.table(["true class", "CCDs", "flagged", "not flagged", "flagged share"] + (["ceiling flagged share"] if t else []),
              [[name, int(sum(c)), int(c[1]), int(c[0]), _f(c[1] / sum(c)) if sum(c) else "n/a"]
               + ([_f(cbt["counts"][i][1] / sum(cbt["counts"][i])) if sum(cbt["counts"][i]) else "n/a"] if t else [])
               for i, (name, c) in enumerate(zip(bbt["rows"], bbt["counts"])) if sum(c)])
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
    ceil_err = f" (ceiling: test error {_f(1 - t['ceiling']['accuracy'], 4)})" if t else ""
    if s["history"] and s["history"].get("best_epoch") is not None:
        h = s["history"]
        i = h["epoch"].index(h["best_epoch"]) if h["best_epoch"] in h["epoch"] else None
        if i is not None:
            doc.p(f"Best epoch {h['best_epoch']} (chosen on validation): train error {_f(h['train_error'][i], 4)}, "
                  f"validation error {_f(h['val_error'][i], 4)}"
                  + (f", test error {_f(h['test_error'][i], 4)}{ceil_err}" if h.get("test_error") else "") + ".")
    if s["learning_curve"]:
        lc = s["learning_curve"]
        doc.table(["training examples", "train error", "test error"],
                  [[n, _f(a, 4), _f(e, 4)] for n, a, e in zip(lc["n_train"], lc["train_error"], lc["test_error"])])
        if t:
            doc.p(f"The errors are against the volunteer labels{ceil_err}.")
    if t:
        _doc_model_truth(doc, s, figs)


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------

def build_report(model_dirs, out_dir, truth_path=None, target_fnr=None, min_support: int = TARGET_MIN_SUPPORT) -> dict:
    """Write report.md, report.html, report.json and the PNG figures for ``model_dirs`` into ``out_dir``.

    ``truth_path``: the simulator's labels directory or its truth.parquet (ccds.parquet is read
    from beside it): adds every figure against the truth, the ceilings of the volunteer-label
    figures, recall vs strength with the floor, and makes the issue's targets assessable;
    without it (real data) the truth rows are NOT ASSESSED.
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
    for s, slug in zip(models, slugs):
        figs = {}
        t = s.get("truth")
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
            fig_curve(curve, chosen, f"{title}: FPR vs FNR (volunteer labels)", os.path.join(out_dir, figs["fpr_fnr"]),
                      s.get("target_fnr"),
                      ceiling={"fpr": t["ceiling"]["binary"]["fpr"], "fnr": t["ceiling"]["binary"]["fnr"]} if t else None)
        if s["history"]:
            figs["history"] = f"{slug}_error_vs_epoch.png"
            fig_history(s["history"], f"{title}: error vs epoch", os.path.join(out_dir, figs["history"]))
        if s["learning_curve"]:
            figs["learning_curve"] = f"{slug}_learning_curve.png"
            fig_learning_curve(s["learning_curve"], f"{title}: learning curve", os.path.join(out_dir, figs["learning_curve"]))
        if t is not None:
            s["recall_vs_strength"] = t["recall_vs_strength"]
            if any(r["n"] for r in t["recall_vs_strength"]):
                figs["recall_vs_strength"] = f"{slug}_recall_vs_strength.png"
                fig_recall_strength(t["recall_vs_strength"],
                                    f"{title}: recall of injected artifacts vs strength (test CCDs; grey: mostly "
                                    "below the floor)", os.path.join(out_dir, figs["recall_vs_strength"]),
                                    t["strength_floor"])
            else:
                warnings.append(f"{s['name']}: no truth row falls on a test CCD (is the truth table from the "
                                "archive these models were trained on?)")
        s["figures"] = figs

    comparisons = _compare(models, preds, frames)
    targets = _targets(models, comparisons)

    # ---- the document
    doc = _Doc()
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    doc.h(1, "artifactspark model report")
    doc.p(f"Generated {now} from {len(models)} model director{'y' if len(models) == 1 else 'ies'}. Every number is "
          "computed on the held-out test split (predictions_test.parquet); thresholds were chosen on the "
          "validation split. "
          + (f"Truth: {source['truth']}." if source else
             f"No truth table was given ({NO_TRUTH}): the targets against the truth are not assessed and the "
             "volunteer-label figures have no ceiling."))
    for w in warnings:
        doc.warn(w)
    doc.h(2, "Targets (issue 9)")
    doc.p("Against the simulator's truth: recall on CCDs with a detectable artifact (above its class's floor), FPR on "
          "clean CCDs; CCDs with only below-floor artifacts are in neither. MET / NOT MET compare the point estimate "
          "with the target; the reason gives the uncertainty (Wilson 95% intervals, exact McNemar test), the test-set "
          "size and what limits the figure. The volunteer-label rows are informational: each stands beside its "
          "ceiling (a perfect truth model scored against the same labels) and its goal is the target capped by the "
          "ceiling.")
    doc.table(["target", "basis", "model", "role", "split", "measured", "test set", "status", "reason"],
              [[t["target"], t["basis"], t["model"], t["role"], t["split_id"] or "-", t["measured"], t["test_set"],
                t["status"], t["reason"]] for t in targets])
    if tables is not None:
        _doc_truth_overview(doc, models, source, min_support)
    for sid in split_ids:
        group = [s for s in models if s["split"]["id"] == sid]
        doc.h(2, f"Models on split {sid}")
        doc.p("Against the volunteer labels" + (", each figure with its ceiling (a perfect truth model against the "
                                                 "same labels)." if tables is not None else "."))
        doc.table(["model", "kind", "problem", "test CCDs (artifact)", "accuracy", "threshold", "recall", "FPR",
                   "precision", f"macro-F1 (>= {min_support} ex.)"],
                  [[s["name"], s["kind"], s["problem"], f"{s['n']} ({s['binary']['positives']})",
                    _vc(s, s["accuracy"], ["accuracy"]), _f(s["threshold"], 4),
                    _vc(s, s["binary"]["recall"], ["binary", "recall"]), _vc(s, s["binary"]["fpr"], ["binary", "fpr"]),
                    _vc(s, s["binary"]["precision"], ["binary", "precision"]),
                    f"{_vc(s, s['macro_f1'], ['macro_f1'])} ({len(s['macro_f1_classes'])} classes)"] for s in group])
    for s in models:
        _doc_model(doc, s)
    doc.h(2, "Definitions")
    doc.p("A CCD is flagged as an artifact when p_artifact >= threshold (binary: probs[1]; multiclass: "
          "1 - p(no artifact); multilabel: the largest class probability, or the model's own 'any artifact' output). "
          "Recall = TP / artifact CCDs, FPR = FP / clean CCDs, FNR = 1 - recall; a ratio with a zero denominator is "
          "reported as 0. Confusion matrices: rows are true classes (normalised per row, counts in the cells), columns "
          "predicted. Macro-F1 is the unweighted mean of per-class F1 over the classes with at least the stated number "
          "of true test examples (multiclass: the 26 artifact classes; 'no artifact' is reported beside it). Against "
          "the truth, a CCD's class is the class of its detectable feature with the largest binned S/N; a multilabel "
          "model names its most probable class when it flags the CCD. ROC AUC counts ties as one half. The ceiling of "
          "a volunteer-label figure is that figure for a perfect truth model (flags exactly the detectable CCDs, names "
          "the truth's class, its multi-hot vector is the detectable classes) on the same labelled test CCDs.")

    md = doc.markdown()
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "report.html"), "w") as f:
        f.write(doc.html("artifactspark model report"))
    report = {"generated": now,
              "targets_definition": {"binary_recall": TARGET_RECALL, "binary_fpr": TARGET_FPR,
                                     "class_recall": TARGET_CLASS_RECALL, "macro_f1": TARGET_MACRO_F1,
                                     "mean_auc": TARGET_MEAN_AUC, "mcnemar_p": TARGET_MCNEMAR_P,
                                     "min_support": TARGET_MIN_SUPPORT},
              "models": models, "comparisons": comparisons, "targets": targets, "warnings": warnings,
              "split_ids": split_ids, "truth": source}
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(jsonable(report), f, indent=1, sort_keys=True)
    n_figs = sum(len(s["figures"]) for s in models)
    log.info("report for %d models written to %s (%d figures)", len(models), out_dir, n_figs)
    return {"out": str(out_dir), "report": os.path.join(str(out_dir), "report.html"), "models": len(models),
            "figures": n_figs, "warnings": len(warnings), "split_ids": jsonable(split_ids),
            "targets": [{"target": t["target"], "basis": t["basis"], "model": t["model"], "status": t["status"]}
                        for t in targets]}


__all__ = ["build_report", "ReportInputError", "ModelDirError", "TARGET_RECALL", "TARGET_FPR", "TARGET_CLASS_RECALL",
           "TARGET_MACRO_F1", "TARGET_MEAN_AUC", "TARGET_MCNEMAR_P", "TARGET_MIN_SUPPORT", "NO_TRUTH"]
