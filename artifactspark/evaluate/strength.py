"""Recall against artifact strength (simulated data): per class and strength bin, and the strength
that best separates the detectable features from the below-floor ones."""

from __future__ import annotations

import numpy as np

from .scores import _bool, _ratio

STRENGTH_COLUMNS = ("sn_binned", "snr", "amplitude")


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
        raise ValueError(
            f"the truth table has none of the strength columns {list(strength)}; columns: {list(t.columns)}"
        )
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
            floor = strength_floor(
                rg[name].to_numpy(dtype=np.float64, na_value=np.nan) if name in rg.columns else np.zeros(0),
                _bool(rg["detectable"]),
            )
        s = s[fin]
        edges = _strength_edges(s, bins)
        idx = np.searchsorted(edges, s, side="right") - 1
        idx[s == edges[-1]] = len(edges) - 2  # the last bin is closed on the right
        inside = (idx >= 0) & (idx <= len(edges) - 2)
        for b in range(len(edges) - 1):
            sel = inside & (idx == b)
            n = int(sel.sum())
            row = {
                "cls": cls,
                "strength": name,
                "bin": b,
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "n": n,
                "detected": int(det[sel].sum()),
                "recall": _ratio(det[sel].sum(), n),
                "n_no_strength": n_no,
            }
            if has_rep:
                row["reported"] = int(rep[sel].sum())
                row["volunteer_recall"] = _ratio(rep[sel].sum(), n)
            if has_det:
                nb = int(below[sel].sum())
                row.update(
                    n_below_floor=nb,
                    below_floor=bool(n and 2 * nb > n),
                    floor_strength=floor["value"],
                    floor_misplaced=floor["misplaced"],
                )
            out.append(row)
    cols = ["cls", "strength", "bin", "lo", "hi", "n", "detected", "recall"]
    cols += (["reported", "volunteer_recall"] if has_rep else []) + ["n_no_strength"]
    cols += ["n_below_floor", "below_floor", "floor_strength", "floor_misplaced"] if has_det else []
    return pd.DataFrame(out, columns=cols)
