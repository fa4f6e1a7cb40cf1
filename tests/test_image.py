"""The numpy image steps against independent, plain-loop computations."""

import numpy as np
import pytest

from artifactspark.config import PipelineConfig, config_from_dict
from artifactspark.errors import InputRejected
from artifactspark.features.image import (
    arcsinh_stretch,
    bin_sharpness,
    block_mean,
    noise_sigma,
    preprocess_planes,
    valid_pixels,
)


def loop_block_mean(img, valid, f, edge):
    h, w = img.shape
    H, W = (h // f, w // f) if edge == "crop" else (-(-h // f), -(-w // f))
    mean = np.zeros((H, W))
    frac = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            s, n = 0.0, 0
            for r in range(i * f, (i + 1) * f):
                for c in range(j * f, (j + 1) * f):
                    if r < h and c < w and valid[r, c]:
                        s += float(img[r, c])
                        n += 1
            mean[i, j] = s / n if n else 0.0
            frac[i, j] = 1 - n / (f * f)
    return mean, frac


@pytest.mark.parametrize(
    "shape,f,edge", [((32, 16), 4, "crop"), ((35, 19), 4, "crop"), ((35, 19), 4, "pad"), ((8, 8), 8, "crop")]
)
def test_block_mean_matches_loop(shape, f, edge):
    rng = np.random.default_rng(1)
    img = rng.normal(5, 3, shape).astype(np.float32)
    valid = rng.random(shape) > 0.3
    valid[:f, :f] = False  # one fully masked bin
    mean, frac = block_mean(img, valid, f, edge)
    m2, f2 = loop_block_mean(img, valid, f, edge)
    assert mean.shape == m2.shape
    np.testing.assert_allclose(mean, m2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(frac, f2, atol=1e-6)
    assert mean[0, 0] == 0.0 and frac[0, 0] == 1.0


def test_masked_pixels_do_not_drag_the_mean():
    img = np.full((4, 4), 10.0, np.float32)
    img[0, 0] = -1e6  # a masked outlier
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False
    mean, frac = block_mean(img, valid, 4)
    assert mean[0, 0] == pytest.approx(10.0)
    assert frac[0, 0] == pytest.approx(1 / 16)


def test_block_mean_rejects_bad_arguments():
    with pytest.raises(ValueError):
        block_mean(np.zeros((4, 4)), np.ones((4, 5), bool), 2)
    with pytest.raises(ValueError):
        block_mean(np.zeros((4, 4)), np.ones((4, 4), bool), 8)  # smaller than one bin
    with pytest.raises(ValueError):
        block_mean(np.zeros((4, 4)), np.ones((4, 4), bool), 2, edge="wrap")


def test_valid_pixels_bits_weight_and_nan():
    sci = np.ones((2, 3), np.float32)
    sci[0, 2] = np.nan
    msk = np.array([[0, 16, 0], [2, 4096, 0]], np.int32)
    wgt = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
    v = valid_pixels(sci, msk, bitmask=16 | 2, wgt=wgt)
    assert v.tolist() == [[True, False, False], [False, True, False]]
    v2 = valid_pixels(sci, msk, bitmask=0, wgt=wgt, zero_weight=False)
    assert v2.tolist() == [[True, True, False], [True, True, True]]


def test_stretch_is_the_papers_formula():
    x = np.array([[0.0, 1.0], [3.0, 10.0]], np.float32)
    has = np.ones_like(x, bool)
    y, m, M = arcsinh_stretch(x, has, softening=1.0)
    assert (m, M) == (0.0, 10.0)
    np.testing.assert_allclose(y, np.arcsinh(x / 10.0), rtol=1e-6)
    y2, _, _ = arcsinh_stretch(x, has, softening=0.1)
    np.testing.assert_allclose(y2, np.arcsinh(x / 10.0 / 0.1), rtol=1e-6)
    # bins without data do not set m / M
    has[1, 1] = False
    y3, m3, M3 = arcsinh_stretch(x, has)
    assert M3 == 3.0 and y3[1, 1] == pytest.approx(np.arcsinh(1.0))  # clipped to M


def test_stretch_percentiles_clip():
    x = np.arange(101, dtype=np.float32).reshape(1, -1)
    y, m, M = arcsinh_stretch(x, np.ones_like(x, bool), percentiles=(10, 90))
    assert (m, M) == (10.0, 90.0)
    assert y.min() == 0 and y.max() == pytest.approx(np.arcsinh(1.0))


@pytest.mark.parametrize(
    "x,has,reason",
    [
        (np.ones((2, 2), np.float32), np.ones((2, 2), bool), "constant_image"),
        (np.ones((2, 2), np.float32), np.zeros((2, 2), bool), "all_masked"),
    ],
)
def test_stretch_rejects(x, has, reason):
    with pytest.raises(InputRejected) as e:
        arcsinh_stretch(x, has)
    assert e.value.reason == reason


def _planes(shape=(64, 32), seed=0):
    rng = np.random.default_rng(seed)
    bkg = np.full(shape, 100.0, np.float32) + np.linspace(0, 5, shape[1], dtype=np.float32)
    sci = bkg + rng.normal(0, 1, shape).astype(np.float32)
    sci[10:14, 10:14] += 50
    msk = np.zeros(shape, np.int32)
    msk[:, 3] = 1
    wgt = np.ones(shape, np.float32)
    return sci, msk, bkg, wgt


def loop_sharpness(img, valid, f, edge, sigma):
    """max_sn / spread_sn of every bin with a plain loop and np.percentile (independent of image.py)."""
    h, w = img.shape
    H, W = (h // f, w // f) if edge == "crop" else (-(-h // f), -(-w // f))
    mx, spread = np.zeros((H, W)), np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            vals = [
                float(img[r, c]) / sigma
                for r in range(i * f, min((i + 1) * f, h))
                for c in range(j * f, min((j + 1) * f, w))
                if valid[r, c]
            ]
            if vals:
                mx[i, j] = max(vals)
                q1, q3 = np.percentile(vals, [25, 75])
                spread[i, j] = (q3 - q1) / 1.3489795003921634
    return mx, spread


@pytest.mark.parametrize(
    "shape,f,edge",
    [
        ((32, 16), 4, "crop"),
        ((35, 19), 4, "crop"),
        ((35, 19), 4, "pad"),
        ((8, 8), 8, "crop"),
        ((37, 21), 8, "pad"),
        ((24, 24), 3, "crop"),
    ],
)
def test_sharpness_matches_loop(shape, f, edge):
    rng = np.random.default_rng(2)
    img = rng.normal(1, 7, shape).astype(np.float32)
    img[rng.random(shape) < 0.02] += 300  # hot pixels
    valid = rng.random(shape) > 0.3
    valid[:f, :f] = False  # one fully masked bin
    single = shape[0] >= 2 * f
    if single:
        valid[f : 2 * f, :f] = False
        valid[f, 0] = True  # a bin with a single valid pixel: max = it, spread 0
    img[~valid & (rng.random(shape) < 0.5)] = np.nan  # masked NaNs never leak
    mx, spread = bin_sharpness(img, valid, f, 7.0, edge)
    m2, s2 = loop_sharpness(img, valid, f, edge, 7.0)
    assert mx.shape == m2.shape == block_mean(np.nan_to_num(img), valid, f, edge)[0].shape
    assert mx.dtype == spread.dtype == np.float32
    np.testing.assert_allclose(mx, m2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(spread, s2, rtol=1e-5, atol=1e-5)
    assert mx[0, 0] == 0.0 and spread[0, 0] == 0.0
    if single:
        assert mx[1, 0] == pytest.approx(img[f, 0] / 7.0) and spread[1, 0] == 0.0
    assert np.isfinite(mx).all() and np.isfinite(spread).all()


def test_sharpness_clips_to_float16_and_rejects_bad_sigma():
    img = np.zeros((8, 8), np.float32)
    img[0, 0], img[4, 4] = 1e30, -1e30
    valid = np.ones((8, 8), bool)
    mx, spread = bin_sharpness(img, valid, 4, 1e-3)
    f16 = float(np.finfo(np.float16).max)
    assert mx[0, 0] == np.float32(f16) and mx[1, 1] == 0.0
    assert np.isfinite(mx.astype(np.float16)).all() and np.isfinite(spread.astype(np.float16)).all()
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError):
            bin_sharpness(img, valid, 4, bad)


def _sky(shape=(256, 128), sigma=10.0, seed=3):
    rng = np.random.default_rng(seed)
    return rng.normal(0, sigma, shape).astype(np.float32)


@pytest.mark.parametrize("sigma", [0.5, 10.0, 300.0])
def test_noise_sigma_of_gaussian_noise(sigma):
    sub = _sky((512, 256), sigma)
    valid = np.ones(sub.shape, bool)
    valid[:, 7] = False
    sub[:, 7] = 1e6  # a masked hot column is not looked at
    sub[100:110, 100:110] += 50 * sigma  # a bright source barely moves a MAD
    est = noise_sigma(sub, valid)
    assert est == pytest.approx(sigma, rel=0.03)
    assert noise_sigma(sub, valid) == est  # deterministic
    # the subsample is what makes it fast, not what makes it right: all pixels agree within 3 %
    assert noise_sigma(sub, valid, sample=sub.size) == pytest.approx(est, rel=0.03)


def test_noise_sigma_rejects_constant_or_empty():
    sub = np.zeros((64, 32), np.float32)
    sub[0, :5] = [1, 2, 3, 4, 5]  # not constant, but the noise (MAD) is 0
    with pytest.raises(InputRejected) as e:
        noise_sigma(sub, np.ones(sub.shape, bool))
    assert e.value.reason == "constant_image"
    with pytest.raises(InputRejected) as e:
        noise_sigma(_sky(), np.zeros((256, 128), bool))
    assert e.value.reason == "all_masked"


@pytest.mark.parametrize("kind", ["hot_pixel", "thin_column"])
def test_planted_sharp_artifact_shows_in_max_sn_not_in_block_mean(kind):
    sigma, f = 10.0, 8
    sky = _sky((256, 128), sigma, seed=4)
    valid = np.ones(sky.shape, bool)
    sub = sky.copy()
    hit = np.zeros((256 // f, 128 // f), bool)
    if kind == "hot_pixel":  # a cosmic ray: one pixel 40 sigma up, in bin (12, 5)
        excess, n_pix = 40 * sigma, 1
        sub[12 * f + 3, 5 * f + 6] += excess
        hit[12, 5] = True
    else:  # a single bad column 8 sigma up, in bin column 9
        excess, n_pix = 8 * sigma, f
        sub[:, 9 * f + 2] += excess
        hit[:, 9] = True
    s = noise_sigma(sub, valid)
    assert s == pytest.approx(sigma, rel=0.03)
    before_mean, _ = block_mean(sky, valid, f)
    before_max, _ = bin_sharpness(sky, valid, f, s)
    mean, _ = block_mean(sub, valid, f)
    mx, spread = bin_sharpness(sub, valid, f, s)
    # the block mean takes n_pix / 64 of the excess (1/64 for a pixel, 1/8 for a column) ...
    np.testing.assert_allclose((mean - before_mean)[hit], excess * n_pix / f**2, rtol=1e-4)
    np.testing.assert_allclose((mean - before_mean)[~hit], 0.0, atol=1e-5)
    # ... max_sn nearly all of it, at the right bins and only there
    assert mx[hit].min() > 0.75 * excess / s
    np.testing.assert_array_equal(mx[~hit], before_max[~hit])
    assert mx[hit].min() > mx[~hit].max()
    if kind == "hot_pixel":
        assert np.unravel_index(np.argmax(mx), mx.shape) == (12, 5)
        assert abs(mean[12, 5]) < 1.0 * sigma  # in the block mean the cosmic ray is under 1 sigma
        assert spread[12, 5] < 2.0  # the robust spread ignores a single outlier pixel
    else:
        assert (mx[:, 9] > 7).all()
    assert np.median(spread) == pytest.approx(1.0, abs=0.1)  # pure sky: IQR / 1.349 = 1 sigma


def test_preprocess_planes_against_independent_computation():
    cfg = config_from_dict({"input": {"ccd_shape": [64, 32]}, "downsample": {"factor": 8}})
    sci, msk, bkg, wgt = _planes()
    out = preprocess_planes(sci, msk, bkg, wgt, cfg)
    sub = (sci - bkg).astype(np.float64)
    valid = msk == 0
    mean, frac = loop_block_mean(sub, valid, 8, "crop")
    m, M = mean.min(), mean.max()
    np.testing.assert_allclose(out["image"], np.arcsinh((mean - m) / (M - m)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["mask_frac"], frac, atol=1e-6)
    assert out["bkg_source"] == "file"
    assert out["masked_fraction"] == pytest.approx(1 / 32)
    assert np.isfinite(out["image"]).all()
    # sharpness channels: brute force in units of a brute-force 1.4826 * MAD of all valid pixels
    v = sub[valid]
    sigma = 1.4826 * np.median(np.abs(v - np.median(v)))
    assert out["noise_sigma"] == pytest.approx(1.0, rel=0.1) and out["noise_sigma"] == pytest.approx(sigma, rel=0.02)
    mx, spread = loop_sharpness(sub, valid, 8, "crop", out["noise_sigma"])
    np.testing.assert_allclose(out["max_sn"], mx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["spread_sn"], spread, rtol=1e-4, atol=1e-4)
    assert out["max_sn"][1, 1] > 40  # the planted 4x4 source at rows/cols 10-13
    assert out["max_sn"].shape == out["spread_sn"].shape == out["image"].shape


def test_preprocess_planes_estimates_or_quarantines_missing_background():
    sci, msk, _, wgt = _planes()
    cfg = config_from_dict({"input": {"ccd_shape": [64, 32]}, "background": {"estimate_box": 16}})
    out = preprocess_planes(sci, msk, None, wgt, cfg)
    assert out["bkg_source"] == "estimated" and np.isfinite(out["image"]).all()
    cfg_q = config_from_dict({"input": {"ccd_shape": [64, 32]}, "background": {"missing": "quarantine"}})
    with pytest.raises(InputRejected) as e:
        preprocess_planes(sci, msk, None, wgt, cfg_q)
    assert e.value.reason == "missing_background"


def test_preprocess_planes_bad_images():
    cfg = PipelineConfig()
    sci, msk, bkg, wgt = _planes()
    with pytest.raises(InputRejected) as e:
        preprocess_planes(np.full_like(sci, np.nan), msk, bkg, wgt, cfg)
    assert e.value.reason == "all_nan"
    with pytest.raises(InputRejected) as e:
        preprocess_planes(sci, np.full_like(msk, 512), bkg, wgt, cfg)
    assert e.value.reason == "all_masked"
    # NaNs in SCI are masked, never propagated
    sci2 = sci.copy()
    sci2[0:20, 0:20] = np.nan
    out = preprocess_planes(sci2, msk, bkg, wgt, config_from_dict({"input": {"ccd_shape": [64, 32]}}))
    assert np.isfinite(out["image"]).all() and out["mask_frac"][0, 0] == 1.0


def brute_laplacian_max(sub, valid, f, sigma):
    """Per-bin max of (p - mean of 4 neighbours) / sigma, pixel by pixel (independent of the code)."""
    h, w = sub.shape
    out = np.zeros((h // f, w // f))
    best = np.full((h // f, w // f), -np.inf)
    for r in range(1, h - 1):
        for c in range(1, w - 1):
            nb = [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
            if r // f >= h // f or c // f >= w // f or not valid[r, c] or not all(valid[a, b] for a, b in nb):
                continue
            v = (sub[r, c] - sum(sub[a, b] for a, b in nb) / 4) / sigma
            best[r // f, c // f] = max(best[r // f, c // f], v)
    out[np.isfinite(best)] = best[np.isfinite(best)]
    return out


def test_laplacian_channel_matches_brute_force_and_separates_sharp_from_psf():
    from artifactspark.features.image import bin_laplacian_max

    rng = np.random.default_rng(5)
    sub = rng.normal(0, 2.0, (35, 27)).astype(np.float32)
    valid = rng.random(sub.shape) > 0.1
    valid[:8, :8] = False  # a bin with no usable pixel -> 0
    got = bin_laplacian_max(sub, valid, 4, 2.0)
    np.testing.assert_allclose(got, brute_laplacian_max(sub, valid, 4, 2.0), rtol=1e-5, atol=1e-5)
    assert got.shape == (8, 6) and got[0, 0] == 0.0 and got[1, 1] == 0.0
    # a star (Gaussian PSF, sigma 1.2 px, peak 100) and a cosmic ray (one pixel, 100) on flat sky
    img = np.zeros((64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    img += 100 * np.exp(-((yy - 12) ** 2 + (xx - 12) ** 2) / (2 * 1.2**2))
    img[44, 44] += 100
    lap = bin_laplacian_max(img, np.ones_like(img, bool), 8, 1.0)
    star, cr = lap[12 // 8, 12 // 8], lap[44 // 8, 44 // 8]
    assert cr == pytest.approx(100.0) and 20 < star < 40  # ~0.29 of the star's peak
    with pytest.raises(ValueError, match="sigma"):
        bin_laplacian_max(img, np.ones_like(img, bool), 8, 0.0)
