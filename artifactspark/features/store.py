"""The feature store: one Petastorm dataset plus plain Parquet side tables, under one root,
published in numbered versions (see :mod:`artifactspark.features.versions`).

    STORE/
      _versions/N.json  version N: partitions -> leaf folder and files, side tables, metadata
      features/      Petastorm dataset, Hive-partitioned by band and nite, then by the leaf
                     ``v=c<commit>p<i>`` of the commit that wrote the partition (one row per CCD)
      manifest/v=N/  Parquet: one row per input (path, size, mtime, config hash, status, ...)
      quarantine/v=N/     Parquet: the manifest's quarantined inputs with their reason and detail
      label_reports/v=N/  Parquet: the exposure-checker reports the labels were built from
      _store.json    the current version's metadata (config hash, config, schema summary, last run)
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

from ..config import StoreConfig
from ..errors import Busy, StoreError
from ..io import fs as fsmod
from . import versions

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
        self._current = None
        self._schema = None

    def path(self, *parts: str) -> str:
        """The URI of ``parts`` under the store root."""
        return fsmod.join(self.uri, *parts)

    # -- versions and metadata ---------------------------------------------------------------
    def version(self, number: int | None = None, check: bool = True) -> versions.StoreVersion:
        """The current version (or version ``number``) of the store, for reading: see
        :mod:`artifactspark.features.versions`. The current one is looked up once per Store object,
        so one job reads one version throughout. StoreError if there is none; UnsafeStore if its
        Unischema pickle is not our schema's."""
        if number is None and self._current is not None:
            return self._current
        v = versions.open_version(self.uri, number, check)
        if number is None:
            self._current = v
        return v

    def pin(self, number: int | None = None) -> versions.StoreVersion:
        """Read version ``number`` (None: the current one) through this Store object from now on."""
        self._current = versions.open_version(self.uri, number)
        return self._current

    def pinned(self, number: int | None = None) -> Store:
        """This Store, pinned with :meth:`pin` (for chaining)."""
        self.pin(number)
        return self

    def _try_version(self) -> versions.StoreVersion | None:
        if self._current is None and not versions.list_versions(self.fs, self.uri):
            return None
        return self.version()

    def meta(self) -> dict | None:
        """The current version's metadata (``_store.json``: config hash, config, image shape,
        classes, last run), or None before the first commit."""
        v = self._try_version()
        return v.meta if v else None

    def has_features(self) -> bool:
        """Does the current version hold any CCD row?"""
        v = self._try_version()
        return bool(v and v.partitions)

    def read_features(self, number: int | None = None):
        """The feature rows of the current version (or ``number``) as a Spark DataFrame."""
        return versions.read_features(self.spark, self.version(number))

    def read_table(self, name: str, number: int | None = None):
        """A side table of the current version (or ``number``) as a DataFrame, or None when it has none."""
        v = self._try_version() if number is None else self.version(number)
        return versions.read_table(self.spark, v, name) if v else None

    def check_readable(self) -> None:
        """Raise StoreError unless the current version holds a feature dataset."""
        v = self.version()
        if not v.partitions:
            raise StoreError(
                f"{self.uri} (version {v.number}) holds no CCD rows: run jobs/preprocess.py with --output {self.uri}"
            )

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
        """Finish a commit a killed run left half-applied; upgrade a store written before
        versions; drop staging of runs that never committed. Call it holding the lock."""
        text = self.fs.read_text(self.path(JOURNAL))
        recovered = None
        if text:
            journal = json.loads(text)
            log.warning("store %s: rolling forward the interrupted commit of run %s", self.uri, journal["run_id"])
            self._schema = None
            self._apply(journal)
            recovered = journal["run_id"]
        elif not versions.list_versions(self.fs, self.uri) and self.fs.exists(self.path(STORE_META)):
            self._upgrade()
        for d in self.fs.list_dirs(self.path(STAGING)):
            log.info("store %s: removing uncommitted staging %s", self.uri, d)
            self.fs.delete(d)
        return recovered

    def _upgrade(self) -> None:
        """Make a store of the old layout (partition folders holding files) version 1, moving
        (never copying) its files into leaf folders, under a journal like any commit."""
        meta = json.loads(self.fs.read_text(self.path(STORE_META)))
        run = "upgrade-" + time.strftime("%Y%m%dT%H%M%S")
        parts = self.fs.list_partitions(self.path(FEATURES), len(meta["partition_by"]))
        tables = [t for t in SIDE_TABLES if self.fs.exists(self.path(t))]
        log.warning("store %s: upgrading to versioned layout (%d partitions become version 1)", self.uri, len(parts))
        journal = {
            "run_id": run,
            "version": 1,
            "carry": {},
            "new": {p: versions.leaf_name(1, i) for i, p in enumerate(parts)},
            "tables": {t: f"{t}/{versions.LEAF}=1" for t in tables},
            "new_tables": tables,
            "upgrade": [f"{FEATURES}/{p}" for p in parts] + tables,
            "meta": meta,
        }
        self.fs.write_text_atomic(self.path(JOURNAL), json.dumps(journal))
        self._schema = None
        self._apply(journal)

    # -- commit ------------------------------------------------------------------------------
    def commit(self, run_id: str, partitions: dict | None, meta: dict, schema) -> None:
        """Publish a staged run as the next version.

        ``partitions``: ``{"write": [...], "drop": [...]}`` relative partition dirs
        ("band=r/nite=20131115") of features that the run rewrote or emptied, or ``None`` when it
        rebuilt the whole feature dataset. The new version refers to the unchanged partitions of
        the previous one (nothing is copied). The journal makes the commit restartable: a run
        killed during it is completed by the next one, and until the version record appears
        readers see the previous version.
        """
        nums = versions.list_versions(self.fs, self.uri)
        prev = versions.read_record(self.fs, self.uri, nums[-1]) if nums else None
        number = (nums[-1] if nums else 0) + 1
        stage = self.path(STAGING, run_id)
        if partitions is None:
            carry = {}
            new = self.fs.list_partitions(fsmod.join(stage, FEATURES), len(meta["partition_by"]))
        else:
            carry = dict(prev["partitions"]) if prev else {}
            for p in list(partitions["write"]) + list(partitions["drop"]):
                carry.pop(p, None)
            new = sorted(partitions["write"])
        tables = dict(prev.get("tables", {})) if prev else {}
        new_tables = [t for t in SIDE_TABLES if self.fs.exists(fsmod.join(stage, t))]
        tables.update({t: f"{t}/{versions.LEAF}={number}" for t in new_tables})
        journal = {
            "run_id": run_id,
            "version": number,
            "carry": carry,
            "new": {p: versions.leaf_name(number, i) for i, p in enumerate(new)},
            "tables": tables,
            "new_tables": new_tables,
            "meta": meta,
        }
        self.fs.write_text_atomic(self.path(JOURNAL), json.dumps(journal))
        self._schema = schema
        self._apply(journal)

    def _apply(self, journal: dict) -> None:
        """Move the staged files into place, write the version record (the atomic step), then
        the compatibility copy ``_store.json``; idempotent, so recovery can run it again."""
        run, number = journal["run_id"], journal["version"]
        stage = self.path(STAGING, run)
        for rel in journal.get("upgrade", []):  # old layout: files straight in the folder -> staging
            src, staged = self.path(rel), fsmod.join(stage, rel)
            names = self.fs.list_names(src)
            if names and not self.fs.exists(staged) and not any(n.startswith(versions.LEAF + "=") for n in names):
                self.fs.rename(src, staged)
        for p, leaf in journal["new"].items():
            staged = fsmod.join(stage, FEATURES, p)
            if self.fs.exists(staged):
                self.fs.rename(staged, self.path(FEATURES, p, f"{versions.LEAF}={leaf}"))
        for t in journal["new_tables"]:
            if self.fs.exists(fsmod.join(stage, t)):
                self.fs.rename(fsmod.join(stage, t), self.path(journal["tables"][t]))
        afs = versions.ArrowFS(self.uri)
        parts = dict(journal["carry"])
        for p, leaf in journal["new"].items():
            d = self.path(FEATURES, p, f"{versions.LEAF}={leaf}")
            names = sorted(n for n in self.fs.list_names(d) if n.endswith(".parquet") and not n.startswith((".", "_")))
            parts[p] = {"leaf": leaf, "files": {n: afs.row_groups(fsmod.join(d, n)) for n in names}}
        record = {
            "version": number,
            "run_id": run,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "partitions": parts,
            "tables": journal["tables"],
            "meta": journal["meta"],
        }
        self._write_common_metadata(record)
        rec_uri = self.path(versions.VERSIONS, versions.record_name(number))
        if not self.fs.exists(rec_uri):
            self.fs.write_text_atomic(rec_uri, json.dumps(record, sort_keys=True))  # the commit point
        self.fs.write_text_atomic(self.path(STORE_META), json.dumps(journal["meta"], indent=1, sort_keys=True))
        self.fs.delete(self.path(JOURNAL), recursive=False)
        self.fs.delete(stage)
        self._current = None
        keep = ((journal["meta"].get("config") or {}).get("store") or {}).get("keep_versions")
        self.vacuum(int(keep or StoreConfig.keep_versions))

    def _write_common_metadata(self, record: dict | None) -> None:
        """``features/_common_metadata``: our Unischema and the row groups of every file of every
        kept version (plus ``record``'s), replaced in one rename. Written from the pipeline's own
        schema: the store's existing pickle is never read."""
        import pickle

        import pyarrow as pa
        import pyarrow.parquet as pq

        records = [versions.read_record(self.fs, self.uri, n) for n in versions.list_versions(self.fs, self.uri)]
        records = [r for r in records if r] + ([record] if record else [])
        files = {}
        for r in records:
            for p, e in r["partitions"].items():
                files.update({f"{p}/{versions.LEAF}={e['leaf']}/{n}": k for n, k in e["files"].items()})
        uri = self.path(FEATURES, versions.COMMON_METADATA)
        if not files:
            self.fs.delete(uri, recursive=False)
            return
        latest = records[-1]
        schema = getattr(self, "_schema", None)
        if schema is None:  # recovering or vacuuming: the schema from the stored config
            from ..config import config_from_dict

            schema = schema_for_config(config_from_dict(latest["meta"]["config"], "store metadata"))
        own = [f"{p}/{versions.LEAF}={e['leaf']}/{n}" for p, e in latest["partitions"].items() for n in e["files"]]
        afs = versions.ArrowFS(self.uri)
        with afs.fs.open_input_file(afs.path(self.path(FEATURES, (own or list(files))[0]))) as f:
            arrow_schema = pq.read_schema(f)
        kv = dict(arrow_schema.metadata or {})
        kv[versions.UNISCHEMA_KEY] = pickle.dumps(schema)
        kv[versions.ROW_GROUPS_KEY] = json.dumps(files, sort_keys=True).encode()
        buf = pa.BufferOutputStream()
        pq.write_metadata(arrow_schema.with_metadata(kv), buf)
        afs.write_bytes_atomic(uri, buf.getvalue().to_pybytes())

    # -- vacuum ------------------------------------------------------------------------------
    def vacuum(self, keep: int, full: bool = False) -> dict:
        """Remove the versions older than the newest ``keep`` (the current one is always kept)
        and every leaf and side-table folder no kept version refers to. Call it holding the lock.
        ``full`` scans for unreferenced folders even when no version was removed."""
        if keep < 1:
            raise StoreError(f"vacuum: keep must be >= 1 (got {keep}); the current version is always kept")
        if self.fs.exists(self.path(JOURNAL)):
            raise StoreError(f"store {self.uri}: a commit is pending; run jobs/preprocess.py on it before vacuum")
        nums = versions.list_versions(self.fs, self.uri)
        kept, gone = nums[-keep:], nums[:-keep]
        for n in gone:  # readers can no longer open these
            self.fs.delete(self.path(versions.VERSIONS, versions.record_name(n)), recursive=False)
        summary = {"versions": kept, "removed_versions": gone, "removed_folders": 0}
        if not (gone or full) or not kept:
            return summary
        self._write_common_metadata(None)  # before any file goes: kept readers keep their row groups
        records = [versions.read_record(self.fs, self.uri, n) for n in kept]
        leaves = {f"{p}/{versions.LEAF}={e['leaf']}" for r in records for p, e in r["partitions"].items()}
        depth = len(records[-1]["meta"]["partition_by"])
        for rel in self.fs.list_partitions(self.path(FEATURES), depth + 1):
            if rel.rsplit("/", 1)[-1].startswith(versions.LEAF + "=") and rel not in leaves:
                self.fs.delete(self.path(FEATURES, rel))
                summary["removed_folders"] += 1
        for level in range(depth, 0, -1):  # partition folders left empty
            for rel in self.fs.list_partitions(self.path(FEATURES), level):
                if not self.fs.list_names(self.path(FEATURES, rel)):
                    self.fs.delete(self.path(FEATURES, rel))
        used = {r["tables"][t] for r in records for t in r.get("tables", {})}
        for t in SIDE_TABLES:
            for name in self.fs.list_names(self.path(t)):
                if name.startswith(versions.LEAF + "=") and f"{t}/{name}" not in used:
                    self.fs.delete(self.path(t, name))
                    summary["removed_folders"] += 1
        log.info("store %s: vacuum kept versions %s, removed %s", self.uri, kept, gone)
        return summary


def run_vacuum(spark, store_uri: str, keep: int) -> dict:
    """jobs/vacuum.py: under the store's lock, complete any interrupted commit, then keep the
    newest ``keep`` versions (ConfigError if ``keep`` < 1); the job summary."""
    from ..errors import ConfigError

    if keep < 1:
        raise ConfigError(f"--keep {keep}: keep at least 1 version (the current one)")
    t0 = time.time()
    store = Store(spark, store_uri)
    if not versions.list_versions(store.fs, store.uri) and not store.fs.exists(store.path(STORE_META)):
        raise StoreError(f"no feature store at {store.uri}: check --store")
    run_id = "vacuum-" + time.strftime("%Y%m%dT%H%M%S")
    with store.lock(run_id):
        store.recover()
        out = store.vacuum(keep, full=True)
    return {"job": "vacuum", "store": store.uri, **out, "seconds": round(time.time() - t0, 2)}
