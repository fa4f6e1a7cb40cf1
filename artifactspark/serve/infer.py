"""Batch inference: a trained model mapped over the feature store's partitions on the executors.

    PREDICTIONS/
      band=g/nite=20131115/part-*.parquet   one row per (CCD, model version)
      _models/<version>.json                the metadata of every model that wrote rows
      _lock.json                            while a run writes (one writer at a time)

Why RDD ``mapPartitions`` and not ``predict_batch_udf`` / ``mapInPandas``: every Arrow-based
PySpark path in pyspark 4.3 requires pyarrow >= 18, and petastorm 0.13.1 needs pyarrow 14
(setup.cfg), so those APIs raise PySparkImportError here. ``mapPartitions`` gives the same
shape: the model is loaded once per Python worker process (a module-level cache keyed by model
version; ``spark.python.worker.reuse`` keeps the worker across tasks), rows are decoded and fed
to the model in batches of ``[infer] batch_size``, never one call per row. Without Arrow there is
no Arrow batch size to overflow; the JVM -> Python transfer is pickled rows in batches, and one
CCD row is ~0.2 MB (float16 512 x 256 x 2, compressed), so ``[infer] batch_size`` rows per model
call and the default pickle batching keep a worker well under 1 GB (benchmarks/RESULTS.md).

Incremental and idempotent: CCDs that already have a row for this model version are left out
(an anti-join on expnum, ccdnum, model_version) before scoring; the append goes through Spark's
file commit protocol, so a retried task or a lost executor never leaves duplicate files.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass

import numpy as np

from ..config import PipelineConfig, _build
from ..errors import ConfigError, StoreError
from ..features.store import Store, decode_ndarray
from ..io import fs as fsmod
from ..logs import PROGRESS, import_tensorflow
from ..models.channels import is_plane
from ..models.modelio import ModelError, input_columns, read_meta
from ..progress import Progress
from .heatmap import heat_fields, predict_with_heat

log = logging.getLogger(__name__)

MODELS_DIR = "_models"
TABLE_META = "_predictions.json"  # which store this table scores (one table per store)
KEY = ["expnum", "ccdnum", "model_version"]


@dataclass(frozen=True)
class InferConfig:
    """``[infer]`` in the pipeline config."""

    #: CCDs per model call on an executor. 16, not 64: the same speed (26.8 vs 27.6 ms a CCD, one
    #: core) at 2.5 GB peak per Python worker instead of 5.8 GB (the line-S/N layer's Radon
    #: transform over the batch; benchmarks/RESULTS.md)
    batch_size: int = 16
    #: CCDs per task, about (a task reads whole store files; at least one task per core)
    ccds_per_task: int = 256
    tf_threads: int = 1  # TensorFlow threads per task (spark.task.cpus): no oversubscription


def infer_config(cfg: PipelineConfig) -> InferConfig:
    """``[infer]`` of the config, validated."""
    ic = _build(InferConfig, dict(cfg.extra.get("infer", {})), "infer", "config")
    if ic.batch_size < 1 or ic.ccds_per_task < 1 or ic.tf_threads < 1:
        raise ConfigError(
            f"[infer] batch_size, ccds_per_task and tf_threads must be >= 1 (got {dataclasses.asdict(ic)})"
        )
    return ic


def predictions_schema():
    """The Spark schema of the predictions table (the order :func:`score_partition` yields)."""
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("expnum", T.LongType(), False),
            T.StructField("ccdnum", T.ShortType(), False),
            T.StructField("model_name", T.StringType(), False),
            T.StructField("model_version", T.StringType(), False),
            T.StructField("model_kind", T.StringType(), False),
            T.StructField("problem", T.StringType(), False),
            T.StructField("p_artifact", T.DoubleType(), False),
            T.StructField("threshold", T.DoubleType(), False),
            T.StructField("flagged", T.BooleanType(), False),
            T.StructField("predicted_classes", T.ArrayType(T.StringType(), False), False),
            T.StructField("class_probs", T.ArrayType(T.FloatType(), False), False),
            T.StructField("config_hash", T.StringType(), False),
            T.StructField("scored_at", T.TimestampType(), False),
            *heat_fields(),  # issue 12: serve/heatmap.py
            T.StructField("band", T.StringType(), False),
            T.StructField("nite", T.IntegerType(), False),
        ]
    )


def predicted_classes(meta: dict, probs: np.ndarray, flagged: np.ndarray) -> list[list[str]]:
    """Class names per CCD: multiclass -> the argmax class when it is not "no artifact" and the
    CCD is flagged; multilabel -> classes at or above their class threshold; binary -> []."""
    classes, problem = meta["classes"], meta["problem"]
    if problem == "binary":
        return [[] for _ in range(len(probs))]
    if problem == "multiclass":
        top = probs.argmax(axis=1)
        return [[classes[t]] if f and t != len(classes) - 1 else [] for t, f in zip(top, flagged)]
    th = np.asarray(meta.get("class_thresholds") or [0.5] * len(classes))
    return [[c for c, p, t in zip(classes, row, th) if p >= t] for row in probs]


# ------------------------------------------------------------------------------ executors
_PREDICTORS: dict = {}


def _limit_tf_threads(n: int) -> None:
    """One TF thread pool of ``n`` per task: k tasks x all-cores pools would oversubscribe."""
    try:
        tf = import_tensorflow()
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TF already initialised in this (reused) worker: keep its setting
        pass


def _predictor(version: str, local_dir: str | None, tf_threads: int = 1):
    """The model for ``version`` in this Python worker, loaded on first use."""
    if version not in _PREDICTORS:
        from pyspark import SparkFiles

        from ..models.modelio import Predictor

        path = local_dir if local_dir and os.path.isdir(local_dir) else SparkFiles.get(f"model-{version}.zip")
        _PREDICTORS.clear()  # one model per worker: bounded memory on long-lived workers
        _limit_tf_threads(tf_threads)
        _PREDICTORS[version] = Predictor(path)
    return _PREDICTORS[version]


def score_partition(
    rows, meta: dict, batch_size: int, scored_at, local_dir: str | None = None, tf_threads: int = 1, done=None
):
    """Executor side: feature rows (mappings with the keys, ``band``, ``nite`` and the model's
    store columns) -> prediction tuples (``predictions_schema`` order), ``batch_size`` at a time."""
    batch = []
    for r in rows:
        batch.append(r)
        if len(batch) >= batch_size:
            yield from _score(batch, meta, scored_at, local_dir, tf_threads)
            if done is not None:
                done.add(len(batch))
            batch = []
    if batch:
        yield from _score(batch, meta, scored_at, local_dir, tf_threads)
        if done is not None:
            done.add(len(batch))


def file_rows(units, columns: list[str], batch_size: int = 64):
    """The store rows of each unit (``_file``: a Parquet file's URI, ``band``, ``nite``, ``_keys``:
    the [expnum, ccdnum] to read), read with pyarrow ``batch_size`` rows at a time; rows whose key
    is not asked for are skipped before their cells are converted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..features.versions import ArrowFS

    for u in units:
        want = {(int(e), int(c)) for e, c in u["_keys"]}
        afs = ArrowFS(u["_file"])
        with afs.fs.open_input_file(afs.path(u["_file"])) as fh:
            for b in pq.ParquetFile(fh).iter_batches(batch_size=batch_size, columns=["expnum", "ccdnum", *columns]):
                ex, cc = b.column(0).to_pylist(), b.column(1).to_pylist()
                idx = [i for i, k in enumerate(zip(ex, cc)) if k in want]
                if not idx:
                    continue
                d = b.take(pa.array(idx, pa.int64())).to_pydict()
                for i in range(len(idx)):
                    yield {"band": u["band"], "nite": u["nite"], **{k: v[i] for k, v in d.items()}}


def score_files(units, meta: dict, columns, batch_size: int, scored_at, local_dir=None, tf_threads: int = 1, done=None):
    """Executor side: store files and their keys to score -> prediction tuples."""
    yield from score_partition(
        file_rows(units, columns, batch_size), meta, batch_size, scored_at, local_dir, tf_threads, done
    )


def _score(batch, meta, scored_at, local_dir, tf_threads):
    pred = _predictor(meta["version"], local_dir, tf_threads)
    planes = {
        c: np.stack([decode_ndarray(r[c]) for r in batch]) if is_plane(c) else np.array([r[c] for r in batch])
        for c in pred.columns
    }
    pred.check_shape(planes["image"].shape[1:])
    probs, pa, heat = predict_with_heat(pred, planes)  # issue 12: heat = null columns without a tile head
    flagged = pa >= meta["threshold"]
    names = predicted_classes(meta, probs, flagged)
    for r, p, f, n, row, h in zip(batch, pa, flagged, names, probs, heat):
        yield (
            int(r["expnum"]),
            int(r["ccdnum"]),
            meta["name"],
            meta["version"],
            meta["kind"],
            meta["problem"],
            float(p),
            float(meta["threshold"]),
            bool(f),
            n,
            [float(v) for v in row],
            meta["config_hash"],
            scored_at,
            *h,
            r["band"],
            int(r["nite"]),
        )


# ------------------------------------------------------------------------------ driver
def check_model_fits_store(meta: dict, store_meta: dict, model_dir: str) -> None:
    """ModelError unless the model was trained on this store's preprocessing config and image shape."""
    if meta.get("config_hash") != store_meta.get("config_hash"):
        raise ModelError(
            f"model {model_dir} was trained on features with preprocessing config {meta.get('config_hash')}, "
            f"but the store holds config {store_meta.get('config_hash')}: its images are not what the model "
            "expects. Retrain on this store (jobs/train_cnn.py / train_svm.py) or score the store it was trained on"
        )
    if list(store_meta.get("image_shape", [])) != list(meta["input"]["image_shape"]):
        raise ModelError(
            f"store images are {store_meta.get('image_shape')}, the model expects {meta['input']['image_shape']}"
        )


def _ship_model(spark, model_dir: str, version: str) -> None:
    """Zip the model as ``model-<version>.zip`` and ``addArchive`` it: every executor, on any
    node, finds it unpacked at ``SparkFiles.get(name)`` (``addFile`` refuses local folders
    outside local mode). Once per version and driver process."""
    base = os.path.join(tempfile.gettempdir(), f"artifactspark-{os.getpid()}", f"model-{version}")
    if not os.path.isfile(base + ".zip"):
        os.makedirs(os.path.dirname(base), exist_ok=True)
        shutil.make_archive(base + ".part", "zip", model_dir)
        os.replace(base + ".part.zip", base + ".zip")
        spark.sparkContext.addArchive(base + ".zip")


def run_infer(spark, store_uri: str, model_dir: str, output_uri: str, cfg: PipelineConfig) -> dict:
    """Score the store's CCDs not yet scored by this model version into the predictions table; the job summary."""
    from pyspark.sql import functions as F

    t0 = time.time()
    ic = infer_config(cfg)
    meta = read_meta(model_dir)
    store = Store(spark, store_uri)
    store.check_readable()
    store_meta = store.meta() or {}
    check_model_fits_store(meta, store_meta, model_dir)
    out = Store(spark, output_uri)  # the same lock / fs helpers, on the predictions root
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    with out.lock(run_id):
        return _run_locked(spark, store, out, meta, model_dir, ic, t0, F)


def _check_table_store(out, store) -> None:
    path = fsmod.join(out.uri, TABLE_META)
    text = out.fs.read_text(path)
    if text is None:
        out.fs.write_text_atomic(path, json.dumps({"store": store.uri}))
    elif json.loads(text).get("store") != store.uri:
        raise StoreError(
            f"predictions table {out.uri} scores the store {json.loads(text).get('store')}, not "
            f"{store.uri}: (expnum, ccdnum) keys of two stores would mix. Use another --output"
        )


def _run_locked(spark, store, out, meta, model_dir, ic, t0, F):
    _check_table_store(out, store)
    timings = {}
    feats = store.read_features().select(  # the version check_readable pinned
        "expnum", "ccdnum", "band", "nite", *input_columns(meta)
    )
    done = None
    if out.fs.exists(out.uri) and [n for n in out.fs.list_names(out.uri) if not n.startswith(("_", "."))]:
        spark.catalog.clearCache()
        done = (
            spark.read.parquet(out.uri)
            .where(F.col("model_version") == meta["version"])
            .select("expnum", "ccdnum", F.lit(True).alias("_done"))
            .distinct()
        )
    # One pass over the key columns (Parquet: no image bytes read) counts the store and the CCDs
    # still to score, and names the file each one is in; the keys already scored are few per CCD
    # and go to every task (broadcast).
    keys = feats.select("expnum", "ccdnum", "band", "nite", F.input_file_name().alias("_file"))
    if done is not None:
        keys = keys.join(F.broadcast(done), ["expnum", "ccdnum"], "left")
    else:
        keys = keys.withColumn("_done", F.lit(None).cast("boolean"))
    keys = keys.cache()
    agg = keys.agg(F.count(F.lit(1)).alias("n"), F.count("_done").alias("d")).first()
    n_store, n_todo = int(agg["n"]), int(agg["n"]) - int(agg["d"])
    timings["plan"] = round(time.time() - t0, 2)
    log.info(
        "infer: model %s (%s %s): %d CCDs in the store, %d not yet scored by this version",
        meta["version"],
        meta["kind"],
        meta["problem"],
        n_store,
        n_todo,
        extra=PROGRESS,
    )
    summary = {
        "job": "infer",
        "model": meta["name"],
        "model_version": meta["version"],
        "store": store.uri,
        "output": out.uri,
        "store_ccds": n_store,
        "scored": 0,
        "already_scored": n_store - n_todo,
    }
    if n_todo:
        _ship_model(spark, model_dir, meta["version"])
        scored_at = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        local_dir = os.path.abspath(model_dir) if spark.sparkContext.master.startswith("local") else None
        done = spark.sparkContext.accumulator(0)  # progress (retried tasks count twice: a log, not a tally)
        # A task's unit is a store file with the keys still to score in it: the task reads the
        # file itself with pyarrow (what a local loop does), so no image byte goes through the JVM
        # (pickled rows JVM -> Python cost ~40 % of the scoring time: benchmarks/RESULTS.md).
        units = (
            keys.where(F.col("_done").isNull())
            .groupBy("_file", "band", "nite")
            .agg(F.collect_list(F.array("expnum", F.col("ccdnum").cast("long"))).alias("_keys"))
        )
        n_tasks = max(spark.sparkContext.defaultParallelism, -(-n_todo // ic.ccds_per_task))
        rows = units.repartition(n_tasks).rdd
        columns = input_columns(meta)
        rdd = rows.mapPartitions(
            lambda units: score_files(units, meta, columns, ic.batch_size, scored_at, local_dir, ic.tf_threads, done)
        )
        preds = spark.createDataFrame(rdd, predictions_schema())
        t_write = time.time()
        with Progress(done, n_todo, what="infer"):
            preds.write.mode("append").partitionBy("band", "nite").parquet(out.uri)
        summary["score_seconds"] = round(time.time() - t_write, 2)
        summary["scored"] = n_todo
    timings["score"] = round(time.time() - t0 - sum(timings.values()), 2)
    out.fs.write_text_atomic(fsmod.join(out.uri, MODELS_DIR, f"{meta['version']}.json"), json.dumps(meta, indent=1))
    spark.catalog.clearCache()
    # The check, in one pass over the predictions (small) and the store's key columns.
    check = spark.read.parquet(out.uri).where(F.col("model_version") == meta["version"])
    per_key = check.groupBy("expnum", "ccdnum").agg(
        F.count(F.lit(1)).alias("_n"), F.sum(F.col("flagged").cast("int")).alias("_f")
    )
    agg = (
        feats.select("expnum", "ccdnum", F.lit(1).alias("_s"))
        .join(per_key, ["expnum", "ccdnum"], "full_outer")
        .agg(
            F.sum("_n").alias("rows"),
            F.count("_n").alias("keys"),
            F.sum(F.when(F.col("_n").isNull(), 1).otherwise(0)).alias("missing"),
            F.sum(F.when(F.col("_f") > 0, 1).otherwise(0)).alias("flagged"),
        )
        .first()
    )
    n_rows, n_keys, missing = int(agg["rows"] or 0), int(agg["keys"]), int(agg["missing"])
    if n_rows != n_keys or missing:
        raise StoreError(
            f"predictions for model {meta['version']}: {n_rows} rows for {n_keys} CCDs and "
            f"{missing} stored CCDs without a row: expected exactly one row per CCD"
        )
    timings["check"] = round(time.time() - t0 - sum(timings.values()), 2)
    summary.update(
        predictions_rows=n_rows, flagged=int(agg["flagged"]), seconds=round(time.time() - t0, 2), timings=timings
    )
    return summary
