"""Batch inference (issue 5): one row per CCD and model version, values equal to a local
predict on the same images, incremental re-runs, new versions beside old ones, refusals."""

import glob
import json
import os
import shutil

import infer as infer_job
import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest


def _preds(path):
    return pads.dataset(path, partitioning="hive").to_table().to_pandas()


def _store_rows(store, fields=("image", "mask_frac")):
    """Keys (pandas) and the decoded planes {field: (N, H, W)} of every stored CCD, by key."""
    from artifactspark.features.store import decode_ndarray
    from artifactspark.features.versions import open_version

    t = open_version(store).arrow_dataset().to_table(columns=["expnum", "ccdnum", "band", "nite", *fields]).to_pandas()
    t = t.sort_values(["expnum", "ccdnum"]).reset_index(drop=True)
    from artifactspark.models.channels import is_plane

    return t, {f: np.stack([decode_ndarray(b) for b in t[f]]) if is_plane(f) else t[f].to_numpy() for f in fields}


@pytest.fixture(scope="module")
def scored(trained, toy, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("preds") / "predictions")
    assert (
        infer_job.main(
            ["--store", toy["store"], "--model", trained["cnn_binary"], "--output", out, "--config", toy["conf"]]
        )
        == 0
    )
    return out


def test_one_row_per_ccd_with_the_local_model_values(scored, trained, toy):
    from artifactspark.models.modelio import Predictor

    p = _preds(scored).sort_values(["expnum", "ccdnum"]).reset_index(drop=True)
    model = Predictor(trained["cnn_binary"])
    rows, planes = _store_rows(toy["store"], model.columns)
    assert len(p) == len(rows) == len(toy["kinds"])
    assert not p.duplicated(["expnum", "ccdnum", "model_version"]).any()
    np.testing.assert_array_equal(p[["expnum", "ccdnum"]].to_numpy(), rows[["expnum", "ccdnum"]].to_numpy())
    assert (p["band"].astype(str).to_numpy() == rows["band"].to_numpy()).all()
    meta = json.load(open(os.path.join(trained["cnn_binary"], "model.json")))
    local, _ = model.predict(planes)
    np.testing.assert_allclose(np.stack(p["class_probs"]), local, atol=1e-5)
    np.testing.assert_allclose(p["p_artifact"], local[:, 1], atol=1e-5)
    assert (p["flagged"] == (p["p_artifact"] >= meta["threshold"])).all()
    assert (p["model_version"] == meta["version"]).all() and (p["config_hash"] == meta["config_hash"]).all()
    assert p["predicted_classes"].map(len).eq(0).all()  # binary: no class names
    assert sorted(os.path.basename(d) for d in glob.glob(os.path.join(scored, "band=*"))) == ["band=g", "band=r"]
    assert os.path.isfile(os.path.join(scored, "_models", meta["version"] + ".json"))


def test_rerun_adds_nothing_and_new_version_adds_its_own(scored, trained, toy, capsys):
    before = _preds(scored)
    files = sorted(glob.glob(os.path.join(scored, "band=*", "nite=*", "*.parquet")))
    capsys.readouterr()
    assert (
        infer_job.main(
            ["--store", toy["store"], "--model", trained["cnn_binary"], "--output", scored, "--config", toy["conf"]]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scored"] == 0 and summary["already_scored"] == len(toy["kinds"])
    assert sorted(glob.glob(os.path.join(scored, "band=*", "nite=*", "*.parquet"))) == files
    # a second model: its own rows, the first model's rows untouched
    for name in ("svm_binary", "cnn_multiclass"):
        assert (
            infer_job.main(
                ["--store", toy["store"], "--model", trained[name], "--output", scored, "--config", toy["conf"]]
            )
            == 0
        )
    after = _preds(scored)
    assert len(after) == 3 * len(toy["kinds"]) and after["model_version"].nunique() == 3
    old = after[after["model_version"] == before["model_version"].iloc[0]]
    pd.testing.assert_frame_equal(
        old.sort_values(["expnum", "ccdnum"]).reset_index(drop=True)[before.columns],
        before.sort_values(["expnum", "ccdnum"]).reset_index(drop=True),
        check_categorical=False,
    )
    mc = after[after["problem"] == "multiclass"]
    meta = json.load(open(os.path.join(trained["cnn_multiclass"], "model.json")))
    for probs, names, flagged in zip(mc["class_probs"], mc["predicted_classes"], mc["flagged"]):
        top = meta["classes"][int(np.argmax(probs))]
        assert list(names) == ([top] if flagged and top != "no artifact" else [])


def test_refuses_a_model_from_another_preprocessing_config(trained, toy, tmp_path, capsys):
    bad = tmp_path / "model"
    shutil.copytree(trained["cnn_binary"], bad)
    meta = json.load(open(bad / "model.json"))
    meta["config_hash"] = "0123456789abcdef"
    (bad / "model.json").write_text(json.dumps(meta))
    rc = infer_job.main(
        ["--store", toy["store"], "--model", str(bad), "--output", str(tmp_path / "p"), "--config", toy["conf"]]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "0123456789abcdef" in err and "Retrain" in err
    assert not glob.glob(str(tmp_path / "p" / "band=*"))
    assert (
        infer_job.main(
            [
                "--store",
                toy["store"],
                "--model",
                str(tmp_path / "none"),
                "--output",
                str(tmp_path / "p"),
                "--config",
                toy["conf"],
            ]
        )
        == 2
    )


def test_refuses_to_mix_two_stores_in_one_table(spark, scored, trained, toy, tmp_path, capsys):
    from artifactspark.features.preprocess import run_preprocess

    other = str(tmp_path / "other")
    run_preprocess(spark, [str(toy["dir"] / "archive")], other, toy["cfg"], [])
    rc = infer_job.main(
        ["--store", other, "--model", trained["cnn_binary"], "--output", scored, "--config", toy["conf"]]
    )
    assert rc == 4 and "would mix" in capsys.readouterr().err


def test_multilabel_rows_are_the_ccds_own_values(trained, toy, tmp_path):
    """A multi-label model: class_probs are the local model's sigmoids per CCD (the exposure rule
    of evaluate/context.py names the many-class decision only) and predicted_classes are the
    classes at or above their validation thresholds."""
    from artifactspark.models.modelio import Predictor

    md = trained["cnn_multilabel"]
    meta = json.load(open(os.path.join(md, "model.json")))
    assert meta["exposure_context"]["classes"]
    out = str(tmp_path / "predictions")
    assert infer_job.main(["--store", toy["store"], "--model", md, "--output", out, "--config", toy["conf"]]) == 0
    p = _preds(out).sort_values(["expnum", "ccdnum"]).reset_index(drop=True)
    model = Predictor(md)
    rows, planes = _store_rows(toy["store"], model.columns)
    np.testing.assert_array_equal(p[["expnum", "ccdnum"]].to_numpy(), rows[["expnum", "ccdnum"]].to_numpy())
    raw, pa = model.predict(planes)
    got = np.stack(p["class_probs"])
    np.testing.assert_allclose(got, raw, atol=1e-5)
    np.testing.assert_allclose(p["p_artifact"], pa, atol=1e-5)
    th = np.asarray(meta["class_thresholds"])
    for probs, names in zip(got, p["predicted_classes"]):
        assert list(names) == [c for c, v, t in zip(meta["classes"], probs, th) if v >= t]
