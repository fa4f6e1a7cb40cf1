"""Discovery: the archive's files listed with Spark (in parallel, on any Hadoop filesystem) and
paired into units, one per CCD file to process, before any pixel is read."""

from __future__ import annotations

import re

from ..config import PipelineConfig
from ..io import fs as fsmod
from ..io.des import NAME_REGEX_JAVA
from .listing import list_files

_NAME_GROUPS = ["expnum", "band", "ccdnum", "reqnum", "attnum", "kind", "comp"]


def _matches_any(name_col, patterns):
    """Spark condition: the base name matches one of the fnmatch patterns (* and ?)."""
    from functools import reduce

    def java_regex(pattern):
        return "^" + "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern) + "$"

    return reduce(lambda a, b: a | b, [name_col.rlike(java_regex(p)) for p in patterns])


def discover(spark, roots: list[str], cfg: PipelineConfig):
    """List inputs under ``roots`` and pair them into units (one per CCD file to process).

    Returns a DataFrame with: path, size, mtime, bkg_path, bkg_size, bkg_mtime, expnum,
    ccdnum, band, reqnum, attnum, static_reason, static_detail. ``static_reason`` is set for
    inputs that are quarantined from their name or listing alone: bad_name, orphan_bkg,
    duplicate_ccd, superseded, empty_file, ambiguous_bkg.
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
    patterns = list(cfg.input.image_patterns) + list(cfg.input.bkg_patterns)
    files = (
        list_files(spark, uris, patterns)
        .select(
            "path",
            "size",
            "mtime",
            name.alias("name"),
            is_img.alias("is_img"),
            (is_bkg & ~is_img).alias("is_bkg"),
            parsed.alias("parsed"),
            group["expnum"].cast("long").alias("expnum"),
            group["ccdnum"].cast("int").alias("ccdnum"),
            group["band"].alias("band"),
            group["reqnum"].cast("int").alias("reqnum"),
            group["attnum"].cast("int").alias("attnum"),
            F.regexp_replace(name, r"_(immasked|bkg)\.fits(\.fz|\.gz)?$", "").alias("stem"),
        )
        .where("is_img OR is_bkg")
    )

    no_bkg = [
        F.lit(None).cast("string").alias("bkg_path"),
        F.lit(None).cast("long").alias("bkg_size"),
        F.lit(None).cast("long").alias("bkg_mtime"),
    ]
    keys = ["expnum", "ccdnum", "band", "reqnum", "attnum"]
    bad = files.where(~F.col("parsed")).select(
        "path",
        "size",
        "mtime",
        *no_bkg,
        *keys,
        F.lit("bad_name").alias("static_reason"),
        F.concat(F.lit("file name does not follow the DESDM convention: "), "name").alias("static_detail"),
    )
    imgs = files.where("parsed AND is_img")
    # One background per stem; a stem with several (e.g. a .fits and a .fits.fz, or the same name
    # under two folders) is ambiguous: its CCD is quarantined as ambiguous_bkg, naming them all.
    bkg = F.struct(F.col("path").alias("bkg_path"), F.col("size").alias("bkg_size"), F.col("mtime").alias("bkg_mtime"))
    bkgs = (
        files.where("parsed AND is_bkg")
        .groupBy("stem")
        .agg(
            F.min(bkg).alias("b"),
            F.count(F.lit(1)).alias("_n_bkg"),
            F.concat_ws(", ", F.array_sort(F.collect_list("path"))).alias("_bkg_paths"),
        )
        .select("stem", "b.*", "_n_bkg", "_bkg_paths")
    )
    orphans = (
        files.where("parsed AND is_bkg")
        .join(imgs.select("stem"), "stem", "left_anti")
        .select(
            "path",
            "size",
            "mtime",
            *no_bkg,
            *keys,
            F.lit("orphan_bkg").alias("static_reason"),
            F.lit("background file without a matching *_immasked file").alias("static_detail"),
        )
    )
    # Two files for the same CCD: the newest processing attempt wins; a tie quarantines all.
    w = Window.partitionBy("expnum", "ccdnum")
    newest = w.orderBy(F.desc(F.col("size") > 0), F.desc("reqnum"), F.desc("attnum"))
    rank = F.rank().over(newest)
    paired = imgs.join(bkgs, "stem", "left").select(
        "*",
        rank.alias("_rank"),
        F.first("path")
        .over(
            w.orderBy(F.desc(F.col("size") > 0), F.desc("reqnum"), F.desc("attnum"), "path").rowsBetween(
                Window.unboundedPreceding, Window.unboundedFollowing
            )
        )
        .alias("_winner"),
    )
    top = F.count(F.when(F.col("_rank") == 1, 1)).over(w)
    paired = paired.select("*", top.alias("_top")).select(
        "path",
        "size",
        "mtime",
        "bkg_path",
        "bkg_size",
        "bkg_mtime",
        *keys,
        F.when(F.col("size") == 0, "empty_file")
        .when(F.col("_rank") > 1, "superseded")
        .when(F.col("_top") > 1, "duplicate_ccd")
        .when(F.col("_n_bkg") > 1, "ambiguous_bkg")
        .when(F.col("bkg_size") == 0, "empty_file")
        .alias("static_reason"),
        F.when(F.col("size") == 0, F.lit("zero-length file (an interrupted transfer?): nothing to read"))
        .when(F.col("_rank") > 1, F.concat(F.lit("a newer processing attempt of this CCD exists: "), "_winner"))
        .when(F.col("_top") > 1, F.concat(F.col("_top").cast("string"), F.lit(" files for the same CCD and attempt")))
        .when(
            F.col("_n_bkg") > 1,
            F.concat(F.col("_n_bkg").cast("string"), F.lit(" background files for this CCD: "), "_bkg_paths"),
        )
        .when(F.col("bkg_size") == 0, F.concat(F.lit("its background file is zero-length: "), "bkg_path"))
        .alias("static_detail"),
    )
    return paired.unionByName(bad).unionByName(orphans)
