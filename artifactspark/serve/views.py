"""Spark SQL views over one feature store and, optionally, one predictions table: ``features``
(without the image blobs), ``labels``, ``quarantine``, ``manifest``, ``predictions`` and
``models`` (see :mod:`artifactspark.serve.query` for their columns and the questions asked of them)."""

from __future__ import annotations

import json
import logging

from ..errors import StoreError
from ..features import versions
from ..features.store import JOURNAL, LOCK, MANIFEST, QUARANTINE, Store
from ..io import fs as fsmod

log = logging.getLogger(__name__)
#: The image columns the ``features`` view leaves out (hundreds of KB per row).
BLOB_COLUMNS = ("image", "mask_frac", "max_sn", "spread_sn", "sharp_sn")
#: The predictions table's contract (jobs/infer.py writes it); band and nite are partitions.
PREDICTION_COLUMNS = (
    "expnum",
    "ccdnum",
    "model_name",
    "model_version",
    "model_kind",
    "problem",
    "p_artifact",
    "threshold",
    "flagged",
    "predicted_classes",
    "class_probs",
    "config_hash",
    "scored_at",
    "band",
    "nite",
)
MODELS_DIR = "_models"
VIEWS = ("features", "labels", "quarantine", "manifest", "predictions", "models")


def _open_store(spark, store_uri: str) -> tuple[Store, dict]:
    store = Store(spark, store_uri)
    if not store.fs.exists(store.uri):
        raise StoreError(
            f"no feature store at {store.uri}: check --store, or build one with jobs/preprocess.py --output {store.uri}"
        )
    interrupted = store.fs.exists(store.path(JOURNAL))
    if interrupted and not versions.list_versions(store.fs, store.uri):
        raise StoreError(
            f"store {store.uri}: the first commit into it was interrupted ({JOURNAL} exists); "
            f"run jobs/preprocess.py with --output {store.uri} again to complete it"
        )
    store.check_readable()  # pins the current version: every view reads that one
    if interrupted:
        log.warning(
            "store %s: a commit was interrupted (%s exists); answers are from version %d until "
            "jobs/preprocess.py runs on the store again and completes it",
            store.uri,
            JOURNAL,
            store.version().number,
        )
    elif store.fs.exists(store.path(LOCK)):
        log.info(
            "store %s: a preprocess run holds %s; answers are from version %d",
            store.uri,
            LOCK,
            store.version().number,
        )
    return store, store.meta() or {}


def store_classes(meta: dict) -> list[str]:
    """The taxonomy the store was built with (``_store.json``)."""
    classes = meta.get("classes") or ((meta.get("config") or {}).get("taxonomy") or {}).get("classes")
    if not classes:
        raise StoreError("the store's _store.json names no taxonomy classes: rebuild it with jobs/preprocess.py")
    return list(classes)


def _labels_frame(features, classes: list[str]):
    """``labels`` from the feature rows: class index -> name, multi_hot bytes -> class names.

    ``multi_hot`` is ``np.save`` of an int8 vector with one entry per class: its last
    ``len(classes)`` bytes are the entries, so plain SQL can read them (no Python UDF).
    """
    from pyspark.sql import functions as F

    n = len(classes)
    names = F.array(*[F.lit(c) for c in classes])
    pc = F.col("primary_class")
    mh = F.col("multi_hot")
    zero = F.lit(bytearray(b"\x00"))
    bits = F.array(*[F.when(F.substring(mh, -(n - i), 1) != zero, F.lit(c)) for i, c in enumerate(classes)])
    label_classes = F.when(F.length(mh) >= n, F.filter(bits, lambda x: x.isNotNull()))
    return features.select(
        "expnum",
        "ccdnum",
        "band",
        "nite",
        "inspected",
        "label",
        "primary_class",
        F.when((pc >= 0) & (pc < n), F.element_at(names, pc.cast("int") + 1)).alias("primary_class_name"),
        "n_reports",
        "has_false_positive",
        label_classes.alias("label_classes"),
    )


def _read_predictions(spark, uri: str):
    fs = fsmod.HadoopFS(spark, uri)
    if not fs.exists(uri) or not fs.list_partitions(uri, 2):
        raise StoreError(
            f"no predictions table at {uri}: check --predictions, or write one with "
            f"jobs/infer.py (its output is the predictions table)"
        )
    # mergeSchema: files written before the heatmap columns (issue 12) read as nulls there
    df = spark.read.option("basePath", uri).option("mergeSchema", "true").parquet(uri)
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise StoreError(
            f"the predictions table at {uri} lacks the columns {missing} (written by another "
            f"version of jobs/infer.py?): run jobs/infer.py again into a new directory"
        )
    return df


def read_models(spark, predictions_uri: str) -> list[dict]:
    """The models' metadata (``PRED/_models/<model_version>.json``), newest file name last."""
    uri = fsmod.to_uri(predictions_uri)
    fs = fsmod.HadoopFS(spark, uri)
    out = []
    for name in sorted(fs.list_names(fsmod.join(uri, MODELS_DIR))):
        if not name.endswith(".json"):
            continue
        text = fs.read_text(fsmod.join(uri, MODELS_DIR, name))
        try:
            meta = json.loads(text or "{}")
        except ValueError:
            log.warning("%s/%s/%s is not JSON: ignored", uri, MODELS_DIR, name)
            continue
        meta.setdefault("model_version", meta.get("version") or name[: -len(".json")])
        out.append(meta)
    return out


def _models_frame(spark, models: list[dict]):
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("model_version", T.StringType()),
            T.StructField("model_name", T.StringType()),
            T.StructField("model_kind", T.StringType()),
            T.StructField("problem", T.StringType()),
            T.StructField("classes", T.ArrayType(T.StringType())),
            T.StructField("metadata_json", T.StringType()),
        ]
    )
    # jobs/infer.py writes the model's own metadata: name, kind, problem, classes, ...
    rows = [
        (
            str(m.get("model_version")),
            _str_or_none(m.get("model_name", m.get("name"))),
            _str_or_none(m.get("model_kind", m.get("kind"))),
            _str_or_none(m.get("problem")),
            [str(c) for c in m.get("classes") or []],
            json.dumps(m, sort_keys=True, default=str),
        )
        for m in models
    ]
    return spark.createDataFrame(rows, schema)


def _str_or_none(v):
    return None if v is None else str(v)


def register_views(spark, store_uri: str, predictions_uri: str | None = None) -> list[str]:
    """Create the temp views ``features``, ``labels``, ``quarantine``, ``manifest`` (and
    ``predictions``, ``models`` with ``predictions_uri``) in ``spark``; return their names.

    Raises StoreError when the store (or the predictions table) does not exist.
    """
    return _register(spark, store_uri, predictions_uri)[0]


def _register(spark, store_uri, predictions_uri):
    """(view names, store meta, models' metadata)."""
    store, meta = _open_store(spark, store_uri)
    classes = store_classes(meta)
    feats = store.read_features().drop(*BLOB_COLUMNS)
    feats.createOrReplaceTempView("features")
    _labels_frame(feats, classes).createOrReplaceTempView("labels")
    names = ["features", "labels"]
    for table in (QUARANTINE, MANIFEST):
        df = store.read_table(table)
        if df is None:
            log.warning("store %s has no %s table", store.uri, table)
            continue
        df.createOrReplaceTempView(table)
        names.append(table)
    models = []
    if predictions_uri is not None:
        uri = fsmod.to_uri(predictions_uri)
        _read_predictions(spark, uri).createOrReplaceTempView("predictions")
        models = read_models(spark, uri)
        _models_frame(spark, models).createOrReplaceTempView("models")
        names += ["predictions", "models"]
    return names, meta, models
