"""The preprocess pipeline: DES archive -> feature store (see README, "The preprocess job").

Driver work is limited to listing (done by Spark itself, in parallel for large trees), small
joins on file metadata, and the commit's renames. Pixels are only ever touched on executors,
in :func:`process_unit`, which is also what the single-process baseline benchmark calls.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid

import numpy as np

from ..io import fs as fsmod
from ..config import PipelineConfig
from ..io.des import NAME_REGEX_JAVA, parse_name
from ..io.desfits import read_ccd
from ..progress import Progress
from ..errors import InputRejected, StoreError
from .image import preprocess_planes
from .labels import CCDLabel, aggregate_reports, read_records, unlabelled
from .store import (FEATURES, HEADER_COLUMNS, MANIFEST, QUARANTINE, REPORTS, STAGING, Store,
                    schema_for_config)

log = logging.getLogger(__name__)

#: Manifest columns (one row per input). ``fingerprint`` folds everything but the config hash
#: that decides whether an input must be processed again.
MANIFEST_COLUMNS = ["path", "size", "mtime", "bkg_path", "bkg_size", "bkg_mtime", "fingerprint",
                    "config_hash", "label_digest", "status", "reason", "detail",
                    "expnum", "ccdnum", "band", "nite", "run_id"]
#: Quarantine reasons that may pass without the input changing: retried on every run.
RETRYABLE = ("unexpected_error", "read_error")
_NAME_GROUPS = ["expnum", "band", "ccdnum", "reqnum", "attnum", "kind", "comp"]


def _matches_any(name_col, patterns):
    """Spark condition: the base name matches one of the fnmatch patterns (* and ?)."""
    from functools import reduce

    def java_regex(pattern):
        return "^" + "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern) + "$"

    return reduce(lambda a, b: a | b, [name_col.rlike(java_regex(p)) for p in patterns])


# ------------------------------------------------------------------------------ discovery
def discover(spark, roots: list[str], cfg: PipelineConfig):
    """List inputs under ``roots`` and pair them into units (one per CCD file to process).

    Returns a DataFrame with: path, size, mtime, bkg_path, bkg_size, bkg_mtime, expnum,
    ccdnum, band, reqnum, attnum, static_reason, static_detail. ``static_reason`` is set for
    inputs that are quarantined from their name alone: bad_name, orphan_bkg, duplicate_ccd,
    superseded.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    uris = [fsmod.to_uri(r) for r in roots]
    for u in uris:
        if not fsmod.HadoopFS(spark, u).exists(u):
            raise FileNotFoundError(f"input root {u} does not exist (check --input)")
        spark.catalog.refreshByPath(u)  # a long-lived session must not list from its file cache
    # One projection for everything derived from the name (few plan nodes: the planner's time
    # is a visible share of a small run).
    name = F.element_at(F.split("path", "/"), -1)
    is_img = _matches_any(name, cfg.input.image_patterns)
    is_bkg = _matches_any(name, cfg.input.bkg_patterns)
    rx = NAME_REGEX_JAVA.replace("?P<", "?<")
    parsed = name.rlike(rx)
    group = {g: F.when(parsed, F.regexp_extract(name, rx, i)) for i, g in enumerate(_NAME_GROUPS, start=1)}
    files = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(uris)
             .select("path", F.col("length").alias("size"), F.unix_millis("modificationTime").alias("mtime"),
                     name.alias("name"), is_img.alias("is_img"), (is_bkg & ~is_img).alias("is_bkg"),
                     parsed.alias("parsed"), group["expnum"].cast("long").alias("expnum"),
                     group["ccdnum"].cast("int").alias("ccdnum"), group["band"].alias("band"),
                     group["reqnum"].cast("int").alias("reqnum"), group["attnum"].cast("int").alias("attnum"),
                     F.regexp_replace(name, r"_(immasked|bkg)\.fits(\.fz|\.gz)?$", "").alias("stem"))
             .where("is_img OR is_bkg"))

    no_bkg = [F.lit(None).cast("string").alias("bkg_path"), F.lit(None).cast("long").alias("bkg_size"),
              F.lit(None).cast("long").alias("bkg_mtime")]
    keys = ["expnum", "ccdnum", "band", "reqnum", "attnum"]
    bad = files.where(~F.col("parsed")).select(
        "path", "size", "mtime", *no_bkg, *keys, F.lit("bad_name").alias("static_reason"),
        F.concat(F.lit("file name does not follow the DESDM convention: "), "name").alias("static_detail"))
    imgs = files.where("parsed AND is_img")
    # One background per stem (a stem with several, e.g. .fits and .fits.fz, takes the first by path).
    bkgs = (files.where("parsed AND is_bkg").groupBy("stem")
            .agg(F.min(F.struct(F.col("path").alias("bkg_path"), F.col("size").alias("bkg_size"),
                                F.col("mtime").alias("bkg_mtime"))).alias("b"))
            .select("stem", "b.*"))
    orphans = files.where("parsed AND is_bkg").join(imgs.select("stem"), "stem", "left_anti").select(
        "path", "size", "mtime", *no_bkg, *keys, F.lit("orphan_bkg").alias("static_reason"),
        F.lit("background file without a matching *_immasked file").alias("static_detail"))
    # Two files for the same CCD: the newest processing attempt wins; a tie quarantines all.
    w = Window.partitionBy("expnum", "ccdnum")
    newest = w.orderBy(F.desc("reqnum"), F.desc("attnum"))
    rank = F.rank().over(newest)
    paired = imgs.join(bkgs, "stem", "left").select(
        "*", rank.alias("_rank"),
        F.first("path").over(w.orderBy(F.desc("reqnum"), F.desc("attnum"), "path")
                             .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)).alias("_winner"))
    top = F.count(F.when(F.col("_rank") == 1, 1)).over(w)
    paired = paired.select("*", top.alias("_top")).select(
        "path", "size", "mtime", "bkg_path", "bkg_size", "bkg_mtime", *keys,
        F.when(F.col("_rank") > 1, "superseded").when(F.col("_top") > 1, "duplicate_ccd").alias("static_reason"),
        F.when(F.col("_rank") > 1, F.concat(F.lit("a newer processing attempt of this CCD exists: "), "_winner"))
        .when(F.col("_top") > 1, F.concat(F.col("_top").cast("string"), F.lit(" files for the same CCD and attempt")))
        .alias("static_detail"))
    return paired.unionByName(bad).unionByName(orphans)


# ------------------------------------------------------------------------------ per-CCD work
def _nite_from_header(hdr: dict) -> int:
    nite = hdr.get("NITE")
    if nite not in (None, ""):
        try:
            return int(str(nite).strip())
        except ValueError:
            raise InputRejected("bad_header", f"NITE = {nite!r} is not YYYYMMDD") from None
    date_obs = hdr.get("DATE-OBS")
    if date_obs:
        try:  # DES nights are named by the local (Chile) evening date: UTC minus ~14 h lands on it
            t = dt.datetime.fromisoformat(str(date_obs).strip().rstrip("Z"))
            return int((t - dt.timedelta(hours=14)).strftime("%Y%m%d"))
        except ValueError:
            pass
    raise InputRejected("missing_header", "neither NITE nor a parsable DATE-OBS in the header")


def _header_value(hdr: dict, key: str, typ):
    v = hdr.get(key)
    if v is None or v == "":
        return None
    try:
        return typ(v)
    except (TypeError, ValueError):
        return None


def compute_features(unit: dict, cfg: PipelineConfig, label: CCDLabel | None) -> dict:
    """Read one CCD and return its feature row as a dict of Python / numpy values.

    Raises InputRejected for anything that must be quarantined.
    """
    from ..io.des import HEADER_KEYS

    name = parse_name(unit["path"])
    ccd = read_ccd(unit["path"], unit.get("bkg_path"), read_wgt=True)
    if ccd.sci.shape != tuple(cfg.input.ccd_shape):
        raise InputRejected("bad_shape", f"image shape {ccd.sci.shape} is not the configured CCD shape {tuple(cfg.input.ccd_shape)}")
    hdr = ccd.header
    for key, expect in (("EXPNUM", name.expnum), ("CCDNUM", name.ccdnum)):
        if key in hdr and _header_value(hdr, key, int) != expect:
            raise InputRejected("header_mismatch", f"header {key} = {hdr[key]!r} but the file name says {expect}")
    if hdr.get("BAND") not in (None, "") and str(hdr["BAND"]).strip() != name.band:
        raise InputRejected("header_mismatch", f"header BAND = {hdr['BAND']!r} but the file name says {name.band!r}")
    nite = _nite_from_header(hdr)
    mode = cfg.background.already_subtracted
    presub = mode == "yes" or (mode == "auto" and "SKYSUB" in hdr)
    planes = preprocess_planes(ccd.sci, ccd.msk, ccd.bkg, ccd.wgt, cfg, bkg_already_subtracted=presub)
    dtype = np.float16 if cfg.store.image_dtype == "float16" else np.float32
    lab = label or unlabelled(name.expnum, name.ccdnum, len(cfg.taxonomy.classes))
    row = {
        "expnum": np.int64(name.expnum), "ccdnum": np.int16(name.ccdnum), "band": name.band,
        "nite": np.int32(nite), "reqnum": np.int32(name.reqnum), "attnum": np.int32(name.attnum),
        "image": planes["image"].astype(dtype), "mask_frac": planes["mask_frac"].astype(dtype),
        "max_sn": planes["max_sn"].astype(dtype), "spread_sn": planes["spread_sn"].astype(dtype),
        "sharp_sn": planes["sharp_sn"].astype(dtype),
        "noise_sigma": np.float32(planes["noise_sigma"]),
        "stretch_min": np.float32(planes["stretch_min"]), "stretch_max": np.float32(planes["stretch_max"]),
        "masked_fraction": np.float32(planes["masked_fraction"]), "bkg_source": planes["bkg_source"],
        "path": unit["path"], "bkg_path": unit.get("bkg_path"), "config_hash": cfg.config_hash,
        "inspected": bool(lab.inspected), "label": np.int8(lab.label),
        "multi_hot": np.asarray(lab.multi_hot, np.int8), "primary_class": np.int16(lab.primary_class),
        "has_false_positive": bool(lab.has_false_positive), "n_reports": np.int16(lab.n_reports),
    }
    for col, t in (("report_class", np.int16), ("report_fp", np.bool_), ("report_x", np.int32),
                   ("report_y", np.int32), ("report_row", np.int32), ("report_col", np.int32),
                   ("report_brow", np.int32), ("report_bcol", np.int32)):
        row[col] = np.asarray(getattr(lab, col), dtype=t)
    for key, (col, typ) in HEADER_KEYS.items():
        if col in HEADER_COLUMNS:
            v = _header_value(hdr, key, typ)
            row[col] = None if v is None else (HEADER_COLUMNS[col](v) if HEADER_COLUMNS[col] is not np.str_ else str(v))
    if row["detpos"] is None:
        from ..io.des import detpos_for_ccdnum
        row["detpos"] = detpos_for_ccdnum(name.ccdnum) if 1 <= name.ccdnum <= 62 else None
    return row


def process_unit(unit: dict, cfg: PipelineConfig, label: CCDLabel | None):
    """One input -> ``(row_or_None, status, reason, detail)``; never raises for bad input."""
    if unit.get("static_reason"):
        return None, "quarantined", unit["static_reason"], unit.get("static_detail") or ""
    try:
        return compute_features(unit, cfg, label), "stored", None, None
    except InputRejected as e:
        return None, "quarantined", e.reason, e.detail
    except MemoryError:
        raise
    except Exception as e:  # a reader bug must not kill a full-archive run: quarantine, loudly
        log.exception("unexpected error on %s", unit.get("path"))
        return None, "quarantined", "unexpected_error", f"{type(e).__name__}: {e}"[:2000]


# ------------------------------------------------------------------------------ labels
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
        text = lambda k: None if d.get(k) is None else str(d.get(k))  # noqa: E731
        rows.append((num(d.get("qa_id"), int), text("expname"), num(d.get("ccd"), int), text("band"),
                     text("problem"), num(d.get("x"), float), num(d.get("y"), float), text("detail"),
                     None if d.get("false_positive") is None else bool(d.get("false_positive")),
                     text("release"), json.dumps(r, sort_keys=True, default=str)))
    schema = T.StructType([T.StructField("qa_id", T.LongType()), T.StructField("expname", T.StringType()),
                           T.StructField("ccd", T.LongType()), T.StructField("band", T.StringType()),
                           T.StructField("problem", T.StringType()), T.StructField("x", T.DoubleType()),
                           T.StructField("y", T.DoubleType()), T.StructField("detail", T.StringType()),
                           T.StructField("false_positive", T.BooleanType()), T.StructField("release", T.StringType()),
                           T.StructField("record_json", T.StringType())])
    return spark.createDataFrame(rows, schema)


def resolve_labels(spark, store: Store, label_paths, cfg: PipelineConfig):
    """Labels for this run: the given exports, else the reports stored by an earlier run, else none.

    Returns (LabelSet | None, reports DataFrame to stage | None).
    """
    if label_paths:
        records = read_records(label_paths)
        return aggregate_reports(records, cfg), _reports_to_df(spark, records)
    old = store.read_table(REPORTS)
    if old is None:
        return None, None
    records = [json.loads(r["record_json"]) for r in old.select("record_json").collect()]
    log.info("no --labels given: reusing the %d reports stored with the store", len(records))
    return aggregate_reports(records, cfg), None


# ------------------------------------------------------------------------------ the job
def run_preprocess(spark, inputs: list[str], output: str, cfg: PipelineConfig, label_paths=()) -> dict:
    """Incremental, idempotent preprocess of ``inputs`` into the store at ``output``."""
    try:
        return _run(spark, inputs, output, cfg, label_paths)
    finally:
        # Spark reuses cached data for an identical plan: a later run in this session must
        # list and compare afresh, never see this run's cached listing.
        spark.catalog.clearCache()


def _run(spark, inputs, output, cfg, label_paths):
    t0 = time.time()
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    store = Store(spark, output)
    with store.lock(run_id):
        return _run_locked(spark, store, run_id, t0, inputs, cfg, label_paths)


def _run_locked(spark, store, run_id, t0, inputs, cfg, label_paths):
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
        log.warning("store %s was built with config %s partitioned by %s; this run's is %s by %s: rebuilding every row",
                    store.uri, meta.get("config_hash"), meta.get("partition_by"), chash, part_cols)
    schema = schema_for_config(cfg)
    labels, reports_df = resolve_labels(spark, store, label_paths, cfg)
    by_ccd = labels.by_ccd if labels else {}

    units = discover(spark, inputs, cfg)
    lab_rows = [(k[0], k[1], v.digest()) for k, v in by_ccd.items()]
    lab_df = spark.createDataFrame(lab_rows, "expnum long, ccdnum int, _ld string")
    label_digest = F.coalesce("_ld", F.lit("unlabelled"))
    units = units.join(F.broadcast(lab_df), ["expnum", "ccdnum"], "left").select(
        *[c for c in units.columns], label_digest.alias("label_digest"),
        F.concat_ws("|", "size", "mtime", F.coalesce("bkg_path", F.lit("")),
                    F.coalesce(F.col("bkg_size").cast("string"), F.lit("")),
                    F.coalesce(F.col("bkg_mtime").cast("string"), F.lit("")),
                    F.coalesce("static_reason", F.lit("")), label_digest).alias("fingerprint"))
    old_manifest = None if rebuild else store.read_table(MANIFEST)
    if old_manifest is not None:
        # inputs quarantined for a reason that may pass (I/O trouble, a reader bug) are retried
        retry = F.col("status").eqNullSafe("quarantined") & F.col("reason").isin(*RETRYABLE)
        same = (old_manifest.where((F.col("config_hash") == chash) & ~retry)
                .select("path", F.col("fingerprint").alias("_ofp")))
        units = units.join(same, "path", "left").withColumn(
            "_changed", F.col("_ofp").isNull() | (F.col("_ofp") != F.col("fingerprint"))).drop("_ofp")
    else:
        units = units.withColumn("_changed", F.lit(True))
    # Pin the listing for the rest of the run: a recomputation after a lost executor must not
    # see a different archive than the one being processed.
    stage = store.path(STAGING, run_id)
    units.write.mode("overwrite").parquet(fsmod.join(stage, "units"))
    units = spark.read.parquet(fsmod.join(stage, "units")).cache()
    agg = units.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("_changed").cast("long")).alias("c")).first()
    n_inputs, n_changed = int(agg["n"]), int(agg["c"] or 0)
    changed = units.where("_changed").drop("_changed")
    n_skipped = n_inputs - n_changed
    timings["discover"] = round(time.time() - t0, 2)
    log.info("preprocess: %d inputs, %d new or changed, %d unchanged%s", n_inputs, n_changed, n_skipped,
             " (full rebuild)" if rebuild else "")

    summary = {"job": "preprocess", "run_id": run_id, "store": store.uri, "config_hash": chash,
               "inputs": n_inputs, "stored": 0, "quarantined": 0, "skipped": n_skipped,
               "rebuild": bool(rebuild), "labels": labels.summary() if labels else None}
    if n_changed == 0 and reports_df is None:
        units.unpersist()
        store.fs.delete(stage)  # nothing to publish: the store stays byte-identical
        summary["seconds"] = round(time.time() - t0, 2)
        summary["quarantine_reasons"] = {}
        return summary

    feat_schema = schema.as_spark_schema()
    res_schema = T.StructType(
        [T.StructField(f.name, f.dataType, True) for f in feat_schema.fields]
        + [T.StructField(c, t, True) for c, t in (
            ("size", T.LongType()), ("mtime", T.LongType()), ("bkg_size", T.LongType()), ("bkg_mtime", T.LongType()),
            ("fingerprint", T.StringType()), ("label_digest", T.StringType()), ("status", T.StringType()),
            ("reason", T.StringType()), ("detail", T.StringType()), ("run_id", T.StringType()))])
    feat_names = [f.name for f in feat_schema.fields]
    sc = spark.sparkContext
    b_cfg = sc.broadcast(cfg)
    b_labels = sc.broadcast(by_ccd)
    acc = sc.accumulator(0)
    acc_secs = sc.accumulator(0.0)

    def process_partition(rows):
        c = b_cfg.value
        labs = b_labels.value
        for r in rows:
            u = r.asDict()
            lab = labs.get((u["expnum"], u["ccdnum"])) if u["expnum"] is not None else None
            t = time.perf_counter()
            row, status, reason, detail = process_unit(u, c, lab)
            if row is not None:
                enc = dict_to_spark_row(schema, row).asDict()
                vals = [enc[n] for n in feat_names]
            else:
                vals = [None] * len(feat_names)
                d = dict(zip(feat_names, vals))
                d.update(path=u["path"], bkg_path=u["bkg_path"], expnum=u["expnum"],
                         ccdnum=u["ccdnum"], band=u["band"], config_hash=c.config_hash)
                vals = [d[n] for n in feat_names]
            acc_secs.add(time.perf_counter() - t)
            acc.add(1)
            yield tuple(vals) + (u["size"], u["mtime"], u["bkg_size"], u["bkg_mtime"], u["fingerprint"],
                                 u["label_digest"], status, reason, detail, run_id)

    n_tasks = max(1, -(-n_changed // cfg.store.ccds_per_task))
    work = changed.repartition(n_tasks).rdd.mapPartitions(process_partition)
    with Progress(acc, n_changed):
        spark.createDataFrame(work, res_schema).write.mode("overwrite").parquet(fsmod.join(stage, "results"))
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
            displaced = (old_manifest.where("status = 'stored'").join(changed_paths, "path", "left_anti")
                         .join(new_rows.select("expnum", "ccdnum", F.col("path").alias("_new_path")),
                               ["expnum", "ccdnum"])
                         .where(F.col("path") != F.col("_new_path")).cache())
            removed_paths = changed_paths.unionByName(displaced.select("path"))
            touched = touched.unionByName(
                old_manifest.join(removed_paths, "path").where("status = 'stored'").select(part_cols))
        touched = touched.distinct()
        touched_dirs = {"/".join(f"{c}={getattr(r, c)}" for c in part_cols) for r in touched.collect()}
        final = new_rows
        if store.has_features():
            old = _read_features(spark, store, feat_schema)
            keep = old.join(F.broadcast(touched), part_cols, "left_semi").join(removed_paths, "path", "left_anti")
            final = new_rows.unionByName(keep.select(feat_names))
    (final.repartition(*part_cols).write.mode("overwrite").partitionBy(*part_cols)
     .option("parquet.block.size", cfg.store.rowgroup_size_mb * 1024 * 1024)
     .parquet(fsmod.join(stage, FEATURES)))
    if not rebuild:
        written = set(store.fs.list_partitions(fsmod.join(stage, FEATURES), len(part_cols)))
        partitions = {"write": sorted(written), "drop": sorted(touched_dirs - written)}

    # ---- manifest and quarantine: every input ever seen, latest status
    new_manifest = res.select(MANIFEST_COLUMNS)
    if old_manifest is not None:
        new_manifest = (old_manifest.join(removed_paths, "path", "left_anti").select(MANIFEST_COLUMNS)
                        .unionByName(new_manifest))
        if displaced is not None:
            replaced = displaced.withColumns({
                "status": F.lit("replaced"), "reason": F.lit("superseded"), "run_id": F.lit(run_id),
                "detail": F.concat(F.lit("row replaced by "), "_new_path")})
            new_manifest = new_manifest.unionByName(replaced.select(MANIFEST_COLUMNS))
    new_manifest = new_manifest.repartition(1).cache()
    new_manifest.write.mode("overwrite").parquet(fsmod.join(stage, MANIFEST))
    (new_manifest.where("status = 'quarantined'")
     .select("path", "reason", "detail", "bkg_path", "expnum", "ccdnum", "band", "nite", "size", "mtime", "run_id", "config_hash")
     .write.mode("overwrite").parquet(fsmod.join(stage, QUARANTINE)))
    if reports_df is not None:
        reports_df.repartition(1).write.mode("overwrite").parquet(fsmod.join(stage, REPORTS))

    if displaced is not None:
        summary["replaced"] = displaced.count()
    timings["write"] = round(time.time() - t0 - sum(timings.values()), 2)
    by_reason = res.groupBy("status", "reason").count().collect()
    counts = {st: sum(r["count"] for r in by_reason if r["status"] == st) for st in ("stored", "quarantined")}
    reasons = {r["reason"]: r["count"] for r in by_reason if r["status"] == "quarantined"}
    store_meta = {"config_hash": chash, "config": cfg.as_dict(),
                  "rowgroup_size_mb": cfg.store.rowgroup_size_mb, "last_run": run_id,
                  "partition_by": part_cols, "image_shape": list(cfg.binned_shape()),
                  "classes": list(cfg.taxonomy.classes)}
    store.commit(run_id, partitions, store_meta, schema)
    timings["commit"] = round(time.time() - t0 - sum(timings.values()), 2)
    new_manifest.unpersist()
    if displaced is not None:
        displaced.unpersist()
    summary.update(stored=counts.get("stored", 0), quarantined=counts.get("quarantined", 0),
                   quarantine_reasons=reasons, seconds=round(time.time() - t0, 2),
                   timings=timings, ccd_task_seconds=round(acc_secs.value, 2))
    if summary["stored"] + summary["quarantined"] + summary["skipped"] != summary["inputs"]:
        raise StoreError(f"row accounting failed: {summary} (inputs must equal stored + quarantined + skipped)")
    return summary


def _read_features(spark, store: Store, feat_schema):
    """The live feature rows as a DataFrame with the Unischema's column types."""
    from pyspark.sql import functions as F

    df = spark.read.option("basePath", store.path(FEATURES)).parquet(store.path(FEATURES))
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in feat_schema.fields])
