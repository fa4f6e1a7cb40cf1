"""Exposure context for the many-class decision (issue 9).

Some artifacts are a property of the exposure, not of one CCD (des-data.md): wavy sky "often on
every CCD of the exposure", fringing (the band), haze "over the whole exposure", guiding (every
source elongated the same way), shutter trails. A CCD-level network sees one CCD and confuses them
with local look-alikes: a scattered-light fan (Bright spray) on one CCD looks like haze on it.

The rule: when the many-class decision names a CCD's class (``argmax`` of the multi-label
sigmoids), each whole-exposure class c competes with

    p'_c = min(p_c, median of p_c over the CCDs of its exposure)

so a CCD is named after a whole-exposure class only as strongly as the exposure's typical CCD
supports it. The median needs no fitting and ignores a few odd CCDs. With fewer than ``MIN_CCDS``
CCDs of an exposure at hand (a sparse archive, a single CCD) nothing changes.

What the rule does not touch: the probabilities the model writes (predictions files, the
predictions table's ``class_probs`` and ``predicted_classes``), P(any artifact), the binary
decision and the multi-label scores all stay the CCD's own. An archive whose "whole-exposure"
artifacts sit on single CCDs therefore loses at most the many-class naming of those CCDs, not
their detection.

Measured on quality run 2's network (benchmarks/RESULTS.md, "Exposure context"): many-class
macro-F1 vs truth 0.49 -> 0.66 on test, 0.46 -> 0.60 on validation.
"""

from __future__ import annotations

import numpy as np

#: des-data.md's classes that cover the whole exposure. ``[train] exposure_classes``.
WHOLE_EXPOSURE = ("Wavy sky", "Fringing", "Haze", "Guiding", "Shutter")
#: Fewer CCDs of an exposure than this: no context (the median of one or two is no consensus).
MIN_CCDS = 3


def exposure_context(probs, expnum, classes, exposure_classes=WHOLE_EXPOSURE, min_ccds: int = MIN_CCDS):
    """``probs`` (n x len(classes)) with the whole-exposure columns capped at their exposure median.

    ``expnum``: the exposure of each row. Classes in ``exposure_classes`` that the model does not
    have are ignored. Returns a new float array; ``probs`` is not modified.
    """
    p = np.array(probs, dtype=np.float64, copy=True)
    exp = np.asarray(expnum)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"probs must be n x {len(classes)} (the classes), got shape {p.shape}")
    if exp.shape != (p.shape[0],):
        raise ValueError(f"expnum must have one entry per row ({p.shape[0]}), got shape {exp.shape}")
    cols = [i for i, c in enumerate(classes) if c in set(exposure_classes)]
    if not cols or not len(p):
        return p
    order = np.argsort(exp, kind="stable")
    bounds = np.flatnonzero(np.diff(exp[order])) + 1
    for rows in np.split(order, bounds):
        if len(rows) < min_ccds:
            continue
        block = p[np.ix_(rows, cols)]
        p[np.ix_(rows, cols)] = np.minimum(block, np.median(block, axis=0)[None, :])
    return p


def context_probs(meta: dict, probs, expnum):
    """``probs`` as the many-class decision of a multi-label model sees them: with the rule when
    model.json has ``exposure_context`` (and ``expnum`` is given), else unchanged."""
    ctx = meta.get("exposure_context")
    if not ctx or meta.get("problem") != "multilabel" or expnum is None:
        return probs
    return exposure_context(probs, expnum, meta["classes"], ctx["classes"], int(ctx.get("min_ccds", MIN_CCDS)))
