"""Localisation heatmaps (issue 12): a real small Keras CNN with a trained tile head finds a
blob's tile; pointing accuracy and coverage against hand computations; the hot-region distance
and the query's position filter against brute force; orientation round trips; the predictions
table's heat columns through real Spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from artifactspark.config import LabelConfig
from artifactspark.evaluate import localise as L
from artifactspark.evaluate.tiles import dequantise, distance_to_hot, hot_tiles, map_names, quantise, upsample

H, W = 128, 64  # binned input: a 1024 x 512 CCD at factor 8 -> 8 x 4 tiles of 128 px


def _cnn(line_k: int = 0):
    from artifactspark.logs import import_tensorflow
    from artifactspark.models.cnn import build_model
    from artifactspark.models.trainingdata import TrainConfig

    import_tensorflow().keras.utils.set_random_seed(0)
    tc = TrainConfig(stem=4, net_filters=(8, 8, 8), line_k=line_k, batch_norm=False)
    return build_model((H, W, 5), 3, "multilabel", tc), tc


def _blobs(n, rng):
    """Images with one bright 6x6-bin blob at a random place; its full-resolution centre."""
    x = rng.normal(0, 1, (n, H, W, 5)).astype(np.float32)
    x[..., 1] = 0  # mask_frac
    centres = []
    for i in range(n):
        r, c = int(rng.integers(3, H - 3)), int(rng.integers(3, W - 3))
        x[i, r - 3 : r + 3, c - 3 : c + 3, 0] += 8.0
        x[i, r - 3 : r + 3, c - 3 : c + 3, 2] += 20.0
        centres.append((r * 8, c * 8))
    return x, centres


def test_tile_head_finds_the_blob_tile():
    from artifactspark.models.heatmap import HeatModel, target_maps, tile_features_model, train_head

    model, _ = _cnn()
    meta = {"problem": "binary", "classes": ["Satellite"]}  # one map: "any"
    names = map_names(meta)
    fm = tile_features_model(model)
    assert tuple(fm.output.shape[1:3]) == (8, 4)
    rng = np.random.default_rng(0)
    x, centres = _blobs(96, rng)
    y = np.stack([target_maps([("Satellite", r, c)], names, (8, 4), spread=0) for r, c in centres])
    head, fit = train_head(fm(x).numpy(), y, epochs=30)
    assert fit["ccds_with_reports"] == 96
    xt, ct = _blobs(40, np.random.default_rng(1))
    raw, maps = HeatModel(model, head, {**meta, "problem": "binary"}).run(xt, batch_size=16)
    np.testing.assert_allclose(raw, model.predict(xt, verbose=0), rtol=1e-4, atol=1e-5)  # the same scores
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, rtol=1e-4)
    exact = [np.unravel_index(np.argmax(m[0]), m[0].shape) == (r // 128, c // 128) for m, (r, c) in zip(maps, ct)]
    near = [L.hits(np.unravel_index(np.argmax(m[0]), m[0].shape), [r], [c]) for m, (r, c) in zip(maps, ct)]
    assert np.mean(exact) >= 0.85, np.mean(exact)  # chance: 1/32
    assert np.mean(near) >= 0.95, np.mean(near)


def test_saved_model_with_head_through_the_infer_path(tmp_path):
    """A CNN saved and loaded as infer loads it (its layers named "concatenate", ...), with a
    head: predict_with_heat gives Predictor.predict's scores and HeatModel's maps, quantised."""
    import json

    from artifactspark.models.heatmap import HEAD_FILE, HeatModel, target_maps, tile_features_model, train_head
    from artifactspark.models.modelio import Predictor
    from artifactspark.serve.heatmap import NO_HEAT, predict_with_heat

    model, _ = _cnn(line_k=2)
    meta = {"kind": "cnn", "problem": "binary", "classes": ["Satellite"], "model_file": "model.keras"}
    # a derived channel (level_sn: made from image and the stretch scalars) among the inputs, as
    # in the default channel set: the store columns differ from the model's channels
    meta["input"] = {"fields": ["image", "mask_frac", "max_sn", "spread_sn", "level_sn"], "image_shape": [H, W]}
    x, centres = _blobs(16, np.random.default_rng(2))
    fm = tile_features_model(model)
    y = np.stack([target_maps([("Satellite", r, c)], ["any"], (8, 4)) for r, c in centres])
    head, _ = train_head(fm(x).numpy(), y, epochs=2)
    model.save(tmp_path / "model.keras")
    (tmp_path / "model.json").write_text(json.dumps(meta))
    planes = {f: x[..., i] for i, f in enumerate(meta["input"]["fields"][:4])}
    planes["image"] = np.abs(planes["image"])  # a stretched image is >= 0
    planes |= {"stretch_min": np.full(16, -5.0), "stretch_max": np.full(16, 50.0), "noise_sigma": np.full(16, 2.0)}
    plain = predict_with_heat(Predictor(str(tmp_path)), planes)
    assert plain[2] == [NO_HEAT] * 16  # no head declared: null columns
    head.save(tmp_path / HEAD_FILE)
    meta["heatmap"] = {"maps": ["any"]}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    pred = Predictor(str(tmp_path))
    probs, pa, heat = predict_with_heat(pred, planes)
    p0, pa0 = pred.predict(planes)
    np.testing.assert_allclose(probs, p0, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pa, pa0, rtol=1e-4, atol=1e-6)
    x_in = pred.cnn_input(planes)
    assert pred.columns == ["image", "mask_frac", "max_sn", "spread_sn", "stretch_min", "stretch_max", "noise_sigma"]
    assert not np.allclose(x_in[..., 4], x[..., 4]) and np.isfinite(x_in).all()  # level_sn was derived
    _, maps = HeatModel(model, head, meta).run(x_in)
    for h, m in zip(heat, maps):
        assert list(h[1]) == [1, 8, 4]
        np.testing.assert_allclose(dequantise(h[0], h[1], h[2]), m, atol=float(m.max()) / 255 + 1e-6)
        tr, tc = np.unravel_index(np.argmax(m[0]), m[0].shape)
        assert (h[3], h[4]) == (tr * 128 + 64, tc * 128 + 64)


def test_cam_shapes_and_any_map():
    from artifactspark.models.heatmap import CamModel

    model, _ = _cnn()
    meta = {"problem": "multilabel", "classes": ["Satellite", "Airplane"], "any_head": True}
    raw, maps = CamModel(model, meta, ccd_shape=(1024, 512)).run(np.zeros((2, H, W, 5), np.float32))
    assert raw.shape == (2, 3) and maps.shape == (2, 2, 8, 4)  # any + Tracks
    assert (maps >= 0).all()


def test_pointing_and_summary_by_hand():
    names = ["any", "Tracks", "Masking"]
    m1 = np.zeros((3, 32, 16))
    m1[0, 10, 5] = 1  # any: tile (10, 5)
    m1[1, 3, 3] = 1  # Tracks: tile (3, 3)
    m1[2, 31, 0] = 1  # Masking: tile (31, 0)
    heat = {(1, 1): m1}
    pos = pd.DataFrame(
        [
            (1, 1, "Satellite", 2 * 128 + 5, 4 * 128 + 127),  # tile (2, 4): 1 from (3, 3) -> hit
            (1, 1, "Cosmic ray", 29 * 128, 0),  # tile (29, 0): 2 from (31, 0) -> miss
            (1, 1, "Cosmic ray", 11 * 128 + 64, 6 * 128),  # tile (11, 6): 2 from (31,0) miss; from any (10,5): hit
            (2, 2, "Satellite", 0, 0),  # no heatmap: left out
        ],
        columns=["expnum", "ccdnum", "cls", "row", "col"],
    )
    t = L.pointing(heat, names, pos)
    got = {c: (h, a) for c, h, a in zip(t.cls.fillna("CCD"), t.hit, t.hit_any)}
    assert got == {"CCD": (None, True), "Cosmic ray": (False, True), "Satellite": (True, False)}
    s = L.pointing_summary(t)
    assert s["overall"] == {"n": 1, "pointing": 1.0}
    assert s["compact"] == {"n": 2, "pointing": 0.5}
    assert s["classes"]["Cosmic ray"] == {"n": 1, "pointing": 0.0, "pointing_any": 1.0}


def test_coverage_by_hand():
    m = np.zeros((1, 4, 2))
    m[0, 0, 0], m[0, 1, 0], m[0, 2, 1] = 1.0, 0.6, 0.4  # hot: >= 0.5 -> (0, 0), (1, 0)
    fp = pd.DataFrame(
        [{"expnum": 1, "ccdnum": 1, "cls": "Fringing", "points_row": [10, 130, 300, 500], "points_col": [5, 5, 200, 5]}]
    )
    cov = L.coverage({(1, 1): m}, ["any"], fp)
    assert cov.coverage.tolist() == [0.5]  # (0,0) and (1,0) in; (2,1) at 0.4 and (3,0) at 0 out


def test_distance_to_hot_against_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = rng.random((8, 4)) ** 4
        hot = hot_tiles(m)
        r, c = float(rng.integers(0, 1024)), float(rng.integers(0, 512))
        pr, pc = np.nonzero(np.kron(hot, np.ones((128, 128), bool)))  # every pixel of a hot tile
        brute = float(np.sqrt((pr - r) ** 2 + (pc - c) ** 2).min())
        assert distance_to_hot(m, r, c) == pytest.approx(brute)


def test_quantise_round_trip_and_upsample():
    rng = np.random.default_rng(4)
    maps = rng.random((3, 32, 16)).astype(np.float32)
    maps[2] = 0
    blob, scale = quantise(maps)
    back = dequantise(blob, maps.shape, scale)
    assert len(blob) == 3 * 32 * 16 and scale[2] == 0
    np.testing.assert_allclose(back, maps, atol=max(scale) / 255)
    up = upsample(np.arange(8, dtype=np.float32).reshape(1, 4, 2), (8, 4))
    assert up.shape == (1, 8, 4) and up.min() == 0 and up.max() == 7


@pytest.mark.parametrize("axis", ["naxis1", "naxis2"])
@pytest.mark.parametrize("flip_x", [False, True])
@pytest.mark.parametrize("flip_y", [False, True])
def test_position_orientation_round_trip(axis, flip_x, flip_y):
    from artifactspark.features.labels import pixel_to_report
    from artifactspark.serve.where import to_pixel

    lc = LabelConfig(x_axis=axis, flip_x=flip_x, flip_y=flip_y)
    for row, col in [(0, 0), (4095, 2047), (1234, 77)]:
        x, y = pixel_to_report(row, col, lc)
        assert to_pixel(x=x, y=y, lc=lc) == (row, col)
        assert to_pixel(row=row, col=col, lc=lc) == (row, col)
    if axis == "naxis2" and not flip_x and not flip_y:
        assert pixel_to_report(3000, 100, lc) == (3000, 100)  # x along the 4096-pixel axis


def test_query_near_and_hot_region(spark, toy, tmp_path):
    """A predictions table with heat columns (infer's schema) over the toy store: near() against
    an independent computation, in both orientations; hot_region's tiles."""
    import datetime
    import json
    import os

    from artifactspark.evaluate.tiles import TILE
    from artifactspark.features.labels import pixel_to_report
    from artifactspark.models.heatmap import heat_columns
    from artifactspark.serve.infer import predictions_schema
    from artifactspark.serve.where import hot_region, near

    keys = sorted(toy["kinds"])[:12]
    rng = np.random.default_rng(5)
    maps = rng.random((len(keys), 2, 32, 16)).astype(np.float32) ** 8
    cols = heat_columns(maps)
    now = datetime.datetime(2026, 11, 24, 12, 0)
    rows = []
    for i, ((e, c), h) in enumerate(zip(keys, cols)):
        flagged = i % 4 != 3
        band, nite = ("g", 20131115) if (e - 400001) % 2 == 0 else ("r", 20131115)
        rows.append(
            (
                e,
                c,
                "m",
                "v1",
                "cnn",
                "multilabel",
                0.9,
                0.5,
                flagged,
                ["Satellite"] if flagged else [],
                [0.9, 0.1],
                "h",
                now,
                *h,
                band,
                nite,
            )
        )
    pred_dir = str(tmp_path / "pred")
    spark.createDataFrame(rows, predictions_schema()).write.partitionBy("band", "nite").parquet(pred_dir)
    os.makedirs(os.path.join(pred_dir, "_models"))
    meta = {
        "version": "v1",
        "classes": ["Satellite", "A/B jump"],
        "problem": "multilabel",
        "heatmap": {"maps": ["any", "Tracks"]},
    }
    with open(os.path.join(pred_dir, "_models", "v1.json"), "w") as f:
        json.dump(meta, f)
    q = (1500, 300)
    for lc in (LabelConfig(), LabelConfig(x_axis="naxis1", flip_y=True)):
        x, y = pixel_to_report(*q, lc)
        res = near(spark, toy["store"], pred_dir, x=x, y=y, radius=200, lc=lc)
        d = {k: distance_to_hot(dequantise(h[0], h[1])[0], *q) for k, h in zip(keys, cols)}
        want = sorted(k for i, k in enumerate(keys) if i % 4 != 3 and d[k] <= 200)
        assert sorted((r["expnum"], r["ccdnum"]) for r in res) == want
        assert res.info["row"] == q[0] and res.info["col"] == q[1]
        for r in res:
            assert (r["hot_x"], r["hot_y"]) == pixel_to_report(r["hot_row"], r["hot_col"], lc)
    res = near(spark, toy["store"], pred_dir, row=q[0], col=q[1], radius=200, cls="Satellite")
    assert res.info["map"] == "Tracks"
    e, c = keys[0]
    hr = hot_region(spark, toy["store"], pred_dir, e, c)
    m = dequantise(cols[0][0], cols[0][1])
    assert len(hr) == int(hot_tiles(m[0]).sum() + hot_tiles(m[1]).sum())
    assert hr[0]["map"] == "any" and hr[0]["share"] == 1.0
    tops = {(t["row_min"] + TILE // 2, t["col_min"] + TILE // 2) for t in hr if t["map"] == "any" and t["share"] == 1.0}
    assert (hr.info["hot_row"], hr.info["hot_col"]) in tops  # uint8 ties at 255 aside, the stored hottest tile


def test_oracle_maps_point_at_the_modal_footprint_tile():
    fp = pd.DataFrame(
        [
            {"expnum": 1, "ccdnum": 2, "cls": "Satellite", "points_row": [10, 20, 300], "points_col": [5, 6, 900]},
            {"expnum": 1, "ccdnum": 2, "cls": "Cosmic ray", "points_row": [4000], "points_col": [2000]},
        ]
    )
    m = L.oracle_maps(fp, ["any", "Tracks", "Masking"])[(1, 2)]
    assert m.shape == (3, 32, 16) and m[0].sum() == 4
    assert np.unravel_index(np.argmax(m[1]), m[1].shape) == (0, 0)  # two of three track points
    assert np.unravel_index(np.argmax(m[2]), m[2].shape) == (31, 15)


def test_fit_head_on_a_default_channel_cnn_then_infer_writes_the_maps(spark, toy, tmp_path):
    """train_heatmap on a multi-label CNN of the toy store (default channels: level_sn is derived,
    not stored; two more blocks than the toy network, for a feature map at tile resolution: 2 x 1
    tiles of 128 px on a 256 x 128 CCD), on the store version the CNN was trained on; a new model
    version; infer writes a heatmap for every CCD, whose hottest tile is the stored hot_row/hot_col."""
    import json
    import os

    import pyarrow.dataset as ds
    import train_cnn
    from toystore import TOY_CONF

    from artifactspark.features.versions import open_version
    from artifactspark.models.heatmap import TEST_FILE, fit_heatmap
    from artifactspark.serve.infer import run_infer

    conf = tmp_path / "deeper.toml"
    conf.write_text(
        TOY_CONF.replace("net_filters = [8, 16]", "net_filters = [8, 16, 16, 16]").replace("epochs = 20", "epochs = 3")
    )
    src = str(tmp_path / "cnn")
    args = ["--store", toy["store"], "--model-dir", src, "--config", str(conf), "--problem", "multilabel"]
    assert train_cnn.main(args) == 0
    meta0 = json.load(open(os.path.join(src, "model.json")))
    assert "level_sn" in meta0["input"]["fields"] and "level_sn" not in meta0["input"]["columns"]
    out = str(tmp_path / "with_head")
    s = fit_heatmap(toy["store"], src, out, epochs=2, lines=True)  # with the line feature: every tile input
    meta = json.load(open(os.path.join(out, "model.json")))
    assert meta["version"] != meta0["version"] and meta["heatmap"]["maps"][0] == "any"
    assert meta["heatmap"]["grid"] == [2, 1]  # a 256 x 128 CCD in 128-pixel tiles
    assert meta["heatmap"]["lines"] is True
    v = open_version(toy["store"], meta0["store_version"])
    rows = v.arrow_dataset().to_table(columns=["expnum", "ccdnum", "label"]).to_pylist()
    test = {(r["expnum"], r["ccdnum"]) for r in rows if r["expnum"] in meta["split"]["test"] and r["label"] in (0, 1)}
    heat = ds.dataset(os.path.join(out, TEST_FILE)).to_table().to_pylist()
    assert s["test_ccds"] == len(heat) == len(test) > 0
    assert {(r["expnum"], r["ccdnum"]) for r in heat} == test

    summary = run_infer(spark, toy["store"], out, str(tmp_path / "pred"), toy["cfg"])
    assert summary["scored"] == len(toy["kinds"])
    got = ds.dataset(str(tmp_path / "pred"), partitioning="hive").to_table().to_pylist()
    assert len(got) == len(toy["kinds"]) and all(r["model_version"] == meta["version"] for r in got)
    for r in got:
        m = dequantise(r["heatmap"], r["heatmap_shape"], r["heatmap_scale"])
        assert m.shape == (len(meta["heatmap"]["maps"]), 2, 1)
        tops = {(tr * 128 + 64, tc * 128 + 64) for tr, tc in zip(*np.nonzero(m[0] == m[0].max()))}
        assert (r["hot_row"], r["hot_col"]) in tops  # the stored hottest tile (uint8 ties aside)
