"""The feature store: one Petastorm dataset plus plain Parquet side tables, under one root.

    STORE/
      features/      Petastorm dataset, Hive-partitioned by band and nite (one row per CCD)
      manifest/      Parquet: one row per input (path, size, mtime, config hash, status, ...)
      quarantine/    Parquet: the manifest's quarantined inputs with their reason and detail
      label_reports/ Parquet: the exposure-checker reports the labels were built from
      _store.json    config hash, config, schema summary, last run
      _staging/RUN/  a run's output before it is committed (deleted after commit)
      _journal.json  present only while a commit is being applied (rolled forward on restart)
      _lock.json     present while a run writes to the store (one writer at a time)

The Unischema is declared once, in :func:`feature_schema`. Images are stored with Petastorm's
``CompressedNdarrayCodec`` (``np.savez_compressed``); :func:`decode_ndarray` decodes such a
cell without Petastorm, for pyarrow / DuckDB users.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import time

import numpy as np

from ..errors import Busy, StoreError
from ..io import fs as fsmod

log = logging.getLogger(__name__)

FEATURES, MANIFEST, QUARANTINE, REPORTS = "features", "manifest", "quarantine", "label_reports"
STORE_META, JOURNAL, STAGING, LOCK = "_store.json", "_journal.json", "_staging", "_lock.json"
SIDE_TABLES = (MANIFEST, QUARANTINE, REPORTS)

#: Header-derived scalar columns: name -> numpy type (nullable: not every product has them).
HEADER_COLUMNS = {
    "detpos": np.str_,
    "filter": np.str_,
    "object": np.str_,
    "date_obs": np.str_,
    "mjd_obs": np.float64,
    "exptime": np.float32,
    "airmass": np.float32,
    "fwhm": np.float32,
    "skybrite": np.float32,
    "skysigma": np.float32,
    "gaina": np.float32,
    "gainb": np.float32,
    "saturata": np.float32,
    "saturatb": np.float32,
}


def feature_schema(binned_shape, n_classes: int, image_dtype: str = "float16"):
    """The store's Unischema (the one declaration of the feature row)."""
    from petastorm.codecs import CompressedNdarrayCodec, NdarrayCodec, ScalarCodec
    from petastorm.unischema import Unischema, UnischemaField
    from pyspark.sql import types as T

    spark_t = {
        np.int64: T.LongType(),
        np.int32: T.IntegerType(),
        np.int16: T.ShortType(),
        np.int8: T.ByteType(),
        np.float64: T.DoubleType(),
        np.float32: T.FloatType(),
        np.str_: T.StringType(),
        np.bool_: T.BooleanType(),
    }

    def scalar(name, t, nullable=False):
        return UnischemaField(name, t, (), ScalarCodec(spark_t[t]), nullable)

    def vector(name, t, shape=(None,)):
        return UnischemaField(name, t, shape, NdarrayCodec(), False)

    img_t = np.float16 if image_dtype == "float16" else np.float32
    h, w = binned_shape
    fields = [
        scalar("expnum", np.int64),
        scalar("ccdnum", np.int16),
        scalar("band", np.str_),
        scalar("nite", np.int32),
        scalar("reqnum", np.int32),
        scalar("attnum", np.int32),
        *[scalar(n, t, nullable=True) for n, t in HEADER_COLUMNS.items()],
        UnischemaField("image", img_t, (h, w), CompressedNdarrayCodec(), False),
        UnischemaField("mask_frac", img_t, (h, w), CompressedNdarrayCodec(), False),
        # sharpness channels (per bin, in units of noise_sigma): what the block mean erases
        UnischemaField("max_sn", img_t, (h, w), CompressedNdarrayCodec(), False),
        UnischemaField("spread_sn", img_t, (h, w), CompressedNdarrayCodec(), False),
        UnischemaField("sharp_sn", img_t, (h, w), CompressedNdarrayCodec(), False),
        scalar("noise_sigma", np.float32),
        scalar("stretch_min", np.float32),
        scalar("stretch_max", np.float32),
        scalar("masked_fraction", np.float32),
        scalar("bkg_source", np.str_),
        scalar("path", np.str_),
        scalar("bkg_path", np.str_, nullable=True),
        scalar("config_hash", np.str_),
        # labels (exposure checker)
        scalar("inspected", np.bool_),
        scalar("label", np.int8),
        vector("multi_hot", np.int8, (n_classes,)),
        scalar("primary_class", np.int16),
        scalar("has_false_positive", np.bool_),
        scalar("n_reports", np.int16),
        vector("report_class", np.int16),
        vector("report_fp", np.bool_),
        vector("report_x", np.int32),
        vector("report_y", np.int32),
        vector("report_row", np.int32),
        vector("report_col", np.int32),
        vector("report_brow", np.int32),
        vector("report_bcol", np.int32),
    ]
    return Unischema("CCDFeatures", fields)


def schema_for_config(cfg):
    """The store's Unischema for a pipeline config (binned shape, class count, image dtype)."""
    return feature_schema(cfg.binned_shape(), len(cfg.taxonomy.classes), cfg.store.image_dtype)


def _pid_alive(pid) -> bool:
    """Is this process (on this host) still running? A zombie (killed, not yet reaped by its
    parent) counts as gone: it will never release its lock."""
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def decode_ndarray(cell: bytes) -> np.ndarray:
    """Decode an ``image`` / ``mask_frac`` / ``max_sn`` / ``spread_sn`` / ``sharp_sn`` cell read with
    pyarrow, DuckDB or Spark.

    Petastorm's CompressedNdarrayCodec stores ``np.savez_compressed(arr=...)`` bytes; vector
    columns (``multi_hot``, ``report_*``) use NdarrayCodec (``np.save`` bytes) and decode the same
    way with :func:`decode_vector`.
    """
    with np.load(io.BytesIO(cell)) as z:
        return z["arr"]


def decode_vector(cell: bytes) -> np.ndarray:
    """Decode a vector cell (``multi_hot``, ``report_*``: NdarrayCodec, ``np.save`` bytes)."""
    return np.load(io.BytesIO(cell))


class Store:
    """Paths and the commit protocol of one store root."""

    def __init__(self, spark, uri: str):
        self.spark = spark
        self.uri = fsmod.to_uri(uri)
        self.fs = fsmod.HadoopFS(spark, self.uri)

    def path(self, *parts: str) -> str:
        """The URI of ``parts`` under the store root."""
        return fsmod.join(self.uri, *parts)

    # -- metadata ----------------------------------------------------------------------------
    def meta(self) -> dict | None:
        """``_store.json`` (config hash, config, image shape, classes, last run), or None before the first commit."""
        text = self.fs.read_text(self.path(STORE_META))
        return json.loads(text) if text else None

    def has_features(self) -> bool:
        """Does the store hold a committed feature dataset?"""
        return self.fs.exists(self.path(FEATURES, "_common_metadata"))

    # -- one writer at a time ----------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, run_id: str, name: str = LOCK):
        """Hold ``_lock.json`` (or ``name``) for the duration of a run.

        A lock left by a killed run on this host (its pid no longer alive) is taken over; a live
        one, or one from another host, stops this run with a message naming the holder.
        """
        me = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        path = self.path(name)
        for _ in range(2):
            if self.fs.create_exclusive(path, json.dumps(me)):
                break
            holder = json.loads(self.fs.read_text(path) or "{}")
            if holder.get("host") == me["host"] and not _pid_alive(holder.get("pid")):
                log.warning(
                    "store %s: taking over the lock of run %s (pid %s is gone)",
                    self.uri,
                    holder.get("run_id"),
                    holder.get("pid"),
                )
                self.fs.delete(path, recursive=False)
                continue
            raise Busy(
                f"store {self.uri} is being written by run {holder.get('run_id')} (host {holder.get('host')}, "
                f"pid {holder.get('pid')}); wait for it to finish. If no such run is alive, delete {path}"
            )
        else:
            raise Busy(f"could not take the lock {path}; another run is starting at the same time")
        try:
            yield
        finally:
            self.fs.delete(path, recursive=False)

    # -- recovery ----------------------------------------------------------------------------
    def recover(self) -> str | None:
        """Finish a commit a killed run left half-applied; drop staging of runs that never committed."""
        text = self.fs.read_text(self.path(JOURNAL))
        recovered = None
        if text:
            journal = json.loads(text)
            log.warning("store %s: rolling forward the interrupted commit of run %s", self.uri, journal["run_id"])
            self._apply(journal)
            recovered = journal["run_id"]
        for d in self.fs.list_dirs(self.path(STAGING)):
            log.info("store %s: removing uncommitted staging %s", self.uri, d)
            self.fs.delete(d)
        return recovered

    # -- commit ------------------------------------------------------------------------------
    def commit(self, run_id: str, partitions: dict | None, meta: dict, schema) -> None:
        """Publish a staged run.

        ``partitions``: ``{"write": [...], "drop": [...]}`` relative partition dirs
        ("band=r/nite=20131115") of features that the run rewrote or emptied, or ``None`` when it
        rebuilt the whole feature dataset. The journal makes the sequence of renames
        restartable: a run killed during it is completed by the next one.
        """
        journal = {"run_id": run_id, "partitions": partitions, "meta": meta}
        self.fs.write_text_atomic(self.path(JOURNAL), json.dumps(journal))
        self._schema = schema
        self._apply(journal)

    def _swap(self, staged: str, live: str, trash: str) -> None:
        if not self.fs.exists(staged):
            return  # already moved by an earlier attempt
        if self.fs.exists(live):
            self.fs.rename(live, trash)
        self.fs.rename(staged, live)

    def _apply(self, journal: dict) -> None:
        run = journal["run_id"]
        stage = self.path(STAGING, run)
        trash = self.path(STAGING, run, "_trash")
        parts = journal["partitions"]
        if parts is None:
            self._swap(fsmod.join(stage, FEATURES), self.path(FEATURES), fsmod.join(trash, FEATURES))
        else:
            for p in parts["write"]:
                self._swap(fsmod.join(stage, FEATURES, p), self.path(FEATURES, p), fsmod.join(trash, FEATURES, p))
            for p in parts["drop"]:  # every row of these partitions left (e.g. now quarantined)
                if self.fs.exists(self.path(FEATURES, p)):
                    self.fs.rename(self.path(FEATURES, p), fsmod.join(trash, FEATURES, p))
                parent = p.rsplit("/", 1)[0] if "/" in p else ""
                while parent and not self.fs.list_names(self.path(FEATURES, parent)):
                    self.fs.delete(self.path(FEATURES, parent))  # an emptied band=X/ level
                    parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
        for t in SIDE_TABLES:
            self._swap(fsmod.join(stage, t), self.path(t), fsmod.join(trash, t))
        n_parts = len(self.fs.list_partitions(self.path(FEATURES), len(journal["meta"]["partition_by"])))
        if n_parts:
            self._write_petastorm_metadata(journal)
        else:  # no CCD stored at all: keep no stale Petastorm metadata around
            self.fs.delete(self.path(FEATURES, "_common_metadata"), recursive=False)
        self.fs.write_text_atomic(self.path(STORE_META), json.dumps(journal["meta"], indent=1, sort_keys=True))
        self.fs.delete(self.path(JOURNAL), recursive=False)
        self.fs.delete(stage)

    def _write_petastorm_metadata(self, journal: dict) -> None:
        from petastorm.etl.dataset_metadata import materialize_dataset

        from ..config import config_from_dict

        schema = getattr(self, "_schema", None)
        if schema is None:  # recovering: rebuild the schema from the stored config
            cfg = config_from_dict(journal["meta"]["config"], "store metadata")
            schema = schema_for_config(cfg)
        # Rewrites _common_metadata (the pickled Unischema and the row groups of every file).
        with materialize_dataset(self.spark, self.path(FEATURES), schema, journal["meta"]["rowgroup_size_mb"]):
            pass

    # -- reading -----------------------------------------------------------------------------
    def read_table(self, name: str):
        """A side table as a DataFrame, or None when it does not exist yet."""
        p = self.path(name)
        if not self.fs.exists(p) or not [n for n in self.fs.list_names(p) if not n.startswith((".", "_"))]:
            return None
        return self.spark.read.parquet(p)

    def check_readable(self) -> None:
        """Raise StoreError unless the store holds a feature dataset."""
        if not self.has_features():
            raise StoreError(
                f"{self.uri} holds no feature dataset yet: run jobs/preprocess.py with --output {self.uri} first"
            )
