"""Config validation, DES naming and the exposure-checker label loader."""

import json

import pytest
from desarchive import report

from artifactspark.config import DEFAULT_CONFIG_PATH, PipelineConfig, config_from_dict, load_config
from artifactspark.errors import ConfigError, LabelError
from artifactspark.features.labels import aggregate_reports, load_labels, pixel_to_report, report_to_pixel
from artifactspark.io import des


# ---------------------------------------------------------------------------- config
def test_shipped_config_equals_defaults():
    """conf/pipeline.toml documents the defaults: it must not drift from the code's."""
    from artifactspark.sim.config import sim_config

    shipped = load_config(DEFAULT_CONFIG_PATH)
    assert shipped.as_dict() == PipelineConfig().as_dict()
    assert shipped.config_hash == PipelineConfig().config_hash
    assert sim_config(shipped) == sim_config(PipelineConfig())
    from artifactspark.models.trainingdata import TrainConfig, train_config

    assert train_config(shipped) == TrainConfig()


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"downsample": {"factr": 8}}, "unknown key(s) ['factr'] in [downsample]"),
        ({"downsampel": {}}, "unknown section [downsampel]"),
        ({"downsample": {"factor": "8"}}, "[downsample] factor = '8': must be an integer"),
        ({"downsample": {"factor": 0}}, "[downsample] factor = 0"),
        ({"downsample": {"edge": "wrap"}}, "[downsample] edge = 'wrap'"),
        ({"mask": {"bits": ["BPM", "NOPE"]}}, "unknown bit name(s) ['NOPE']"),
        ({"mask": {"zero_weight": 1}}, "[mask] zero_weight = 1: must be true or false"),
        ({"stretch": {"softening": 0}}, "[stretch] softening = 0.0"),
        ({"stretch": {"percentiles": [50, 10]}}, "[stretch] percentiles"),
        ({"stretch": {"percentiles": [0]}}, "must be a list of 2 values"),
        ({"background": {"missing": "ignore"}}, "[background] missing = 'ignore'"),
        ({"store": {"image_dtype": "int8"}}, "[store] image_dtype"),
        ({"store": {"partition_by": ["ccdnum"]}}, "[store] partition_by"),
        ({"labels": {"x_axis": "naxis3"}}, "[labels] x_axis"),
        ({"taxonomy": {"classes": ["A", "A"]}}, "without repeats"),
        ({"taxonomy": {"aliases": {"x": "Nope"}}}, "point to unknown classes"),
        ({"taxonomy": {"classes": ["OK", "B"]}}, "also in [labels]"),
        ({"store": {"partition_by": []}}, "must not be empty"),
        ({"input": {"image_patterns": []}}, "must not be empty"),
        ({"simulate": 3}, "[simulate] must be a table"),
    ],
)
def test_bad_config_names_the_key(data, needle):
    with pytest.raises(ConfigError) as e:
        config_from_dict(data, "t.toml")
    assert needle in str(e.value) and str(e.value).startswith("t.toml")


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[downsample\nfactor = 2")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_config_hash_tracks_feature_settings_only():
    base = PipelineConfig().config_hash
    assert config_from_dict({"downsample": {"factor": 4}}).config_hash != base
    assert config_from_dict({"stretch": {"softening": 0.5}}).config_hash != base
    assert config_from_dict({"store": {"rowgroup_size_mb": 64, "ccds_per_task": 8}}).config_hash == base
    assert config_from_dict({"simulate": {"anything": 1}}).config_hash == base


def test_binned_shape():
    assert PipelineConfig().binned_shape() == (512, 256)
    assert config_from_dict({"downsample": {"factor": 3}}).binned_shape() == (1365, 682)
    assert config_from_dict({"downsample": {"factor": 3, "edge": "pad"}}).binned_shape() == (1366, 683)


# ---------------------------------------------------------------------------- DES names
def test_parse_name():
    n = des.parse_name("s3a://bucket/x/D00232123_r_c12_r2357p01_immasked.fits.fz")
    assert (n.expnum, n.band, n.ccdnum, n.reqnum, n.attnum, n.kind, n.compression) == (
        232123,
        "r",
        12,
        2357,
        1,
        "immasked",
        ".fz",
    )
    assert n.stem == "D00232123_r_c12_r2357p01"
    assert n.filename("bkg") == "D00232123_r_c12_r2357p01_bkg.fits.fz"
    assert des.parse_name("D00232123_Y_c01_r1p02_bkg.fits").compression == ""


@pytest.mark.parametrize(
    "bad",
    [
        "D232123_r_c12_r2357p01_immasked.fits.fz",
        "D00232123_r_c12_immasked.fits",
        "D00232123_r_c12_r2357p01_immasked.fits.bz2",
        "notes.txt",
    ],
)
def test_parse_name_rejects(bad):
    with pytest.raises(ValueError, match="not a DESDM single-epoch name"):
        des.parse_name(bad)


def test_detpos_and_expname():
    assert des.detpos_for_ccdnum(1) == "S1" and des.detpos_for_ccdnum(31) == "S31"
    assert des.detpos_for_ccdnum(32) == "N1" and des.detpos_for_ccdnum(62) == "N31"
    with pytest.raises(ValueError):
        des.detpos_for_ccdnum(63)
    assert des.expname_to_expnum("DECam_00232123") == 232123
    assert des.expnum_to_expname(232123) == "DECam_00232123"
    with pytest.raises(ValueError):
        des.expname_to_expnum("232123")


# ---------------------------------------------------------------------------- labels
CLS = PipelineConfig().taxonomy.classes


def test_aggregate_reports_per_ccd():
    cfg = PipelineConfig()
    recs = [
        report(1, 100, 1, "Satellite", 4000, 2000),
        report(2, 100, 1, "Satellite", 10, 10),
        report(3, 100, 1, "Cosmic Ray", 50, 60),  # alias
        report(4, 100, 2, "OK"),  # inspected, clean
        report(5, 100, 3, "Excessive mask", 5, 5, fp=True),  # false positive only
        report(6, 100, 4, "Other..."),
        report(7, 100, 4, "Awesome!", 1, 1),
        report(8, 100, 5, "Brand new thing", 1, 1),
        {"expname": "bogus", "ccd": 1, "problem": "Satellite"},
        {"expname": "DECam_00000100", "problem": "Satellite"},
        report(9, 100, 6, "Ghost", 5000, 1),  # off the CCD: class kept, position lost
        report(10, 100, 7, "Satellite", "abc", 3),
        report(11, 100, 7, "Ghost", float("inf"), 1),
        report(12, 100, 7, "Airplane", 1408.5, 3.2),
        {**report(13, 100, 8, "Satellite"), "ccd": "12.5"},
    ]
    ls = aggregate_reports(recs, cfg)
    a = ls.by_ccd[(100, 1)]
    assert a.label == 1 and a.inspected and a.n_reports == 3
    assert [CLS[i] for i, v in enumerate(a.multi_hot) if v] == ["Cosmic ray", "Satellite"]
    assert CLS[a.primary_class] == "Satellite"  # most reports
    assert a.report_row[0] == 4000 and a.report_col[0] == 2000  # x along NAXIS2 = rows
    assert a.report_brow[0] == 500 and a.report_bcol[0] == 250
    ok = ls.by_ccd[(100, 2)]
    assert ok.inspected and ok.label == 0 and ok.n_reports == 0 and sum(ok.multi_hot) == 0
    fp = ls.by_ccd[(100, 3)]
    assert fp.label == 0 and fp.has_false_positive and sum(fp.multi_hot) == 0 and fp.report_fp == [True]
    other = ls.by_ccd[(100, 4)]
    assert other.label == 0 and other.report_class == [-1, -1]
    assert ls.by_ccd[(100, 5)].label == -1  # only an unknown class: no usable label, not "clean"
    ghost = ls.by_ccd[(100, 6)]
    assert ghost.label == 1 and ghost.report_row == [-1] and ghost.report_brow == [-1]
    odd = ls.by_ccd[(100, 7)]
    assert odd.label == 1 and odd.report_row == [-1, -1, 1408] and odd.report_col == [-1, -1, 3]
    assert ls.unknown_classes == {"Brand new thing": 1}
    assert ls.rejected == {"bad_expname_or_ccd": 2, "missing_keys": 1, "position_off_ccd": 1, "bad_position": 2}


@pytest.mark.parametrize(
    "rule,expect", [("most_reports", "Satellite"), ("priority", "Cosmic ray"), ("first_report", "Ghost")]
)
def test_primary_rules(rule, expect):
    cfg = config_from_dict({"labels": {"primary_rule": rule}})
    recs = [
        report(1, 7, 1, "Ghost", 1, 1),
        report(2, 7, 1, "Satellite", 1, 1),
        report(3, 7, 1, "Satellite", 2, 2),
        report(4, 7, 1, "Cosmic ray", 3, 3),
    ]
    lab = aggregate_reports(recs, cfg).by_ccd[(7, 1)]
    assert CLS[lab.primary_class] == expect


@pytest.mark.parametrize("x_axis", ["naxis1", "naxis2"])
@pytest.mark.parametrize("fx,fy", [(False, False), (True, False), (False, True), (True, True)])
def test_orientation_round_trip(x_axis, fx, fy):
    lc = config_from_dict({"labels": {"x_axis": x_axis, "flip_x": fx, "flip_y": fy}}).labels
    for row, col in [(0, 0), (4095, 2047), (1234, 567)]:
        x, y = pixel_to_report(row, col, lc)
        assert report_to_pixel(x, y, lc) == (row, col)
    x, y = pixel_to_report(4095, 0, lc)
    if x_axis == "naxis2":
        assert x == (0 if fx else 4095)
    else:
        assert y == (0 if fy else 4095)


def test_load_labels_files(tmp_path):
    cfg = PipelineConfig()
    p = tmp_path / "a.json"
    p.write_text(json.dumps([report(1, 5, 1, "Satellite", 1, 1)]))
    q = tmp_path / "b.json"
    q.write_text(json.dumps({"results": [report(2, 5, 2, "OK")]}))
    ls = load_labels([str(p), str(q)], cfg)
    assert set(ls.by_ccd) == {(5, 1), (5, 2)} and ls.n_records == 2
    with pytest.raises(LabelError, match="does not exist"):
        load_labels([str(tmp_path / "nope.json")], cfg)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LabelError, match="not valid JSON"):
        load_labels([str(bad)], cfg)
    bad.write_text('{"a": 1}')
    with pytest.raises(LabelError, match="expected a JSON list"):
        load_labels([str(bad)], cfg)


def test_a_zombie_holder_of_a_lock_counts_as_gone():
    import os
    import subprocess
    import sys
    import time

    from artifactspark.features.store import _pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(100):  # exited but not reaped: a zombie
        with open(f"/proc/{child.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    assert not _pid_alive(child.pid)
    child.wait()
    assert not _pid_alive(child.pid)  # reaped: gone
    assert _pid_alive(os.getpid())
    assert not _pid_alive(None) and not _pid_alive("x")
