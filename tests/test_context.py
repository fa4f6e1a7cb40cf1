"""evaluate/context.py: whole-exposure classes capped at their exposure's median (issue 9)."""

import numpy as np
import pandas as pd
import pytest

from artifactspark.config import DEFAULT_CLASSES, load_config
from artifactspark.errors import ConfigError
from artifactspark.evaluate.context import MIN_CCDS, WHOLE_EXPOSURE, exposure_context
from artifactspark.models.trainingdata import train_config

CLASSES = ["Cosmic ray", "Haze", "Bright spray", "Fringing"]


def _reference(probs, expnum, classes, exposure_classes, min_ccds):
    """The rule written the other way: pandas groupby median, row by row."""
    df = pd.DataFrame(probs, columns=classes)
    df["expnum"] = expnum
    out = df.copy()
    for c in exposure_classes:
        med = df.groupby("expnum")[c].transform("median")
        size = df.groupby("expnum")[c].transform("size")
        out[c] = np.where(size >= min_ccds, np.minimum(df[c], med), df[c])
    return out[classes].to_numpy()


def test_matches_an_independent_groupby_on_random_exposures():
    rng = np.random.default_rng(3)
    n = 200
    expnum = rng.choice([11, 7, 300, 42, 5], size=n, p=[0.4, 0.3, 0.2, 0.09, 0.01])
    probs = rng.random((n, len(CLASSES)))
    got = exposure_context(probs, expnum, CLASSES, WHOLE_EXPOSURE)
    want = _reference(probs, expnum, CLASSES, ["Haze", "Fringing"], MIN_CCDS)
    np.testing.assert_allclose(got, want)
    # the other classes are untouched, and the input array is not modified
    np.testing.assert_array_equal(got[:, [0, 2]], probs[:, [0, 2]])
    assert not np.array_equal(got, probs)


def test_a_lone_haze_ccd_is_capped_a_hazy_exposure_is_not():
    # exposure 1: one CCD says Haze (a scattered-light fan on it), four say no; exposure 2: all hazy
    probs = np.array(
        [[0.1, 0.9, 0.6, 0.0]] + [[0.1, 0.05, 0.0, 0.0]] * 4 + [[0.1, 0.8, 0.0, 0.0], [0.2, 0.7, 0.0, 0.0]] * 2,
        dtype=float,
    )
    expnum = np.array([1] * 5 + [2] * 4)
    got = exposure_context(probs, expnum, CLASSES)
    assert got[0, 1] == pytest.approx(0.05)  # capped: now Bright spray (0.6) is its top class
    assert CLASSES[int(np.argmax(got[0]))] == "Bright spray"
    np.testing.assert_allclose(got[5:, 1], [0.75, 0.7, 0.75, 0.7])  # median 0.75 caps only the 0.8s
    np.testing.assert_array_equal(got[:, 0], probs[:, 0])


def test_small_exposures_and_empty_input_are_left_alone():
    probs = np.array([[0.1, 0.9, 0, 0], [0.1, 0.1, 0, 0]], dtype=float)
    np.testing.assert_array_equal(exposure_context(probs, [5, 5], CLASSES), probs)  # 2 < MIN_CCDS
    assert exposure_context(np.zeros((0, 4)), np.zeros(0, int), CLASSES).shape == (0, 4)
    assert np.array_equal(exposure_context(probs, [5, 5], CLASSES, exposure_classes=()), probs)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="n x 4"):
        exposure_context(np.zeros((3, 5)), [1, 1, 1], CLASSES)
    with pytest.raises(ValueError, match="one entry per row"):
        exposure_context(np.zeros((3, 4)), [1, 1], CLASSES)


def test_config_names_whole_exposure_classes_of_the_taxonomy():
    cfg = load_config()
    assert train_config(cfg).exposure_classes == WHOLE_EXPOSURE
    assert set(WHOLE_EXPOSURE) <= set(DEFAULT_CLASSES)
    assert train_config(cfg, {"exposure_classes": []}).exposure_classes == ()
    with pytest.raises(ConfigError, match="Hazy.*not in \\[taxonomy\\]"):
        train_config(cfg, {"exposure_classes": ["Hazy"]})


def test_the_many_class_decision_applies_the_rule_only_when_the_model_says_so():
    from artifactspark.evaluate.classes import manyclass_prediction

    probs = np.array([[0.1, 0.9, 0.6, 0.0]] + [[0.1, 0.05, 0.0, 0.0]] * 4)
    p_art, expnum = np.full(5, 0.95), np.full(5, 9)
    meta = {"problem": "multilabel", "classes": CLASSES}
    ctx = {**meta, "exposure_context": {"classes": ["Haze"], "min_ccds": 3}}
    assert manyclass_prediction(ctx, probs, p_art, 0.5, expnum)[0] == "Bright spray"
    assert manyclass_prediction(meta, probs, p_art, 0.5, expnum)[0] == "Haze"  # a model without the rule
    assert manyclass_prediction(ctx, probs, p_art, 0.5)[0] == "Haze"  # no exposures given
    assert list(manyclass_prediction(ctx, probs, np.zeros(5), 0.5, expnum)) == ["no artifact"] * 5


def test_a_taxonomy_without_those_classes_keeps_the_default_working():
    import dataclasses

    from artifactspark.config import TaxonomyConfig

    cfg = load_config()
    small = dataclasses.replace(cfg, taxonomy=TaxonomyConfig(classes=("Satellite", "Haze")))
    assert train_config(small).exposure_classes == WHOLE_EXPOSURE  # the default: absent names skipped
    with pytest.raises(ConfigError, match="Fringing"):
        train_config(small, {"exposure_classes": ["Haze", "Fringing"]})  # named explicitly: an error
    probs = np.array([[0.1, 0.9]] + [[0.1, 0.05]] * 3)
    got = exposure_context(probs, [1] * 4, ["Satellite", "Haze"], WHOLE_EXPOSURE)
    np.testing.assert_allclose(got[:, 1], [0.05] * 4)
