"""Issue 11, items 2 and 4: inputs that crash the reader, empty, vanished and ambiguous inputs.

Real Spark (local[2]), real FITS files, real crashes: the crash file makes cfitsio segfault.
"""

import os
import signal

from desarchive import SMALL_CONF, write_pair, write_segfault_gz

from artifactspark.config import config_from_dict, load_config
from artifactspark.features.isolation import run_isolated
from artifactspark.features.preprocess import run_preprocess


def _uri(p):
    return "file:" + os.path.abspath(p)


def _table(store, name):
    import pyarrow.dataset as ds

    return ds.dataset(os.path.join(store, name), format="parquet").to_table().to_pylist()


def _features(store):
    import pyarrow.dataset as ds

    path = os.path.join(store, "features")
    if not os.path.isdir(path):
        return []
    d = ds.dataset(path, format="parquet", partitioning="hive")
    return d.to_table(columns=["expnum", "ccdnum", "path"]).to_pylist()


def _cfg(tmp_path, extra=""):
    p = tmp_path / "small.toml"
    p.write_text(SMALL_CONF + extra)
    return load_config(p)


def _files(store):
    """Every file of the store with its size and mtime: what a rewrite would change."""
    out = {}
    for d, _, fs in os.walk(store):
        for f in fs:
            st = os.stat(os.path.join(d, f))
            out[os.path.relpath(os.path.join(d, f), store)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


# ------------------------------------------------------------------------------- item 2: crashes
def test_segfault_file_really_kills_its_reader(tmp_path):
    """The crash file is a real crash: reading it in a child process ends that process by SIGSEGV."""
    from artifactspark.io.desfits import read_ccd

    img, _ = write_segfault_gz(str(tmp_path / "a"), 300001, 7)
    pid = os.fork()
    if pid == 0:
        try:
            read_ccd(img, None)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV


def test_worker_crash_is_quarantined_and_the_job_completes(spark, tmp_path):
    """A CCD whose read segfaults cfitsio shares its task with good CCDs (ccds_per_task = 2; local
    mode does not retry tasks, so without isolation the job fails on the first crash). The job
    completes, the culprit is quarantined as worker_crash naming SIGSEGV, every good CCD is stored,
    and the next run does not read the culprit again."""
    root = str(tmp_path / "archive")
    good = [write_pair(root, 300001, ccd, comp=comp)[0] for ccd, comp in ((1, ".fz"), (2, ""), (3, ".gz"), (4, ".fz"))]
    crash, _ = write_segfault_gz(root, 300001, 5)
    store = str(tmp_path / "store")
    cfg = _cfg(tmp_path)
    s = run_preprocess(spark, [root], store, cfg)
    assert (s["inputs"], s["stored"], s["quarantined"], s["skipped"]) == (5, 4, 1, 0)
    assert s["quarantine_reasons"] == {"worker_crash": 1}
    q = _table(store, "quarantine")
    assert [(r["path"], r["reason"]) for r in q] == [(_uri(crash), "worker_crash")]
    assert "worker died: SIGSEGV" in q[0]["detail"]
    assert sorted(r["path"] for r in _features(store)) == sorted(_uri(p) for p in good)
    s2 = run_preprocess(spark, [root], store, cfg)
    assert (s2["stored"], s2["quarantined"], s2["skipped"]) == (0, 0, 5)


def test_isolated_child_out_of_memory_and_errors(tmp_path):
    """The per-input memory limit is a real RLIMIT_AS on the child: allocating past it ends the
    child (reported as out of memory), the parent carries on; results and errors come back."""
    import numpy as np

    def hog():
        return int(np.ones(512 * 1024 * 1024, np.uint8).sum())  # 512 MB, touched

    ok, detail = run_isolated(hog, (), memory_mb=128)
    assert ok is False and "out of memory" in detail and "128 MB" in detail
    assert run_isolated(hog, (), memory_mb=0) == (True, 512 * 1024 * 1024)
    ok, detail = run_isolated(os.abort, ())
    assert ok is False and "SIGABRT" in detail
    assert run_isolated(int, ("x1",))[0] is None  # fn's exception: (None, "ValueError: ...")
    big = run_isolated(np.arange, (3_000_000,))  # 24 MB through the pipe
    assert big[0] is True and big[1].shape == (3_000_000,) and int(big[1][-1]) == 2_999_999


def test_isolation_can_be_switched_off(tmp_path):
    cfg = config_from_dict({"store": {"isolate_inputs": False, "unit_memory_mb": 256}})
    assert cfg.store.isolate_inputs is False and cfg.config_hash == config_from_dict({}).config_hash
