"""The per-CCD image steps, as pure numpy functions (no Spark, no I/O).

Order (the paper's, section 3): subtract the background, apply the mask, block-mean
downsample, arcsinh stretch. Masked pixels are left out of each bin's mean; a bin without
a valid pixel gets 0 (the sky level after background subtraction) and a masked fraction of 1.
"""
from __future__ import annotations

import numpy as np

from .errors import InputRejected


def valid_pixels(sci: np.ndarray, msk: np.ndarray, bitmask: int, wgt: np.ndarray | None = None,
                 zero_weight: bool = True) -> np.ndarray:
    """True where a pixel is usable: finite, none of ``bitmask`` set, and (optionally) WGT > 0."""
    valid = np.isfinite(sci)
    if bitmask:
        valid &= (msk & bitmask) == 0
    if zero_weight and wgt is not None:
        valid &= wgt > 0
    return valid


def estimate_background(sci: np.ndarray, valid: np.ndarray, box: int = 256, filter_size: int = 3) -> np.ndarray:
    """SExtractor-style background map (sep) from the valid pixels; used when no bkg file exists."""
    import sep

    data = np.ascontiguousarray(np.where(valid, sci, 0.0), dtype=np.float32)
    bkg = sep.Background(data, mask=~valid, bw=box, bh=box, fw=filter_size, fh=filter_size)
    return bkg.back().astype(np.float32)


def block_mean(img: np.ndarray, valid: np.ndarray, factor: int, edge: str = "crop"):
    """Masked block mean.

    Returns ``(mean, masked_fraction)``, both float32 of the binned shape. ``mean`` averages only
    valid pixels of each ``factor x factor`` block (0 where none is valid); ``masked_fraction``
    is the share of the block's pixels that are not valid.

    Shapes the factor does not divide: ``edge="crop"`` drops the trailing rows/columns;
    ``edge="pad"`` keeps them in partial edge bins whose missing pixels count as masked.
    """
    if img.shape != valid.shape or img.ndim != 2:
        raise ValueError(f"image {img.shape} and valid {valid.shape} must be equal 2-D shapes")
    if factor < 1:
        raise ValueError("factor must be >= 1")
    h, w = img.shape
    if edge == "crop":
        H, W = h // factor, w // factor
        if H == 0 or W == 0:
            raise ValueError(f"image {img.shape} is smaller than one {factor}x{factor} bin")
        img = img[: H * factor, : W * factor]
        valid = valid[: H * factor, : W * factor]
    elif edge == "pad":
        H, W = -(-h // factor), -(-w // factor)
        ph, pw = H * factor - h, W * factor - w
        if ph or pw:
            img = np.pad(img, ((0, ph), (0, pw)))
            valid = np.pad(valid, ((0, ph), (0, pw)), constant_values=False)
    else:
        raise ValueError(f"edge must be 'crop' or 'pad', not {edge!r}")
    v = valid.reshape(H, factor, W, factor)
    x = np.where(valid, img, 0.0).astype(np.float64, copy=False).reshape(H, factor, W, factor)
    total = x.sum(axis=(1, 3))
    count = v.sum(axis=(1, 3))
    mean = np.zeros((H, W), dtype=np.float64)
    np.divide(total, count, out=mean, where=count > 0)
    masked_fraction = 1.0 - count / float(factor * factor)
    return mean.astype(np.float32), masked_fraction.astype(np.float32)


def arcsinh_stretch(binned: np.ndarray, has_data: np.ndarray, softening: float = 1.0,
                    percentiles=(0.0, 100.0)):
    """The paper's stretch: ``y = arcsinh(((I - m) / (M - m)) / softening)``.

    ``m``/``M`` are the given percentiles of the bins that hold data (min and max by default, as
    in the paper); values outside [m, M] are clipped first, so y lies in
    ``[0, arcsinh(1 / softening)]``. ``softening = 1`` is the paper's transform; smaller values
    lift faint structure further. Returns ``(y, m, M)``; raises ``InputRejected`` when no bin
    holds data or the image is constant.
    """
    if not has_data.any():
        raise InputRejected("all_masked", "no valid pixel on the CCD after masking")
    vals = binned[has_data]
    lo, hi = percentiles
    m = float(vals.min()) if lo == 0 else float(np.percentile(vals, lo))
    M = float(vals.max()) if hi == 100 else float(np.percentile(vals, hi))
    if not np.isfinite(m) or not np.isfinite(M):
        raise InputRejected("non_finite", "non-finite values survived masking")
    if M <= m:
        raise InputRejected("constant_image", f"image is constant after masking (min = max = {m:g})")
    x = (np.clip(binned, m, M) - m) / (M - m)
    y = np.arcsinh(x / softening)
    return y.astype(np.float32), m, M


def preprocess_planes(sci, msk, bkg, wgt, cfg, bkg_already_subtracted: bool = False):
    """All image steps for one CCD under a :class:`PipelineConfig`.

    Returns a dict with ``image`` (stretched, float32), ``mask_frac``, ``stretch_min``,
    ``stretch_max``, ``masked_fraction`` (whole CCD) and ``bkg_source``.
    """
    valid = valid_pixels(sci, msk, cfg.mask.bitmask, wgt, cfg.mask.zero_weight)
    if not np.isfinite(sci).any():
        raise InputRejected("all_nan", "SCI holds no finite pixel")
    if not valid.any():
        raise InputRejected("all_masked", "every pixel is masked (MSK bits / zero weight / NaN)")
    if bkg_already_subtracted:
        source, sub = "presubtracted", sci
    elif bkg is not None:
        if not np.isfinite(bkg[valid]).all():
            raise InputRejected("bad_background", "background model has non-finite values on valid pixels")
        source, sub = "file", sci - bkg
    elif cfg.background.missing == "estimate":
        source = "estimated"
        sub = sci - estimate_background(sci, valid, cfg.background.estimate_box, cfg.background.estimate_filter)
    else:
        raise InputRejected("missing_background", "no *_bkg file for this CCD and [background] missing = quarantine")
    mean, frac = block_mean(sub, valid, cfg.downsample.factor, cfg.downsample.edge)
    has_data = frac < 1.0
    y, m, M = arcsinh_stretch(mean, has_data, cfg.stretch.softening, cfg.stretch.percentiles)
    if not np.isfinite(y).all():  # cannot happen after clipping; kept as the store's guard
        raise InputRejected("non_finite", "stretched image is not finite")
    return {"image": y, "mask_frac": frac, "stretch_min": m, "stretch_max": M,
            "masked_fraction": float(1.0 - valid.mean()), "bkg_source": source}
