"""The validation threshold rules (artifactspark/models/thresholds.py) and the simulator's detectability
floors (artifactspark/sim/detect.py), against brute force and hand-computed cases."""

import math

import numpy as np
import pytest

from artifactspark.models.thresholds import class_thresholds, cost_threshold
from artifactspark.sim import detect
from artifactspark.sim.artifacts import inject
from artifactspark.sim.sky import blank_canvas


def brute_cost(pos, neg, c):
    """Every threshold on a fine grid: the cost of the best one, by direct counting."""
    grid = np.linspace(-0.01, 1.01, 10001)
    cost = [c * np.mean(pos < t) + np.mean(neg >= t) for t in grid]
    return min(cost)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cost_threshold_reaches_the_brute_force_minimum(seed):
    rng = np.random.default_rng(seed)
    pos, neg = rng.beta(5, 2, 60), rng.beta(2, 5, 140)
    y = np.r_[np.ones(60), np.zeros(140)]
    p = np.r_[pos, neg]
    t = cost_threshold(y, p, fn_cost=5.0, n_boot=0)
    got = 5.0 * np.mean(pos < t) + np.mean(neg >= t)
    assert got == pytest.approx(brute_cost(pos, neg, 5.0), abs=1e-9)


def test_cost_threshold_ignores_a_few_invisible_positives():
    """The old FNR rule drops to the lowest positive; the cost rule stays between the bulks."""
    from artifactspark.evaluate.metrics import threshold_for_fnr

    rng = np.random.default_rng(3)
    pos = np.r_[rng.uniform(0.8, 1.0, 40), [0.01, 0.02]]  # two positives the model cannot see
    neg = rng.uniform(0.0, 0.3, 200)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    p = np.r_[pos, neg]
    assert threshold_for_fnr(y, p, 0.02) <= 0.02  # FNR rule: every clean CCD flagged
    t = cost_threshold(y, p, fn_cost=5.0)
    assert 0.3 < t < 0.8
    assert np.mean(neg >= t) == 0.0 and np.mean(pos[:40] >= t) == 1.0


def test_cost_threshold_bad_input():
    with pytest.raises(ValueError, match="positives and negatives"):
        cost_threshold(np.ones(5), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="equal 1-D"):
        cost_threshold(np.ones(5), np.ones(4))


def test_class_thresholds_default_for_rare_classes():
    rng = np.random.default_rng(0)
    mh = np.zeros((100, 3), int)
    mh[:30, 0] = 1
    mh[:2, 1] = 1
    probs = rng.uniform(0, 0.2, (100, 3))
    probs[:30, 0] = rng.uniform(0.7, 1.0, 30)
    th, how = class_thresholds(mh, probs, fn_cost=5.0, min_positives=5)
    assert 0.2 <= th[0] <= 0.7 and how[0] == "cost"
    assert th[1] == 0.5 and "2 validation positives" in how[1]
    assert th[2] == 0.5


# ----------------------------------------------------------------------------- detectability
def test_measure_hand_computed():
    d = np.zeros((16, 16), np.float32)
    d[:8, :8] = 2.0  # one 8x8 bin at 2 sigma per pixel (sigma 1)
    valid = np.ones_like(d, bool)
    m = detect.measure("Ghost", d, valid, sigma=1.0, bkg_error=0.5)
    # matched filter: sqrt(n * mean^2) / sigma = sqrt(64 * 4) = 16; contrast 2 / 0.5 = 4
    assert m["sn_binned"] == pytest.approx(16.0) and m["contrast"] == pytest.approx(4.0)
    assert m["n_sharp"] == 0 and m["floor_rule"] == "smooth" and m["detectable"]
    # the same amplitude against a larger model error is not detectable (contrast 2/1.5 < 2)
    assert not detect.measure("Ghost", d, valid, 1.0, bkg_error=1.5)["detectable"]
    # masked pixels do not count: half the bin masked -> n = 32 -> sqrt(32 * 4) = 11.3 < 15
    valid[:4, :8] = False
    m2 = detect.measure("Ghost", d, valid, 1.0, 0.5)
    assert m2["sn_binned"] == pytest.approx(math.sqrt(32 * 4), rel=1e-4) and not m2["detectable"]


def test_measure_sharp_and_erased_and_mask():
    d = np.zeros((64, 64), np.float32)
    d[10:22, 30] = 6.0  # a 12-pixel column at 6 sigma
    valid = np.ones_like(d, bool)
    m = detect.measure("Column mask", d, valid, 1.0, 0.15)
    assert m["n_sharp"] == 12 and m["floor_rule"] == "compact" and m["detectable"]
    valid[10:14, 30] = False  # 4 of them masked: 8 < 10 sharp pixels, binned S/N ~ 17 ... check
    m2 = detect.measure("Column mask", d, valid, 1.0, 0.15)
    assert m2["n_sharp"] == 8
    assert m2["detectable"] == (m2["sn_binned"] >= detect.SN_FLOOR)
    assert not detect.measure("Guiding", d, np.ones_like(valid), 1.0, 0.15)["detectable"]
    assert detect.measure("Excessive mask", d * 0, np.ones_like(valid), 1.0, 0.15, mask_frac=0.05)["detectable"]
    assert not detect.measure("Excessive mask", d * 0, np.ones_like(valid), 1.0, 0.15, mask_frac=0.01)["detectable"]
    with pytest.raises(ValueError, match="no detectability floor"):
        detect.measure("Nope", d, valid, 1.0, 0.15)


def test_every_simulated_class_has_a_floor():
    from artifactspark.sim.config import SIMULATED_CLASSES

    assert set(SIMULATED_CLASSES) == set(detect.FLOOR_RULE)


def test_recorder_measures_what_the_injection_added():
    """A/B jump of 0.5 sigma on one amplifier half of a blank 512x256 canvas: the recorded
    contribution is exactly that step (independent: computed from the geometry)."""
    cv = blank_canvas((512, 256), sky=100.0, sigma=10.0, seed=4)
    with detect.Recorder(cv, bitmask=0xFFFF, bkg_error=0.15) as rec:
        out = inject("A/B jump", cv, 5.0)
    m = rec.result("A/B jump")
    n_pix = 512 * 128
    assert m["sn_binned"] == pytest.approx(math.sqrt(n_pix * 0.5**2), rel=1e-3)
    assert m["contrast"] == pytest.approx(0.5 / 0.15, rel=1e-3)
    assert m["detectable"] and out["geometry"]["split_col"] == 128
