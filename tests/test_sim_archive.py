"""Simulated CCD files: DES names and nesting, round trip through desfits.read_ccd, labels parse
with labels.load_labels, determinism, config validation, and one real full-size CCD."""

import hashlib
import os

import numpy as np
import pytest

from artifactspark.config import config_from_dict
from artifactspark.errors import ConfigError
from artifactspark.features.labels import load_labels
from artifactspark.io.des import parse_name
from artifactspark.io.desfits import read_ccd
from artifactspark.sim.archive import simulate_ccd, write_outputs
from artifactspark.sim.config import sim_config
from artifactspark.sim.detect import SMOOTH

SMALL = {
    "input": {"ccd_shape": [512, 256]},
    "simulate": {"artifact_share": 1.0, "extra_classes_per_ccd": 2.0, "inspected_share": 1.0},
}
KEYS = [
    "EXPNUM",
    "CCDNUM",
    "DETPOS",
    "BAND",
    "FILTER",
    "NITE",
    "DATE-OBS",
    "MJD-OBS",
    "EXPTIME",
    "AIRMASS",
    "FWHM",
    "SKYBRITE",
    "SKYSIGMA",
    "GAINA",
    "GAINB",
    "SATURATA",
    "SATURATB",
    "OBJECT",
]


def run(root, cfg, index=0, ccds=(1, 2, 31), seed=7):
    sc = sim_config(cfg)
    return [
        simulate_ccd(
            sc, seed, index, c, tuple(cfg.input.ccd_shape), ccds, str(root), cfg.labels, tuple(cfg.taxonomy.classes)
        )
        for c in ccds
    ]


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_files_are_named_nested_and_round_trip(tmp_path):
    cfg = config_from_dict(SMALL)
    outs = run(tmp_path, cfg)
    for out in outs:
        info = out["ccd"]
        img, bkg = tmp_path / info["image"], tmp_path / info["bkg"]
        assert img.exists() and bkg.exists()
        n = parse_name(str(img))
        assert (n.expnum, n.ccdnum, n.kind, n.compression) == (info["expnum"], info["ccd"], "immasked", ".fz")
        parts = info["image"].split("/")
        assert parts[:5] == [info["nite"], f"D{info['expnum']:08d}", "p01", "red", "immask"]
        assert info["bkg"].split("/")[4] == "bkg"
        ccd = read_ccd(str(img), str(bkg))
        assert ccd.sci.shape == (512, 256) and ccd.msk.shape == ccd.bkg.shape == ccd.wgt.shape
        for k in KEYS:
            assert k in ccd.header, k
        assert ccd.header["CCDNUM"] == info["ccd"] and ccd.header["BAND"] == info["band"]
        assert "SKYSUB" not in ccd.header  # sky is in SCI; the bkg file holds the model
        # the background model is close to, not exactly, the sky level
        sky, sig = ccd.header["SKYBRITE"], ccd.header["SKYSIGMA"]
        assert abs(float(np.median(ccd.bkg)) - sky) < 2 * sig
        if not set(info["classes"]) & set(SMOOTH):  # a smooth artifact may shift the whole sky
            assert abs(float(np.median(ccd.sci - ccd.bkg))) < 0.5 * sig
        # weight consistent with the noise: 1/wgt ~ variance of the sky pixels
        ok = (ccd.msk == 0) & (ccd.wgt > 0)
        resid = (ccd.sci - ccd.bkg)[ok]
        mad_sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
        assert 0.8 < mad_sigma / np.sqrt(np.median(1 / ccd.wgt[ok])) < 1.3
        # masks: EDGE on the border, nothing but known bits
        assert np.all(ccd.msk[0, :] & 512) and np.all(ccd.msk[:, -1] & 512)
        assert ccd.msk.max() < 32768


def test_in_memory_planes_match_the_files(tmp_path):
    cfg = config_from_dict(SMALL)
    sc = sim_config(cfg)
    out = simulate_ccd(sc, 7, 0, 5, (512, 256), (5,), None, cfg.labels, tuple(cfg.taxonomy.classes), write=False)
    written = simulate_ccd(sc, 7, 0, 5, (512, 256), (5,), str(tmp_path), cfg.labels, tuple(cfg.taxonomy.classes))
    sci, msk, wgt, bkg, hdr = out["planes"]
    ccd = read_ccd(str(tmp_path / written["ccd"]["image"]), str(tmp_path / written["ccd"]["bkg"]))
    step = hdr["SKYSIGMA"] / sc.quantize_level
    assert np.abs(ccd.sci - sci).max() <= step  # quantisation at sigma / 16
    assert np.array_equal(ccd.msk, msk)


def test_same_seed_gives_byte_identical_files_and_labels(tmp_path):
    cfg = config_from_dict(SMALL)
    a, b, c = run(tmp_path / "a", cfg), run(tmp_path / "b", cfg), run(tmp_path / "c", cfg, seed=8)
    for x, y, z in zip(a, b, c):
        for kind in ("image", "bkg"):
            assert digest(tmp_path / "a" / x["ccd"][kind]) == digest(tmp_path / "b" / y["ccd"][kind])
        assert x["reports"] == y["reports"]
        assert digest(tmp_path / "a" / x["ccd"]["image"]) != digest(tmp_path / "c" / z["ccd"]["image"])


def test_labels_parse_with_the_label_loader(tmp_path):
    cfg = config_from_dict(SMALL)
    results = []
    for i in range(3):
        results += run(tmp_path, cfg, index=i)
    summary = write_outputs(str(tmp_path), results)
    labels = load_labels(str(tmp_path / "labels" / "checker_export.json"), cfg)
    assert labels.unknown_classes == {} and labels.rejected == {}
    assert summary["features"] > 0 and summary["reports"] > 0
    import pyarrow.parquet as pq

    truth = pq.read_table(tmp_path / "labels" / "truth.parquet").to_pylist()
    assert {t["cls"] for t in truth} <= set(cfg.taxonomy.classes)
    # a reported feature's report sits where the truth says
    for t in truth:
        if t["reported"]:
            lab = labels.by_ccd[(t["expnum"], t["ccd"])]
            assert t["report_x"] in lab.report_x


def test_exposure_wide_features_agree_across_ccds(tmp_path):
    cfg = config_from_dict(
        {"input": {"ccd_shape": [512, 256]}, "simulate": {"exposure_rates": {"Wavy sky": 1.0, "Satellite": 1.0}}}
    )
    outs = run(tmp_path, cfg, ccds=(3, 4, 9, 10, 11))
    fids = [{t["fid"]: t for t in o["truth"] if t["scope"] == "exposure"} for o in outs]
    wavy = [next(t for t in f.values() if t["cls"] == "Wavy sky") for f in fids]
    assert len({t["fid"] for t in wavy}) == 1 and len({t["snr"] for t in wavy}) == 1
    assert len({t["geometry"] for t in wavy}) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"artifact_share": 1.5},
        {"bands": ["q"]},
        {"ccds": [0]},
        {"nonsense": 1},
        {"exposure_rates": {"Column mask": 0.5}},
        {"class_weights": {"A/B jump": -1}},
        {"snr_range": {"Satellite": [3, 1]}},
        {"compression": ".bz2"},
        {"seeing_range": [2.0, 1.0]},
        {"miss_rate": "a lot"},
    ],
)
def test_bad_config_values_raise_config_error_naming_the_key(bad):
    cfg = config_from_dict({"simulate": bad})
    with pytest.raises(ConfigError) as e:
        sim_config(cfg)
    key = next(iter(bad))
    assert key in str(e.value)


def test_one_real_full_size_ccd(tmp_path):
    cfg = config_from_dict({"simulate": {"artifact_share": 1.0}})
    out = run(tmp_path, cfg, ccds=(12,))[0]
    ccd = read_ccd(str(tmp_path / out["ccd"]["image"]), str(tmp_path / out["ccd"]["bkg"]))
    assert ccd.sci.shape == (4096, 2048) and ccd.bkg.shape == (4096, 2048)
    assert ccd.header["CCDNUM"] == 12 and ccd.header["DETPOS"] == "S12"
    assert os.path.getsize(tmp_path / out["ccd"]["image"]) < 40e6  # tile compressed
    from astropy.io import fits

    with fits.open(tmp_path / out["ccd"]["image"]) as h:
        assert [x.name for x in h[1:]] == ["SCI", "MSK", "WGT"]
        assert isinstance(h["SCI"], fits.CompImageHDU) and h["SCI"].compression_type == "RICE_1"
