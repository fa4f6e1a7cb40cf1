"""The preprocess pipeline: DES archive -> feature store (see README, "The preprocess job").

Driver work is limited to listing (done by Spark itself, in parallel for large trees), small
joins on file metadata, and the commit's renames. Pixels are only ever touched on executors,
in :func:`~artifactspark.features.extract.process_unit`, which is also what the single-process baseline benchmark calls.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid

import numpy as np

from ..config import PipelineConfig
from ..errors import StoreError
from ..io import fs as fsmod
from ..logs import PROGRESS
from ..progress import Progress
from .discover import discover
from .extract import process_unit
from .isolation import process_units
from .labels import aggregate_reports, read_records
from .listing import find_vanished
from .nowork import split_static, static_results
from .store import FEATURES, MANIFEST, QUARANTINE, REPORTS, STAGING, Store, schema_for_config

log = logging.getLogger(__name__)
#: Manifest columns (one row per input). ``fingerprint`` folds everything but the config hash
#: that decides whether an input must be processed again.
MANIFEST_COLUMNS = [
    "path",
    "size",
    "mtime",
    "bkg_path",
    "bkg_size",
    "bkg_mtime",
    "fingerprint",
    "config_hash",
    "label_digest",
    "status",
    "reason",
    "detail",
    "expnum",
    "ccdnum",
    "band",
    "nite",
    "run_id",
]
#: Quarantine reasons that may pass without the input changing: retried on every run.
RETRYABLE = ("unexpected_error", "read_error")


def _reports_to_df(spark, records: list):
    """The reports as a Parquet-friendly table: the checker's fields for queries, plus each
    record's raw JSON, from which a later run rebuilds exactly the same labels."""
    from pyspark.sql import types as T

    def num(v, typ):
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        if not np.isfinite(f):
            return None
        return int(f) if typ is int and f.is_integer() else (f if typ is float else None)

    rows = []
    for r in records:
        d = r if isinstance(r, dict) else {}
        text = lambda k, d=d: None if d.get(k) is None else str(d.get(k))  # noqa: E731
        rows.append(
            (
                num(d.get("qa_id"), int),
                text("expname"),
                num(d.get("ccd"), int),
                text("band"),
                text("problem"),
                num(d.get("x"), float),
                num(d.get("y"), float),
                text("detail"),
                None if d.get("false_positive") is None else bool(d.get("false_positive")),
                text("release"),
                _record_json(r),
            )
        )
    schema = T.StructType(
        [
            T.StructField("qa_id", T.LongType()),
            T.StructField("expname", T.StringType()),
            T.StructField("ccd", T.LongType()),
            T.StructField("band", T.StringType()),
            T.StructField("problem", T.StringType()),
            T.StructField("x", T.DoubleType()),
            T.StructField("y", T.DoubleType()),
            T.StructField("detail", T.StringType()),
            T.StructField("false_positive", T.BooleanType()),
            T.StructField("release", T.StringType()),
            T.StructField("record_json", T.StringType()),
        ]
    )
    return spark.createDataFrame(rows, schema)


def resolve_labels(spark, store: Store, given, cfg: PipelineConfig):
    """Labels for this run: the given exports (``(records, LabelSet)`` read before the store was
    locked), else the reports stored by an earlier run, else none.

    Returns (LabelSet | None, reports DataFrame to stage | None): None when the given records
    are the stored ones (as a multiset), so that a run with unchanged labels rewrites nothing.
    """
    old = store.read_table(REPORTS)
    old_json = None if old is None else [r["record_json"] for r in old.select("record_json").collect()]
    if given is not None:
        records, labels = given
        if old_json is not None and sorted(old_json) == sorted(_record_json(r) for r in records):
            log.info("the %d label reports given are the stored ones: label_reports is kept as is", len(records))
            return labels, None
        return labels, _reports_to_df(spark, records)
    if old_json is None:
        return None, None
    records = [json.loads(r) for r in old_json]
    log.info("no --labels given: reusing the %d reports stored with the store", len(records))
    return aggregate_reports(records, cfg), None


def _record_json(r) -> str:
    """A report record as stored in ``label_reports.record_json``."""
    return json.dumps(r, sort_keys=True, default=str)


def run_preprocess(
    spark, inputs: list[str], output: str, cfg: PipelineConfig, label_paths=(), prune: bool = False
) -> dict:
    """Incremental, idempotent preprocess of ``inputs`` into the store at ``output``; ``prune``
    removes the rows of inputs no longer listed (kept otherwise, and counted as ``vanished``)."""
    try:
        return _run(spark, inputs, output, cfg, label_paths, prune)
    finally:
        # Spark reuses cached data for an identical plan: a later run in this session must
        # list and compare afresh, never see this run's cached listing.
        spark.catalog.clearCache()


def _run(spark, inputs, output, cfg, label_paths, prune):
    t0 = time.time()
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    # Bad label exports stop the job here (LabelError: exit 2), before the store is touched.
    given = None
    if label_paths:
        dups: dict = {}
        records = read_records(label_paths, cfg.labels.max_export_mb, dups)
        given = (records, aggregate_reports(records, cfg))
        given[1].rejected.update(dups)
    store = Store(spark, output)
    with store.lock(run_id):
        return _run_locked(spark, store, run_id, t0, inputs, cfg, given, prune)


def _run_locked(spark, store, run_id, t0, inputs, cfg, given, prune):
    from petastorm.unischema import dict_to_spark_row
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    timings = {}
    store.recover()
    meta = store.meta()
    chash = cfg.config_hash
    part_cols = list(cfg.store.partition_by)
    rebuild = meta is None or meta.get("config_hash") != chash or meta.get("partition_by") != part_cols
    if meta is not None and rebuild:
        log.warning(
            "store %s was built with config %s partitioned by %s; this run's is %s by %s: rebuilding every row",
            store.uri,
            meta.get("config_hash"),
            meta.get("partition_by"),
            chash,
            part_cols,
        )
    schema = schema_for_config(cfg)
    labels, reports_df = resolve_labels(spark, store, given, cfg)
    by_ccd = labels.by_ccd if labels else {}

    units = discover(spark, inputs, cfg)
    lab_rows = [(k[0], k[1], v.digest()) for k, v in by_ccd.items()]
    lab_df = spark.createDataFrame(lab_rows, "expnum long, ccdnum int, _ld string")
    label_digest = F.coalesce("_ld", F.lit("unlabelled"))
    units = units.join(F.broadcast(lab_df), ["expnum", "ccdnum"], "left").select(
        *[c for c in units.columns],
        label_digest.alias("label_digest"),
        F.concat_ws(
            "|",
            "size",
            "mtime",
            F.coalesce("bkg_path", F.lit("")),
            F.coalesce(F.col("bkg_size").cast("string"), F.lit("")),
            F.coalesce(F.col("bkg_mtime").cast("string"), F.lit("")),
            F.coalesce("static_reason", F.lit("")),
            label_digest,
        ).alias("fingerprint"),
    )
    old_manifest = None if rebuild else store.read_table(MANIFEST)
    if old_manifest is not None:
        # inputs quarantined for a reason that may pass (I/O trouble, a reader bug) are retried
        retry = F.col("status").eqNullSafe("quarantined") & F.col("reason").isin(*RETRYABLE)
        same = old_manifest.where((F.col("config_hash") == chash) & ~retry).select(
            "path", F.col("fingerprint").alias("_ofp")
        )
        units = (
            units.join(same, "path", "left")
            .withColumn("_changed", F.col("_ofp").isNull() | (F.col("_ofp") != F.col("fingerprint")))
            .drop("_ofp")
        )
    else:
        units = units.withColumn("_changed", F.lit(True))
    # Pin the listing for the rest of the run: a recomputation after a lost executor must not
    # see a different archive than the one being processed.
    stage = store.path(STAGING, run_id)
    units.write.mode("overwrite").parquet(fsmod.join(stage, "units"))
    units = spark.read.parquet(fsmod.join(stage, "units")).cache()
    needs_read = F.col("_changed") & F.col("static_reason").isNull()
    agg = units.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("_changed").cast("long")).alias("c"),
        F.sum(needs_read.cast("long")).alias("r"),
    ).first()
    n_inputs, n_changed, n_read = int(agg["n"]), int(agg["c"] or 0), int(agg["r"] or 0)
    changed = units.where("_changed").drop("_changed")
    n_skipped = n_inputs - n_changed
    vanished, n_vanished = find_vanished(store, units)
    timings["discover"] = round(time.time() - t0, 2)
    log.info(
        "preprocess: %d inputs, %d new or changed, %d unchanged%s",
        n_inputs,
        n_changed,
        n_skipped,
        " (full rebuild)" if rebuild else "",
        extra=PROGRESS,
    )

    summary = {
        "job": "preprocess",
        "run_id": run_id,
        "store": store.uri,
        "config_hash": chash,
        "inputs": n_inputs,
        "stored": 0,
        "quarantined": 0,
        "skipped": n_skipped,
        "rebuild": bool(rebuild),
        "labels": labels.summary() if labels else None,
        "vanished": n_vanished,
        "pruned": 0,
    }
    if n_vanished and not prune and not rebuild:
        log.warning(
            "%d input(s) of earlier runs are gone from the archive; their rows are kept (--prune removes them)",
            n_vanished,
            extra=PROGRESS,
        )
    if n_changed == 0 and reports_df is None and not (prune and n_vanished):
        units.unpersist()
        store.fs.delete(stage)  # nothing to publish: the store stays byte-identical
        summary["seconds"] = round(time.time() - t0, 2)
        summary["quarantine_reasons"] = {}
        return summary

    feat_schema = schema.as_spark_schema()
    res_schema = T.StructType(
        [T.StructField(f.name, f.dataType, True) for f in feat_schema.fields]
        + [
            T.StructField(c, t, True)
            for c, t in (
                ("size", T.LongType()),
                ("mtime", T.LongType()),
                ("bkg_size", T.LongType()),
                ("bkg_mtime", T.LongType()),
                ("fingerprint", T.StringType()),
                ("label_digest", T.StringType()),
                ("status", T.StringType()),
                ("reason", T.StringType()),
                ("detail", T.StringType()),
                ("run_id", T.StringType()),
            )
        ]
    )
    feat_names = [f.name for f in feat_schema.fields]
    sc = spark.sparkContext
    b_cfg = sc.broadcast(cfg)
    b_labels = sc.broadcast(by_ccd)
    acc = sc.accumulator(0)
    acc_secs = sc.accumulator(0.0)

    def encode_unit(u, c, lab):
        """One input -> (encoded feature values or None, status, reason, detail)."""
        row, status, reason, detail = process_unit(u, c, lab)
        if row is None:
            return None, status, reason, detail
        enc = dict_to_spark_row(schema, row).asDict()
        return [enc[n] for n in feat_names], status, reason, detail

    def process_partition(rows):
        c = b_cfg.value
        t = time.perf_counter()
        for u, (vals, status, reason, detail) in process_units(
            encode_unit, [r.asDict() for r in rows], c, b_labels.value
        ):
            if vals is None:
                vals = [None] * len(feat_names)
                d = dict(zip(feat_names, vals))
                d.update(
                    path=u["path"],
                    bkg_path=u["bkg_path"],
                    expnum=u["expnum"],
                    ccdnum=u["ccdnum"],
                    band=u["band"],
                    config_hash=c.config_hash,
                )
                vals = [d[n] for n in feat_names]
            acc_secs.add(time.perf_counter() - t)  # wall time per input, as the task sees it
            acc.add(1)
            yield tuple(vals) + (
                u["size"],
                u["mtime"],
                u["bkg_size"],
                u["bkg_mtime"],
                u["fingerprint"],
                u["label_digest"],
                status,
                reason,
                detail,
                run_id,
            )
            t = time.perf_counter()

    # inputs quarantined from their names alone get their rows from the plan, not from a task
    to_read, static = split_static(changed)
    static_results(static, res_schema, chash, run_id).write.mode("overwrite").parquet(fsmod.join(stage, "results"))
    if n_read:
        work = to_read.repartition(max(1, -(-n_read // cfg.store.ccds_per_task))).rdd.mapPartitions(process_partition)
        with Progress(acc, n_read):
            spark.createDataFrame(work, res_schema).write.mode("append").parquet(fsmod.join(stage, "results"))
    timings["process"] = round(time.time() - t0 - sum(timings.values()), 2)
    res = spark.read.parquet(fsmod.join(stage, "results"))

    # ---- features: new rows, plus the untouched rows of every partition the run rewrites
    new_rows = res.where("status = 'stored'").select(feat_names)
    changed_paths = changed.select("path")
    removed_paths, displaced = changed_paths, None
    partitions = None
    if rebuild:
        final = new_rows
    else:
        touched = new_rows.select(part_cols)
        if old_manifest is not None:
            # A stored CCD that now has a row from another file (a new processing attempt whose
            # older file is no longer listed, a moved archive): the old row must go.
            displaced = (
                old_manifest.where("status = 'stored'")
                .join(changed_paths, "path", "left_anti")
                .join(new_rows.select("expnum", "ccdnum", F.col("path").alias("_new_path")), ["expnum", "ccdnum"])
                .where(F.col("path") != F.col("_new_path"))
                .cache()
            )
            removed_paths = changed_paths.unionByName(displaced.select("path"))
            if prune and n_vanished:
                removed_paths = removed_paths.unionByName(vanished.select("path"))
            touched = touched.unionByName(
                old_manifest.join(removed_paths, "path").where("status = 'stored'").select(part_cols)
            )
        touched = touched.distinct()
        touched_dirs = {"/".join(f"{c}={getattr(r, c)}" for c in part_cols) for r in touched.collect()}
        final = new_rows
        if store.has_features():
            old = _read_features(spark, store, feat_schema)
            keep = old.join(F.broadcast(touched), part_cols, "left_semi").join(removed_paths, "path", "left_anti")
            final = new_rows.unionByName(keep.select(feat_names))
    (
        final.repartition(*part_cols)
        .write.mode("overwrite")
        .partitionBy(*part_cols)
        .option("parquet.block.size", cfg.store.rowgroup_size_mb * 1024 * 1024)
        .parquet(fsmod.join(stage, FEATURES))
    )
    if not rebuild:
        written = set(store.fs.list_partitions(fsmod.join(stage, FEATURES), len(part_cols)))
        partitions = {"write": sorted(written), "drop": sorted(touched_dirs - written)}

    # ---- manifest and quarantine: every input ever seen, latest status
    new_manifest = res.select(MANIFEST_COLUMNS)
    if old_manifest is not None:
        new_manifest = (
            old_manifest.join(removed_paths, "path", "left_anti").select(MANIFEST_COLUMNS).unionByName(new_manifest)
        )
        if displaced is not None:
            replaced = displaced.withColumns(
                {
                    "status": F.lit("replaced"),
                    "reason": F.lit("superseded"),
                    "run_id": F.lit(run_id),
                    "detail": F.concat(F.lit("row replaced by "), "_new_path"),
                }
            )
            new_manifest = new_manifest.unionByName(replaced.select(MANIFEST_COLUMNS))
    new_manifest = new_manifest.repartition(1).cache()
    new_manifest.write.mode("overwrite").parquet(fsmod.join(stage, MANIFEST))
    (
        new_manifest.where("status = 'quarantined'")
        .select(
            "path",
            "reason",
            "detail",
            "bkg_path",
            "expnum",
            "ccdnum",
            "band",
            "nite",
            "size",
            "mtime",
            "run_id",
            "config_hash",
        )
        .write.mode("overwrite")
        .parquet(fsmod.join(stage, QUARANTINE))
    )
    if reports_df is not None:
        reports_df.repartition(1).write.mode("overwrite").parquet(fsmod.join(stage, REPORTS))

    if displaced is not None:
        summary["replaced"] = displaced.count()
        if n_vanished:  # an input replaced by another file's row is counted as replaced, not vanished
            summary["vanished"] = vanished.join(displaced.select("path"), "path", "left_anti").count()
    if prune or rebuild:  # a rebuild keeps only the inputs it lists
        summary["pruned"] = summary["vanished"]
    timings["write"] = round(time.time() - t0 - sum(timings.values()), 2)
    by_reason = res.groupBy("status", "reason").count().collect()
    counts = {st: sum(r["count"] for r in by_reason if r["status"] == st) for st in ("stored", "quarantined")}
    reasons = {r["reason"]: r["count"] for r in by_reason if r["status"] == "quarantined"}
    store_meta = {
        "config_hash": chash,
        "config": cfg.as_dict(),
        "rowgroup_size_mb": cfg.store.rowgroup_size_mb,
        "last_run": run_id,
        "partition_by": part_cols,
        "image_shape": list(cfg.binned_shape()),
        "classes": list(cfg.taxonomy.classes),
    }
    store.commit(run_id, partitions, store_meta, schema)
    timings["commit"] = round(time.time() - t0 - sum(timings.values()), 2)
    new_manifest.unpersist()
    if displaced is not None:
        displaced.unpersist()
    summary.update(
        stored=counts.get("stored", 0),
        quarantined=counts.get("quarantined", 0),
        quarantine_reasons=reasons,
        seconds=round(time.time() - t0, 2),
        timings=timings,
        ccd_task_seconds=round(acc_secs.value, 2),
    )
    if summary["stored"] + summary["quarantined"] + summary["skipped"] != summary["inputs"]:
        raise StoreError(f"row accounting failed: {summary} (inputs must equal stored + quarantined + skipped)")
    return summary


def _read_features(spark, store: Store, feat_schema):
    """The live feature rows as a DataFrame with the Unischema's column types."""
    from pyspark.sql import functions as F

    df = store.read_features()  # the current version's rows (issue 11: versioned store)
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in feat_schema.fields])
