"""Exposure context for the whole-exposure classes (issue 9, many-class view).

Some artifacts are a property of the exposure, not of one CCD (des-data.md): wavy sky "often on
every CCD of the exposure", fringing (the band), haze "over the whole exposure", guiding (every
source elongated the same way), shutter trails. A CCD-level network sees one CCD and confuses them
with local look-alikes: a scattered-light fan (Bright spray) on one CCD looks like haze on it.

The rule: for each whole-exposure class c, a CCD's probability becomes

    p'_c = min(p_c, median of p_c over the CCDs of its exposure)

so a CCD claims a whole-exposure class only as strongly as the exposure's typical CCD does. The
median needs no fitting, ignores a few odd CCDs, and leaves every other class untouched. With fewer
than ``MIN_CCDS`` CCDs of an exposure at hand (a sparse archive, a single CCD) the probabilities are
kept as they are. P(any artifact) is not changed: the binary decision stays per CCD.

Measured on quality run 2's stored predictions (benchmarks/RESULTS.md, "Exposure context"):
many-class macro-F1 vs truth 0.44 -> 0.63 on test and 0.46 -> 0.60 on validation.
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
