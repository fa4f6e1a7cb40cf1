"""The per-CCD image steps, as pure numpy functions (no Spark, no I/O).

Order (the paper's, section 3): subtract the background, apply the mask, block-mean
downsample, arcsinh stretch. Masked pixels are left out of each bin's mean; a bin without
a valid pixel gets 0 (the sky level after background subtraction) and a masked fraction of 1.

The block mean erases what is sharp (cosmic rays, thin tracks, single bad columns), so two
more per-bin channels keep it at the same binned size, in units of the CCD's robust sky noise
(:func:`noise_sigma`): the bin's maximum (``max_sn``) and its robust spread (``spread_sn``,
interquartile range / 1.349, i.e. 1 for pure Gaussian sky), see :func:`bin_sharpness`.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputRejected


def valid_pixels(
    sci: np.ndarray, msk: np.ndarray, bitmask: int, wgt: np.ndarray | None = None, zero_weight: bool = True
) -> np.ndarray:
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


def _binnable(img: np.ndarray, valid: np.ndarray, factor: int, edge: str):
    """Crop or pad ``img``/``valid`` to whole ``factor x factor`` bins; returns ``(img, valid, H, W)``.

    ``edge="crop"`` drops the trailing rows/columns; ``edge="pad"`` adds them as invalid pixels.
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
    return img, valid, H, W


def block_mean(img: np.ndarray, valid: np.ndarray, factor: int, edge: str = "crop"):
    """Masked block mean.

    Returns ``(mean, masked_fraction)``, both float32 of the binned shape. ``mean`` averages only
    valid pixels of each ``factor x factor`` block (0 where none is valid); ``masked_fraction``
    is the share of the block's pixels that are not valid.

    Shapes the factor does not divide: ``edge="crop"`` drops the trailing rows/columns;
    ``edge="pad"`` keeps them in partial edge bins whose missing pixels count as masked.
    """
    img, valid, H, W = _binnable(img, valid, factor, edge)
    v = valid.reshape(H, factor, W, factor)
    x = np.where(valid, img, 0.0).astype(np.float64, copy=False).reshape(H, factor, W, factor)
    total = x.sum(axis=(1, 3))
    count = v.sum(axis=(1, 3))
    mean = np.zeros((H, W), dtype=np.float64)
    np.divide(total, count, out=mean, where=count > 0)
    masked_fraction = 1.0 - count / float(factor * factor)
    return mean.astype(np.float32), masked_fraction.astype(np.float32)


#: Pixels :func:`noise_sigma` looks at (a deterministic strided subsample): ~0.3 % precision.
NOISE_SAMPLE = 1 << 17
#: 1.4826 * MAD and IQR / 1.349 are the standard deviation of Gaussian noise.
MAD_TO_SIGMA = 1.482602218505602
IQR_TO_SIGMA = 1.0 / (2 * 0.6744897501960817)
#: Largest finite float16: the sharpness channels are clipped to it (the store may be float16).
FLOAT16_MAX = float(np.finfo(np.float16).max)


def noise_sigma(sub: np.ndarray, valid: np.ndarray, sample: int = NOISE_SAMPLE) -> float:
    """Robust sky noise of a background-subtracted CCD: 1.4826 x MAD of its valid pixels.

    Looks at every ``step``-th pixel in memory order (about ``sample`` valid ones), with ``step``
    coprime to the row length so that the subsample cycles through every column (a bad column
    cannot be hit, or missed, systematically). Deterministic. Raises ``InputRejected`` with
    ``all_masked`` when no pixel is valid, ``constant_image`` when the noise is 0 (more than
    half of the valid pixels share one value) and ``non_finite`` when it is not finite.
    """
    if sub.shape != valid.shape or sub.ndim != 2:
        raise ValueError(f"image {sub.shape} and valid {valid.shape} must be equal 2-D shapes")
    n_valid = int(np.count_nonzero(valid))
    if n_valid == 0:
        raise InputRejected("all_masked", "no valid pixel to measure the sky noise on")
    step = max(1, n_valid // sample)
    while math.gcd(step, sub.shape[1]) != 1:
        step += 1
    flat, vflat = sub.reshape(-1), valid.reshape(-1)
    x = flat[::step][vflat[::step]]
    if x.size < min(n_valid, 64):  # masking concentrated on the sampled positions: use all
        x = flat[vflat]
    x = x.astype(np.float64)
    med = np.median(x)
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(x - med)))
    if not math.isfinite(sigma):
        raise InputRejected("non_finite", f"sky noise is not finite ({sigma})")
    if sigma <= 0:
        raise InputRejected("constant_image", "sky noise is 0: more than half of the valid pixels have the same value")
    return sigma


def bin_sharpness(sub: np.ndarray, valid: np.ndarray, factor: int, sigma: float, edge: str = "crop"):
    """Per-bin maximum and robust spread of the valid pixels, in units of ``sigma``.

    Returns ``(max_sn, spread_sn)``, float32 of the binned shape (same bins and edge handling as
    :func:`block_mean`). ``max_sn`` is the largest ``sub / sigma`` among the bin's valid pixels
    (a cosmic ray, which the bin mean dilutes 64-fold, or a bad column or thin track, 8-fold).
    ``spread_sn`` is the
    interquartile range of the bin's valid ``sub / sigma`` divided by 1.349 (linear interpolation
    between order statistics, as ``np.percentile``): about 1 in pure sky noise, robust to a single
    outlier pixel and large where a track, an edge or a jump crosses the bin. A bin without a
    valid pixel gets 0 in both. Values are clipped to the float16 range.

    One sort of every bin's pixels gives both (the maximum is the last valid value, the quartiles
    are read at their ranks): ~0.03 s for a 4096 x 2048 CCD (benchmarks/bench_channels.py).
    """
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, not {sigma}")
    img, valid, H, W = _binnable(sub, np.asarray(valid, dtype=bool), factor, edge)
    K = factor * factor
    # (H, W, f*f) copy of the bins with invalid pixels as +inf: sorted, they come last.
    x = np.where(valid, img, np.inf).reshape(H, factor, W, factor).transpose(0, 2, 1, 3).reshape(H * W, K)
    x.sort(axis=1)
    # valid pixels per bin: down the bin's rows, then across its columns (short strided sums)
    cols = np.add.reduce(valid.reshape(H, factor, W * factor).view(np.uint8), axis=1, dtype=np.uint16)
    cols = cols.reshape(H * W, factor)
    count = cols[:, 0].astype(np.intp)
    for k in range(1, factor):
        count += cols[:, k]
    last = np.maximum(count, 1) - 1  # rank of the largest valid value
    flat = x.reshape(-1)
    base = np.arange(H * W, dtype=np.intp) * K

    def quantile(q):  # np.percentile's "linear" rule, per bin, on its `count` valid values
        pos = last * q
        lo = pos.astype(np.intp)
        hi = np.minimum(lo + 1, last)
        a, b = flat[base + lo].astype(np.float64), flat[base + hi].astype(np.float64)
        return a + (b - a) * (pos - lo)

    has = count > 0
    with np.errstate(invalid="ignore"):  # inf - inf in bins without a valid pixel, replaced by 0
        mx = np.where(has, flat[base + last].astype(np.float64), 0.0) / sigma
        spread = np.where(has, quantile(0.75) - quantile(0.25), 0.0) * (IQR_TO_SIGMA / sigma)
    mx = np.clip(mx, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float32).reshape(H, W)
    spread = np.clip(spread, 0.0, FLOAT16_MAX).astype(np.float32).reshape(H, W)
    return mx, spread


def bin_laplacian_max(sub: np.ndarray, valid: np.ndarray, factor: int, sigma: float, edge: str = "crop"):
    """Per-bin maximum of the discrete Laplacian excess ``(p - mean of its 4 neighbours) / sigma``
    over pixels that are valid together with their 4 neighbours (``sharp_sn``).

    Why: ``max_sn`` cannot tell a cosmic ray from the ~3000 stars and galaxies of a CCD, both are
    bright peaks. What tells them apart is the PSF: a star's pixel exceeds its neighbours by a
    fraction of its peak (about 0.3 at a 1.2-pixel PSF sigma), a cosmic ray, a hot or dark column,
    a thin track or readout hatching by most of theirs (0.5-1). ``sharp_sn`` next to ``max_sn``
    gives the network that ratio (after the model's arcsinh, a difference). A dark column shows
    through its neighbours, which exceed it. Border pixels and bins without a usable pixel get 0.
    """
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, not {sigma}")
    x = np.asarray(sub, np.float32)
    valid = np.asarray(valid, dtype=bool)
    lap = np.full(x.shape, -np.inf, np.float32)  # -inf: no usable pixel (border, masked)
    inner = lap[1:-1, 1:-1]
    np.add(x[:-2, 1:-1], x[2:, 1:-1], out=inner)
    inner += x[1:-1, :-2]
    inner += x[1:-1, 2:]
    inner *= np.float32(-0.25)
    inner += x[1:-1, 1:-1]
    bad = ~valid[1:-1, 1:-1]
    bad |= ~valid[:-2, 1:-1]
    bad |= ~valid[2:, 1:-1]
    bad |= ~valid[1:-1, :-2]
    bad |= ~valid[1:-1, 2:]
    np.putmask(inner, bad, -np.inf)
    lap, _, H, W = _binnable(lap, np.ones(lap.shape, bool), factor, edge)  # neighbours beyond a cropped edge count
    if edge == "pad":
        lap = np.where(_binnable(valid, valid, factor, edge)[1], lap, -np.inf)
    lap = lap.reshape(H, factor, W, factor).max(axis=(1, 3))
    out = np.where(np.isfinite(lap), lap / np.float32(sigma), 0.0)
    return np.clip(out, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float32)


def arcsinh_stretch(binned: np.ndarray, has_data: np.ndarray, softening: float = 1.0, percentiles=(0.0, 100.0)):
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

    Returns a dict with ``image`` (stretched, float32), ``mask_frac``, ``max_sn``, ``spread_sn``
    (float32, binned shape), ``stretch_min``, ``stretch_max``, ``noise_sigma`` (the sky noise the
    sharpness channels are in units of), ``masked_fraction`` (whole CCD) and ``bkg_source``.
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
    sigma = noise_sigma(sub, valid)
    max_sn, spread_sn = bin_sharpness(sub, valid, cfg.downsample.factor, sigma, cfg.downsample.edge)
    sharp_sn = bin_laplacian_max(sub, valid, cfg.downsample.factor, sigma, cfg.downsample.edge)
    return {
        "image": y,
        "mask_frac": frac,
        "max_sn": max_sn,
        "spread_sn": spread_sn,
        "sharp_sn": sharp_sn,
        "stretch_min": m,
        "stretch_max": M,
        "noise_sigma": sigma,
        "masked_fraction": float(1.0 - valid.mean()),
        "bkg_source": source,
    }
