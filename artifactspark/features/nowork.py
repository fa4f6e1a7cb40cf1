"""Inputs that need no read never reach a per-CCD task.

An input quarantined from its name or listing alone (``static_reason`` from discovery: bad_name,
orphan_bkg, duplicate_ccd, superseded, empty_file, ambiguous_bkg) gets the same result row that
``process_unit`` would give it, made by a projection in the query plan instead of a Python task:
at archive scale a task costs ~10 ms an input in scheduling and row handling even when the
input needs no read (issue 10). Unchanged inputs are left out before this, by the manifest comparison.
"""

from __future__ import annotations


def split_static(changed):
    """(inputs that need a read, inputs quarantined from their names alone)."""
    from pyspark.sql import functions as F

    return changed.where(F.col("static_reason").isNull()), changed.where(F.col("static_reason").isNotNull())


def static_results(static, res_schema, config_hash: str, run_id: str):
    """The result rows (``res_schema``) of statically quarantined inputs, as the per-CCD task
    yields them: no feature values, status ``quarantined``, the static reason and detail."""
    from pyspark.sql import functions as F

    given = {c: F.col(c) for c in ("path", "bkg_path", "expnum", "ccdnum", "band", "size", "mtime")}
    given |= {c: F.col(c) for c in ("bkg_size", "bkg_mtime", "fingerprint", "label_digest")}
    given |= {
        "config_hash": F.lit(config_hash),
        "status": F.lit("quarantined"),
        "reason": F.col("static_reason"),
        "detail": F.coalesce(F.col("static_detail"), F.lit("")),
        "run_id": F.lit(run_id),
    }
    return static.select([given.get(f.name, F.lit(None)).cast(f.dataType).alias(f.name) for f in res_schema.fields])
