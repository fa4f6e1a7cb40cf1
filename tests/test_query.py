"""artifactspark.serve.query and jobs/query.py on a real store (the preprocess job on a test archive)
and a synthetic predictions table written per jobs/infer.py's contract; every answer is checked
against a plain-Python computation over the same rows (read with pyarrow, not with Spark)."""

import datetime as dt
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from desarchive import E1, E3, SMALL_CONF, build_archive, report, write_pair, write_reports
from storelayout import current_features

from artifactspark.config import config_from_dict, load_config
from artifactspark.errors import StoreError
from artifactspark.features.preprocess import run_preprocess
from artifactspark.features.store import decode_vector
from artifactspark.serve import query as q

CLASSES = list(config_from_dict({}).taxonomy.classes)
E4, E5, E6, E_GONE = 300004, 300005, 300006, 300009
V1_AT, V2_OLD_AT, V2_AT = dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 15, 12), dt.datetime(2024, 2, 1, 12)
MODEL_CLASSES = ["Satellite", "Ghost", "Airplane", "Meteor"]  # "Meteor": a model class outside the taxonomy
DUP = (E4, 1)  # v2 scored this CCD twice


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    d = tmp_path_factory.mktemp("query")
    root = str(d / "archive")
    build_archive(root)  # 7 stored CCDs (bands r, g) and 12 quarantined inputs
    for ccd in (1, 2, 3, 4):
        write_pair(root, E4, ccd, band="g", nite="20131116")
    for ccd in (1, 2, 3):
        write_pair(root, E5, ccd, band="i", nite="20131117")
    for ccd in (1, 2):
        write_pair(root, E6, ccd, band="g", nite="20131118")
    labels = str(d / "labels.json")
    write_reports(
        labels,
        [
            report(1, E1, 1, "Satellite", 100, 50),
            report(2, E1, 1, "Satellite", 120, 60),
            report(3, E1, 1, "Ghost", 10, 10),
            report(4, E1, 2, "OK"),
            report(5, E1, 3, "Excessive mask", 5, 5, fp=True),
            report(6, E4, 1, "Satellite", 10, 10, band="g"),
            report(7, E4, 2, "Airplane", 10, 10, band="g"),
            report(8, E4, 3, "OK", band="g"),
            report(9, E5, 1, "Ghost", 10, 10, band="i"),
            report(10, E5, 2, "OK", band="i"),
            report(11, E6, 1, "Unheard-of", 1, 1, band="g"),
            report(12, E3, 1, "Satellite", 1, 1, band="g"),
            report(13, E3, 1, "Tree Rings", 2, 2, band="g"),
        ],
    )
    conf = str(d / "small.toml")
    open(conf, "w").write(SMALL_CONF)
    out = str(d / "store")
    s = run_preprocess(spark, [root], out, load_config(conf), [labels])
    assert s["stored"] == 16
    return out


def _features(store):

    cols = [
        "expnum",
        "ccdnum",
        "band",
        "nite",
        "inspected",
        "label",
        "primary_class",
        "multi_hot",
        "n_reports",
        "has_false_positive",
    ]
    return current_features(store, cols)


@pytest.fixture(scope="module")
def truth(store):
    """The store's labels per CCD, decoded in plain Python."""
    out = {}
    for r in _features(store):
        mh = decode_vector(r["multi_hot"])
        out[(r["expnum"], r["ccdnum"])] = {
            **{
                k: r[k]
                for k in ("band", "nite", "inspected", "label", "primary_class", "n_reports", "has_false_positive")
            },
            "primary_class_name": CLASSES[r["primary_class"]] if r["primary_class"] >= 0 else None,
            "label_classes": [CLASSES[i] for i in np.nonzero(mh)[0]],
        }
    return out


def _synthetic_predictions(truth):
    """v1 (binary SVM, older) scores every CCD; v2 (multilabel CNN, newer) every CCD but band i,
    CCD DUP twice (an older v2 score that must not count). Plus a CCD the store does not hold."""
    ccds = sorted(truth.items()) + [((E_GONE, 5), {"band": "r", "nite": 20131115, "label": None})]
    rows = []
    for (e, c), t in ccds:
        p1 = ((e * 7 + c * 13) % 10) / 10 + 0.05
        rows.append(
            dict(
                expnum=e,
                ccdnum=c,
                band=t["band"],
                nite=t["nite"],
                model_name="svm-baseline",
                model_version="v1",
                model_kind="svm",
                problem="binary",
                p_artifact=p1,
                threshold=0.5,
                flagged=p1 >= 0.5,
                predicted_classes=[],
                class_probs=[],
                config_hash="cafe",
                scored_at=V1_AT,
            )
        )
        if t["band"] == "i":
            continue
        # v2 mostly agrees with the volunteers (so that every cell of the confusion matrix is hit)
        lab = t["label"]
        p2 = {1: 0.9, 0: 0.1, -1: 0.7, None: 0.95}[lab]
        if (e, c) in ((E1, 2), (E4, 2)):  # a false alarm and a miss
            p2 = 1 - p2
        flagged = p2 >= 0.4
        classes = []
        if flagged:
            classes = [MODEL_CLASSES[(e + c) % 4]] + (["Satellite"] if c % 2 == 0 and (e + c) % 4 != 0 else [])
        probs = [float(np.float32(0.9 if k in classes else 0.05)) for k in MODEL_CLASSES]
        rows.append(
            dict(
                expnum=e,
                ccdnum=c,
                band=t["band"],
                nite=t["nite"],
                model_name="cnn-multi",
                model_version="v2",
                model_kind="cnn",
                problem="multilabel",
                p_artifact=p2,
                threshold=0.4,
                flagged=flagged,
                predicted_classes=classes,
                class_probs=probs,
                config_hash="cafe",
                scored_at=V2_AT,
            )
        )
    # an earlier v2 score of a labelled CCD, the opposite call: must not count
    old = dict([r for r in rows if r["model_version"] == "v2" and (r["expnum"], r["ccdnum"]) == DUP][0])
    old.update(
        scored_at=V2_OLD_AT,
        p_artifact=1 - old["p_artifact"],
        flagged=not old["flagged"],
        predicted_classes=[] if old["flagged"] else ["Ghost"],
    )
    rows.append(old)
    return rows


PRED_SCHEMA = (
    "expnum long, ccdnum short, model_name string, model_version string, model_kind string, "
    "problem string, p_artifact double, threshold double, flagged boolean, predicted_classes array<string>, "
    "class_probs array<float>, config_hash string, scored_at timestamp, band string, nite int"
)


@pytest.fixture(scope="module")
def preds(spark, store, truth, tmp_path_factory):
    rows = _synthetic_predictions(truth)
    out = str(tmp_path_factory.mktemp("pred") / "predictions")
    cols = [c.split()[0] for c in PRED_SCHEMA.split(", ")]
    df = spark.createDataFrame([tuple(r[c] for c in cols) for r in rows], PRED_SCHEMA)
    df.repartition(2).write.partitionBy("band", "nite").parquet(out)
    os.makedirs(os.path.join(out, "_models"))
    # the model metadata as jobs/infer.py copies it (the model's own keys: version, name, kind, ...)
    for v, name, kind, problem, classes in (
        ("v1", "svm-baseline", "svm", "binary", ["no artifact", "artifact"]),
        ("v2", "cnn-multi", "cnn", "multilabel", MODEL_CLASSES),
    ):
        json.dump(
            {"version": v, "name": name, "kind": kind, "problem": problem, "classes": classes},
            open(os.path.join(out, "_models", f"{v}.json"), "w"),
        )
    return out, rows


# ------------------------------------------------------------------------------ the independent answers
def latest(rows, version):
    best = {}
    for r in rows:
        if r["model_version"] == version:
            k = (r["expnum"], r["ccdnum"])
            if k not in best or r["scored_at"] > best[k]["scored_at"]:
                best[k] = r
    return list(best.values())


def in_scope(r, band=None, nite_from=None, nite_to=None):
    return (
        (band is None or r["band"] == band)
        and (nite_from is None or r["nite"] >= nite_from)
        and (nite_to is None or r["nite"] <= nite_to)
    )


def expect_flagged(rows, truth, version, cls=None, **scope):
    out = []
    for r in latest(rows, version):
        if in_scope(r, **scope) and (cls in r["predicted_classes"] if cls else r["flagged"]):
            t = truth.get((r["expnum"], r["ccdnum"]), {})
            out.append(
                (
                    r["band"],
                    r["nite"],
                    r["expnum"],
                    r["ccdnum"],
                    r["flagged"],
                    tuple(r["predicted_classes"]),
                    t.get("label"),
                    t.get("primary_class_name"),
                )
            )
    return sorted(out)


def got_flagged(res):
    return [
        (
            r["band"],
            r["nite"],
            r["expnum"],
            r["ccdnum"],
            r["flagged"],
            tuple(r["predicted_classes"]),
            r["label"],
            r["primary_class_name"],
        )
        for r in res
    ]


# ------------------------------------------------------------------------------ views
def test_views_match_the_store(spark, store, preds, truth):
    pred, rows = preds
    names = q.register_views(spark, store, pred)
    assert names == ["features", "labels", "quarantine", "manifest", "predictions", "models"]
    feats = spark.table("features")
    assert "image" not in feats.columns and "mask_frac" not in feats.columns
    assert {"expnum", "ccdnum", "band", "nite", "label", "multi_hot", "path", "config_hash"} <= set(feats.columns)
    assert feats.count() == len(truth)
    labels = {(r["expnum"], r["ccdnum"]): r.asDict() for r in spark.table("labels").collect()}
    assert spark.table("labels").columns == [
        "expnum",
        "ccdnum",
        "band",
        "nite",
        "inspected",
        "label",
        "primary_class",
        "primary_class_name",
        "n_reports",
        "has_false_positive",
        "label_classes",
    ]
    assert labels.keys() == truth.keys()
    for k, t in truth.items():
        got = labels[k]
        for col in (
            "band",
            "nite",
            "inspected",
            "label",
            "primary_class",
            "primary_class_name",
            "n_reports",
            "has_false_positive",
            "label_classes",
        ):
            assert got[col] == t[col], (k, col, got[col], t[col])
    # the fixture exercises the interesting label cases
    assert labels[(E1, 1)]["label_classes"] == ["Ghost", "Satellite"]
    assert labels[(E1, 1)]["primary_class_name"] == "Satellite"
    assert labels[(E3, 1)]["primary_class_name"] == "Tree rings"  # alias, tie broken by taxonomy order
    assert labels[(E1, 3)]["has_false_positive"] and labels[(E1, 3)]["label_classes"] == []
    assert labels[(E6, 1)]["inspected"] and labels[(E6, 1)]["label"] == -1
    assert spark.table("quarantine").count() == 12
    assert spark.table("manifest").count() == 12 + 16
    assert spark.table("predictions").count() == len(rows)
    models = {r["model_version"]: r for r in spark.table("models").collect()}
    assert models["v2"]["classes"] == MODEL_CLASSES and models["v1"]["problem"] == "binary"
    assert (models["v2"]["model_name"], models["v2"]["model_kind"]) == ("cnn-multi", "cnn")


def test_register_views_without_predictions(spark, store):
    assert q.register_views(spark, store) == ["features", "labels", "quarantine", "manifest"]


# ------------------------------------------------------------------------------ flagged
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"band": "g"},
        {"band": "r", "nite_from": 20131115, "nite_to": 20131115},
        {"nite_from": 20131116},
        {"cls": "Satellite"},
        {"cls": "Ghost", "band": "g"},
        {"cls": "Meteor", "nite_to": 20131116},
    ],
)
def test_flagged_matches_python(spark, store, preds, truth, kw):
    pred, rows = preds
    res = q.flagged(spark, store, pred, **kw)
    assert res.info["model_version"] == "v2"  # the most recent one with predictions in every scope above
    cls = kw.pop("cls", None)
    want = expect_flagged(rows, truth, "v2", cls, **kw)
    assert got_flagged(res) == want
    assert all(r["model_version"] == "v2" for r in res)
    assert not res.info["truncated"]


def test_flagged_fixture_is_not_trivial(spark, store, preds, truth):
    pred, rows = preds
    everything = q.flagged(spark, store, pred)
    assert len(everything) >= 8
    assert any(r["label"] is None for r in everything)  # a scored CCD the store does not hold
    assert any(r["label"] == 0 for r in everything) and any(r["label"] == 1 for r in everything)
    assert 0 < len(q.flagged(spark, store, pred, cls="Satellite")) < len(everything)
    # the older, opposite v2 score of DUP is not what counts
    dup = [r for r in rows if r["model_version"] == "v2" and (r["expnum"], r["ccdnum"]) == DUP]
    assert len(dup) == 2 and dup[0]["flagged"] != dup[1]["flagged"]
    latest_dup = max(dup, key=lambda r: r["scored_at"])
    assert (DUP in {(r["expnum"], r["ccdnum"]) for r in everything}) == latest_dup["flagged"]


def test_flagged_class_names_are_resolved(spark, store, preds, truth):
    pred, rows = preds
    want = expect_flagged(rows, truth, "v2", "Satellite")
    assert got_flagged(q.flagged(spark, store, pred, cls="satellite")) == want
    res = q.flagged(spark, store, pred, cls="satellite")
    assert res.info["class"] == "Satellite"


def test_explicit_older_model_and_scoped_choice(spark, store, preds, truth):
    pred, rows = preds
    res = q.flagged(spark, store, pred, model_version="v1")
    assert res.info["model_version"] == "v1" and res.info["model_choice"] == "given"
    assert got_flagged(res) == expect_flagged(rows, truth, "v1")
    # v2 has not scored band i: the most recent model there is v1, and the answer says so
    res = q.flagged(spark, store, pred, band="i")
    assert res.info["model_version"] == "v1" and res.info["model_versions_in_scope"] == ["v1"]
    assert got_flagged(res) == expect_flagged(rows, truth, "v1", band="i")
    both = q.flagged(spark, store, pred, band="g")
    assert both.info["model_versions_in_scope"] == ["v2", "v1"]
    assert "most recent by scored_at of 2 model versions" in both.info["model_choice"]


def test_flagged_prunes_partitions(spark, store, preds):
    pred, _ = preds
    df, info = q.flagged_frame(spark, store, pred, band="g", nite_from=20131116, nite_to=20131117)
    spark.conf.set("spark.sql.maxMetadataStringLength", "100000")  # the plan's scan details, uncut
    try:
        plan = df._jdf.queryExecution().executedPlan().toString()
    finally:
        spark.conf.unset("spark.sql.maxMetadataStringLength")
    scans = [line for line in plan.splitlines() if "FileScan parquet" in line]
    pred_scan = [s for s in scans if os.path.basename(pred) in s]
    assert pred_scan, plan
    for s in pred_scan:
        pf = re.search(r"PartitionFilters: \[(.*?)\], PushedFilters", s).group(1)
        assert (
            re.search(r"band#\d+ = g", pf)
            and re.search(r"nite#\d+ >= 20131116", pf)
            and re.search(r"nite#\d+ <= 20131117", pf)
        ), s
    # the join carries the filters over to the store's side: its scan is pruned as well
    feat_scan = [s for s in scans if "features" in s]
    assert feat_scan, plan
    assert all(re.search(r"PartitionFilters: \[.*band#\d+ = g.*\], PushedFilters", s) for s in feat_scan), plan
    assert df.count() == len(q.flagged(spark, store, pred, band="g", nite_from=20131116, nite_to=20131117))


def test_limit_truncates_and_says_so(spark, store, preds):
    pred, _ = preds
    full = q.flagged(spark, store, pred)
    cut = q.flagged(spark, store, pred, limit=2)
    assert list(cut) == list(full)[:2] and cut.info["truncated"]


# ------------------------------------------------------------------------------ exposures
@pytest.mark.parametrize(
    "kw",
    [
        {"min_flagged": 1},
        {"min_flagged": 2},
        {"min_flagged": 0, "band": "g"},
        {"min_flagged": 1, "cls": "Satellite"},
        {"min_flagged": 2, "model_version": "v1"},
    ],
)
def test_exposures_match_python(spark, store, preds, truth, kw):
    pred, rows = preds
    res = q.exposures(spark, store, pred, **kw)
    version = kw.get("model_version", "v2")
    assert res.info["model_version"] == version
    cls = kw.get("cls")
    per = {}
    for r in latest(rows, version):
        if not in_scope(r, band=kw.get("band")):
            continue
        hit = cls in r["predicted_classes"] if cls else r["flagged"]
        e = per.setdefault(
            r["expnum"], {"band": r["band"], "nite": r["nite"], "n": 0, "f": 0, "p": 0.0, "classes": set()}
        )
        e["n"] += 1
        e["f"] += hit
        e["p"] = max(e["p"], r["p_artifact"])
        if hit:
            e["classes"] |= set(r["predicted_classes"])
    want = sorted(
        (
            (-e["f"], x, e["band"], e["nite"], e["n"], round(e["f"] / e["n"], 4), e["p"], sorted(e["classes"]))
            for x, e in per.items()
            if e["f"] >= kw["min_flagged"]
        )
    )
    got = [
        (
            -r["n_flagged"],
            r["expnum"],
            r["band"],
            r["nite"],
            r["n_scored"],
            r["frac_flagged"],
            r["max_p_artifact"],
            r["classes"],
        )
        for r in res
    ]
    assert got == want
    assert [r["n_flagged"] for r in res] == sorted((r["n_flagged"] for r in res), reverse=True)
    assert len(res) > 0


# ------------------------------------------------------------------------------ disagreements
@pytest.mark.parametrize("version", [None, "v1"])
def test_disagreements_match_python(spark, store, preds, truth, version):
    pred, rows = preds
    res = q.disagreements(spark, store, pred, model_version=version)
    v = version or "v2"
    assert res.info["model_version"] == v
    cm = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    dis = []
    scored = latest(rows, v)
    for r in scored:
        t = truth.get((r["expnum"], r["ccdnum"]))
        if t is None or not t["inspected"] or t["label"] not in (0, 1):
            continue
        cell = ("t" if r["flagged"] == (t["label"] == 1) else "f") + ("p" if r["flagged"] else "n")
        cm[cell] += 1
        if cell[0] == "f":
            dis.append(
                (
                    "flagged_but_clean" if r["flagged"] else "missed_artifact",
                    r["band"],
                    r["nite"],
                    r["expnum"],
                    r["ccdnum"],
                    t["label"],
                )
            )
    c = res.info["confusion"]
    assert {k: c[k] for k in cm} == cm
    assert c["n_compared"] == sum(cm.values()) and c["n_scored"] == len(scored)
    assert c["precision"] == (round(cm["tp"] / (cm["tp"] + cm["fp"]), 4) if cm["tp"] + cm["fp"] else None)
    assert c["recall"] == (round(cm["tp"] / (cm["tp"] + cm["fn"]), 4) if cm["tp"] + cm["fn"] else None)
    assert [(r["disagreement"], r["band"], r["nite"], r["expnum"], r["ccdnum"], r["label"]) for r in res] == sorted(dis)
    if version is None:  # v2 was built to hit every cell, with one false alarm and one miss
        assert all(cm.values()) and [(r["expnum"], r["ccdnum"]) for r in res] == [(E1, 2), (E4, 2)]


def test_disagreements_in_a_band(spark, store, preds):
    pred, _ = preds
    g = q.disagreements(spark, store, pred, band="g")
    assert [(r["expnum"], r["ccdnum"], r["disagreement"]) for r in g] == [(E4, 2, "missed_artifact")]
    assert all(r["band"] == "g" for r in g)


# ------------------------------------------------------------------------------ sql and the other readers
def test_sql_over_the_views(spark, store, preds):
    pred, _ = preds
    res = q.sql(spark, "SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY reason", store, pred)
    assert res.columns == ["reason", "n"] and sum(r["n"] for r in res) == 12
    res = q.sql(
        spark,
        """SELECT l.primary_class_name AS cls, count(*) AS n FROM predictions p JOIN labels l
                          USING (expnum, ccdnum, band, nite) WHERE p.model_version = 'v2' AND p.flagged AND l.label = 1
                          GROUP BY 1 ORDER BY 1""",
        store,
        pred,
    )
    assert sum(r["n"] for r in res) == q.disagreements(spark, store, pred).info["confusion"]["tp"]


def _snippet(doc: str, marker: str) -> str:
    """The indented code block of the module docstring that contains ``marker``."""
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", doc)
    block = [b for b in blocks if marker in b][0]
    return "\n".join(line[4:] for line in block.splitlines())


def test_docstring_pyarrow_and_duckdb_snippets_give_the_spark_rows(spark, store, preds):
    """The snippets in artifactspark/serve/query.py's docstring, run as written, agree with Spark."""
    pred, rows = preds
    q.register_views(spark, store, pred)

    def key(r):
        return r["expnum"], r["ccdnum"], r["band"], r["nite"], r["p_artifact"], tuple(r["predicted_classes"])

    want = sorted(
        key(r)
        for r in spark.sql("SELECT * FROM predictions WHERE band = 'g' AND model_version = 'v2' AND flagged").collect()
    )
    assert want
    ns = {"PRED": pred, "STORE": store}
    exec(_snippet(q.__doc__, "pyarrow.dataset"), ns)
    assert sorted(key(r) for r in ns["rows"]) == want
    ns = {"PRED": pred, "STORE": store}
    exec(_snippet(q.__doc__, "rows = duckdb.sql"), ns)
    assert sorted((e, c, b, n, p, tuple(k)) for e, c, b, n, p, k in ns["rows"]) == want
    # the DuckDB join with the store's labels gives Spark's confusion matrix (DUP counted once)
    ns = {"PRED": pred, "STORE": store}
    exec(_snippet(q.__doc__, "confusion = duckdb.sql"), ns)
    duck = {(bool(f), int(lab)): n for f, lab, n in ns["confusion"]}
    c = q.disagreements(spark, store, pred, model_version="v2").info["confusion"]
    spark_cm = {(True, 1): c["tp"], (True, 0): c["fp"], (False, 1): c["fn"], (False, 0): c["tn"]}
    assert duck == {k: v for k, v in spark_cm.items() if v}


def test_pyarrow_and_duckdb_read_the_same_partitions_as_spark(spark, store, preds):
    """Every row of the band-g (and of one night's) partitions, as pyarrow, DuckDB, Spark and the
    rows written see them."""
    import duckdb
    import pyarrow.dataset as ds

    pred, rows = preds
    q.register_views(spark, store, pred)
    cols = ["expnum", "ccdnum", "nite", "model_version", "flagged", "p_artifact", "predicted_classes", "class_probs"]

    def key(r):
        return (
            int(r["expnum"]),
            int(r["ccdnum"]),
            int(r["nite"]),
            r["model_version"],
            bool(r["flagged"]),
            r["p_artifact"],
            tuple(r["predicted_classes"]),
            tuple(round(x, 5) for x in r["class_probs"]),
        )

    d = ds.dataset(pred, format="parquet", partitioning="hive")
    glob = f"read_parquet('{pred}/*/*/*.parquet', hive_partitioning = true)"
    for where, pa_filter, keep in (
        ("band = 'g'", ds.field("band") == "g", lambda r: r["band"] == "g"),
        (
            "band = 'r' AND nite = 20131115",
            (ds.field("band") == "r") & (ds.field("nite") == 20131115),
            lambda r: r["band"] == "r" and r["nite"] == 20131115,
        ),
    ):
        spark_rows = sorted(key(r) for r in spark.sql(f"SELECT * FROM predictions WHERE {where}").collect())
        pa_rows = sorted(key(r) for r in d.to_table(filter=pa_filter, columns=cols).to_pylist())
        duck = duckdb.sql(f"SELECT {', '.join(cols)} FROM {glob} WHERE {where}")
        duck_rows = sorted(key(dict(zip(cols, t))) for t in duck.fetchall())
        python_rows = sorted(key(r) for r in rows if keep(r))
        assert spark_rows == pa_rows == duck_rows == python_rows and python_rows, where


# ------------------------------------------------------------------------------ bad inputs
def test_missing_store_is_a_store_error(spark, tmp_path, preds):
    with pytest.raises(StoreError, match=r"no feature store at .*nowhere.*jobs/preprocess.py --output"):
        q.register_views(spark, str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="holds no feature dataset yet: run jobs/preprocess.py"):
        q.flagged(spark, str(tmp_path / "empty"), preds[0])
    (tmp_path / "empty" / "_journal.json").write_text("{}")
    with pytest.raises(StoreError, match="first commit into it was interrupted .*run jobs/preprocess.py"):
        q.register_views(spark, str(tmp_path / "empty"))


def test_missing_predictions_is_a_store_error(spark, store, tmp_path):
    with pytest.raises(StoreError, match=r"no predictions table at .*nopred.*jobs/infer.py"):
        q.flagged(spark, store, str(tmp_path / "nopred"))
    with pytest.raises(q.QueryError, match="needs the predictions table"):
        q.flagged(spark, store, None)


def test_unknown_class_lists_the_known_ones(spark, store, preds):
    with pytest.raises(q.QueryError) as e:
        q.flagged(spark, store, preds[0], cls="Satelite")
    msg = str(e.value)
    assert "unknown class 'Satelite'" in msg and "did you mean 'Satellite'" in msg
    assert all(c in msg for c in CLASSES + ["Meteor"])
    assert "no artifact" not in msg  # a binary model's two outputs are not classes it predicts


def test_bad_night_range_and_other_arguments(spark, store, preds):
    pred = preds[0]
    with pytest.raises(q.QueryError, match="nite_from 20131118 is after nite_to 20131115"):
        q.flagged(spark, store, pred, nite_from=20131118, nite_to=20131115)
    with pytest.raises(q.QueryError, match="a night is YYYYMMDD"):
        q.exposures(spark, store, pred, nite_from=2013)
    with pytest.raises(q.QueryError, match="min_flagged = -1"):
        q.exposures(spark, store, pred, min_flagged=-1)
    with pytest.raises(q.QueryError, match=r"unknown model version 'v9'; the predictions table holds: v1, v2"):
        q.disagreements(spark, store, pred, model_version="v9")
    with pytest.raises(q.QueryError, match="model v1 is binary"):
        q.flagged(spark, store, pred, cls="Ghost", model_version="v1")
    with pytest.raises(q.QueryError, match=r"every model with predictions in the selected band/nights is binary"):
        q.flagged(spark, store, pred, cls="Ghost", band="i")
    with pytest.raises(q.QueryError, match=r"SQL error: .*nope.*views: features, labels"):
        q.sql(spark, "SELECT nope FROM features", store, pred)
    with pytest.raises(q.QueryError, match="SQL error"):
        q.sql(spark, "SELEC 1", store, pred)
    with pytest.raises(q.QueryError, match="SQL error: .*DIVIDE_BY_ZERO"):
        q.sql(spark, "SELECT count(*) / 0 FROM features", store, pred)
    # a version that exists but has no rows in scope: an empty answer that says why
    res = q.flagged(spark, store, pred, band="i", model_version="v2")
    assert list(res) == [] and "no predictions in the selected band/nights" in res.info["note"]
    res = q.flagged(spark, store, pred, band="z")
    assert list(res) == [] and res.info["model_version"] is None


# ------------------------------------------------------------------------------ the CLI
def _main(argv):
    sys.path.insert(0, str(ROOT / "jobs"))
    try:
        import query as job
    finally:
        sys.path.remove(str(ROOT / "jobs"))
    return job.main(argv)


def test_cli_in_process(spark, store, preds, truth, capsys):
    pred, rows = preds
    assert _main(["--store", store, "--predictions", pred, "flagged", "--class", "Satellite", "--band", "g"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    want = expect_flagged(rows, truth, "v2", "Satellite", band="g")
    assert summary["job"] == "query" and summary["question"] == "flagged" and summary["rows"] == len(want) > 0
    assert summary["model_version"] == "v2" and summary["class"] == "Satellite"
    assert out[0].startswith("# model v2 (multilabel cnn)")
    assert re.split(r"\s+", out[1].strip())[:4] == ["band", "nite", "expnum", "ccdnum"]
    assert f"({len(want)} rows)" in out

    assert _main(["--store", store, "--predictions", pred, "exposures", "--min-flagged", "2", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    objs = [json.loads(x) for x in lines]
    assert objs[-1]["question"] == "exposures" and objs[-1]["rows"] == len(objs) - 1
    assert [o["expnum"] for o in objs[:-1]] == [r["expnum"] for r in q.exposures(spark, store, pred, min_flagged=2)]

    assert _main(["--store", store, "--predictions", pred, "disagree", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "confusion among" in out and "label 1 (artifact)" in out and "cut at 1 rows" in out
    assert json.loads(out.strip().splitlines()[-1])["confusion"]["n_compared"] > 0

    assert _main(["--store", store, "sql", "SELECT band, count(*) AS n FROM features GROUP BY band ORDER BY band"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert [re.split(r"\s+", x.strip()) for x in out[2:5]] == [["g", "7"], ["i", "3"], ["r", "6"]]


def test_cli_exit_codes(spark, store, preds, tmp_path, capsys):
    pred = preds[0]
    assert _main(["--store", str(tmp_path / "nowhere"), "sql", "SELECT 1"]) == 4
    assert "no feature store at" in capsys.readouterr().err
    assert _main(["--store", store, "--predictions", pred, "flagged", "--class", "Nope"]) == 2
    assert "known classes: Column mask" in capsys.readouterr().err
    assert (
        _main(["--store", store, "--predictions", pred, "flagged", "--nite-from", "20131118", "--nite-to", "20131115"])
        == 2
    )
    assert "is after nite_to" in capsys.readouterr().err
    assert _main(["--store", store, "sql", "SELECT nope FROM labels"]) == 2
    err = capsys.readouterr().err
    assert "SQL error" in err and "Traceback" not in err


@pytest.mark.timeout(300)
def test_cli_as_a_process(store, preds):
    """The real entry point: its own JVM, a table on stdout, the summary as the last line."""
    pred, _ = preds
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "query.py"),
            "--master",
            "local[1]",
            "--store",
            store,
            "--predictions",
            pred,
            "flagged",
            "--class",
            "ghost",
            "--nite-from",
            "20131115",
            "--nite-to",
            "20131116",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["class"] == "Ghost" and summary["model_version"] == "v2" and summary["rows"] > 0
    assert sum(1 for x in lines if re.match(r"\s*[gr]\s+2013111[56]\s+3000", x)) == summary["rows"]
