"""Evaluation against the simulator's truth (metrics.truth_evaluation and friends) on hand-made tables
whose answers are worked out by hand in the comments, or recomputed independently (sklearn, scipy)."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import binomtest
from sklearn import metrics as skm

from artifactspark.evaluate import metrics as M

TAX = ["A", "B", "C"]
NO = M.NO_ARTIFACT

# Ten test CCDs of exposure 1 (threshold 0.5). det = a feature above its floor, below = only below.
#  ccd  truth                                  p_art  volunteer label / class
#   1   det A (sn 30)                           0.90   1 A
#   2   det A (sn 20) + B below (sn 5)          0.40   1 B
#   3   det B (sn 40)                           0.80   0   (the volunteers missed it)
#   4   below: C (erased by binning)            0.95   1 C
#   5   below: A (sn 3)                         0.10   0
#   6   clean                                   0.20   0
#   7   clean                                   0.70   1 A (a volunteer false positive)
#   8   clean                                   0.05   0
#   9   clean                                   0.60   0
#  10   det B (sn 50) + det A (sn 25)           0.55   1 A
CCDS = list(range(1, 11))
P_ART = [0.90, 0.40, 0.80, 0.95, 0.10, 0.20, 0.70, 0.05, 0.60, 0.55]
LABEL = [1, 1, 0, 1, 0, 0, 1, 0, 0, 1]
VOL_CLASS = ["A", "B", None, "C", None, None, "A", None, None, "A"]
FEATURES = [  # ccd, cls, snr, sn_binned, detectable, floor_rule
    (1, "A", 10.0, 30.0, True, "compact"),
    (2, "A", 8.0, 20.0, True, "compact"),
    (2, "B", 9.0, 5.0, False, "smooth"),
    (3, "B", 12.0, 40.0, True, "smooth"),
    (4, "C", np.nan, 2.0, False, "erased_by_binning"),
    (5, "A", 1.0, 3.0, False, "compact"),
    (10, "B", 11.0, 50.0, True, "smooth"),
    (10, "A", 20.0, 25.0, True, "compact"),
]
DET = {1: ["A"], 2: ["A"], 3: ["B"], 10: ["A", "B"]}
PRIMARY = {1: "A", 2: "A", 3: "B", 10: "B"}


def truth_tables(new_columns=True):
    t = pd.DataFrame(
        [
            {
                "expnum": 1,
                "ccd": c,
                "band": "r",
                "nite": "20130901",
                "cls": k,
                "fid": f"f{i}",
                "scope": "ccd",
                "snr": s,
                "amplitude": 1.0,
                "sn_binned": sb,
                "contrast": 3.0,
                "n_sharp": 0,
                "floor_rule": r,
                "detectable": d,
                "reported": bool(LABEL[c - 1]),
            }
            for i, (c, k, s, sb, d, r) in enumerate(FEATURES)
        ]
    )
    cc = pd.DataFrame(
        [
            {
                "expnum": 1,
                "ccd": c,
                "band": "r",
                "nite": "20130901",
                "classes": sorted({k for (cc_, k, *_r) in FEATURES if cc_ == c}),
                "inspected": True,
                "n_reports": 1,
                "detectable_classes": DET.get(c, []),
                "truth_clean": not any(f[0] == c for f in FEATURES),
                "truth_detectable": c in DET,
                "primary_class_truth": PRIMARY.get(c),
            }
            for c in CCDS
        ]
    )
    if not new_columns:
        t = t.drop(columns=["sn_binned", "contrast", "n_sharp", "floor_rule", "detectable"])
        cc = cc.drop(columns=["detectable_classes", "truth_clean", "truth_detectable", "primary_class_truth"])
    return t, cc


def preds(problem="binary", probs=None, p_art=None, extra_ccds=()):
    ccds = CCDS + list(extra_ccds)
    n = len(ccds)
    lab = LABEL + [0] * len(extra_ccds)
    vc = VOL_CLASS + [None] * len(extra_ccds)
    p = np.asarray(P_ART + [0.3] * len(extra_ccds) if p_art is None else p_art, dtype=float)
    pc = np.array([TAX.index(v) if v else -1 for v in vc])
    mh = np.zeros((n, 3), np.int8)
    for i, v in enumerate(vc):
        if v:
            mh[i, TAX.index(v)] = 1
    if probs is None:
        probs = np.stack([1 - p, p], axis=1)
    y_true = (
        np.array(lab)
        if problem == "binary"
        else (np.where(np.array(lab) == 1, pc, 3) if problem == "multiclass" else -np.ones(n, int))
    )
    return {
        "expnum": np.ones(n, np.int64),
        "ccdnum": np.array(ccds),
        "label": np.array(lab),
        "primary_class": pc,
        "y_true": y_true,
        "p_artifact": p,
        "probs": np.asarray(probs, float),
        "multi_hot": mh,
        "warnings": [],
    }


def meta(problem="binary", **kw):
    classes = {"binary": [NO, "artifact"], "multiclass": TAX + [NO], "multilabel": TAX}[problem]
    m = {
        "name": f"m-{problem}",
        "kind": "cnn",
        "problem": problem,
        "classes": classes,
        "taxonomy": TAX,
        "threshold": 0.5,
        "split": {"id": "s", "test": [1]},
    }
    if problem == "multilabel":
        m["class_thresholds"] = [0.5, 0.5, 0.5]
    m.update(kw)
    return m


def wilson_ref(k, n):
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return [ci.low, ci.high]


# ---------------------------------------------------------------------------------------------
# binary, per class, the floor
# ---------------------------------------------------------------------------------------------


def test_binary_vs_truth_leaves_below_floor_ccds_out():
    t, cc = truth_tables()
    ev = M.truth_evaluation(meta(), preds(), cc, t, min_support=1)
    assert ev["test_ccds"] == {"detectable": 4, "clean": 4, "below_floor": 2, "unmatched": 0}
    b = ev["binary"]
    # detectable 1,2,3,10 flagged 1,3,10 (ccd 2 has 0.40); clean 6,7,8,9 flagged 7,9
    assert (b["n_detectable"], b["detected"], b["recall"]) == (4, 3, 0.75)
    assert (b["n_clean"], b["false_positives"], b["fpr"]) == (4, 2, 0.5)
    # mixing the below-floor CCDs in would give recall 4/6 (as positives) or FPR 3/6 (as negatives)
    assert b["below_floor"] == {"n": 2, "flagged": 1, "flagged_share": 0.5}
    # scipy's Wilson interval uses z = 1.95996..., the module 1.96
    assert b["recall_ci95"] == pytest.approx(wilson_ref(3, 4), abs=1e-4)
    assert b["fpr_ci95"] == pytest.approx(wilson_ref(2, 4), abs=1e-4)
    on = [0, 1, 2, 9, 5, 6, 7, 8]
    y = [1, 1, 1, 1, 0, 0, 0, 0]
    assert b["roc_auc"] == pytest.approx(skm.roc_auc_score(y, np.array(P_ART)[on]))
    assert b["accuracy"] == pytest.approx(5 / 8)
    assert ev["manyclass"] is None and ev["multilabel"] is None
    assert ev["warnings"] == [] and ev["fallback"] is False
    json.dumps(ev)  # JSON-ready


def test_per_class_recall_and_floor_shares():
    t, cc = truth_tables()
    ev = M.truth_evaluation(meta(), preds(), cc, t, min_support=3)
    rows = {r["cls"]: r for r in ev["per_class"]}
    # A detectable on 1, 2, 10 (flagged 1, 10); B on 3, 10 (both flagged); C nowhere (erased)
    assert (rows["A"]["n"], rows["A"]["detected"], rows["A"]["recall"]) == (3, 2, pytest.approx(2 / 3))
    assert (rows["B"]["n"], rows["B"]["detected"], rows["B"]["recall"]) == (2, 2, 1.0)
    assert rows["C"]["n"] == 0
    assert rows["A"]["meets_min_support"] and not rows["B"]["meets_min_support"]
    # injected but below the floor on: A at ccd 5, B at ccd 2, C at ccd 4
    assert {c: r["n_below_floor_only"] for c, r in rows.items()} == {"A": 1, "B": 1, "C": 1}
    # volunteers labelled 1, 2, 10 as artifacts among A's CCDs; only 10 among B's (3 was missed)
    assert rows["A"]["volunteer_recall"] == 1.0 and rows["B"]["volunteer_recall"] == 0.5
    assert ev["per_class_min_recall"] == {"recall": pytest.approx(2 / 3), "cls": "A", "classes": ["A"]}
    fl = ev["floor"]
    # artifact CCDs: 1,2,3,4,5,10 -> 4 and 5 have only below-floor features
    assert fl["archive"] == {
        "ccds": 10,
        "artifact_ccds": 6,
        "below_floor_ccds": 2,
        "share_below_floor": pytest.approx(1 / 3),
    }
    assert fl["test"]["share_below_floor"] == pytest.approx(1 / 3)
    shares = {r["cls"]: (r["features"], r["below_floor"]) for r in fl["per_class"]}
    assert shares == {"A": (4, 1), "B": (3, 1), "C": (1, 1)}  # B: ccds 2 (below), 3, 10
    assert fl["erased_by_binning"] == ["C"] and fl["never_detectable"] == ["C"]


def test_recall_vs_strength_marks_below_floor_and_prefers_sn_binned():
    t, cc = truth_tables()
    ev = M.truth_evaluation(meta(), preds(), cc, t)
    rvs = pd.DataFrame(ev["recall_vs_strength"])
    assert set(rvs["strength"]) == {"sn_binned"}
    a = rvs[rvs.cls == "A"]
    assert a["n"].sum() == 4 and a["n_below_floor"].sum() == 1
    # A's features by sn_binned: 3 (below, ccd 5, not flagged), 20 (ccd 2, not flagged), 25 (ccd 10), 30 (ccd 1)
    assert a["detected"].sum() == 2
    low = a[a["lo"] == a["lo"].min()].iloc[0]
    assert low["below_floor"] == (low["n_below_floor"] * 2 > low["n"])
    assert rvs[rvs.cls == "C"]["below_floor"].all()
    # the floor on the sn_binned axis: A's below-floor feature at 3, detectable ones from 20 -> 20, none misplaced
    assert ev["strength_floor"]["A"] == {
        "strength": "sn_binned",
        "value": 20.0,
        "misplaced": 0,
        "detectable": 3,
        "below_floor": 1,
    }
    assert ev["strength_floor"]["C"]["value"] is None  # nothing detectable: no floor inside the data
    # with the snr column only, Guiding-like NaN snr falls back to amplitude
    q = M.recall_vs_strength(
        t.drop(columns=["sn_binned"]), pd.DataFrame({"expnum": 1, "ccdnum": CCDS, "p_artifact": P_ART}), 0.5
    )
    assert dict(q.groupby("cls")["strength"].first()) == {"A": "snr", "B": "snr", "C": "amplitude"}


def test_strength_floor_hand_case():
    # strengths 1..5, detectable 3 and 5: t=3 misplaces one (4); t=5 also one (3); the smaller wins
    f = M.strength_floor([1, 2, 3, 4, 5], [False, False, True, False, True])
    assert f == {"value": 3.0, "misplaced": 1, "detectable": 2, "below_floor": 3}
    assert M.strength_floor([1, 2], [True, True])["value"] is None


# ---------------------------------------------------------------------------------------------
# the volunteer-label ceiling
# ---------------------------------------------------------------------------------------------


def test_ceiling_by_hand():
    t, cc = truth_tables()
    ev = M.truth_evaluation(meta(), preds(), cc, t, min_support=1)
    c = ev["ceiling"]["binary"]
    # the perfect truth model flags 1, 2, 3, 10. Volunteer artifacts: 1, 2, 4, 7, 10 -> 3 of 5;
    # volunteer-clean: 3, 5, 6, 8, 9 -> flags 3: FPR 1/5; right on 1, 2, 10, 5, 6, 8, 9: 7/10
    assert (c["recall"], c["fpr"], c["accuracy"]) == (pytest.approx(0.6), pytest.approx(0.2), pytest.approx(0.7))
    assert ev["ceiling"]["accuracy"] == pytest.approx(0.7)
    # many-class: the ceiling names A for 1 and 2, B for 3 and 10, "no artifact" elsewhere; the volunteers
    # say A for 1, 7, 10, B for 2, C for 4. A: tp 1 of 2 named, 3 true -> F1 0.4; B: 0; C: 0 -> 0.4 / 3
    cm = ev["ceiling"]["manyclass"]
    assert cm["macro_f1"] == pytest.approx(0.4 / 3) and cm["macro_f1_classes"] == ["A", "B", "C"]
    vol = [v or NO for v in VOL_CLASS]
    ceil_names = [PRIMARY.get(c, NO) for c in CCDS]
    assert cm["macro_f1"] == pytest.approx(skm.f1_score(vol, ceil_names, labels=TAX, average="macro", zero_division=0))
    # multi-label: the ceiling's multi-hot is the detectable classes, scored against the volunteers' vector
    mh = preds()["multi_hot"]
    ind = np.array([[k in DET.get(c, []) for k in TAX] for c in CCDS], float)
    aucs = [skm.roc_auc_score(mh[:, j], ind[:, j]) for j in range(3)]
    assert cm is not None and ev["ceiling"]["multilabel"]["mean_auc"] == pytest.approx(np.mean(aucs))
    # with min_support 2 only A (3 volunteer positives) counts
    ev2 = M.truth_evaluation(meta(), preds(), cc, t, min_support=2)
    assert ev2["ceiling"]["multilabel"]["mean_auc_classes"] == ["A"]
    assert ev2["ceiling"]["multilabel"]["mean_auc"] == pytest.approx(aucs[0])
    # the model against the same labels, beside it
    v = ev["volunteer"]["binary"]
    flag = (np.array(P_ART) >= 0.5).astype(int)
    assert v["recall"] == pytest.approx(skm.recall_score(LABEL, flag))
    assert v["fpr"] == pytest.approx(1 - skm.recall_score(LABEL, flag, pos_label=0))
    assert v["roc_auc"] == pytest.approx(skm.roc_auc_score(LABEL, P_ART))
    # fig. 7 of the ceiling: volunteer class A (1, 7, 10) flagged on 1 and 10
    bbt = ev["ceiling"]["binary_by_true_class"]
    assert list(bbt["counts"][0]) == [1, 2]


def test_volunteer_side_matches_summarize_predictions():
    t, cc = truth_tables()
    for problem, probs in (("binary", None), ("multiclass", np.eye(4)[[0, 0, 1, 2, 3, 3, 0, 3, 1, 1]] * 0.7 + 0.075)):
        m = meta(problem)
        p = preds(problem, probs=probs, p_art=None if probs is None else 1 - np.asarray(probs)[:, -1])
        s = M.summarize_predictions(m, p, min_support=1)
        ev = M.truth_evaluation(m, p, cc, t, min_support=1)
        v = ev["volunteer"]
        assert v["accuracy"] == pytest.approx(s["accuracy"]) and v["macro_f1"] == pytest.approx(s["macro_f1"])
        assert v["binary"]["recall"] == pytest.approx(s["binary"]["recall"])
        assert v["binary"]["fpr"] == pytest.approx(s["binary"]["fpr"])
        if problem == "multiclass":
            assert v["manyclass"]["macro_f1"] == pytest.approx(s["manyclass_view"]["macro_f1"])
            assert v["manyclass"]["macro_f1"] == pytest.approx(s["macro_f1"])


# ---------------------------------------------------------------------------------------------
# many-class and multi-label against the truth
# ---------------------------------------------------------------------------------------------


def test_manyclass_vs_truth_multiclass_model():
    t, cc = truth_tables()
    named = [0, 0, 1, 2, 3, 3, 0, 3, 1, 1]  # A A B C no no A no B B
    probs = np.eye(4)[named] * 0.7 + 0.075
    m = meta("multiclass")
    ev = M.truth_evaluation(m, preds("multiclass", probs=probs, p_art=1 - probs[:, -1]), cc, t, min_support=1)
    mc = ev["manyclass"]
    # rows: detectable 1, 2, 3, 10 (truth A, A, B, B) and clean 6, 7, 8, 9; 4 and 5 (below floor) left out
    keep = [0, 1, 2, 9, 5, 6, 7, 8]
    truth = ["A", "A", "B", "B", NO, NO, NO, NO]
    names = TAX + [NO]
    pred = [names[named[i]] for i in keep]
    assert mc["n"] == 8 and mc["excluded_below_floor"] == 2
    assert mc["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert mc["macro_f1"] == pytest.approx(
        skm.f1_score(truth, pred, labels=["A", "B"], average="macro", zero_division=0)
    )
    assert mc["macro_f1_classes"] == ["A", "B"]  # C has no true example
    np.testing.assert_array_equal(mc["confusion"], skm.confusion_matrix(truth, pred, labels=names))
    ev3 = M.truth_evaluation(m, preds("multiclass", probs=probs, p_art=1 - probs[:, -1]), cc, t, min_support=3)
    assert ev3["manyclass"]["macro_f1"] is None  # no artifact class with 3 examples
    assert M.truth_evaluation(meta(), preds(), cc, t)["manyclass"] is None


def test_multilabel_vs_truth():
    t, cc = truth_tables()
    rng = np.random.default_rng(0)
    probs = np.round(rng.random((10, 3)), 1)  # ties
    p_any = np.array(P_ART)  # an any-artifact head: not max(probs)
    m = meta("multilabel", any_head=True)
    ev = M.truth_evaluation(m, preds("multilabel", probs=probs, p_art=p_any), cc, t, min_support=2)
    ml = ev["multilabel"]
    keep = [0, 1, 2, 9, 5, 6, 7, 8]  # below-floor CCDs 4 and 5 left out
    y = np.array([[k in DET.get(CCDS[i], []) for k in TAX] for i in keep])
    assert ml["n"] == 8
    for j, r in enumerate(ml["per_class"]):
        assert r["positives"] == y[:, j].sum()
        if 0 < y[:, j].sum() < 8:
            assert r["auc"] == pytest.approx(skm.roc_auc_score(y[:, j], probs[keep, j]))
        else:
            assert r["auc"] is None
    # A: 3 positives, B: 2 -> both >= 2; C: none
    want = np.mean([skm.roc_auc_score(y[:, j], probs[keep, j]) for j in (0, 1)])
    assert ml["mean_auc"] == pytest.approx(want) and ml["mean_auc_classes"] == ["A", "B"]
    # many-class view of a multilabel model: argmax over the classes when p_artifact >= threshold
    mc = ev["manyclass"]
    pred = [TAX[int(np.argmax(probs[i]))] if p_any[i] >= 0.5 else NO for i in keep]
    truth = ["A", "A", "B", "B", NO, NO, NO, NO]
    assert mc["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))


# ---------------------------------------------------------------------------------------------
# older archives: fallbacks and warnings
# ---------------------------------------------------------------------------------------------


def test_missing_floor_columns_fall_back_with_warnings():
    t, cc = truth_tables(new_columns=False)
    ev = M.truth_evaluation(meta(), preds(), cc, t, min_support=1)
    assert ev["fallback"] is True
    assert any("every injected feature counts as detectable" in w for w in ev["warnings"])
    assert any("ccds.parquet lacks" in w for w in ev["warnings"])
    # every injected feature detectable: 1, 2, 3, 4, 5, 10 detectable, 6-9 clean, nothing below the floor
    assert ev["test_ccds"] == {"detectable": 6, "clean": 4, "below_floor": 0, "unmatched": 0}
    # flagged among detectable: 1, 3, 4, 10
    assert ev["binary"]["recall"] == pytest.approx(4 / 6) and ev["binary"]["fpr"] == pytest.approx(0.5)
    # the primary class is derived from the strongest feature (snr here): ccd 10 -> A (snr 20 > 11)
    fr = M.truth_ccd_frame(meta(), preds(), cc, t)
    assert fr.loc[fr.ccdnum == 10, "truth_class"].item() == "A"
    assert fr.loc[fr.ccdnum == 2, "truth_class"].item() == "B"  # B snr 9 > A snr 8
    assert sorted(fr.loc[fr.ccdnum == 2, "detectable_classes"].item()) == ["A", "B"]


def test_missing_ccds_table_counts_absent_ccds_as_clean():
    t, _ = truth_tables()
    p = preds(extra_ccds=[11, 12])  # not in truth.parquet: clean
    ev = M.truth_evaluation(meta(), p, None, t, min_support=1)
    assert any("no ccds.parquet" in w for w in ev["warnings"])
    assert ev["test_ccds"] == {"detectable": 4, "clean": 6, "below_floor": 2, "unmatched": 0}
    assert ev["binary"]["n_clean"] == 6 and ev["binary"]["fpr"] == pytest.approx(2 / 6)
    assert ev["floor"]["archive"]["ccds"] is None
    # with a CCD table, a test CCD missing from it is unmatched and left out (and said so)
    _, cc = truth_tables()
    ev2 = M.truth_evaluation(meta(), p, cc, t, min_support=1)
    assert ev2["test_ccds"]["unmatched"] == 2 and ev2["binary"]["n_clean"] == 4
    assert any("not in the truth's CCD table" in w for w in ev2["warnings"])
    # the ceiling is on the matched labelled CCDs only: the same as without the extra CCDs
    assert ev2["ceiling"]["binary"]["n"] == 10


def test_load_truth_paths_and_summarize_model(tmp_path):
    t, cc = truth_tables()
    lab = tmp_path / "archive" / "labels"
    lab.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(t), lab / "truth.parquet")
    pq.write_table(pa.Table.from_pandas(cc), lab / "ccds.parquet")
    for path in (lab, lab / "truth.parquet", tmp_path / "archive"):
        td, cd, src = M.load_truth(str(path))
        assert len(td) == len(FEATURES) and len(cd) == 10 and src["ccds"].endswith("ccds.parquet")
    with pytest.raises(M.TruthTableError, match="no such truth table"):
        M.load_truth(str(tmp_path / "nope.parquet"))
    with pytest.raises(M.TruthTableError, match="no truth.parquet"):
        M.load_truth(str(tmp_path))
    # a model directory on the same CCDs
    md = tmp_path / "model"
    md.mkdir()
    p = preds()
    m = meta()
    table = pa.table(
        {
            "expnum": p["expnum"],
            "ccdnum": p["ccdnum"].astype(np.int16),
            "label": p["label"].astype(np.int8),
            "primary_class": p["primary_class"].astype(np.int16),
            "multi_hot": pa.array(p["multi_hot"].tolist(), pa.list_(pa.int8())),
            "y_true": p["y_true"].astype(np.int16),
            "probs": pa.array(p["probs"].tolist(), pa.list_(pa.float32())),
            "p_artifact": p["p_artifact"].astype(np.float32),
        }
    )
    for side in ("test", "val"):
        pq.write_table(table, md / f"predictions_{side}.parquet")
    json.dump(m, open(md / "model.json", "w"))
    plain = M.summarize_model(str(md))
    s = M.summarize_model(str(md), truth=str(lab), min_support=1)
    assert "truth" not in plain and set(plain) <= set(s)  # every existing key kept
    assert s["truth"]["binary"]["recall"] == pytest.approx(0.75) and s["truth"]["source"]["truth"].endswith(
        "truth.parquet"
    )
    assert set(s["truth"]) >= {
        "binary",
        "per_class",
        "recall_vs_strength",
        "floor",
        "manyclass",
        "multilabel",
        "volunteer",
        "ceiling",
        "test_ccds",
        "warnings",
    }
    json.dumps(s)


def test_any_head_skips_the_p_artifact_check(tmp_path):
    rng = np.random.default_rng(1)
    n = 20
    probs = rng.random((n, 3))
    p_any = np.clip(probs.max(axis=1) - 0.3, 0, 1)  # deliberately not max(probs)
    table = pa.table(
        {
            "expnum": np.full(n, 5, np.int64),
            "ccdnum": np.arange(1, n + 1, dtype=np.int16),
            "label": (p_any > 0.3).astype(np.int8),
            "primary_class": np.full(n, -1, np.int16),
            "multi_hot": pa.array([[0, 0, 0]] * n, pa.list_(pa.int8())),
            "y_true": np.full(n, -1, np.int16),
            "probs": pa.array(probs.tolist(), pa.list_(pa.float32())),
            "p_artifact": p_any.astype(np.float32),
        }
    )
    for any_head, warns in ((True, False), (False, True)):
        d = tmp_path / f"m{any_head}"
        d.mkdir()
        pq.write_table(table, d / "predictions_test.parquet")
        json.dump(meta("multilabel", any_head=any_head, split={"id": "s", "test": [5]}), open(d / "model.json", "w"))
        out = M.load_predictions(str(d))
        assert any("disagrees" in w for w in out["warnings"]) == warns
        np.testing.assert_allclose(out["p_artifact"], p_any, atol=1e-6)  # p_artifact used as stored


# ---------------------------------------------------------------------------------------------
# ROC AUC
# ---------------------------------------------------------------------------------------------


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(2, 60))
        y = rng.random(n) < 0.4
        if y.all() or not y.any():
            assert M.roc_auc(y, rng.random(n)) is None
            continue
        s = np.round(rng.random(n) + 0.3 * y, 1)
        assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert M.roc_auc([0, 1], [0.2, 0.9]) == 1.0 and M.roc_auc([0, 1, 0, 1], [0.5] * 4) == 0.5
    yy = (rng.random((80, 4)) < 0.3).astype(int)
    yy[:, 3] = 0  # a class without positives
    sc = rng.random((80, 4))
    out = M.per_class_auc(yy, sc, ["a", "b", "c", "d"], min_support=20)
    assert out["per_class"][3]["auc"] is None
    got = [r["auc"] for r in out["per_class"][:3]]
    assert got == pytest.approx([skm.roc_auc_score(yy[:, j], sc[:, j]) for j in range(3)])
    used = [j for j in range(3) if yy[:, j].sum() >= 20]
    assert out["mean_auc_classes"] == [["a", "b", "c"][j] for j in used]
    assert out["mean_auc_all"] == pytest.approx(np.mean(got))
