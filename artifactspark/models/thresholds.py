"""Decision thresholds chosen on the validation side, by rules that stay stable with few positives.

The old rule, "the largest threshold whose validation FNR is at most target_fnr", is an extreme
order statistic: with 40 validation positives and target 0.02 no miss is allowed, so the
threshold is the lowest positive score, and one positive the model cannot see (a volunteer's
report of an artifact below the detectability floor) drives the FPR towards 1.

``cost_threshold`` minimises ``fn_cost * FNR(t) + FPR(t)`` instead. Every positive and every
negative counts, a few invisible positives at the bottom of the ranking cost the same wherever
the threshold is and so do not move it, and the bootstrap median over resamples of the
validation side smooths the step function. ``fn_cost`` says how many false alarms (as rates)
one miss is worth; 5 puts the threshold well on the recall side.
"""

from __future__ import annotations

import numpy as np


def _best_cost_threshold(pos: np.ndarray, neg: np.ndarray, fn_cost: float) -> float:
    """argmin over candidate thresholds (midpoints between sorted distinct scores, plus the
    ends) of fn_cost * FNR + FPR; ties -> the midpoint of the tied range."""
    scores = np.unique(np.concatenate([pos, neg]))
    cands = np.concatenate([[scores[0] - 1e-6], (scores[1:] + scores[:-1]) / 2, [scores[-1] + 1e-6]])
    pos_s, neg_s = np.sort(pos), np.sort(neg)
    fnr = np.searchsorted(pos_s, cands, side="left") / max(len(pos_s), 1)  # share of positives < t
    fpr = 1.0 - np.searchsorted(neg_s, cands, side="left") / max(len(neg_s), 1)  # share of negatives >= t
    cost = fn_cost * fnr + fpr
    best = np.flatnonzero(cost <= cost.min() + 1e-12)
    return float((cands[best[0]] + cands[best[-1]]) / 2)


def cost_threshold(y01, p, fn_cost: float = 5.0, n_boot: int = 200, seed: int = 0) -> float:
    """The threshold on ``p`` minimising ``fn_cost * FNR + FPR`` on (y01, p), as the median
    over ``n_boot`` stratified bootstrap resamples (0 -> no resampling). Needs at least one
    positive and one negative (ValueError otherwise)."""
    y = np.asarray(y01).astype(bool)
    p = np.asarray(p, np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y {y.shape} and p {p.shape} must be equal 1-D shapes")
    pos, neg = p[y], p[~y]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"the cost rule needs positives and negatives (got {len(pos)} and {len(neg)})")
    if n_boot <= 0:
        return _best_cost_threshold(pos, neg, fn_cost)
    rng = np.random.default_rng(seed)
    ts = [_best_cost_threshold(rng.choice(pos, len(pos)), rng.choice(neg, len(neg)), fn_cost) for _ in range(n_boot)]
    return float(np.median(ts))


def class_thresholds(
    multi_hot, probs, fn_cost: float, min_positives: int = 5, default: float = 0.5, seed: int = 0
) -> tuple[list[float], list[str]]:
    """Per-class thresholds of a multi-label model from validation: the cost rule on each class
    with at least ``min_positives`` positives and one negative; ``default`` otherwise.
    Returns (thresholds, how) with one entry per class."""
    mh = np.asarray(multi_hot).astype(bool)
    probs = np.asarray(probs, np.float64)
    out, how = [], []
    for c in range(probs.shape[1]):
        y = mh[:, c] if len(mh) else np.zeros(0, bool)
        if y.sum() >= min_positives and (~y).sum() >= 1:
            out.append(cost_threshold(y, probs[:, c], fn_cost, seed=seed))
            how.append("cost")
        else:
            out.append(float(default))
            how.append(f"default {default}: {int(y.sum())} validation positives < {min_positives}")
    return out, how
