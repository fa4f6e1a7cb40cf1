"""The Radon line detector (lines.py) and its TensorFlow layer (cnn.line_layer)."""

import math

import numpy as np
import pytest

from artifactspark.models import lines

H, W = 512, 256  # a binned DES CCD (4096 x 2048 at 8 x 8)


def _track(amp, angle, shape=(H, W), r0=None, c0=None):
    """A one-bin-wide straight track of ``amp`` (in noise sigma) through (r0, c0)."""
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    r0 = shape[0] / 2 if r0 is None else r0
    c0 = shape[1] / 2 if c0 is None else c0
    d = np.abs((rr - r0) * math.cos(angle) - (cc - c0) * math.sin(angle))
    return amp * (d < 0.5)


def test_radon_geometry_matches_brute_force_on_a_small_image():
    rows, cols, n_off = lines.radon_geometry((6, 5), n_angles=4)
    assert np.all(np.diff(rows) >= 0)
    got = {(int(r), int(c)) for r, c in zip(rows, cols)}
    half = (n_off - 1) // 2
    want = set()
    for k in range(4):
        th = math.pi * k / 4
        for r in range(6):
            for c in range(5):
                t = (r - 2.5) * math.cos(th) + (c - 2.0) * math.sin(th)
                want.add((k * n_off + int(np.rint(t)) + half, r * 5 + c))
    assert got == want
    assert len(rows) == 4 * 30  # every pixel on exactly one line per angle


def test_line_sn_is_unit_noise_and_finds_a_faint_track():
    rng = np.random.default_rng(5)
    valid = np.ones((H, W), bool)
    noise_max, track_max = [], []
    for angle in (0.3, 1.2, 2.5):
        z = rng.standard_normal((H, W))
        noise_max.append(lines.line_sn(z, valid).max())
        # 0.8 sigma per bin: invisible bin by bin, 13-20 sigma integrated along 256-560 bins
        track_max.append(lines.line_sn(z + _track(0.8, angle), valid).max())
    assert max(noise_max) < 5.0, noise_max  # ~47 000 lines of unit-variance noise: max ~4
    assert min(track_max) > 6.0, track_max
    assert min(track_max) > max(noise_max) + 1.5


def test_line_sn_ignores_smooth_sky_and_masked_bins():
    rng = np.random.default_rng(6)
    z = rng.standard_normal((H, W))
    valid = np.ones((H, W), bool)
    base = lines.line_sn(z, valid).max()
    ramp = np.linspace(-1.0, 1.0, H)[:, None] * np.ones((1, W))  # a 2-sigma gradient: haze-like
    assert lines.line_sn(z + ramp, valid).max() < base + 1.0
    # a bright track on bins that are masked is not seen
    masked = valid.copy()
    tr = _track(5.0, 0.8)
    masked[tr > 0] = False
    assert lines.line_sn(z + tr, masked).max() < base + 1.0
    assert lines.line_sn(z + tr, valid).max() > 20


def test_line_sn_stars_count_at_most_clip_sigma():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((H, W))
    valid = np.ones((H, W), bool)
    stars = z.copy()
    idx = rng.integers(0, H * W, 300)
    stars.ravel()[idx] += 1e4  # 300 saturated-looking peaks
    assert lines.line_sn(stars, valid).max() < 6.0


@pytest.mark.parametrize("mask_index", [None, 1])
def test_tensorflow_layer_equals_the_numpy_reference(mask_index):
    from artifactspark.models.layers import line_layer

    rng = np.random.default_rng(8)
    z = rng.standard_normal((3, H, W)).astype(np.float32)
    z[0] += _track(0.7, 1.1).astype(np.float32)
    mf = np.zeros((3, H, W), np.float32)
    mf[1, 100:160, :] = 1.0
    mf[2, :, 200:] = 0.6
    got = line_layer()(k=5, mask_index=mask_index)(np.stack([z, mf], -1)).numpy()
    for b in range(3):
        valid = mf[b] < 0.5 if mask_index is not None else np.ones((H, W), bool)
        want = np.sort(lines.line_sn(z[b], valid).ravel())[::-1][:5]
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-4)
    assert got[0, 0] > got[1:, 0].max() + 1.5


def test_cell_map_is_the_line_scores_back_projected_and_lies_on_the_track():
    """LineSN.cell_map (the heatmap's line feature) = per pooled cell, the largest score of the
    lines through it (a numpy loop over the Radon geometry), and its top cells lie on the track."""
    from artifactspark.models.layers import line_layer

    rng = np.random.default_rng(9)
    z = rng.standard_normal((2, H, W)).astype(np.float32)
    z[0] += _track(0.7, 1.1).astype(np.float32)
    x = np.stack([z, np.zeros_like(z)], -1)
    layer = line_layer()(k=4, mask_index=1)
    layer(x)  # build
    scores, got = layer.line_scores(x).numpy(), layer.cell_map(x).numpy()[..., 0]
    h, w = H // layer.pool, W // layer.pool
    assert got.shape == (2, h, w)
    rows, cols, _ = lines.radon_geometry((h, w), layer.n_angles)
    want = np.full((2, h * w), -np.inf, np.float32)
    for b in range(2):
        np.maximum.at(want[b], cols, scores[b][rows])
    np.testing.assert_allclose(got.reshape(2, -1), want, rtol=1e-5, atol=1e-5)
    track = _track(0.7, 1.1)[: h * layer.pool, : w * layer.pool]
    on = track.reshape(h, layer.pool, w, layer.pool).max(axis=(1, 3)) > 0
    top = np.argsort(got[0].ravel())[::-1][:20]
    assert on.ravel()[top].mean() >= 0.9  # the 20 hottest cells: on the track
    assert got[0][on].mean() > got[1].max()  # the track's cells beat every cell of a clean CCD


def test_box_mean_is_the_window_mean_edges_included():
    """The separable box mean (the layer's local sky) against a brute-force window mean in numpy."""
    from artifactspark.models.layers import box_mean

    rng = np.random.default_rng(3)
    t = rng.normal(size=(2, 23, 11, 1)).astype(np.float32)
    box = 7
    got = box_mean(t, box).numpy()
    want = np.empty_like(t)
    h = box // 2
    for i in range(23):
        for j in range(11):
            want[:, i, j, 0] = t[:, max(0, i - h) : i + h + 1, max(0, j - h) : j + h + 1, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
