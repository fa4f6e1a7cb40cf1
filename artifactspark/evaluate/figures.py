"""The report's figures (matplotlib, Agg): confusion matrices, FPR vs FNR, error vs epoch, the
learning curve, per-class bars and recall vs strength."""

from __future__ import annotations

import math

import numpy as np

from .targetdefs import TARGET_FPR, TARGET_RECALL

ANNOTATE_MAX_CLASSES = 30  # confusion matrices up to this size get their counts written in the cells


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
                    ax.text(
                        j,
                        i,
                        str(int(counts[i, j])),
                        ha="center",
                        va="center",
                        fontsize=fs,
                        color="white" if norm[i, j] > 0.6 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.04, label="fraction of the true class's CCDs")
    _save(fig, path)


def fig_curve(curve, chosen, title, path, target_fnr=None, ceiling=None):
    """FPR vs FNR, each point coloured by its threshold; the chosen threshold marked (fig. 5).

    ``ceiling``: ``{"fpr", "fnr"}`` of the perfect truth model against the same volunteer labels
    (marked with a black cross), when the truth is known."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.6))
    sc = ax.scatter(curve["fpr"], curve["fnr"], c=curve["thresholds"], cmap="viridis", s=8, vmin=0.0, vmax=1.0)
    fig.colorbar(sc, ax=ax, label="threshold on p_artifact (flag if p >= threshold)")
    ax.plot(
        [chosen["fpr"]],
        [chosen["fnr"]],
        marker="*",
        color="red",
        markersize=15,
        linestyle="none",
        label=f"chosen threshold {chosen['threshold']:.3g}: FPR {chosen['fpr']:.3f}, FNR {chosen['fnr']:.3f}",
    )
    if ceiling is not None:
        ax.plot(
            [ceiling["fpr"]],
            [ceiling["fnr"]],
            marker="P",
            color="black",
            markersize=11,
            linestyle="none",
            label=f"ceiling (perfect truth model): FPR {ceiling['fpr']:.3f}, FNR {ceiling['fnr']:.3f}",
        )
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
    for key, style, lab in (
        ("train_error", "--", "train"),
        ("val_error", ":", "validation"),
        ("test_error", "-", "test"),
    ):
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
        ax.scatter(
            x[below],
            rec[below],
            facecolors="white",
            edgecolors="C0",
            zorder=3,
            s=18,
            label="bin mostly below the floor",
        )
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
    for ax in list(axes.flat)[len(classes) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("recall")
    handles = {}
    for ax in axes.flat:
        for hnd, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, hnd)
    fig.legend(
        list(handles.values()), list(handles.keys()), fontsize=6, loc="lower center", ncol=len(handles), frameon=False
    )
    fig.suptitle(title, fontsize=9, y=1 - 0.08 / h, va="top")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.75 / h, top=1 - 0.75 / h, hspace=0.75, wspace=0.15)
    _save(fig, path, tight=False, dpi=90)
