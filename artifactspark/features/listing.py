"""Listing the archive: every file under the input roots with its size and modification time,
zero-length files included.

Spark's ``binaryFile`` source lists the roots in parallel on any Hadoop filesystem (one listing
job over the executors for large trees, no per-file round trip to the driver) and gives each
file's size and mtime, but its scan drops zero-length files: a failed transfer that left empty
``*_immasked.fits.fz`` files would never be counted. The same source's file index does hold
them (``DataFrame.inputFiles()``: the paths it listed, returned to the driver in one py4j
call), so the zero-length inputs are the index's paths whose names match the input patterns but
that the scan did not return: one anti join on the executors (a scan of file statuses, no
content), O(files). Only the files found that way get a status call each, for their mtime
(one driver round trip per zero-length file, none per ordinary file). The path list costs
driver memory in proportion to the archive (~100 bytes a file: ~100 MB for a million files).

The scan is planned with one task per core: ``binaryFile`` packs files into scan tasks by size
plus ``spark.sql.files.openCostInBytes`` (4 MB) up to ``spark.sql.files.maxPartitionBytes``
(128 MB), about 32 files a task for metadata-only placeholders and 5-6 for real 20 MB products:
6,000-40,000 tasks at 2x10^5 files, and the pairing plan scans the listing once per branch.
No content is read (only path, length and modification time are selected), so the partition
size is lifted for that one scan, and its result is cached for the pairing plan.
"""

from __future__ import annotations

import fnmatch
import re
from urllib.parse import unquote

from ..io import fs as fsmod

#: Session settings in force while the listing scan is planned and run (restored after).
LISTING_CONF = {"spark.sql.files.maxPartitionBytes": str(1 << 40)}


def _scan_form(path: str) -> str:
    """A path of the index (``file:///a%20b``: a URI, percent-encoded) as the scan writes it
    (``file:/a b``: Hadoop's Path string)."""
    return re.sub(r"^file:///", "file:/", unquote(path))


def list_files(spark, uris: list[str], patterns: list[str]):
    """DataFrame ``path, size, mtime`` (ms) of every file under ``uris``, the scan cached
    (``spark.catalog.clearCache()`` when done); files whose base name matches none of
    ``patterns`` may be left out."""
    from pyspark.sql import functions as F

    from ..spark import scoped_conf

    with scoped_conf(spark, LISTING_CONF):
        src = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(uris)
        scanned = src.select(
            "path", F.col("length").alias("size"), F.unix_millis("modificationTime").alias("mtime")
        ).cache()
        scanned.count()  # planned and scanned under LISTING_CONF
    names = [_scan_form(p) for p in src.inputFiles()]
    wanted = [p for p in names if any(fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], pat) for pat in patterns)]
    if not wanted:
        return scanned
    listed = spark.createDataFrame([(p,) for p in wanted], "path string")
    missing = [r["path"] for r in listed.join(scanned.select("path"), "path", "left_anti").collect()]
    if not missing:
        return scanned
    rows = []
    for p in missing:  # zero-length files (or files gone since the listing: left out)
        st = fsmod.HadoopFS(spark, p).status(p)
        if st is not None:
            rows.append((p, st[0], st[1]))
    extra = spark.createDataFrame(rows, "path string, size long, mtime long")
    return scanned.unionByName(extra)


def find_vanished(store, units):
    """The manifest rows (stored or quarantined) of inputs that this run's listing no longer
    holds, as a cached DataFrame, and their number; (None, 0) for a new store."""
    from .store import MANIFEST

    old = store.read_table(MANIFEST)
    if old is None:
        return None, 0
    gone = (
        old.where(old["status"].isin("stored", "quarantined")).join(units.select("path"), "path", "left_anti").cache()
    )
    return gone, gone.count()
