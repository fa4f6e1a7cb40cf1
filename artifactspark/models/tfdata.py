"""Reading the feature store into TensorFlow through Petastorm.

The store keeps images as float16 (half the bytes of float32; see benchmarks/RESULTS.md).
petastorm 0.13.1's ``tf_utils`` knows no float16 -> tf.float16 mapping and refuses such
fields; :func:`enable_float16` adds it (one dict entry, no behaviour change otherwise).
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from ..logs import LogWriter, import_tensorflow

log = logging.getLogger(__name__)


def enable_float16() -> None:
    """Let petastorm's ``tf_utils`` map float16 store fields to ``tf.float16``."""
    tf = import_tensorflow()
    from petastorm import tf_utils

    tf_utils._NUMPY_TO_TF_DTYPES_MAPPING.setdefault(np.float16, tf.float16)


def guard_npy_headers() -> None:
    """Retry numpy's ``.npy`` header parse when CPython 3.11 raises a spurious ``SystemError``.

    Petastorm decodes cells in a thread pool; every cell's ``np.load`` parses its header with
    ``ast.literal_eval``. CPython 3.11's AST builder keeps its recursion depth in state shared by
    threads (python/cpython#106905), and parses in other threads (TensorFlow's autograph while
    it builds the training feed) can make one fail with "AST constructor recursion depth
    mismatch": it killed a 3103-CCD training run here. The parse is pure, so a retry is safe."""
    import numpy.lib.format as npy_format

    orig = npy_format.safe_eval
    if getattr(orig, "_retries_system_error", False):
        return

    def safe_eval(source):
        for attempt in range(5):
            try:
                return orig(source)
            except SystemError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    safe_eval._retries_system_error = True
    npy_format.safe_eval = safe_eval


@contextlib.contextmanager
def open_reader(source, version: int | None = None, **kwargs):
    """``petastorm.make_reader`` on one version of a store: ``source`` is a
    :class:`~artifactspark.features.versions.StoreVersion`, or a store path/URI (or its
    ``features`` folder) whose current version (or ``version``) is opened. The Unischema pickle
    is scanned before Petastorm unpickles it. The reader's close prints "Cache cleanup
    complete." on stdout, where every job keeps only its JSON summary: sent to the log here."""
    from ..features import versions

    guard_npy_headers()
    reader = versions.make_reader(versions.resolve(source, version), **kwargs)
    try:
        yield reader
    finally:
        with contextlib.redirect_stdout(LogWriter(log)):
            reader.__exit__(None, None, None)


def read_columns(source, fields: list[str], predicate, predicate_fields, workers: int = 2) -> dict:
    """One pass over a store version (:func:`open_reader`): the rows that pass ``predicate`` (a
    Petastorm predicate on ``predicate_fields``) as ``{field: [value per row]}``, in read order."""
    cols = {f: [] for f in fields}
    with open_reader(
        source,
        schema_fields=sorted(set(fields) | set(predicate_fields)),
        predicate=predicate,
        num_epochs=1,
        shuffle_row_groups=False,
        workers_count=workers,
    ) as reader:
        for row in reader:
            for f in fields:
                cols[f].append(getattr(row, f))
    return cols


@contextlib.contextmanager
def store_dataset(
    features_uri,
    fields: list[str],
    cur_shard: int | None = None,
    shard_count: int | None = None,
    num_epochs: int | None = 1,
    shuffle: bool = False,
    seed: int | None = None,
    workers_count: int = 2,
    predicate=None,
):
    """``with store_dataset(url, ["image", "label"]) as ds:`` yields a ``tf.data.Dataset`` of
    namedtuples read with ``make_reader`` (sharded with ``cur_shard``/``shard_count``);
    ``features_uri`` is what :func:`open_reader` takes (a StoreVersion or a store URI)."""
    from petastorm.tf_utils import make_petastorm_dataset

    enable_float16()
    with open_reader(
        features_uri,
        schema_fields=fields,
        cur_shard=cur_shard,
        shard_count=shard_count,
        num_epochs=num_epochs,
        shuffle_row_groups=shuffle,
        seed=seed,
        workers_count=workers_count,
        predicate=predicate,
    ) as reader:
        yield make_petastorm_dataset(reader)
