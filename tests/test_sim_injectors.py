"""Each injector changes the pixels it should and no others (on a blank, noise-free canvas)."""

import math

import numpy as np
import pytest

from artifactspark.io.des import MASK_BITS
from artifactspark.sim.artifacts import inject
from artifactspark.sim.config import SIMULATED_CLASSES, sim_config
from artifactspark.sim.exposure import _draw_feature
from artifactspark.sim.sky import blank_canvas

SHAPE = (512, 256)


def canvas(seed=0, stars=True):
    cv = blank_canvas(SHAPE, sky=0.0, sigma=1.0, seed=seed, fp_origin=(-SHAPE[0] / 2, -SHAPE[1] / 2))
    if stars:
        cv.bright = [(200, 100, 1e7)]
        cv.stars = [(50 + 10 * k, 30 + 5 * k, 1e4 * (k + 1)) for k in range(10)]
    return cv


def snapshot(cv):
    return cv.sig.copy(), cv.bkg.copy(), cv.msk.copy()


def test_ab_jump_is_a_step_of_the_amplitude_at_the_split():
    cv = canvas()
    out = inject("A/B jump", cv, 7.5)
    g = out["geometry"]
    s = cv.split
    half, other = (cv.sig[:, s:], cv.sig[:, :s]) if g["amp"] == "A" else (cv.sig[:, :s], cv.sig[:, s:])
    assert np.all(half == np.float32(g["sign"] * 7.5))
    assert np.all(other == 0)
    assert np.all(cv.msk == 0) and np.all(cv.bkg == 0)


def test_satellite_raises_pixels_along_its_line_by_the_flux_and_nothing_else():
    cv = canvas()
    f = {"x0": 0.0, "y0": 0.0, "angle": 0.3, "width": 1.2}
    inject("Satellite", cv, 20.0, f)
    X, Y = cv.fp_grid()
    d = np.broadcast_to((Y - 0.0) * math.cos(0.3) - (X - 0.0) * math.sin(0.3), SHAPE)
    on = np.abs(d) < 0.1
    assert on.sum() > 100
    np.testing.assert_allclose(cv.sig[on], 20.0, rtol=0.01)
    assert np.all(cv.sig[np.abs(d) > 4 * 1.2 + 1] == 0)
    assert cv.sig.max() <= 20.0 + 1e-3


def test_satellite_segments_leave_gaps():
    cv = canvas()
    inject("Satellite", cv, 10.0, {"x0": 0.0, "y0": 0.0, "angle": 0.0, "width": 1.0, "segments": [[-100, 50]]})
    row_on = cv.sig[:, SHAPE[1] // 2]  # line along focal-plane X = rows, through the centre column
    X = cv.fp_grid()[0][:, 0]
    assert np.all(row_on[(X > 60)] == 0) and np.all(row_on[(X > -90) & (X < 40)] > 9)


def test_tree_rings_are_concentric_about_their_centre():
    cv = canvas()
    out = inject("Tree rings", cv, 3.0)
    g = out["geometry"]
    r, c = np.mgrid[: SHAPE[0], : SHAPE[1]]
    rad = np.hypot(r - g["centre_row"], c - g["centre_col"])
    assert not (0 <= g["centre_row"] < SHAPE[0] and 0 <= g["centre_col"] < SHAPE[1])  # centred off the CCD
    key = np.round(rad * 50).astype(int)  # equal radius (to 1/50 pixel) -> equal value
    order = np.argsort(key.ravel())
    k, v = key.ravel()[order], cv.sig.ravel()[order]
    starts = np.flatnonzero(np.diff(k)) + 1
    spread = np.maximum.reduceat(v, np.r_[0, starts]) - np.minimum.reduceat(v, np.r_[0, starts])
    assert spread.max() < 0.25 * 3.0
    assert cv.sig.max() > 2.5 and cv.sig.min() < -2.5


def test_column_mask_touches_one_column_only():
    cv = canvas()
    out = inject("Column mask", cv, 50.0)
    col = out["geometry"]["col"]
    changed = np.nonzero((cv.sig != 0).any(axis=0) | (cv.msk != 0).any(axis=0))[0]
    assert changed.tolist() == [col]
    assert set(np.unique(cv.msk)) <= {0, MASK_BITS["BPM"]}


def test_vertical_jump_is_a_step_across_rows():
    cv = canvas()
    out = inject("Vertical jump", cv, 2.0)
    r0, s = out["geometry"]["row"], out["geometry"]["sign"]
    assert np.all(cv.sig[r0:] == np.float32(2.0 * s)) and np.all(cv.sig[:r0] == 0)


def test_excessive_mask_masks_but_leaves_pixels():
    cv = canvas()
    out = inject("Excessive mask", cv, 1.0)
    assert np.all(cv.sig == 0) and np.all(cv.bkg == 0)
    assert (cv.msk != 0).mean() > 0.01
    for r0, r1, c0, c1 in out["geometry"]["boxes"]:
        assert np.all(cv.msk[r0:r1, c0:c1] & out["geometry"]["bit"])


@pytest.mark.parametrize("cls", ["Dark rim", "Dark halo", "Quilted sky", "Anti-bleed"])
def test_sky_estimation_errors_change_the_background_model_only(cls):
    cv = canvas()
    inject(cls, cv, 4.0)
    assert np.all(cv.sig == 0) and np.all(cv.msk == 0)
    assert (cv.bkg > 0).any() or (cv.bkg != 0).any()


def test_cross_talk_mirrors_across_the_amplifier_boundary():
    cv = canvas()
    out = inject("Cross-talk", cv, 5.0)
    g = out["geometry"]
    assert g["col"] == SHAPE[1] - 1 - g["source_col"]
    cols = np.nonzero((cv.sig != 0).any(axis=0))[0]
    assert abs(cols.mean() - g["col"]) < 5 and np.ptp(cols) <= 10


@pytest.mark.parametrize("cls", SIMULATED_CLASSES)
def test_every_injector_marks_points_on_what_it_changed(cls):
    sc = sim_config(None)
    rng = np.random.default_rng(5)
    f = None
    for _ in range(50):  # an exposure-wide feature that reaches this small canvas
        f = _draw_feature(cls, rng, sc, SHAPE, "z")
        if f is None:
            break
        if cls in ("Satellite", "Airplane", "Ghost", "Bright spray"):
            f.update(x0=0.0, y0=0.0)
        break
    cv = canvas(seed=3)
    before = snapshot(cv)
    out = inject(cls, cv, 5.0, f)
    after = snapshot(cv)
    changed = np.zeros(SHAPE, bool)
    for a, b in zip(before, after):
        changed |= a != b
    pts = out["points"]
    assert len(pts) > 0, cls
    if cls != "Guiding":  # guiding acts through the PSF of the sources, not through an injector
        assert changed[pts[:, 0], pts[:, 1]].mean() > 0.9, cls


@pytest.mark.parametrize("seeing,guiding", [(0.8, None), (1.1, None), (1.8, {"g": 0.1, "angle": 0.3})])
def test_bright_star_wings_are_smooth_with_no_line_through_the_star(seeing, guiding):
    """The wide bright-star stamp's wings vary smoothly across the axes through its centre.

    Drawn by FFT, the untruncated Moffat rang along those axes: at 0.8" seeing, the pixel on the
    centre row 60 px out differed from the mean of its two neighbours across the row by ~2x its
    own smooth value (a one-pixel line of tens of sigma through every 10th-magnitude star). A
    smooth Moffat tail changes across one pixel by ~2 beta / r^2 of itself (~1e-3 here)."""
    from types import SimpleNamespace

    from artifactspark.sim.sky import templates

    plan = SimpleNamespace(expnum=10**6 + int(seeing * 10), seeing=seeing, fwhm_pix=seeing / 0.263)
    bright = templates(plan, guiding, n_gal=1, seed=0)[1]
    c = bright.shape[0] // 2
    assert bright.sum() == pytest.approx(1.0, rel=1e-3)
    for o in (30, 60, 100):
        for v, across in (
            (bright[c, c + o], (bright[c - 1, c + o], bright[c + 1, c + o])),
            (bright[c + o, c], (bright[c + o, c - 1], bright[c + o, c + 1])),
        ):
            assert v > 0
            assert abs(v - 0.5 * sum(across)) / v < 0.01, (o, v, across)
