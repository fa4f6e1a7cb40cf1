"""The derived level_sn channel and the GridLevel layer, against independent computations."""

import numpy as np
import pytest


def _ccd(offset_sigma, rng, shape=(256, 128), sigma=10.0):
    """A background-subtracted CCD: white noise, a few stars, a constant residual sky offset."""
    img = rng.normal(0.0, sigma, shape) + offset_sigma * sigma
    for r, c in rng.integers(8, 120, (5, 2)):
        img[r - 2 : r + 3, c - 2 : c + 3] += 5000.0
    return img


def test_level_sn_undoes_the_stretch():
    """level_sn from the stored (stretched, float16) row equals the block mean in per-bin noise
    units computed directly from the pixels."""
    from artifactspark.features.image import arcsinh_stretch, block_mean
    from artifactspark.models.channels import level_sn

    rng = np.random.default_rng(1)
    sigma = 10.0
    img = _ccd(0.4, rng, sigma=sigma)
    valid = np.ones(img.shape, bool)
    valid[:, :8] = False  # one masked column of bins
    mean, frac = block_mean(img, valid, 8)
    y, m, M = arcsinh_stretch(mean, frac < 1.0, softening=0.5)
    got = level_sn(y.astype(np.float16), frac, m, M, sigma, {"softening": 0.5, "factor": 8})
    want = np.where(frac >= 1.0, 0.0, mean / (sigma / 8))
    assert got.dtype == np.float32 and got.shape == mean.shape
    np.testing.assert_allclose(got[:, 1:], want[:, 1:], atol=0.05, rtol=2e-3)
    assert np.all(got[:, 0] == 0.0)  # bins without data
    # the residual sky level (0.4 sigma per pixel = 3.2 per-bin sigma) survives; the image's own
    # standardisation would have removed it
    assert np.median(got[:, 1:]) == pytest.approx(3.2, abs=0.2)


def test_level_sn_tf_matches_numpy_and_batches():
    from artifactspark.models.channels import LEVEL_CLIP, channel_planes, level_sn, level_sn_tf, store_columns

    rng = np.random.default_rng(2)
    y = rng.uniform(0, 0.9, (3, 16, 8)).astype(np.float32)
    frac = rng.uniform(0, 1.2, (3, 16, 8)).clip(0, 1).astype(np.float32)
    m, M, s = np.array([-50.0, -20.0, -5.0]), np.array([1e4, 5e6, 300.0]), np.array([10.0, 3.0, 1.0])
    spec = {"softening": 1.0, "factor": 8}
    batch = level_sn(y, frac, m, M, s, spec)
    for i in range(3):
        one = level_sn(y[i], frac[i], m[i], M[i], s[i], spec)
        np.testing.assert_array_equal(one, batch[i])
        tf_one = level_sn_tf(y[i], frac[i], m[i], M[i], s[i], spec).numpy()
        np.testing.assert_allclose(tf_one, one, rtol=1e-4, atol=1e-3)
    assert np.abs(batch).max() <= LEVEL_CLIP  # the 5e6 stretch would overflow float16 unclipped
    assert store_columns(["image", "level_sn", "max_sn"]) == [
        "image",
        "mask_frac",
        "stretch_min",
        "stretch_max",
        "noise_sigma",
        "max_sn",
    ]
    cols = {"image": y, "mask_frac": frac, "stretch_min": m, "stretch_max": M, "noise_sigma": s}
    planes = channel_planes(cols, ["image", "level_sn"], spec)
    assert planes[0] is y and np.array_equal(planes[1], batch)


def test_grid_level_is_a_clipped_mean_per_cell():
    """GridLevel against a numpy sigma-clipped mean per grid cell, masked bins left out."""
    from artifactspark.models.layers import grid_level_layer

    rng = np.random.default_rng(3)
    level = rng.normal(0, 1, (2, 32, 16)).astype(np.float32)
    level[0, :8, :8] += 2.0  # one cell with a raised sky
    level[1, 3, 3] = 500.0  # a star: clipped
    mask = np.zeros_like(level)
    mask[0, 20:, :] = 1.0  # half masked: left out
    x = np.stack([level, mask], -1)
    got = grid_level_layer()(0, 1, grid=(4, 2))(x).numpy()
    assert got.shape == (2, 8)

    def clipped(v):
        mu, sd = v.mean(), v.std()
        for _ in range(2):
            keep = v[np.abs(v - mu) <= 3 * sd]
            mu, sd = keep.mean(), keep.std()
        keep = v[np.abs(v - mu) <= 3 * sd]
        return keep.mean()

    for b in range(2):
        for i in range(4):
            for j in range(2):
                cell = level[b, i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8]
                ok = mask[b, i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8] < 0.5
                want = clipped(cell[ok]) if ok.any() else 0.0
                assert got[b, i * 2 + j] == pytest.approx(want, abs=1e-4), (b, i, j)
    assert got[0, 0] > 1.5 and abs(got[1, 0]) < 0.6  # the raised cell; the star did not count


def test_npy_header_parse_retries_a_spurious_system_error(monkeypatch):
    """CPython 3.11's shared AST state can fail one header parse in a threaded reader
    (python/cpython#106905): the guard retries it; a persistent error still raises."""
    import io

    import numpy.lib.format as npy_format

    from artifactspark.models.tfdata import guard_npy_headers

    calls = {"n": 0}
    real = npy_format.safe_eval

    def flaky(source):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=42, after=39)")
        return real(source)

    monkeypatch.setattr(npy_format, "safe_eval", flaky)
    guard_npy_headers()
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float16).reshape(2, 3))
    buf.seek(0)
    np.testing.assert_array_equal(np.load(buf), np.arange(6).reshape(2, 3))
    assert calls["n"] == 2
    guard_npy_headers()  # installed once, not wrapped twice
    assert npy_format.safe_eval._retries_system_error

    def broken(source):
        raise SystemError("always")

    monkeypatch.setattr(npy_format, "safe_eval", broken)
    guard_npy_headers()
    buf.seek(0)
    with pytest.raises(SystemError):
        np.load(buf)
