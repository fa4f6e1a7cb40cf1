"""Numbered versions of the feature store, and the one way every reader opens one.

A commit never changes a published file. It moves the run's partitions to new leaf folders
(``features/band=r/nite=20131115/v=c7p0/``: commit 7, its partition 0) and its side tables to
``manifest/v=7/`` etc., then writes the version record ``_versions/00000007.json`` under a
temporary name and renames it into place: that rename is the one atomic step that makes
version 7 current (the current version is the highest-numbered record). A record lists, for
each partition, the leaf folder and its files with their row-group counts (unchanged partitions
point at the leaves of earlier commits: nothing is copied), the side tables' folders, and the
store metadata (``_store.json``'s content).

Readers go through :func:`open_version` (``Store.version()`` in Spark code): Spark reads the
version's leaf folders (:func:`read_features`), pyarrow and DuckDB its file list
(:meth:`StoreVersion.arrow_dataset`, :meth:`StoreVersion.duckdb_source`), and Petastorm reads
``features/`` with a partition filter on the leaf column ``v`` (:func:`make_reader`).
``features/_common_metadata`` holds the Unischema and the row groups of every file of every
kept version, so a reader of an older version keeps working while later commits happen.
Before anything lets Petastorm unpickle the Unischema, :func:`check_schema` scans the pickle
(``io.safepickle``) against :data:`SCHEMA_GLOBALS`, the globals our own schema pickles.

:func:`vacuum` removes the versions beyond ``[store] keep_versions`` and the files no kept
version refers to.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..errors import StoreError
from ..io import fs as fsmod
from ..io.safepickle import check_pickle

log = logging.getLogger(__name__)

FEATURES_DIR, VERSIONS, LEAF, COMMON_METADATA = "features", "_versions", "v", "_common_metadata"
UNISCHEMA_KEY = b"dataset-toolkit.unischema.v1"
ROW_GROUPS_KEY = b"dataset-toolkit.num_row_groups_per_file.v1"
_RECORD = re.compile(r"^(\d{8})\.json$")

#: Every global the pickle of :func:`artifactspark.features.store.feature_schema` imports (found
#: by scanning it with pickletools for both image dtypes; tests/test_store_versions.py checks it).
SCHEMA_GLOBALS = frozenset(
    [("collections", "OrderedDict"), ("petastorm.unischema", "Unischema"), ("petastorm.unischema", "UnischemaField")]
    + [("petastorm.codecs", c) for c in ("ScalarCodec", "NdarrayCodec", "CompressedNdarrayCodec")]
    + [("numpy", t) for t in ("int64", "int32", "int16", "int8", "float64", "float32", "float16", "bool_", "str_")]
    + [
        ("pyspark.sql.types", t)
        for t in (
            "LongType",
            "IntegerType",
            "ShortType",
            "ByteType",
            "DoubleType",
            "FloatType",
            "StringType",
            "BooleanType",
        )
    ]
)


def record_name(number: int) -> str:
    """The file name of version ``number``'s record under ``_versions/``."""
    return f"{number:08d}.json"


def leaf_name(number: int, index: int) -> str:
    """The leaf folder value of a partition written by commit ``number`` (unique in the store;
    letters keep Spark, pyarrow and DuckDB from reading it as a number or a date)."""
    return f"c{number}p{index}"


# ---------------------------------------------------------------------------------- file access
def _arrow_uri(uri: str) -> str:
    scheme = urlparse(uri).scheme
    return "s3" + uri[len(scheme) :] if scheme in ("s3a", "s3n") else uri


def _local_path(uri: str) -> str:
    u = urlparse(uri)
    return u.path if u.scheme in ("", "file") else uri


class ArrowFS:
    """The few reads a reader needs, through ``pyarrow.fs`` (no Spark needed)."""

    def __init__(self, uri: str):
        from pyarrow import fs as pafs

        self.fs, _ = pafs.FileSystem.from_uri(_arrow_uri(uri))

    def path(self, uri: str) -> str:
        """``uri`` as a path of this filesystem."""
        from pyarrow import fs as pafs

        return pafs.FileSystem.from_uri(_arrow_uri(uri))[1]

    def exists(self, uri: str) -> bool:
        """Does ``uri`` exist?"""
        from pyarrow import fs as pafs

        return self.fs.get_file_info(self.path(uri)).type != pafs.FileType.NotFound

    def list_names(self, uri: str) -> list[str]:
        """Names directly under ``uri`` ([] if it does not exist)."""
        from pyarrow import fs as pafs

        sel = pafs.FileSelector(self.path(uri), allow_not_found=True)
        return [i.base_name for i in self.fs.get_file_info(sel)]

    def read_bytes(self, uri: str) -> bytes | None:
        """The bytes of ``uri``, or None if it does not exist."""
        try:
            with self.fs.open_input_stream(self.path(uri)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def read_text(self, uri: str) -> str | None:
        """The UTF-8 text of ``uri``, or None if it does not exist."""
        b = self.read_bytes(uri)
        return None if b is None else b.decode("utf-8")

    def write_bytes_atomic(self, uri: str, data: bytes) -> None:
        """Write ``data`` beside ``uri`` and move it over ``uri`` (one rename on local disks and HDFS)."""
        tmp = self.path(uri) + ".tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, self.path(uri))

    def row_groups(self, uri: str) -> int:
        """The number of row groups of the Parquet file ``uri`` (its footer only)."""
        import pyarrow.parquet as pq

        with self.fs.open_input_file(self.path(uri)) as f:
            return pq.ParquetFile(f).metadata.num_row_groups


def list_versions(fs, root: str) -> list[int]:
    """The version numbers recorded under ``root/_versions`` (ascending); ``fs`` is an
    :class:`ArrowFS` or the writer's ``HadoopFS``."""
    return sorted(int(m.group(1)) for n in fs.list_names(fsmod.join(root, VERSIONS)) if (m := _RECORD.match(n)))


def read_record(fs, root: str, number: int) -> dict | None:
    """Version ``number``'s record, or None if it does not exist (vacuumed)."""
    text = fs.read_text(fsmod.join(root, VERSIONS, record_name(number)))
    return json.loads(text) if text else None


# ---------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class StoreVersion:
    """One published version of a store: what :func:`open_version` returns (picklable)."""

    uri: str  # the store root
    number: int
    record: dict = field(repr=False)

    @property
    def meta(self) -> dict:
        """The store metadata of this version (what ``_store.json`` held when it was current)."""
        return self.record["meta"]

    @property
    def features_uri(self) -> str:
        """The Petastorm dataset root (``STORE/features``); open it only through this module."""
        return fsmod.join(self.uri, FEATURES_DIR)

    @property
    def partitions(self) -> dict:
        """Relative partition ("band=r/nite=20131115") -> {"leaf": ..., "files": {name: row groups}}."""
        return self.record["partitions"]

    def leaf_dirs(self) -> list[str]:
        """The URIs of this version's partition folders (one leaf per partition)."""
        return [fsmod.join(self.features_uri, p, f"{LEAF}={e['leaf']}") for p, e in sorted(self.partitions.items())]

    def files(self) -> list[str]:
        """The URIs of this version's feature Parquet files."""
        return [
            fsmod.join(self.features_uri, p, f"{LEAF}={e['leaf']}", n)
            for p, e in sorted(self.partitions.items())
            for n in sorted(e["files"])
        ]

    def table_uri(self, name: str) -> str | None:
        """The folder of side table ``name`` (manifest, quarantine, label_reports) in this version."""
        rel = self.record.get("tables", {}).get(name)
        return fsmod.join(self.uri, rel) if rel else None

    def petastorm_filters(self, filters=None) -> list:
        """pyarrow-style DNF filters selecting this version's leaves (and ``filters``, if given)."""
        mine = (LEAF, "in", _Leaves(e["leaf"] for e in self.partitions.values()))
        if not filters:
            return [[mine]]
        conj = filters if isinstance(filters[0], list) else [filters]
        return [list(c) + [mine] for c in conj]

    def arrow_dataset(self):
        """This version's features as a ``pyarrow.dataset.Dataset`` (Hive partitions ``band``,
        ``nite`` and the leaf column ``v``)."""
        import pyarrow.dataset as ds

        fs = ArrowFS(self.uri)
        paths = [fs.path(u) for u in self.files()]
        return ds.dataset(
            paths,
            filesystem=fs.fs,
            format="parquet",
            partitioning=ds.partitioning(flavor="hive"),
            partition_base_dir=fs.path(self.features_uri),
        )

    def duckdb_source(self) -> str:
        """A DuckDB table expression over this version's features:
        ``duckdb.sql(f"SELECT count(*) FROM {v.duckdb_source()}")`` (local and s3:// stores)."""
        files = ", ".join("'" + _local_path(_arrow_uri(u)).replace("'", "''") + "'" for u in self.files())
        if not files:
            raise StoreError(f"version {self.number} of {self.uri} holds no CCD rows")
        return f"read_parquet([{files}], hive_partitioning = true)"


def check_schema(fs, store_uri: str) -> None:
    """UnsafeStore unless the Unischema pickle in ``features/_common_metadata`` imports only
    :data:`SCHEMA_GLOBALS` (scanned, never unpickled). A missing file passes (nothing to unpickle)."""
    import io

    import pyarrow.parquet as pq

    uri = fsmod.join(store_uri, FEATURES_DIR, COMMON_METADATA)
    data = fs.read_bytes(uri)
    if data is None:
        return
    try:
        kv = pq.read_metadata(io.BytesIO(data)).metadata or {}
    except Exception as e:
        raise StoreError(f"{uri} is not Parquet metadata ({e}): rebuild the store with jobs/preprocess.py") from e
    blob = kv.get(UNISCHEMA_KEY)
    if blob is not None:
        check_pickle(
            blob,
            SCHEMA_GLOBALS,
            what=f"{uri} ({UNISCHEMA_KEY.decode()})",
            advice=(
                "Open only stores written by jobs/preprocess.py. To repair one you trust, delete that "
                "file and run jobs/preprocess.py on the store again (its commit rewrites the metadata "
                "from the pipeline's own schema); otherwise rebuild the store from the archive."
            ),
        )


def open_version(store_uri: str, number: int | None = None, check: bool = True, fs=None) -> StoreVersion:
    """The current version of the store at ``store_uri`` (or version ``number``).

    StoreError when the store has no version (never written, or written before versioned
    stores: the next jobs/preprocess.py run upgrades it) or the requested one was vacuumed;
    UnsafeStore (with ``check``) when its Unischema pickle imports anything our schema does not.
    """
    uri = fsmod.to_uri(store_uri)
    fs = fs or ArrowFS(uri)
    nums = list_versions(fs, uri)
    if not nums:
        if fs.exists(fsmod.join(uri, "_store.json")):
            raise StoreError(
                f"{uri} was written before versioned stores: run jobs/preprocess.py --output {uri} "
                f"(or jobs/vacuum.py --store {uri}) once to upgrade it in place"
            )
        raise StoreError(f"{uri} holds no feature dataset yet: run jobs/preprocess.py with --output {uri} first")
    n = nums[-1] if number is None else int(number)
    record = read_record(fs, uri, n) if n in nums else None
    if record is None:
        raise StoreError(
            f"version {n} of {uri} does not exist: kept versions are {nums} (older ones are removed "
            "by vacuum, see [store] keep_versions); use one of those or omit the version for the current one"
        )
    if check:
        check_schema(fs, uri)
    return StoreVersion(uri, n, record)


def read_features(spark, version: StoreVersion):
    """This version's feature rows as a Spark DataFrame (partition columns typed, no leaf column)."""
    dirs = version.leaf_dirs()
    if not dirs:
        raise StoreError(f"version {version.number} of {version.uri} holds no CCD rows")
    df = spark.read.option("basePath", version.features_uri).parquet(*dirs)
    return df.drop(LEAF)


def read_table(spark, version: StoreVersion, name: str):
    """Side table ``name`` of this version as a DataFrame, or None when it has none (or it is empty)."""
    uri = version.table_uri(name)
    if uri is None:
        return None
    fs = ArrowFS(uri)
    if not [n for n in fs.list_names(uri) if not n.startswith((".", "_"))]:
        return None
    return spark.read.parquet(uri)


class _Leaves(frozenset):
    """The leaf filter's value. It also carries the ParquetDataset the Reader listed to the
    Reader's thread workers (see :class:`_OneListing`); pickled (process pools) it is a frozenset."""

    dataset = None

    def __reduce__(self):
        return (frozenset, (tuple(self),))


class _OneListing:
    """Stands in for ``pyarrow.parquet`` inside petastorm's reader and worker modules.

    Petastorm's Reader lists the dataset with 10 threads and each worker lists it again, alone;
    a row's partition values (``band``, ``nite``) are indices into the per-level value lists that
    each listing builds in the order it meets them. Threads meet the nights of different bands in
    any order, and a commit can add folders between the two listings, so the worker decoded
    another night for ~half of the reads (measured: 18 of 40 make_reader passes over a 4-band
    store, petastorm 0.13.1, pyarrow 14). Here a worker of one of our readers reuses the Reader's
    own listing (found through the filter value), so indices and values come from one listing.

    The Reader's listing runs on one thread, not petastorm's 10: pyarrow 14's legacy listing
    submits every folder below the root to its pool and waits there for the folders below it, so
    with the three levels of a versioned store (band, nite, leaf) ten waiting folders take every
    thread and the listing never ends (5 bands x 2 nights hung ``jobs/train_heatmap.py`` on the
    quality store). On one thread the levels below the first are visited inline: no wait in the
    pool, and the same order every time.
    """

    def __init__(self, pq):
        self._pq = pq

    def __getattr__(self, name):
        return getattr(self._pq, name)

    def ParquetDataset(self, *args, **kwargs):  # noqa: N802 (pyarrow's name)
        marker = next(
            (
                f[2]
                for conj in kwargs.get("filters") or []
                for f in (conj if isinstance(conj, list) else [conj])
                if isinstance(f, tuple) and len(f) == 3 and isinstance(f[2], _Leaves)
            ),
            None,
        )
        if marker is not None and marker.dataset is not None:
            return marker.dataset
        if "metadata_nthreads" in kwargs:
            kwargs["metadata_nthreads"] = 1
        ds = self._pq.ParquetDataset(*args, **kwargs)
        if marker is not None:
            marker.dataset = ds
        return ds


#: The petastorm modules that list a dataset with ``pq.ParquetDataset`` on a make_reader path
#: (the Reader, its workers, and the schema lookup before the Reader).
PETASTORM_LISTERS = ("petastorm.reader", "petastorm.py_dict_reader_worker", "petastorm.etl.dataset_metadata")


def _share_listing() -> None:
    import importlib

    import pyarrow.parquet as pq

    for mod in map(importlib.import_module, PETASTORM_LISTERS):
        if not isinstance(mod.pq, _OneListing):
            mod.pq = _OneListing(pq)


def make_reader(version: StoreVersion, **kwargs):
    """``petastorm.make_reader`` over this version only (a filter on the leaf column; the
    Unischema pickle is scanned first). ``filters`` given here are combined with it."""
    from petastorm import make_reader as petastorm_reader

    if not version.partitions:
        raise StoreError(f"version {version.number} of {version.uri} holds no CCD rows")
    fs = ArrowFS(version.uri)
    if not fs.exists(fsmod.join(version.features_uri, COMMON_METADATA)):
        raise StoreError(
            f"{version.features_uri} has no {COMMON_METADATA}: run jobs/preprocess.py on the store to rewrite it"
        )
    check_schema(fs, version.uri)
    _share_listing()
    kwargs["filters"] = version.petastorm_filters(kwargs.get("filters"))
    reader = petastorm_reader(version.features_uri, **kwargs)
    _wait_for_ventilation(reader)
    return reader


def _wait_for_ventilation(reader, timeout: float = 60.0) -> None:
    """Return once a one-epoch reader has handed out all its row groups.

    petastorm 0.13.1's ThreadPool ends a read when every worker is idle *and* the ventilator is
    done, checked one after the other: a first ``next()`` that sees idle workers before the
    ventilator starts, then the ventilator done (it hands out a whole epoch at once), raises
    StopIteration with no row read (measured: 2 of 6 passes on a 4-row-group store under load;
    1 of 773 Petastorm reads in the 20-commit reader loop). Once everything is handed out, idle
    workers mean finished workers.

    The Reader bounds the ventilator to workers x 4 row groups not yet *consumed*: with more row
    groups than that it blocks until the caller reads, so waiting here for it to finish would
    deadlock until ``timeout`` (measured: 60 s lost on every val/test/train read of the quality
    run's store, since 88d1805), and a wait for a blocked ventilator would leave the same race
    open at the epoch's end. The bound is therefore lifted to the whole epoch first: the
    ventilator hands out every row group at once (small descriptors; the rows themselves stay
    bounded by the workers' result queues) and completes at once."""
    vent = getattr(reader, "ventilator", None)
    if vent is None or getattr(vent, "_iterations", None) != 1:
        return  # several or endless epochs: not ended by this race at the start
    items = len(getattr(vent, "_items_to_ventilate", ()) or ())
    vent._max_ventilation_queue_size = max(getattr(vent, "_max_ventilation_queue_size", 0), items)
    deadline = time.monotonic() + timeout
    while not vent.completed() and time.monotonic() < deadline:
        time.sleep(0.001)


def resolve(source, number: int | None = None) -> StoreVersion:
    """A :class:`StoreVersion` from a StoreVersion, a store URI, or its ``features`` URI."""
    if isinstance(source, StoreVersion):
        return source if number is None or number == source.number else open_version(source.uri, number)
    uri = fsmod.to_uri(str(source)).rstrip("/")
    if uri.endswith("/" + FEATURES_DIR):
        uri = uri[: -len(FEATURES_DIR) - 1]
    return open_version(uri, number)
