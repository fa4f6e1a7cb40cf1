"""Is an injected artifact detectable at all? Floors derived from physics, one per class family.

A model can only be asked to find what the preprocessed image still shows. For every injected
feature the simulator measures, on its noise-free contribution ``D`` to SCI - BKG (what the
pipeline sees after background subtraction) and on the pixels the pipeline keeps (unmasked):

``sn_binned``
    the matched-filter S/N of ``D`` in the block-mean image at the default factor 8, with white
    sky noise only: ``sqrt(sum_b n_b * mean_b(D)^2) / sigma`` over bins ``b`` with ``n_b``
    valid pixels. The best any detector that knew the feature's shape could do after binning.
``contrast``
    the largest ``|mean_b(D)|`` over the bins, in units of the background model's own error
    (``bkg_error * sigma``, smooth over the CCD). A smooth feature fainter than the error of
    the sky model cannot be told from a sky-model error, whatever its S/N.
``n_sharp``
    the valid pixels where ``|D| >= 5 sigma``: sharp structure that the per-bin maximum and
    spread channels keep although the block mean dilutes it.
``mask_frac``
    the share of the CCD that the feature newly masked (Excessive mask: the mask is the evidence).

Floors (``FLOORS``; a feature is ``detectable`` when it passes its family's rule):

- ``compact`` (tracks, columns, cross-talk, bleeds, arcs, readout, shutter trails):
  ``sn_binned >= SN_FLOOR`` or ``n_sharp >= SHARP_FLOOR``;
- ``smooth`` (sky-model errors, flat-field and scattered-light patterns):
  ``sn_binned >= SN_FLOOR`` and ``contrast >= CONTRAST_FLOOR``;
- ``mask`` (Excessive mask): ``mask_frac >= MASK_FLOOR``;
- ``erased_by_binning`` (Guiding): never. Guiding changes the pixels only through a PSF shear of
  a few tenths of a pixel, which the 8x8 block mean erases. It is still simulated and reported
  (its CCDs are neither "detectable" nor "clean" in the truth evaluation), not hidden.

``SN_FLOOR = 15``: a matched filter of known shape at a known place needs S/N ~5; the model
knows neither, and stars and galaxies add confusion noise, so three times that is asked.
``CONTRAST_FLOOR = 2``: twice the background model's error. ``SHARP_FLOOR = 10`` pixels at
5 sigma: about one bin's worth of a one-pixel-wide track.
"""

from __future__ import annotations

import math

import numpy as np

#: Block-mean factor the floors are measured at (the pipeline's default [downsample] factor).
FACTOR = 8
SN_FLOOR = 15.0
CONTRAST_FLOOR = 2.0
SHARP_SIGMA = 5.0
SHARP_FLOOR = 10
MASK_FLOOR = 0.02

COMPACT = (
    "Satellite",
    "Airplane",
    "Cosmic ray",
    "Column mask",
    "Cross-talk",
    "Edge-bleed",
    "Bright arc",
    "Readout",
    "Shutter",
)
SMOOTH = (
    "Dark rim",
    "Dark halo",
    "Quilted sky",
    "Wavy sky",
    "Anti-bleed",
    "A/B jump",
    "Fringing",
    "Tape bump",
    "Tree rings",
    "Vertical jump",
    "Ghost",
    "Bright spray",
    "Brush strokes",
    "Haze",
    "Vertical stripes",
)
MASK = ("Excessive mask",)
ERASED = ("Guiding",)
FLOOR_RULE = {
    **{c: "compact" for c in COMPACT},
    **{c: "smooth" for c in SMOOTH},
    **{c: "mask" for c in MASK},
    **{c: "erased_by_binning" for c in ERASED},
}
FLOORS = {
    "compact": f"sn_binned >= {SN_FLOOR} or n_sharp >= {SHARP_FLOOR}",
    "smooth": f"sn_binned >= {SN_FLOOR} and contrast >= {CONTRAST_FLOOR}",
    "mask": f"mask_frac >= {MASK_FLOOR}",
    "erased_by_binning": "never (the 8x8 block mean erases it)",
}


def _binned_sums(d: np.ndarray, valid: np.ndarray, factor: int):
    h, w = d.shape[0] // factor * factor, d.shape[1] // factor * factor
    x = np.where(valid[:h, :w], d[:h, :w], np.float32(0)).reshape(h // factor, factor, w // factor, factor)
    s = x.sum(axis=(1, 3), dtype=np.float64)
    n = valid[:h, :w].reshape(h // factor, factor, w // factor, factor).sum(axis=(1, 3))
    return s, n


def measure(
    cls: str,
    d: np.ndarray,
    valid: np.ndarray,
    sigma: float,
    bkg_error: float,
    mask_frac: float = 0.0,
    factor: int = FACTOR,
) -> dict:
    """Detectability numbers of one feature: its noise-free contribution ``d`` to SCI - BKG,
    the pipeline's ``valid`` pixels, the sky ``sigma`` per pixel, the background model's relative
    error ``bkg_error`` and the share of the CCD the feature newly masked."""
    rule = FLOOR_RULE.get(cls)
    if rule is None:
        raise ValueError(f"no detectability floor for class {cls!r}; known: {sorted(FLOOR_RULE)}")
    if d.shape != valid.shape or sigma <= 0:
        raise ValueError(f"d {d.shape} and valid {valid.shape} must match and sigma ({sigma}) be > 0")
    s, n = _binned_sums(d, valid, factor)
    good = n > 0
    sn = math.sqrt(float(np.sum(s[good] ** 2 / n[good]))) / sigma if good.any() else 0.0
    peak = float(np.max(np.abs(s[good] / n[good]))) if good.any() else 0.0
    contrast = peak / (bkg_error * sigma) if bkg_error > 0 else math.inf
    n_sharp = int(np.count_nonzero(valid & (np.abs(d) >= SHARP_SIGMA * sigma)))
    if rule == "compact":
        ok = sn >= SN_FLOOR or n_sharp >= SHARP_FLOOR
    elif rule == "smooth":
        ok = sn >= SN_FLOOR and contrast >= CONTRAST_FLOOR
    elif rule == "mask":
        ok = mask_frac >= MASK_FLOOR
    else:
        ok = False
    return {
        "sn_binned": round(sn, 3),
        "contrast": round(min(contrast, 1e9), 3),
        "n_sharp": n_sharp,
        "mask_frac_added": round(float(mask_frac), 4),
        "floor_rule": rule,
        "detectable": bool(ok),
    }


class Recorder:
    """Snapshot the planes before an injection, measure the feature after it.

    ``with Recorder(cv, bits, bkg_error) as rec: inject(...)`` then ``rec.result(cls)``."""

    def __init__(self, cv, bitmask: int, bkg_error: float):
        self.cv, self.bitmask, self.bkg_error = cv, bitmask, bkg_error

    def __enter__(self):
        self.sig0, self.bkg0 = self.cv.sig.copy(), self.cv.bkg.copy()
        self.masked0 = (self.cv.msk & self.bitmask) != 0
        return self

    def __exit__(self, *exc):
        return False

    def result(self, cls: str) -> dict:
        """The measured feature (:func:`measure`) of what was injected since the snapshot."""
        cv = self.cv
        d = (cv.sig - self.sig0) - (cv.bkg - self.bkg0)
        masked = (cv.msk & self.bitmask) != 0
        added = float(np.count_nonzero(masked & ~self.masked0)) / masked.size
        out = measure(cls, d, ~masked, cv.sigma, self.bkg_error, added)
        self.sig0 = self.bkg0 = None
        return out
