"""The archive's file listing as one small cached table, scanned in one task per core.

Spark's ``binaryFile`` source packs files into scan tasks by their size plus
``spark.sql.files.openCostInBytes`` (4 MB) each, up to ``spark.sql.files.maxPartitionBytes``
(128 MB): about 32 files a task for metadata-only placeholders, 5-6 for real 20 MB products. At
2x10^5 files that is 6,000-40,000 tasks, and the pairing plan scans the listing once per branch
(images, backgrounds, orphans, bad names). No content is read here (only path, length and
modification time are selected), so one scan task per core is enough: the listing is scanned
once, with the partition size lifted for that scan alone, and cached for the pairing plan.
"""

from __future__ import annotations

#: Session settings in force while the listing scan is planned and run (restored after).
LISTING_CONF = {"spark.sql.files.maxPartitionBytes": str(1 << 40)}


def list_files(spark, uris: list[str]):
    """DataFrame (path, length, modificationTime) of every non-hidden file under ``uris``,
    materialised and cached (``unpersist`` it, or ``spark.catalog.clearCache()``, when done)."""
    from ..spark import scoped_conf

    with scoped_conf(spark, LISTING_CONF):
        df = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .load(uris)
            .select("path", "length", "modificationTime")
            .cache()
        )
        df.count()  # planned and scanned under LISTING_CONF
    return df
