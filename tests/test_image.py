"""The numpy image steps against independent, plain-loop computations."""
import numpy as np
import pytest

from artifactspark.config import PipelineConfig, config_from_dict
from artifactspark.errors import InputRejected
from artifactspark.image import arcsinh_stretch, block_mean, preprocess_planes, valid_pixels


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


@pytest.mark.parametrize("shape,f,edge", [((32, 16), 4, "crop"), ((35, 19), 4, "crop"), ((35, 19), 4, "pad"), ((8, 8), 8, "crop")])
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


@pytest.mark.parametrize("x,has,reason", [
    (np.ones((2, 2), np.float32), np.ones((2, 2), bool), "constant_image"),
    (np.ones((2, 2), np.float32), np.zeros((2, 2), bool), "all_masked"),
])
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
