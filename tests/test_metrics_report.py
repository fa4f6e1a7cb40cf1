"""Evaluation metrics and the report: numbers checked against independent computations (sklearn,
brute force, hand-made cases), the report's files and numbers against the predictions it was built from."""

import html as htmllib
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from sklearn import metrics as skm

from artifactspark.config import DEFAULT_CLASSES as TAXONOMY  # noqa: E402
from artifactspark.evaluate import metrics as M
from artifactspark.evaluate.metrics import ModelDirError
from artifactspark.evaluate.report import ReportInputError, build_report

# ---------------------------------------------------------------------------------------------
# threshold rule
# ---------------------------------------------------------------------------------------------


def brute_threshold(y, p, target):
    """Largest candidate t (every distinct score) with share of positives below t <= target."""
    pos = p[y == 1]
    best = None
    for t in np.unique(p):
        if np.mean(pos < t) <= target + 1e-12:
            best = t
    return best


def test_threshold_hand_cases():
    y = np.array([1, 1, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    assert M.threshold_for_fnr(y, p, 0.0) == pytest.approx(0.1)  # target 0: the lowest positive score
    assert M.threshold_for_fnr(y, p, 0.24) == pytest.approx(0.1)  # 0.24 * 4 < 1: no miss allowed
    assert M.threshold_for_fnr(y, p, 0.25) == pytest.approx(0.2)  # one miss allowed
    assert M.threshold_for_fnr(y, p, 0.5) == pytest.approx(0.3)
    # ties: three positives tied at 0.2, one miss allowed -> t = 0.2 flags all three (FNR 0 <= 0.25);
    # any t above 0.2 would miss three of four
    y2, p2 = np.array([1, 1, 1, 1, 0]), np.array([0.2, 0.2, 0.2, 0.7, 0.5])
    t = M.threshold_for_fnr(y2, p2, 0.25)
    assert t == pytest.approx(0.2) and np.mean(p2[y2 == 1] < t) == 0.0
    # a tie straddling the allowance: 2 misses allowed, positives 0.1, 0.3, 0.3, 0.3, 0.9 -> t = 0.3 (FNR 0.2)
    y3, p3 = np.ones(5, int), np.array([0.1, 0.3, 0.3, 0.3, 0.9])
    assert M.threshold_for_fnr(y3, p3, 0.4) == pytest.approx(0.3)
    # floating-point: 0.29 * 100 is 28.999...; 29 misses are allowed
    y4, p4 = np.ones(100, int), np.arange(100) / 100.0
    assert M.threshold_for_fnr(y4, p4, 0.29) == pytest.approx(0.29)
    # every positive may be missed: nothing is flagged
    t1 = M.threshold_for_fnr(y, p.astype(np.float32), 1.0)
    assert not (p.astype(np.float32) >= t1).any()
    # no positives: 0.5 (documented)
    assert M.threshold_for_fnr(np.zeros(4, int), np.array([0.1, 0.2, 0.3, 0.4]), 0.02) == 0.5
    with pytest.raises(ValueError, match="target_fnr"):
        M.threshold_for_fnr(y, p, 1.5)
    with pytest.raises(ValueError, match="NaN"):
        M.threshold_for_fnr(y, np.array([0.1, np.nan, 0.3, 0.4, 0.9]), 0.1)
    with pytest.raises(ValueError, match="0/1"):
        M.threshold_for_fnr(np.array([1, -1, 0, 1, 0]), p, 0.1)


def test_threshold_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    for trial in range(60):
        n = int(rng.integers(5, 80))
        y = (rng.random(n) < 0.5).astype(int)
        if y.sum() == 0:
            y[0] = 1
        p = np.round(rng.random(n), 1)  # many ties
        target = float(rng.choice([0.0, 0.02, 0.1, 0.25, 0.5, rng.random()]))
        t = M.threshold_for_fnr(y, p, target)
        assert t == pytest.approx(brute_threshold(y, p, target)), (trial, target)
        assert np.mean(p[y == 1] < t) <= target + 1e-12


# ---------------------------------------------------------------------------------------------
# binary metrics and curve
# ---------------------------------------------------------------------------------------------


def test_fpr_fnr_curve_matches_sklearn_roc():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.4).astype(int)
    p = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 2)  # ties
    c = M.fpr_fnr_curve(y, p)
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    keep = np.isfinite(thr) & (thr <= 1.0 + 1e-12) & (thr >= p.min())
    keep[0] = False  # sklearn's "flag nothing" point
    np.testing.assert_allclose(c["thresholds"], thr[keep][::-1])
    np.testing.assert_allclose(c["fpr"], fpr[keep][::-1])
    np.testing.assert_allclose(c["fnr"], 1 - tpr[keep][::-1])
    assert c["fnr"][0] == 0.0 and c["fpr"][0] == 1.0  # lowest threshold flags everything


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.3).astype(int)
    p = np.round(rng.random(500), 2)
    t = 0.37  # a value present in p: ties must be flagged
    assert (p == t).any()
    bm = M.binary_metrics(y, p, t)
    pred = (p >= t).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert (bm["tp"], bm["fp"], bm["tn"], bm["fn"]) == (tp, fp, tn, fn)
    prec, rec, f1, _ = skm.precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    assert (
        bm["precision"] == pytest.approx(prec) and bm["recall"] == pytest.approx(rec) and bm["f1"] == pytest.approx(f1)
    )
    assert bm["fpr"] == pytest.approx(fp / (fp + tn)) and bm["fnr"] == pytest.approx(fn / (fn + tp))
    assert bm["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    # zero division is 0: no positives; nothing flagged
    z = M.binary_metrics(np.zeros(4, int), np.array([0.1, 0.2, 0.6, 0.9]), 0.5)
    assert z["recall"] == 0.0 and z["fnr"] == 0.0 and z["fpr"] == 0.5
    z = M.binary_metrics(np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3]), 0.9)
    assert z["precision"] == 0.0 and z["f1"] == 0.0 and z["recall"] == 0.0


def test_wilson_interval_known_value():
    lo, hi = M.wilson_interval(98, 100)
    assert lo == pytest.approx(0.9300, abs=2e-4) and hi == pytest.approx(0.9945, abs=2e-4)
    assert M.wilson_interval(0, 0) == (0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# many-class and multi-label
# ---------------------------------------------------------------------------------------------


def test_confusion_per_class_macro_match_sklearn():
    rng = np.random.default_rng(4)
    n, k = 600, 7
    names = [f"c{i}" for i in range(k)]
    yt = rng.choice(k, n, p=[0.3, 0.25, 0.2, 0.15, 0.06, 0.04, 0.0])  # class 6 never true
    yp = np.where(rng.random(n) < 0.6, yt, rng.choice(k - 1, n))  # class 6 never predicted
    yp[yp == 5] = 4
    cm = M.confusion_matrix(yt, yp, k)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(yt, yp, labels=list(range(k))))
    rows = M.per_class_prf(yt, yp, names)
    P, R, F, S = skm.precision_recall_fscore_support(yt, yp, labels=list(range(k)), zero_division=0)
    for r in rows:
        i = r["index"]
        assert (r["name"], r["support"]) == (names[i], S[i])
        assert (
            r["precision"] == pytest.approx(P[i])
            and r["recall"] == pytest.approx(R[i])
            and r["f1"] == pytest.approx(F[i])
        )
    val, used = M.macro_f1(yt, yp, names, min_support=30)
    qual = [i for i in range(k) if S[i] >= 30]
    assert used == [names[i] for i in qual] and len(qual) < k
    assert val == pytest.approx(skm.f1_score(yt, yp, labels=qual, average="macro", zero_division=0))
    assert [r["index"] for r in M.per_class_prf(yt, yp, names, min_support=30)] == qual
    assert M.macro_f1(yt, yp, names, min_support=10**6) == (None, [])
    with pytest.raises(ValueError, match="outside"):
        M.confusion_matrix([0, 7], [0, 1], k)


def test_binary_by_true_class_matches_crosstab():
    rng = np.random.default_rng(5)
    n = 400
    label = (rng.random(n) < 0.5).astype(int)
    label[:5] = -1  # unlabelled: skipped
    pc = np.where(label == 1, rng.integers(0, 26, n), -1)
    pc[10] = -1
    label[10] = 1  # artifact without class
    flagged = rng.random(n) < 0.6
    out = M.binary_by_true_class(pc, label, flagged, TAXONOMY)
    assert out["rows"] == TAXONOMY + ["no artifact"] and out["cols"] == ["no artifact", "artifact"]
    df = pd.DataFrame({"label": label, "pc": pc, "flag": flagged})
    df = df[df.label >= 0]
    df["row"] = np.where(df.label == 0, 26, df.pc)
    ct = pd.crosstab(df.row, df.flag).reindex(index=range(-1, 27), columns=[False, True], fill_value=0)
    np.testing.assert_array_equal(out["counts"], ct.loc[0:26].to_numpy())
    np.testing.assert_array_equal(out["unassigned"], ct.loc[-1].to_numpy())
    assert out["skipped"] == 5
    # multi_hot: a CCD with two classes counts in both rows
    mh = np.zeros((3, 26), int)
    mh[0, [1, 19]] = 1
    mh[1, 19] = 1
    o2 = M.binary_by_true_class(mh, np.array([1, 1, 0]), np.array([True, False, False]), TAXONOMY)
    assert (
        o2["counts"][1].tolist() == [0, 1]
        and o2["counts"][19].tolist() == [1, 1]
        and o2["counts"][26].tolist() == [1, 0]
    )


def test_multilabel_prf_matches_sklearn():
    rng = np.random.default_rng(6)
    n, k = 300, 26
    mh = (rng.random((n, k)) < 0.1).astype(int)
    probs = np.clip(mh * 0.5 + rng.random((n, k)) * 0.6, 0, 1)
    th = rng.uniform(0.3, 0.7, k)
    rows = M.multilabel_prf(mh, probs, th, TAXONOMY)
    P, R, F, S = skm.precision_recall_fscore_support(mh, (probs >= th).astype(int), average=None, zero_division=0)
    assert len(rows) == k
    for r in rows:
        i = r["index"]
        assert r["support"] == S[i] and r["threshold"] == pytest.approx(th[i])
        assert (r["precision"], r["recall"], r["f1"]) == pytest.approx((P[i], R[i], F[i]))


def test_recall_vs_strength():
    preds = pd.DataFrame({"expnum": [1, 1, 2, 2], "ccdnum": [1, 2, 1, 2], "p_artifact": [0.9, 0.1, 0.6, 0.4]})
    truth = pd.DataFrame(
        {
            "expnum": [1, 1, 2, 2, 3, 1, 2],
            "ccd": [1, 2, 1, 2, 1, 1, 2],
            "band": "r",
            "nite": "20130901",
            "cls": ["Ghost", "Ghost", "Ghost", "Ghost", "Ghost", "Guiding", "Guiding"],
            "snr": [1.0, 2.0, 10.0, 20.0, 5.0, np.nan, np.nan],
            "amplitude": [0, 0, 0, 0, 0, 0.1, 0.3],
            "reported": [True, False, True, True, True, False, True],
        }
    )
    df = M.recall_vs_strength(truth, preds, 0.5, bins=[0.5, 5.0, 50.0])
    g = df[df.cls == "Ghost"].sort_values("bin")
    # exposure 3 is not in the predictions (not a test CCD): left out
    assert g["n"].tolist() == [2, 2] and g["detected"].tolist() == [1, 1]
    assert g["recall"].tolist() == [0.5, 0.5] and g["volunteer_recall"].tolist() == [0.5, 1.0]
    gd = df[df.cls == "Guiding"]
    assert set(gd["strength"]) == {"amplitude"} and gd["n"].sum() == 0  # amplitudes outside the edges
    q = M.recall_vs_strength(truth, preds, 0.5, bins=2)
    qg = q[q.cls == "Guiding"].sort_values("bin")
    assert qg["strength"].iloc[0] == "amplitude" and qg["n"].tolist() == [1, 1]
    # Guiding rows sit on CCD (1,1) p=0.9 (amplitude 0.1) and (2,2) p=0.4 (amplitude 0.3)
    assert qg["detected"].tolist() == [1, 0] and qg["lo"].tolist() == [0.1, 0.2]


# ---------------------------------------------------------------------------------------------
# fake model directories
# ---------------------------------------------------------------------------------------------

PRED_SCHEMA = pa.schema(
    [
        ("expnum", pa.int64()),
        ("ccdnum", pa.int16()),
        ("band", pa.string()),
        ("nite", pa.int32()),
        ("label", pa.int8()),
        ("primary_class", pa.int16()),
        ("multi_hot", pa.list_(pa.int8())),
        ("y_true", pa.int16()),
        ("probs", pa.list_(pa.float32())),
        ("p_artifact", pa.float32()),
    ]
)


def _ccds(rng, expnums, ccds_per_exp=10):
    rows = []
    for e in expnums:
        for c in range(1, ccds_per_exp + 1):
            lab = int(rng.random() < 0.5)
            pc = int(rng.integers(0, 26)) if lab else -1
            rows.append((e, c, lab, pc))
    return rows


def _pred_table(rng, rows, problem, quality, any_head=False):
    """Synthetic predictions; ``quality`` separates the classes (larger = better model).

    ``any_head`` (multilabel): p_artifact is a separate "any artifact" output, not max(probs)."""
    cols = {k: [] for k in PRED_SCHEMA.names}
    for e, c, lab, pc in rows:
        mh = [0] * 26
        if pc >= 0:
            mh[pc] = 1
        score = 1 / (1 + np.exp(-(quality * (2 * lab - 1) + rng.normal(0, 1.0))))
        if problem == "binary":
            probs, yt = [1 - score, score], lab
        elif problem == "multiclass":
            yt = pc if lab else 26
            v = rng.random(27) * 0.2
            guess = yt if rng.random() < 0.7 else int(rng.integers(0, 27))
            v[guess] += quality
            probs = list(v / v.sum())
        else:
            yt = -1
            probs = list(np.clip(np.array(mh) * 0.6 + rng.random(26) * 0.5, 0, 1))
        pa_ = probs[1] if problem == "binary" else (1 - probs[-1] if problem == "multiclass" else max(probs))
        if any_head:
            pa_ = score
        for k, v in (
            ("expnum", e),
            ("ccdnum", c),
            ("band", "r"),
            ("nite", 20130901),
            ("label", lab),
            ("primary_class", pc),
            ("multi_hot", mh),
            ("y_true", yt),
            ("probs", [float(x) for x in probs]),
            ("p_artifact", float(pa_)),
        ):
            cols[k].append(v)
    return pa.table(cols, schema=PRED_SCHEMA)


def make_model_dir(
    path,
    name,
    kind,
    problem="binary",
    split_id="s1",
    quality=3.0,
    seed=0,
    history=True,
    learning_curve=True,
    target_fnr=0.02,
    any_head=False,
):
    rng = np.random.default_rng(seed)
    split = {
        "id": split_id,
        "seed": 7,
        "fractions": [0.7, 0.15, 0.15],
        "train": list(range(1000, 1070)),
        "val": list(range(2000, 2015)),
        "test": list(range(3000, 3030)),
    }
    drng = np.random.default_rng(zlib.crc32(split_id.encode()))  # same split -> same CCDs and labels
    test_rows = _ccds(drng, split["test"])
    val_rows = _ccds(drng, split["val"])
    classes = {"binary": ["no artifact", "artifact"], "multiclass": TAXONOMY + ["no artifact"], "multilabel": TAXONOMY}[
        problem
    ]
    os.makedirs(path, exist_ok=True)
    val = _pred_table(rng, val_rows, problem, quality, any_head)
    test = _pred_table(rng, test_rows, problem, quality, any_head)
    pq.write_table(val, os.path.join(path, "predictions_val.parquet"))
    pq.write_table(test, os.path.join(path, "predictions_test.parquet"))
    vl = np.asarray(val.column("label").to_pylist())
    vp = np.asarray(val.column("p_artifact").to_pylist(), dtype=np.float32)
    meta = {
        "name": name,
        "kind": kind,
        "problem": problem,
        "version": "0.1",
        "classes": classes,
        "taxonomy": TAXONOMY,
        "threshold": M.threshold_for_fnr(vl, vp, target_fnr),
        "target_fnr": target_fnr,
        "split": split,
        "config_hash": "abc123",
    }
    if problem == "multilabel":
        meta["class_thresholds"] = [0.55] * 26
    if any_head:
        meta["any_head"] = True
    if kind == "cnn" and history:
        ep = list(range(1, 9))
        json.dump(
            {
                "epoch": ep,
                "loss": [1 / e for e in ep],
                "val_loss": [1.2 / e + 0.05 * e for e in ep],
                "train_error": [0.4 / e for e in ep],
                "val_error": [0.3 / e + 0.01 * e for e in ep],
                "test_error": [0.32 / e + 0.01 * e for e in ep],
                "best_epoch": 5,
            },
            open(os.path.join(path, "history.json"), "w"),
        )
    if kind == "svm" and learning_curve:
        json.dump(
            {
                "n_train": [50, 100, 200, 400],
                "train_error": [0.0, 0.0, 0.01, 0.02],
                "test_error": [0.45, 0.42, 0.4, 0.39],
            },
            open(os.path.join(path, "learning_curve.json"), "w"),
        )
    json.dump(meta, open(os.path.join(path, "model.json"), "w"))
    return path


def _read_preds(d):
    t = pq.read_table(os.path.join(d, "predictions_test.parquet")).to_pandas()
    t["probs"] = t["probs"].apply(np.asarray)
    return t, json.load(open(os.path.join(d, "model.json")))


def test_summarize_model_multiclass_and_multilabel(tmp_path):
    d = make_model_dir(str(tmp_path / "mc"), "cnn-mc", "cnn", "multiclass", quality=1.0, seed=2)
    s = M.summarize_model(d)
    t, meta = _read_preds(d)
    yt = t["y_true"].to_numpy()
    yp = np.stack(t["probs"].to_numpy()).argmax(axis=1)
    assert s["n"] == len(t) == 300
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(yt, yp))
    np.testing.assert_array_equal(
        np.array(s["confusion"]["matrix"]), skm.confusion_matrix(yt, yp, labels=list(range(27)))
    )
    support = np.bincount(yt, minlength=27)
    qual = [i for i in range(27) if support[i] >= 20]
    assert s["macro_f1_all_classes_used"] == [meta["classes"][i] for i in qual] and 26 in qual
    assert s["macro_f1_all_classes"] == pytest.approx(
        skm.f1_score(yt, yp, labels=qual, average="macro", zero_division=0)
    )
    # the headline macro-F1 leaves "no artifact" out; with 300 CCDs no artifact class reaches 20
    art = [i for i in qual if i != 26]
    assert art == [] and s["macro_f1"] is None and s["macro_f1_classes"] == []
    s10 = M.summarize_model(d, min_support=8)
    art = [i for i in range(26) if support[i] >= 8]
    assert art and s10["macro_f1_classes"] == [TAXONOMY[i] for i in art]
    assert s10["macro_f1"] == pytest.approx(skm.f1_score(yt, yp, labels=art, average="macro", zero_division=0))
    lab = t["label"].to_numpy()
    flag = t["p_artifact"].to_numpy() >= meta["threshold"]
    assert s["binary"]["recall"] == pytest.approx(skm.recall_score(lab, flag))
    json.dumps(s)  # JSON-ready (the training jobs dump it as metrics.json)

    d2 = make_model_dir(str(tmp_path / "ml"), "cnn-ml", "cnn", "multilabel", seed=3)
    s2 = M.summarize_model(d2)
    t2, _ = _read_preds(d2)
    mh = np.stack(t2["multi_hot"].apply(np.asarray).to_numpy())
    pr = np.stack(t2["probs"].to_numpy())
    _, _, F, S = skm.precision_recall_fscore_support(mh, (pr >= 0.55).astype(int), average=None, zero_division=0)
    assert [r["f1"] for r in s2["per_class"]] == pytest.approx(list(F))
    lab2 = t2["label"].to_numpy()
    assert s2["accuracy"] == pytest.approx(np.mean((t2["p_artifact"].to_numpy() >= 0.5) == lab2))
    assert "confusion" not in s2


def make_truth(labels_dir, pred_df, seed=9):
    """The simulator's truth.parquet and ccds.parquet (with the detectability-floor columns) for the
    CCDs of ``pred_df``. Volunteer artifacts get one or two features (sn_binned uniform 1-60,
    detectable when >= 15; sometimes a Guiding feature, erased by binning); volunteer-clean CCDs are
    mostly truly clean, some hold below-floor features or a detectable one the volunteers missed."""
    rng = np.random.default_rng(seed)
    feats, ccds = [], []
    for e, c, lab, pc in zip(pred_df.expnum, pred_df.ccdnum, pred_df.label, pred_df.primary_class):
        f = []
        if lab:
            f.append(TAXONOMY[pc % 4])
            if rng.random() < 0.3:
                f.append("Guiding")
        elif rng.random() < 0.15:
            f.append(TAXONOMY[int(rng.integers(0, 4))])
        rows = []
        for k, cls in enumerate(f):
            sn = float(rng.uniform(1, 60))
            det = cls != "Guiding" and sn >= 15
            rows.append(
                {
                    "expnum": int(e),
                    "ccd": int(c),
                    "band": "r",
                    "nite": "20130901",
                    "cls": cls,
                    "fid": f"{e}-{c}-{k}",
                    "scope": "ccd",
                    "snr": sn / 2,
                    "amplitude": 1.0,
                    "sn_binned": sn,
                    "contrast": 3.0,
                    "n_sharp": 0,
                    "floor_rule": "erased_by_binning" if cls == "Guiding" else "compact",
                    "detectable": det,
                    "reported": bool(lab and rng.random() < 0.8),
                }
            )
        feats += rows
        det = [r for r in rows if r["detectable"]]
        ccds.append(
            {
                "expnum": int(e),
                "ccd": int(c),
                "band": "r",
                "nite": "20130901",
                "classes": sorted({r["cls"] for r in rows}),
                "inspected": True,
                "n_reports": int(lab),
                "detectable_classes": sorted({r["cls"] for r in det}),
                "truth_clean": not rows,
                "truth_detectable": bool(det),
                "primary_class_truth": max(det, key=lambda r: r["sn_binned"])["cls"] if det else None,
            }
        )
    feats.append(
        {
            "expnum": 99999,
            "ccd": 1,
            "band": "r",
            "nite": "20130901",
            "cls": "Ghost",
            "fid": "x",
            "scope": "ccd",
            "snr": 3.0,
            "amplitude": 1.0,
            "sn_binned": 30.0,
            "contrast": 3.0,
            "n_sharp": 0,
            "floor_rule": "smooth",
            "detectable": True,
            "reported": True,
        }
    )  # not a test CCD
    ccds.append(
        {
            "expnum": 99999,
            "ccd": 1,
            "band": "r",
            "nite": "20130901",
            "classes": ["Ghost"],
            "inspected": True,
            "n_reports": 1,
            "detectable_classes": ["Ghost"],
            "truth_clean": False,
            "truth_detectable": True,
            "primary_class_truth": "Ghost",
        }
    )
    os.makedirs(labels_dir, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(feats)), os.path.join(labels_dir, "truth.parquet"))
    pq.write_table(pa.Table.from_pylist(ccds), os.path.join(labels_dir, "ccds.parquet"))
    return pd.DataFrame(feats), pd.DataFrame(ccds)


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    cnn = make_model_dir(str(base / "cnn"), "cnn-binary", "cnn", quality=4.0, seed=1)
    svm = make_model_dir(str(base / "svm"), "svm-binary", "svm", quality=0.8, seed=2)
    ml = make_model_dir(str(base / "ml"), "cnn-ml", "cnn", "multilabel", quality=3.0, seed=3, any_head=True)
    t, _ = _read_preds(cnn)
    feats, ccds = make_truth(str(base / "labels"), t)
    out = str(base / "report")
    summary = build_report([cnn, svm, ml], out, truth_path=str(base / "labels"))
    out_nt = str(base / "report_no_truth")
    summary_nt = build_report([cnn, svm, ml], out_nt)
    return {
        "cnn": cnn,
        "svm": svm,
        "ml": ml,
        "out": out,
        "summary": summary,
        "feats": feats,
        "ccds": ccds,
        "out_nt": out_nt,
        "summary_nt": summary_nt,
    }


def _truth_join(d, ccds):
    """The test predictions joined with the truth's CCD table, recomputed with pandas."""
    t, meta = _read_preds(d)
    c = ccds.rename(columns={"ccd": "ccdnum"})
    j = t.merge(
        c[["expnum", "ccdnum", "truth_clean", "truth_detectable", "detectable_classes", "primary_class_truth"]],
        on=["expnum", "ccdnum"],
        how="left",
        validate="one_to_one",
    )
    assert j["truth_clean"].notna().all()
    j["flag"] = j["p_artifact"] >= meta["threshold"]
    j["det"] = j["truth_detectable"].astype(bool)
    j["clean"] = j["truth_clean"].astype(bool)
    j["below"] = ~j["det"] & ~j["clean"]
    return j, meta


def _png_ok(path, size=None):
    """The file is a PNG that opens, of the given (width, height) if any, and not a blank image."""
    import matplotlib.image as mpimg
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        rgb = np.asarray(im.convert("RGB"))
    if size is not None:
        assert (w, h) == size, (path, (w, h), size)
    assert 250 < w < 4000 and 200 < h < 4000
    assert mpimg.imread(path).shape[:2] == (h, w)
    assert rgb.std() > 10  # not one flat colour
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20  # drawn content, not a blank canvas
    assert (rgb.min(axis=2) < 100).mean() > 0.002  # dark ink (text, lines) present
    return rgb


def test_report_files_and_images(three_models):
    out = three_models["out"]
    rep = json.load(open(os.path.join(out, "report.json")))
    expected = {
        "cnn-binary": {"confusion", "binary_by_true_class", "fpr_fnr", "history", "recall_vs_strength"},
        "svm-binary": {"confusion", "binary_by_true_class", "fpr_fnr", "learning_curve", "recall_vs_strength"},
        "cnn-ml": {"per_class", "binary_by_true_class", "fpr_fnr", "history", "recall_vs_strength"},
    }
    html = htmllib.unescape(open(os.path.join(out, "report.html")).read())
    md = open(os.path.join(out, "report.md")).read()
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == sorted(
        f for m in rep["models"] for f in m["figures"].values()
    )
    for m in rep["models"]:
        assert set(m["figures"]) == expected[m["name"]]
        for key, f in m["figures"].items():
            size = None
            if key == "recall_vs_strength":  # fixed layout: 5 columns per row, 90 dpi
                k = len({r["cls"] for r in m["truth"]["recall_vs_strength"]})
                nc, nr = min(5, k), -(-k // 5)
                size = (round(2.7 * nc * 90), round((2.3 * nr + 0.7) * 90))
            rgb = _png_ok(os.path.join(out, f), size)
            if key == "recall_vs_strength":
                # the floor is marked: grey shading (#dddddd) of below-floor bins and the red floor line
                assert (np.abs(rgb.astype(int) - 221).max(axis=2) <= 2).mean() > 0.01
                assert ((rgb[..., 0] > 200) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)).sum() > 20
            assert f'<img src="{f}"' in html and f"]({f})" in md
    assert three_models["summary"]["figures"] == 15
    for needle in (
        "Targets (issue 9)",
        "Models on split s1",
        "The simulator's truth and the detectability floor",
        "Classes erased by the 8x8 binning (never above the floor; their CCDs are neither detectable nor "
        "clean): Guiding.",
        "cnn-binary against the simulator's truth",
    ):
        assert needle in html and needle in md
    # without the truth: no recall-vs-strength figure, no ceiling
    rep_nt = json.load(open(os.path.join(three_models["out_nt"], "report.json")))
    for m in rep_nt["models"]:
        assert set(m["figures"]) == expected[m["name"]] - {"recall_vs_strength"} and "truth" not in m
        for f in m["figures"].values():
            _png_ok(os.path.join(three_models["out_nt"], f))
    md_nt = open(os.path.join(three_models["out_nt"], "report.md")).read()
    assert (
        "(ceiling " not in md_nt and "| ceiling |" not in md_nt and "volunteer-label figures have no ceiling" in md_nt
    )


def test_report_numbers_match_recomputation(three_models):
    rep = json.load(open(os.path.join(three_models["out"], "report.json")))
    by = {m["name"]: m for m in rep["models"]}
    ccds, feats = three_models["ccds"], three_models["feats"]
    acc = {}
    for name, d in (("cnn-binary", three_models["cnn"]), ("svm-binary", three_models["svm"])):
        t, meta = _read_preds(d)
        m = by[name]
        y = t["label"].to_numpy()
        p = t["p_artifact"].to_numpy()
        flag = (p >= meta["threshold"]).astype(int)
        tn, fp, fn, tp = skm.confusion_matrix(y, flag, labels=[0, 1]).ravel()
        b = m["binary"]
        assert (b["tp"], b["fp"], b["tn"], b["fn"], b["n"]) == (tp, fp, tn, fn, len(t))
        assert b["recall"] == pytest.approx(tp / (tp + fn)) and b["fpr"] == pytest.approx(fp / (fp + tn))
        assert b["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
        assert m["threshold"] == pytest.approx(meta["threshold"])
        argmax = np.stack(t["probs"].to_numpy()).argmax(axis=1)
        acc[name] = skm.accuracy_score(y, argmax)
        assert m["accuracy"] == pytest.approx(acc[name])
        np.testing.assert_array_equal(m["confusion"]["matrix"], skm.confusion_matrix(y, argmax, labels=[0, 1]))
        rows = np.where(y == 0, 26, t["primary_class"].to_numpy())
        exp = np.zeros((27, 2), int)
        np.add.at(exp, (rows, flag), 1)
        np.testing.assert_array_equal(m["binary_by_true_class"]["counts"], exp)
        # ---- against the truth, recomputed from the predictions and the truth tables
        j, _ = _truth_join(d, ccds)
        tb = m["truth"]["binary"]
        assert (tb["n_detectable"], tb["detected"]) == (j.det.sum(), (j.det & j.flag).sum())
        assert (tb["n_clean"], tb["false_positives"]) == (j.clean.sum(), (j.clean & j.flag).sum())
        assert tb["recall"] == pytest.approx(j[j.det].flag.mean()) and tb["fpr"] == pytest.approx(
            j[j.clean].flag.mean()
        )
        assert tb["below_floor"]["n"] == j.below.sum() > 0 and tb["below_floor"]["flagged"] == (j.below & j.flag).sum()
        on = j[j.det | j.clean]
        assert tb["roc_auc"] == pytest.approx(skm.roc_auc_score(on.det, on.p_artifact))
        ex = j[j.det].explode("detectable_classes")
        want = ex.groupby("detectable_classes")["flag"].agg(["size", "sum"])
        got = {r["cls"]: (r["n"], r["detected"]) for r in m["truth"]["per_class"] if r["n"]}
        assert got == {c: (int(r["size"]), int(r["sum"])) for c, r in want.iterrows()}
        # the ceiling: flags exactly the detectable CCDs, scored against the volunteer labels
        cb = m["truth"]["ceiling"]["binary"]
        assert cb["recall"] == pytest.approx(skm.recall_score(j.label, j.det))
        assert cb["fpr"] == pytest.approx(1 - skm.recall_score(j.label, j.det, pos_label=0))
        assert cb["fpr"] > 0 and cb["recall"] < 1  # the volunteers miss and over-report
        assert m["truth"]["ceiling"]["accuracy"] == pytest.approx(skm.accuracy_score(j.label, j.det))
        # recall vs strength: every feature on a test CCD, detected when its CCD is flagged
        fj = feats.merge(j[["expnum", "ccdnum", "flag"]], left_on=["expnum", "ccd"], right_on=["expnum", "ccdnum"])
        rvs = pd.DataFrame(m["recall_vs_strength"])
        assert rvs["n"].sum() == len(fj) and rvs["detected"].sum() == fj["flag"].sum()
        assert rvs["n_below_floor"].sum() == (~fj["detectable"]).sum()
        assert m["truth"]["floor"]["erased_by_binning"] == ["Guiding"]
        # the plotted curve's points lie on the true curve
        fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
        cp = m["curve_plotted"]
        for th, f_, n_ in zip(cp["thresholds"][::25], cp["fpr"][::25], cp["fnr"][::25]):
            i = int(np.flatnonzero(np.isclose(thr, th))[0])
            assert (f_, n_) == pytest.approx((fpr[i], 1 - tpr[i]))
    # ---- the multilabel CNN (an any-artifact head: p_artifact is not max(probs), and no warning about it)
    j, meta = _truth_join(three_models["ml"], ccds)
    mlt = by["cnn-ml"]["truth"]["multilabel"]
    on = j[j.det | j.clean]
    pr = np.stack(on["probs"].to_numpy())
    aucs = {}
    for k, cls in enumerate(TAXONOMY):
        yk = on["detectable_classes"].apply(lambda v, c=cls: c in list(v)).to_numpy()
        if 20 <= yk.sum() < len(yk):
            aucs[cls] = skm.roc_auc_score(yk, pr[:, k])
    assert mlt["mean_auc_classes"] == list(aucs) and len(aucs) >= 2
    assert mlt["mean_auc"] == pytest.approx(np.mean(list(aucs.values())))
    mct = by["cnn-ml"]["truth"]["manyclass"]
    rows = j[j.det | j.clean]
    truth_cls = np.where(rows.det, rows.primary_class_truth, "no artifact")
    pred_cls = np.where(rows.flag, np.array(TAXONOMY)[np.stack(rows.probs.to_numpy()).argmax(axis=1)], "no artifact")
    qual = [c for c in TAXONOMY if (truth_cls == c).sum() >= 20]
    assert mct["macro_f1_classes"] == qual
    assert mct["macro_f1"] == pytest.approx(
        skm.f1_score(truth_cls, pred_cls, labels=qual, average="macro", zero_division=0)
    )
    assert not any("disagrees" in w for w in rep["warnings"])
    # ---- the targets: statuses follow the recomputed numbers
    tg = {(t["id"], t["model"]): t for t in rep["targets"]}
    cbt = by["cnn-binary"]["truth"]["binary"]
    t1 = tg[("binary_truth", "cnn-binary")]
    assert t1["role"] == "target" and t1["basis"] == "truth"
    assert t1["status"] == ("MET" if cbt["recall"] >= 0.98 and cbt["fpr"] <= 0.05 else "NOT MET")
    assert f"recall {cbt['recall']:.4f}" in t1["measured"] and t1["n_test"] == cbt["n_detectable"] + cbt["n_clean"]
    assert f"{cbt['n_detectable']} detectable-artifact and {cbt['n_clean']} clean test CCDs" in t1["test_set"]
    assert tg[("binary_truth", "svm-binary")]["role"].startswith("informational")
    pc = [r for r in by["cnn-binary"]["truth"]["per_class"] if r["n"] >= 20]
    t2 = tg[("class_recall_truth", "cnn-binary")]
    assert pc and t2["status"] == ("MET" if min(r["recall"] for r in pc) >= 0.90 else "NOT MET")
    assert "Guiding" in t2["reason"]
    t4 = tg[("multilabel_auc_truth", "cnn-ml")]
    assert t4["status"] == ("MET" if mlt["mean_auc"] >= 0.95 else "NOT MET")
    t3 = tg[("manyclass_truth", "cnn-ml")]
    thin = len(qual) < 3  # a met average over fewer than 3 classes is not assessed
    want = "NOT MET" if mct["macro_f1"] < 0.85 else ("NOT ASSESSED" if thin else "MET")
    assert t3["role"].startswith("informational") and t3["status"] == want
    broad = [c for c in TAXONOMY if (truth_cls == c).sum() >= 10]
    if thin and len(broad) > len(qual):
        f1b = skm.f1_score(truth_cls, pred_cls, labels=broad, average="macro", zero_division=0)
        assert f"over the {len(broad)} artifact classes with >= 10 test CCDs macro-F1 is {f1b:.3f}" in t3["reason"]
    assert ("thin evidence" in t3["reason"]) == thin
    assert tg[("manyclass_truth", "-")]["status"] == "NOT ASSESSED"  # no multiclass CNN given
    # CNN vs SVM against the truth: exact McNemar recomputed with scipy
    from scipy.stats import binomtest

    jc, _ = _truth_join(three_models["cnn"], ccds)
    js, _ = _truth_join(three_models["svm"], ccds)
    okc = (jc.flag == jc.det)[jc.det | jc.clean]
    oks = (js.flag == js.det)[js.det | js.clean]
    b_, c_ = int((okc & ~oks).sum()), int((~okc & oks).sum())
    pval = binomtest(b_, b_ + c_, 0.5).pvalue
    t5 = tg[("cnn_vs_svm_truth", "cnn-binary vs svm-binary")]
    assert f"on {b_} CCDs, the reverse on {c_}" in t5["measured"]
    assert t5["status"] == ("MET" if b_ > c_ and pval < 0.05 else "NOT MET") == "MET"
    assert rep["comparisons"][0]["truth"]["mcnemar_p"] == pytest.approx(pval)
    # volunteer-label rows: beside the ceiling, goal = the target capped by the ceiling
    v1 = tg[("binary_volunteers", "cnn-binary")]
    vb, cb = by["cnn-binary"]["binary"], by["cnn-binary"]["truth"]["ceiling"]["binary"]
    assert v1["role"] == "informational (volunteer labels)" and v1["ceiling"]["recall"] == pytest.approx(cb["recall"])
    ok = vb["recall"] >= min(0.98, cb["recall"]) and vb["fpr"] <= max(0.05, cb["fpr"])
    assert v1["status"] == ("MET" if ok else "NOT MET")
    assert f"(ceiling {cb['recall']:.4f})" in v1["measured"]
    v5 = tg[("cnn_vs_svm_volunteers", "cnn-binary vs svm-binary")]
    assert v5["status"] == "MET" and acc["cnn-binary"] > acc["svm-binary"]
    # ---- report.md: every target row with its status; the volunteer figures beside their ceilings
    md = open(os.path.join(three_models["out"], "report.md")).read()
    lines = md.splitlines()
    for t in rep["targets"]:
        row = [ln for ln in lines if ln.startswith(f"| {t['target']} | {t['basis']} | {t['model']} | {t['role']} |")]
        assert len(row) == 1, t
        assert row[0].endswith(f"| {t['status']} | {t['reason']} |") and t["reason"]
    cnn_row = [ln for ln in lines if ln.startswith("| cnn-binary | cnn | binary |")][0]
    assert f"{vb['recall']:.4f} (ceiling {cb['recall']:.4f})" in cnn_row
    assert f"| ceiling | {cb['n']} | {cb['positives']} |" in md
    # ---- without the truth, the truth rows are NOT ASSESSED: "no truth table (real data)"
    rep_nt = json.load(open(os.path.join(three_models["out_nt"], "report.json")))
    truth_rows = [t for t in rep_nt["targets"] if t["basis"] == "truth"]
    assert truth_rows and all(t["status"] == "NOT ASSESSED" for t in truth_rows)
    assert all(t["reason"] == "no truth table (real data)" for t in truth_rows if t["model"] != "-")
    vol_nt = {(t["id"], t["model"]): t for t in rep_nt["targets"] if t["basis"] == "volunteers"}
    assert "no ceiling" in vol_nt[("binary_volunteers", "cnn-binary")]["reason"]
    ok = vb["recall"] >= 0.98 and vb["fpr"] <= 0.05
    assert vol_nt[("binary_volunteers", "cnn-binary")]["status"] == ("MET" if ok else "NOT MET")


def _boundary_summary(det_flagged, clean_flagged, kind="cnn", n=100):
    """A binary model on n detectable (Ghost) + n clean CCDs, flagging exactly the given counts of each;
    the volunteer labels equal the truth (so the ceiling is perfect)."""
    k = 2 * n
    p = np.full(k, 0.1)
    p[:det_flagged] = 0.9
    p[n : n + clean_flagged] = 0.9
    lab = np.r_[np.ones(n, int), np.zeros(n, int)]
    ghost = TAXONOMY.index("Ghost")
    mh = np.zeros((k, 26), np.int8)
    mh[:n, ghost] = 1
    pred = {
        "expnum": np.ones(k, np.int64),
        "ccdnum": np.arange(1, k + 1),
        "label": lab,
        "primary_class": np.where(lab == 1, ghost, -1),
        "y_true": lab,
        "p_artifact": p,
        "probs": np.stack([1 - p, p], axis=1),
        "multi_hot": mh,
        "warnings": [],
    }
    meta = {
        "name": f"{kind}-b",
        "kind": kind,
        "problem": "binary",
        "classes": ["no artifact", "artifact"],
        "taxonomy": TAXONOMY,
        "threshold": 0.5,
        "split": {"id": "s"},
    }
    truth = pd.DataFrame(
        {
            "expnum": 1,
            "ccd": np.arange(1, n + 1),
            "cls": "Ghost",
            "snr": 20.0,
            "sn_binned": 40.0,
            "floor_rule": "smooth",
            "detectable": True,
        }
    )
    ccds = pd.DataFrame(
        {
            "expnum": 1,
            "ccd": np.arange(1, k + 1),
            "classes": [["Ghost"]] * n + [[]] * n,
            "detectable_classes": [["Ghost"]] * n + [[]] * n,
            "truth_clean": lab == 0,
            "truth_detectable": lab == 1,
            "primary_class_truth": ["Ghost"] * n + [None] * n,
        }
    )
    s = M.summarize_predictions(meta, pred)
    s["truth"] = M.truth_evaluation(meta, pred, ccds, truth)
    s["model_dir"], s["evaluated_on"] = "-", "test"
    return M.jsonable(s), pred


def test_target_rules_at_the_boundaries():
    from artifactspark.evaluate import targets as R

    def status(target_id, det_flagged, clean_flagged):
        s, _ = _boundary_summary(det_flagged, clean_flagged)
        return [t["status"] for t in R._targets([s], []) if t["id"] == target_id and t["model"] == "cnn-b"]

    # recall >= 0.98 on detectable CCDs at FPR <= 0.05 on clean ones (ties meet the target)
    assert status("binary_truth", 98, 5) == ["MET"]
    assert status("binary_truth", 97, 5) == ["NOT MET"]
    assert status("binary_truth", 98, 6) == ["NOT MET"]
    assert status("binary_truth", 100, 49) == ["NOT MET"]
    # every class with >= 20 detectable test CCDs at recall >= 0.90
    assert status("class_recall_truth", 90, 0) == ["MET"] and status("class_recall_truth", 89, 0) == ["NOT MET"]
    # the volunteer labels equal the truth here: the ceiling is perfect and the goal is the plain target
    assert status("binary_volunteers", 98, 5) == ["MET"] and status("binary_volunteers", 98, 6) == ["NOT MET"]
    s, _ = _boundary_summary(98, 5)
    assert s["truth"]["ceiling"]["binary"]["recall"] == 1.0 and s["truth"]["ceiling"]["binary"]["fpr"] == 0.0
    # CNN vs SVM: significant only when the discordant CCDs favour the CNN
    cnn, pc = _boundary_summary(100, 0)
    svm, ps = _boundary_summary(88, 0, kind="svm")
    comp = R._compare([cnn, svm], [pc, ps])
    assert comp[0]["cnn_right_svm_wrong"] == 12 and comp[0]["svm_right_cnn_wrong"] == 0
    assert comp[0]["mcnemar_p"] == pytest.approx(2 * 0.5**12) and comp[0]["significant"]
    rev = R._compare(
        [svm | {"kind": "cnn", "name": "cnn-worse"}, cnn | {"kind": "svm", "name": "svm-better"}], [ps, pc]
    )
    assert rev[0]["svm_right_cnn_wrong"] == 12 and rev[0]["mcnemar_p"] < 0.05 and not rev[0]["significant"]
    st = {
        t["id"]: t["status"]
        for t in R._targets(
            [svm | {"kind": "cnn", "name": "cnn-worse"}, cnn | {"kind": "svm", "name": "svm-better"}], rev
        )
    }
    assert st["cnn_vs_svm_volunteers"] == "NOT MET"


def test_report_warns_on_different_splits_and_target_fnr(tmp_path):
    a = make_model_dir(str(tmp_path / "a"), "cnn-a", "cnn", split_id="s1", seed=4, history=False)
    b = make_model_dir(str(tmp_path / "b"), "svm-b", "svm", split_id="s2", seed=5)
    mc = make_model_dir(str(tmp_path / "mc"), "cnn-mc", "cnn", "multiclass", split_id="s2", quality=1.0, seed=6)
    out = str(tmp_path / "rep")
    build_report([a, b, mc], out, target_fnr=0.1)
    rep = json.load(open(os.path.join(out, "report.json")))
    assert any("different splits" in w for w in rep["warnings"])
    assert any("history.json" in w for w in rep["warnings"])
    assert "different splits" in open(os.path.join(out, "report.md")).read()
    assert "different splits" in open(os.path.join(out, "report.html")).read()
    # no CNN/SVM pair on one split: not assessed
    assert [t["status"] for t in rep["targets"] if t["id"].startswith("cnn_vs_svm")] == ["NOT ASSESSED"]
    # 300 test CCDs: no artifact class has 20 examples, so the volunteer macro-F1 cannot be assessed
    # (the large 'no artifact' class alone must not make it MET)
    t2 = [t for t in rep["targets"] if t["id"] == "manyclass_volunteers"]
    assert [(t["model"], t["status"]) for t in t2] == [("cnn-mc", "NOT ASSESSED")]
    # --target-fnr: the threshold is re-chosen on the validation predictions
    v = pq.read_table(os.path.join(a, "predictions_val.parquet")).to_pandas()
    want = brute_threshold(v["label"].to_numpy(), v["p_artifact"].to_numpy(), 0.1)
    m = [m for m in rep["models"] if m["name"] == "cnn-a"][0]
    assert m["threshold"] == pytest.approx(float(want)) and m["target_fnr"] == 0.1


def test_report_with_an_older_truth_table_warns_and_falls_back(tmp_path):
    """truth.parquet without the floor columns and no ccds.parquet: every feature counts as detectable."""
    d = make_model_dir(str(tmp_path / "m"), "cnn-binary", "cnn", quality=4.0, seed=1)
    t, meta = _read_preds(d)
    feats, _ = make_truth(str(tmp_path / "labels"), t)
    old = feats.drop(columns=["sn_binned", "contrast", "n_sharp", "floor_rule", "detectable"])
    pq.write_table(pa.Table.from_pandas(old), str(tmp_path / "old_truth.parquet"))
    out = str(tmp_path / "rep")
    build_report([d], out, truth_path=str(tmp_path / "old_truth.parquet"))
    rep = json.load(open(os.path.join(out, "report.json")))
    assert any("every injected feature counts as detectable" in w for w in rep["warnings"])
    assert any("no ccds.parquet" in w for w in rep["warnings"])
    tb = rep["models"][0]["truth"]["binary"]
    has = set(zip(old.expnum, old.ccd))
    det = np.array([(e, c) in has for e, c in zip(t.expnum, t.ccdnum)])
    flag = t["p_artifact"].to_numpy() >= meta["threshold"]
    assert tb["n_detectable"] == det.sum() and tb["n_clean"] == (~det).sum() and tb["below_floor"]["n"] == 0
    assert tb["recall"] == pytest.approx(flag[det].mean()) and tb["fpr"] == pytest.approx(flag[~det].mean())
    assert "every injected feature counts as detectable" in open(os.path.join(out, "report.md")).read()


def test_bad_model_dirs_raise_clear_errors(tmp_path):
    with pytest.raises(ModelDirError, match="no such model directory"):
        M.summarize_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="no model.json.*re-run the training job"):
        M.summarize_model(str(tmp_path / "empty"))
    d = make_model_dir(str(tmp_path / "m"), "m", "cnn")
    os.remove(os.path.join(d, "predictions_test.parquet"))
    with pytest.raises(ModelDirError, match="no predictions_test.parquet"):
        build_report([d], str(tmp_path / "out"))
    # probs of the wrong width for model.json's classes
    d2 = make_model_dir(str(tmp_path / "m2"), "m2", "cnn")
    meta = json.load(open(os.path.join(d2, "model.json")))
    meta["classes"] = ["a", "b", "c"]
    json.dump(meta, open(os.path.join(d2, "model.json"), "w"))
    with pytest.raises(ModelDirError, match="length 3"):
        M.summarize_model(d2)
    with pytest.raises(ReportInputError, match="no model directory"):
        build_report([], str(tmp_path / "out"))
    d3 = make_model_dir(str(tmp_path / "m3"), "m3", "cnn")
    with pytest.raises(ReportInputError, match="no such truth table"):
        build_report([d3], str(tmp_path / "out"), truth_path=str(tmp_path / "missing.parquet"))


def test_job_exit_codes(tmp_path):
    job = str(ROOT / "jobs" / "report.py")
    r = subprocess.run(
        [sys.executable, job, "--model-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "no such model directory" in r.stderr and r.stdout == ""
    d = make_model_dir(str(tmp_path / "m"), "m", "svm", learning_curve=False)
    r = subprocess.run(
        [sys.executable, job, "--model-dir", d, "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["models"] == 1 and summary["figures"] == 3 and os.path.isfile(summary["report"])


def test_a_thin_many_class_average_says_so_with_the_broader_figure():
    from artifactspark.evaluate.truthtargets import _thin_note

    art = [
        {"name": "Fringing", "support": 41, "f1": 1.0},
        {"name": "Haze", "support": 12, "f1": 0.5},
        {"name": "Satellite", "support": 10, "f1": 0.2},
        {"name": "Ghost", "support": 9, "f1": 0.9},  # under 10: not in the broader average
    ]
    note = _thin_note(art, ["Fringing"])
    assert note.startswith("thin evidence: the average holds 1 class(es), fewer than 3")
    assert "over the 3 artifact classes with >= 10 test CCDs macro-F1 is 0.567" in note  # (1 + 0.5 + 0.2) / 3
    assert _thin_note(art[:1], ["Fringing"]) == "thin evidence: the average holds 1 class(es), fewer than 3"
    three = [dict(r, support=20) for r in art[:3]]
    assert _thin_note(three, ["Fringing", "Haze", "Satellite"]) == ""
