"""Training (issue 4): splits by exposure, the CNN from the Petastorm store, the SVM, saved models
and their metadata, thresholds and metrics recomputed from the saved predictions."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from toystore import FIRST_EXP

from artifactspark.errors import ConfigError, StoreError
from artifactspark.models.splits import SplitError, check_split, split_exposures


# ------------------------------------------------------------------------------ pure pieces
def test_split_is_by_exposure_reproducible_and_complete():
    exps = list(range(1000, 1040)) * 3  # 40 exposures, several CCDs each
    a = split_exposures(exps, (0.6, 0.2, 0.2), seed=4)
    b = split_exposures(list(reversed(exps)), (0.6, 0.2, 0.2), seed=4)
    assert a == b  # order of the input does not matter
    sides = [set(a[s]) for s in ("train", "val", "test")]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert set().union(*sides) == set(range(1000, 1040))
    assert [len(s) for s in sides] == [24, 8, 8]
    assert split_exposures(exps, (0.6, 0.2, 0.2), seed=5)["test"] != a["test"]
    check_split(a, exps)


@pytest.mark.parametrize(
    "exps,fractions,match",
    [
        ([1, 2], (0.7, 0.15, 0.15), "at least 3"),
        ([1, 2, 3, 4], (0.5, 0.5, 0.5), "summing to 1"),
        ([1, 2, 3], (0.0, 0.5, 0.5), "none for training"),
    ],
)
def test_split_bad_input(exps, fractions, match):
    with pytest.raises(SplitError, match=match):
        split_exposures(exps, fractions)


def test_loaded_split_must_cover_and_be_disjoint():
    rec = split_exposures(range(10), seed=0)
    with pytest.raises(SplitError, match="in no side"):
        check_split(rec, list(range(11)))
    bad = dict(rec, val=rec["val"] + [rec["train"][0]])
    with pytest.raises(SplitError, match="on both"):
        check_split(bad, range(10))


def test_fast_asinh_is_arcsinh_over_the_whole_range():
    from artifactspark.models.layers import fast_asinh

    v = np.concatenate([[0.0, 1e-30, -1e-30, 1e-8, 0.5, -0.5, 3.0, 1e4, -1e4, 1e9, 1e18, -1e18]])
    v = np.concatenate([v, np.random.default_rng(1).normal(0, 30, 5000)]).astype(np.float32)
    got = fast_asinh(v).numpy()
    want = np.arcsinh(v.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=2e-7 * 4, atol=1e-7)
    assert got[0] == 0 and np.all(np.sign(got) == np.sign(v))  # odd, exact at 0
    beyond = fast_asinh(np.array([1e30, -np.inf], np.float32)).numpy()
    np.testing.assert_allclose(beyond, [np.arcsinh(1e18), -np.arcsinh(1e18)], rtol=1e-6)  # clamped, finite


def test_standardize_numpy_and_keras_layer_agree():
    from artifactspark.models.layers import standardize_layer
    from artifactspark.models.trainingdata import standardize_image

    rng = np.random.default_rng(0)
    img = rng.normal(0.01, 0.002, (3, 32, 16)).astype(np.float32)
    img[:, 5, 5] = 0.88  # a bright star must not set the scale
    mask = rng.uniform(0, 1, img.shape).astype(np.float32)
    ref = standardize_image(img)
    got = standardize_layer()()(np.stack([img, mask], -1)).numpy()
    np.testing.assert_allclose(got[..., 0], ref, atol=2e-4)
    np.testing.assert_array_equal(got[..., 1], mask)
    core = np.abs(ref) < 2
    assert 0.8 < ref[core].std() < 1.3  # noise at unit scale, the star compressed
    assert ref[:, 5, 5].min() > 4
    # sky-sigma channels (max_sn, spread_sn) go through arcsinh; the mask fraction passes unchanged
    sn = rng.normal(0, 50, img.shape).astype(np.float32)
    got = standardize_layer()(asinh_channels=[2])(np.stack([img, mask, sn], -1)).numpy()
    np.testing.assert_allclose(got[..., 2], np.arcsinh(sn), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[..., 1], mask)
    # with (max_sn, sharp_sn) a "sharper than the PSF" channel is appended: asinh(relu(sharp - 0.5 max))
    from artifactspark.models.layers import SHARP_MIN_PEAK, SHARP_PSF_RATIO

    mx = np.abs(rng.normal(0, 50, img.shape)).astype(np.float32)
    sh = (mx * rng.uniform(0, 1, img.shape)).astype(np.float32)
    got = standardize_layer()(asinh_channels=[1, 2], sharp_pair=[1, 2])(np.stack([img, mx, sh], -1)).numpy()
    assert got.shape[-1] == 4
    want = np.arcsinh(np.maximum(sh - SHARP_PSF_RATIO * mx, 0) * (mx >= SHARP_MIN_PEAK))
    np.testing.assert_allclose(got[..., 3], want, rtol=1e-4, atol=1e-4)
    assert (got[..., 3][sh < 0.5 * mx] == 0).all()  # PSF-like bins give nothing
    assert (got[..., 3][mx < SHARP_MIN_PEAK] == 0).all()  # nor the maxima of plain noise
    assert (got[..., 3] > 0).any()


def test_class_weights_balance_and_clip():
    from artifactspark.models.trainingdata import class_weights

    w = class_weights(np.array([0] * 90 + [1] * 10), 3)
    np.testing.assert_allclose(w[:2], [100 / (2 * 90), 100 / (2 * 10)])
    assert w[2] == 1.0  # absent class: neutral
    assert class_weights(np.array([0] * 1000 + [1]), 2)[1] == 10.0


def test_train_config_validation():
    from artifactspark.config import config_from_dict
    from artifactspark.models.trainingdata import train_config

    cfg = config_from_dict({"train": {"epochs": 3}})
    assert train_config(cfg).epochs == 3
    with pytest.raises(ConfigError, match="unknown key"):
        train_config(config_from_dict({"train": {"epoch": 3}}))
    with pytest.raises(ConfigError, match="dropout"):
        train_config(cfg, {"dropout": 1.5})


# ------------------------------------------------------------------------------ on a real store
def _meta(md):
    return json.load(open(os.path.join(md, "model.json")))


def test_split_recorded_and_never_shared(trained, toy):
    metas = {k: _meta(v) for k, v in trained.items()}
    ids = {m["split"]["id"] for m in metas.values()}
    assert len(ids) == 1  # all three on one split
    split = metas["cnn_binary"]["split"]
    sides = [set(split[s]) for s in ("train", "val", "test")]
    assert sum(len(s) for s in sides) == len(set().union(*sides)) == 10
    for md in trained.values():
        for side in ("val", "test"):
            p = pd.read_parquet(os.path.join(md, f"predictions_{side}.parquet"))
            assert set(p["expnum"]) <= set(split[side])
            # every labelled CCD of the side is there, once
            want = {k for k in toy["kinds"] if k[0] in split[side]}
            assert set(zip(p["expnum"], p["ccdnum"])) == want and len(p) == len(want)


def test_cnn_learns_the_toy_set(trained, toy):
    p = pd.read_parquet(os.path.join(trained["cnn_binary"], "predictions_test.parquet"))
    truth = np.array([toy["kinds"][(e, c)] != "clean" for e, c in zip(p["expnum"], p["ccdnum"])])
    np.testing.assert_array_equal(p["label"].to_numpy() == 1, truth)
    acc = np.mean((np.stack(p["probs"]).argmax(1) == 1) == truth)
    assert acc >= 0.8, acc  # chance is ~0.5
    m = pd.read_parquet(os.path.join(trained["cnn_multiclass"], "predictions_test.parquet"))
    meta = _meta(trained["cnn_multiclass"])
    names = np.array(meta["classes"])[np.stack(m["probs"]).argmax(1)]
    want = np.array(
        [
            {"clean": "no artifact"}.get(toy["kinds"][(e, c)], toy["kinds"][(e, c)])
            for e, c in zip(m["expnum"], m["ccdnum"])
        ]
    )
    majority = max(np.mean(want == w) for w in set(want))  # always predicting the commonest class
    acc = np.mean(names == want)
    assert acc >= 0.75 and acc >= majority + 0.15, (acc, majority, list(zip(names, want)))


def test_default_cnn_recall_and_fpr_against_truth(trained, toy):
    """The default network (multi-label, 'any artifact' head) at its validation-chosen threshold,
    scored on held-out exposures against the toy archive's truth (not the labels)."""
    md = trained["cnn_multilabel"]
    meta = _meta(md)
    assert meta["any_head"] and meta["architecture"] == "strided" and len(meta["class_thresholds"]) == 26
    p = pd.read_parquet(os.path.join(md, "predictions_test.parquet"))
    truth = np.array([toy["kinds"][(e, c)] != "clean" for e, c in zip(p["expnum"], p["ccdnum"])])
    flagged = p["p_artifact"].to_numpy() >= meta["threshold"]
    assert truth.any() and (~truth).any()
    recall, fpr = flagged[truth].mean(), flagged[~truth].mean()
    assert recall >= 0.9 and fpr <= 0.1, (recall, fpr, meta["threshold"])
    # the binary and many-class views sit beside it, on the same rows and threshold
    for view in ("binary", "multiclass"):
        vmeta = _meta(os.path.join(md, "views", view))
        assert vmeta["problem"] == view and vmeta["evaluation_only"] and vmeta["threshold"] == meta["threshold"]
    vb = pd.read_parquet(os.path.join(md, "views", "binary", "predictions_test.parquet"))
    np.testing.assert_allclose(vb["p_artifact"], p["p_artifact"], atol=1e-6)


def test_many_class_view_uses_the_exposure_rule(trained):
    """model.json names the rule; the many-class view's artifact columns rank the classes as the
    rule says (numpy median per exposure here, evaluate/context.py there), while the multi-label
    predictions stay the CCD's own sigmoids (the reload test compares them with the model)."""
    from artifactspark.evaluate.context import MIN_CCDS, WHOLE_EXPOSURE

    md = trained["cnn_multilabel"]
    meta = _meta(md)
    assert meta["exposure_context"] == {"classes": list(WHOLE_EXPOSURE), "min_ccds": MIN_CCDS}
    capped = [meta["classes"].index(c) for c in WHOLE_EXPOSURE]
    p = pd.read_parquet(os.path.join(md, "predictions_test.parquet"))
    v = pd.read_parquet(os.path.join(md, "views", "multiclass", "predictions_test.parquet"))
    assert (p["expnum"].to_numpy() == v["expnum"].to_numpy()).all()
    raw = np.stack(p["probs"]).astype(np.float64)
    want = raw.copy()
    exp = p["expnum"].to_numpy()
    for e in np.unique(exp):
        rows = np.flatnonzero(exp == e)
        if len(rows) >= MIN_CCDS:
            med = np.median(raw[np.ix_(rows, capped)], axis=0)
            want[np.ix_(rows, capped)] = np.minimum(raw[np.ix_(rows, capped)], med)
    assert not np.allclose(want, raw)  # the rule bites on this split
    view = np.stack(v["probs"])[:, :-1]
    q = want / want.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(view, p["p_artifact"].to_numpy()[:, None] * q, atol=1e-5)


def test_metadata_threshold_and_metrics_recomputed(trained):
    from artifactspark.models.thresholds import cost_threshold

    for md in trained.values():
        meta = _meta(md)
        for key in (
            "classes",
            "config_hash",
            "split",
            "threshold",
            "version",
            "seeds",
            "train_config",
            "store_version",
        ):
            assert meta.get(key) is not None, key
        val = pd.read_parquet(os.path.join(md, "predictions_val.parquet"))
        y = (val["label"] == 1).to_numpy()
        if y.any() and not y.all():
            t = cost_threshold(
                y, val["p_artifact"].to_numpy(), meta["train_config"]["fn_cost"], seed=meta["seeds"]["train"]
            )
            assert t == pytest.approx(meta["threshold"]) and "cost" in meta["threshold_rule"]
        test = pd.read_parquet(os.path.join(md, "predictions_test.parquet"))
        metrics = json.load(open(os.path.join(md, "metrics.json")))
        flagged = test["p_artifact"].to_numpy() >= meta["threshold"]
        pos = test["label"].to_numpy() == 1
        assert metrics["binary"]["tp"] == int((flagged & pos).sum())
        assert metrics["binary"]["fp"] == int((flagged & ~pos).sum())
        if meta["problem"] != "multilabel":
            assert metrics["accuracy"] == pytest.approx(np.mean(np.stack(test["probs"]).argmax(1) == test["y_true"]))


def test_saved_models_reload_with_identical_predictions(trained, toy):
    from artifactspark.models.modelio import Predictor
    from artifactspark.models.trainingdata import read_rows

    for md in trained.values():
        meta = _meta(md)
        saved = pd.read_parquet(os.path.join(md, "predictions_test.parquet"))
        model = Predictor(md)
        rows = read_rows(
            os.path.join(toy["store"], "features"),
            meta["split"]["test"],
            ["expnum", "ccdnum", *model.columns],
            meta["problem"],
        )
        order = np.lexsort((rows["ccdnum"], rows["expnum"]))
        probs, p_art = model.predict({c: rows[c][order] for c in model.columns})
        np.testing.assert_allclose(probs, np.stack(saved["probs"]), atol=1e-5)
        np.testing.assert_allclose(p_art, saved["p_artifact"], atol=1e-5)


def test_cnn_scores_are_the_mean_over_the_four_flips(trained, toy):
    """Training scored val/test (and so chose its threshold) with flip-averaged outputs, and the
    reloaded Predictor does the same: against four single passes over flipped copies in numpy."""
    from artifactspark.models.layers import predict
    from artifactspark.models.modelio import Predictor
    from artifactspark.models.trainingdata import read_rows

    md = trained["cnn_multilabel"]
    meta = _meta(md)
    assert meta["input"]["score_flips"] is True and meta["train_config"]["score_flips"] is True
    pred = Predictor(md)
    rows = read_rows(os.path.join(toy["store"], "features"), meta["split"]["test"], list(pred.columns), "multilabel")
    x = pred.cnn_input({c: rows[c] for c in pred.columns})
    assert len(x) >= 4
    single = [
        predict(pred.model, np.ascontiguousarray(v), flips=False)
        for v in (x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1])
    ]
    want = np.mean(single, axis=0)
    np.testing.assert_allclose(predict(pred.model, x, batch_size=3, flips=True), want, atol=1e-6)
    assert np.abs(single[0] - want).max() > 1e-4  # the flips change the scores on this model
    probs, _ = pred.predict({c: rows[c] for c in pred.columns})
    np.testing.assert_allclose(probs, want[:, : len(meta["classes"])], atol=1e-6)
    pred.score_flips = False  # what a model from before the setting gets
    np.testing.assert_allclose(
        pred.predict({c: rows[c] for c in pred.columns})[0], single[0][:, : len(meta["classes"])], atol=1e-6
    )


def test_cnn_history_and_svm_learning_curve(trained):
    h = json.load(open(os.path.join(trained["cnn_binary"], "history.json")))
    assert h["epoch"] == list(range(1, 21)) and len(h["test_error"]) == 20
    assert h["train_error"][-1] < h["train_error"][0]
    assert len(h["scoring_seconds"]) == 20 and all(0 <= sc <= t for sc, t in zip(h["scoring_seconds"], h["seconds"]))
    c = json.load(open(os.path.join(trained["svm_binary"], "learning_curve.json")))
    assert c["n_train"] == sorted(c["n_train"]) and len(c["n_train"]) >= 2
    assert all(0 <= e <= 1 for e in c["train_error"] + c["test_error"])


def test_cnn_val_loss_is_the_saved_models_loss_on_the_validation_side(spark, trained, toy):
    """The callback scores the validation side once per epoch and gives early stopping its loss:
    the last epoch's val_loss must be what Keras' own evaluate gives for the saved weights (the
    toy config has no early stopping, so the saved weights are the last epoch's)."""
    from artifactspark.config import load_config
    from artifactspark.models.cnn import build_model, load_side, n_outputs
    from artifactspark.models.modelio import Predictor
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import train_config

    cfg = load_config(toy["conf"])
    tc = train_config(cfg)
    assert tc.early_stopping_patience == 0
    for name in ("cnn_binary", "cnn_multiclass", "cnn_multilabel"):
        md = trained[name]
        meta, h = _meta(md), json.load(open(os.path.join(md, "history.json")))
        ts = prepare(spark, toy["store"], meta["problem"], cfg, tc, os.path.join(md, "model.json"))
        _, x, y = load_side(ts, "val", tc)
        assert len(x) > 0
        saved = Predictor(md).model
        model = build_model(x.shape[1:], n_outputs(ts.problem, len(ts.classes), tc), ts.problem, tc)
        model.set_weights(saved.get_weights())
        got = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
        assert h["val_loss"][-1] == pytest.approx(got, rel=1e-4, abs=1e-5), name
        assert all(np.isfinite(h["val_loss"])) and len(h["val_loss"]) == len(h["epoch"])


def test_report_on_trained_models(trained, toy, tmp_path):
    from artifactspark.evaluate.report import build_report

    s = build_report([trained["cnn_binary"], trained["svm_binary"], trained["cnn_multiclass"]], str(tmp_path / "rep"))
    assert (tmp_path / "rep" / "report.html").stat().st_size > 1000
    pngs = list((tmp_path / "rep").glob("*.png"))
    assert len(pngs) >= 6 and all(p.stat().st_size > 5000 for p in pngs)
    rep = json.load(open(tmp_path / "rep" / "report.json"))
    assert "split" in json.dumps(rep)
    assert s is not None


def test_training_needs_labels_and_a_known_split(spark, toy, tmp_path):
    import train_cnn

    from artifactspark.features.preprocess import run_preprocess
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import train_config

    store = str(tmp_path / "nolabels")
    run_preprocess(spark, [str(toy["dir"] / "archive")], store, toy["cfg"], [])
    with pytest.raises(StoreError, match="no labelled CCDs"):
        prepare(spark, store, "binary", toy["cfg"], train_config(toy["cfg"]))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [FIRST_EXP], "val": [FIRST_EXP + 1], "test": [FIRST_EXP + 2]}))
    assert (
        train_cnn.main(
            [
                "--store",
                toy["store"],
                "--model-dir",
                str(tmp_path / "m"),
                "--config",
                toy["conf"],
                "--split",
                str(split),
            ]
        )
        == 2
    )  # exposures outside the split: refused
    assert (
        train_cnn.main(
            ["--store", toy["store"], "--model-dir", str(tmp_path / "m"), "--config", toy["conf"], "--set", "epochz=3"]
        )
        == 2
    )  # config error names the key
    assert train_cnn.main(["--store", str(tmp_path / "nowhere"), "--model-dir", str(tmp_path / "m")]) == 4


def test_svm_refuses_multilabel(spark, toy, tmp_path):
    from artifactspark.models.svm import train_svm
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import train_config

    tc = train_config(toy["cfg"])
    ts = prepare(spark, toy["store"], "multilabel", toy["cfg"], tc)
    with pytest.raises(ConfigError, match="multilabel"):
        train_svm(spark, ts, str(tmp_path / "s"), tc)


def test_job_stdout_is_only_the_summary_line(toy, tmp_path, capsys):
    import train_cnn

    capsys.readouterr()
    assert (
        train_cnn.main(
            ["--store", toy["store"], "--model-dir", str(tmp_path / "m"), "--config", toy["conf"], "--set", "epochs=1"]
        )
        == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # petastorm's "Cache cleanup complete." goes to stderr
    assert json.loads(out[0])["job"] == "train_cnn"


def test_a_one_epoch_read_of_many_row_groups_is_handed_out_at_once(toy, monkeypatch):
    """With more row groups than petastorm's ventilation bound (workers x 4), the ventilator
    blocked until the caller read while make_reader waited for it to finish: 60 s lost per read
    (the wait's timeout) on the quality run's store. The bound is lifted for one-epoch reads: the
    ventilator has handed out everything when make_reader returns, and every row is read. The
    toy store has 4 row groups: the bound is shrunk to 1 per worker to put it in that case."""
    import petastorm.reader
    import pyarrow.parquet as pq

    from artifactspark.features import versions

    v = versions.open_version(toy["store"])
    paths = [f.removeprefix("file://") for f in v.files()]
    want = sorted(zip(*(pq.read_table(paths, columns=["expnum", "ccdnum"]).to_pydict().values())))
    monkeypatch.setattr(petastorm.reader, "_VENTILATE_EXTRA_ROWGROUPS", 0)  # bound: workers x 1
    with versions.make_reader(v, schema_fields=["expnum", "ccdnum"], workers_count=1, shuffle_row_groups=False) as r:
        vent = r.ventilator
        assert len(vent._items_to_ventilate) > 1, "the store must hold more row groups than the bound"
        assert vent.completed()
        got = sorted((int(x.expnum), int(x.ccdnum)) for x in r)
    assert got == want and len(got) == len(toy["kinds"])
