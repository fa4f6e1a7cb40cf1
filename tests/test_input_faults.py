"""Issue 11, items 2 and 4: inputs that crash the reader, empty, vanished and ambiguous inputs.

Real Spark (local[2]), real FITS files, real crashes: the crash file makes cfitsio segfault.
"""

import os
import signal

import pytest
from desarchive import SMALL_CONF, write_pair, write_segfault_gz, write_sigfpe_fz
from storelayout import current_features, current_table

from artifactspark.config import config_from_dict, load_config
from artifactspark.features import versions
from artifactspark.features.isolation import run_isolated, run_isolated_many
from artifactspark.features.preprocess import run_preprocess


def _uri(p):
    return "file:" + os.path.abspath(p)


def _table(store, name):
    return current_table(store, name)


def _features(store):
    return current_features(store, ["expnum", "ccdnum", "path"])


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
def _abort():
    import faulthandler

    faulthandler.disable()  # pytest's: no traceback dump of the expected crash
    os.abort()


@pytest.mark.parametrize(("writer", "sig"), [(write_segfault_gz, signal.SIGSEGV), (write_sigfpe_fz, signal.SIGFPE)])
def test_crash_files_really_kill_their_reader(tmp_path, writer, sig):
    """The crash files are real crashes: reading one in a child process ends it by the signal."""
    from artifactspark.io.desfits import read_ccd

    img, _ = writer(str(tmp_path / "a"), 300001, 7)
    pid = os.fork()
    if pid == 0:
        try:
            import faulthandler

            faulthandler.disable()  # pytest's: no traceback dump of the expected crash
            read_ccd(img, None)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig


def test_worker_crash_is_quarantined_and_the_job_completes(spark, tmp_path):
    """Two CCDs whose read kills cfitsio (SIGSEGV, SIGFPE) share their tasks with good CCDs
    (ccds_per_task = 2; local mode does not retry tasks, so without isolation the job fails on
    the first crash). The job completes, each culprit is quarantined as worker_crash naming its
    signal, every good CCD is stored, and the next run does not read the culprits again."""
    root = str(tmp_path / "archive")
    good = [write_pair(root, 300001, ccd, comp=comp)[0] for ccd, comp in ((1, ".fz"), (2, ""), (3, ".gz"), (4, ".fz"))]
    segv, _ = write_segfault_gz(root, 300001, 5)
    fpe, _ = write_sigfpe_fz(root, 300001, 6)
    store = str(tmp_path / "store")
    cfg = _cfg(tmp_path)
    s = run_preprocess(spark, [root], store, cfg)
    assert (s["inputs"], s["stored"], s["quarantined"], s["skipped"]) == (6, 4, 2, 0)
    assert s["quarantine_reasons"] == {"worker_crash": 2}
    q = {r["path"]: r for r in _table(store, "quarantine")}
    assert {p: r["reason"] for p, r in q.items()} == {_uri(segv): "worker_crash", _uri(fpe): "worker_crash"}
    assert q[_uri(segv)]["detail"] == "worker died: SIGSEGV (signal 11) while reading this input"
    assert q[_uri(fpe)]["detail"] == "worker died: SIGFPE (signal 8) while reading this input"
    assert sorted(r["path"] for r in _features(store)) == sorted(_uri(p) for p in good)
    s2 = run_preprocess(spark, [root], store, cfg)
    assert (s2["stored"], s2["quarantined"], s2["skipped"]) == (0, 0, 6)


def test_isolated_child_out_of_memory_and_errors(tmp_path):
    """The per-input memory limit is a real RLIMIT_AS on the child: allocating past it ends the
    child (reported as out of memory), the parent carries on; results and errors come back."""
    import numpy as np

    def hog():
        return int(np.ones(512 * 1024 * 1024, np.uint8).sum())  # 512 MB, touched

    ok, detail = run_isolated(hog, (), memory_mb=128)
    assert ok is False and "out of memory" in detail and "128 MB" in detail
    assert run_isolated(hog, (), memory_mb=0) == (True, 512 * 1024 * 1024)
    ok, detail = run_isolated(_abort, ())
    assert ok is False and "SIGABRT" in detail
    assert run_isolated(int, ("x1",))[0] is None  # fn's exception: (None, "ValueError: ...")
    big = run_isolated(np.arange, (3_000_000,))  # 24 MB through the pipe
    assert big[0] is True and big[1].shape == (3_000_000,) and int(big[1][-1]) == 2_999_999


def test_one_child_per_task_loses_only_the_culprit():
    """A task's inputs share one child; a death costs only the input in flight, a new child
    takes the rest; fn's own exceptions come back without killing the child."""

    def fn(x):
        if x == "abort":
            _abort()
        if x == "raise":
            raise ValueError("bad input")
        return x * 2, os.getpid()

    out = list(run_isolated_many(fn, [1, 2, "abort", 3, "raise", 4]))
    assert [(item, ok) for item, ok, _ in out] == [
        (1, True),
        (2, True),
        ("abort", False),
        (3, True),
        ("raise", None),
        (4, True),
    ]
    assert [v[0] for _, ok, v in out if ok] == [2, 4, 6, 8]
    pids = [v[1] for _, ok, v in out if ok]
    assert pids[0] == pids[1] != pids[2] == pids[3] and os.getpid() not in pids
    assert "SIGABRT" in out[2][2] and out[4][2] == "ValueError: bad input"


def test_isolation_can_be_switched_off(tmp_path):
    cfg = config_from_dict({"store": {"isolate_inputs": False, "unit_memory_mb": 256}})
    assert cfg.store.isolate_inputs is False and cfg.config_hash == config_from_dict({}).config_hash


# ----------------------------------------------------------------- item 4: empty, ambiguous, vanished
def _empty(root, expnum, ccd, att=1, kind="immasked", size=0):
    from desarchive import name

    d = os.path.join(root, "20131115", f"D{expnum:08d}", f"p{att:02d}", "red", "immask" if kind == "immasked" else kind)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, name(expnum, "r", ccd, att, kind, ".fz"))
    with open(p, "wb") as f:
        f.write(b"S" * size)
    return p


def test_empty_files_are_counted_and_quarantined(spark, tmp_path):
    """Three zero-length immasked files and a one-byte one (the issue's case: Spark's scan skips
    zero-length files, so they used to vanish: `inputs: 1`), a CCD whose bkg file is zero-length,
    and a zero-length newer attempt of a good CCD (which must not supersede the good one). The
    archive's path holds a space (the file index percent-encodes it, the scan does not)."""
    root = str(tmp_path / "arch ive")
    good = [write_pair(root, 300001, 1)[0], write_pair(root, 300001, 2, comp="")[0]]
    empties = [_empty(root, 300001, ccd) for ccd in (10, 11, 12)]
    one_byte = _empty(root, 300001, 13, size=1)
    ccd3, bkg3 = write_pair(root, 300001, 3)
    open(bkg3, "wb").close()
    p01, _ = write_pair(root, 300001, 4, att=1)
    p02 = _empty(root, 300001, 4, att=2)
    store = str(tmp_path / "store")
    s = run_preprocess(spark, [root], store, _cfg(tmp_path))
    assert (s["inputs"], s["stored"], s["quarantined"], s["skipped"]) == (9, 3, 6, 0)
    assert s["quarantine_reasons"] == {"empty_file": 5, "not_fits": 1}
    q = {r["path"]: r for r in _table(store, "quarantine")}
    assert {p for p, r in q.items() if r["reason"] == "empty_file"} == {_uri(p) for p in [*empties, ccd3, p02]}
    assert q[_uri(one_byte)]["reason"] == "not_fits"
    assert q[_uri(ccd3)]["detail"] == f"its background file is zero-length: {_uri(bkg3)}"
    assert q[_uri(p02)]["size"] == 0 and q[_uri(p02)]["mtime"] > 0
    assert sorted(r["path"] for r in _features(store)) == sorted(_uri(p) for p in [*good, p01])
    # the transfer is redone: the file now has content and is processed
    write_pair(root, 300001, 10)
    s2 = run_preprocess(spark, [root], store, _cfg(tmp_path))
    assert (s2["inputs"], s2["stored"], s2["quarantined"], s2["skipped"]) == (9, 1, 0, 8)


def test_two_bkg_files_for_one_stem_are_ambiguous(spark, tmp_path):
    root = str(tmp_path / "archive")
    img, bkg_fz = write_pair(root, 300001, 5)
    _, bkg_plain = write_pair(str(tmp_path / "other"), 300001, 5, comp="")
    second = os.path.join(root, "elsewhere", os.path.basename(bkg_plain))
    os.makedirs(os.path.dirname(second))
    os.rename(bkg_plain, second)
    write_pair(root, 300001, 6)
    store = str(tmp_path / "store")
    s = run_preprocess(spark, [root], store, _cfg(tmp_path))
    assert (s["inputs"], s["stored"], s["quarantined"]) == (2, 1, 1)
    q = _table(store, "quarantine")
    assert [(r["path"], r["reason"]) for r in q] == [(_uri(img), "ambiguous_bkg")]
    assert q[0]["detail"] == "2 background files for this CCD: " + ", ".join(sorted([_uri(bkg_fz), _uri(second)]))
    # one of them removed: the CCD is processed with the other
    os.unlink(second)
    s2 = run_preprocess(spark, [root], store, _cfg(tmp_path))
    assert (s2["stored"], s2["quarantined"], s2["skipped"]) == (1, 0, 1)


def test_vanished_inputs_are_counted_and_pruned_only_on_request(spark, tmp_path):
    import shutil

    import preprocess as prep

    root = str(tmp_path / "archive")
    paths = {ccd: write_pair(root, 300001, ccd) for ccd in (1, 2, 3)}
    write_pair(root, 300002, 1, band="g", nite="20131116")
    bad = _empty(root, 300001, 9, size=5)  # not FITS: quarantined
    store = str(tmp_path / "store")
    cfg = _cfg(tmp_path)
    s1 = run_preprocess(spark, [root], store, cfg)
    assert (s1["stored"], s1["quarantined"], s1["vanished"], s1["pruned"]) == (4, 1, 0, 0)
    for p in (*paths[3], bad):
        os.unlink(p)
    shutil.rmtree(os.path.join(root, "20131116"))  # the whole band-g night
    before = _files(store)
    s2 = run_preprocess(spark, [root], store, cfg)
    assert (s2["inputs"], s2["skipped"], s2["vanished"], s2["pruned"]) == (2, 2, 3, 0)
    assert _files(store) == before  # counted, nothing rewritten: an unmounted root must not empty the store
    assert len(_features(store)) == 4

    s3 = prep.main(["--input", root, "--output", store, "--config", str(tmp_path / "small.toml"), "--prune"])
    assert s3 == 0
    s3 = run_preprocess(spark, [root], store, cfg)  # after the CLI's prune: nothing left to prune
    assert (s3["vanished"], s3["pruned"]) == (0, 0)
    assert sorted(r["path"] for r in _features(store)) == sorted(_uri(paths[c][0]) for c in (1, 2))
    # the current version has no band-g partition (older versions keep theirs until vacuumed)
    assert sorted(versions.open_version(store).partitions) == ["band=r/nite=20131115"]
    assert sorted(r["path"] for r in _table(store, "manifest")) == sorted(_uri(paths[c][0]) for c in (1, 2))
    assert _table(store, "quarantine") == []


def test_prune_summary_counts_the_removed_inputs(spark, tmp_path):
    root = str(tmp_path / "archive")
    paths = {ccd: write_pair(root, 300001, ccd) for ccd in (1, 2)}
    store = str(tmp_path / "store")
    cfg = _cfg(tmp_path)
    run_preprocess(spark, [root], store, cfg)
    for p in paths[2]:
        os.unlink(p)
    s = run_preprocess(spark, [root], store, cfg, prune=True)
    assert (s["inputs"], s["stored"], s["skipped"], s["vanished"], s["pruned"]) == (1, 0, 1, 1, 1)
    assert [r["path"] for r in _features(store)] == [_uri(paths[1][0])]


def test_unchanged_labels_rewrite_nothing(spark, tmp_path):
    from desarchive import report, write_reports

    root = str(tmp_path / "archive")
    for ccd in (1, 2):
        write_pair(root, 300001, ccd)
    labels = str(tmp_path / "labels.json")
    write_reports(labels, [report(1, 300001, 1, "Satellite", 100, 50), report(2, 300001, 2, "OK")])
    store = str(tmp_path / "store")
    cfg = _cfg(tmp_path)
    s1 = run_preprocess(spark, [root], store, cfg, [labels])
    assert s1["stored"] == 2
    before = _files(store)
    s2 = run_preprocess(spark, [root], store, cfg, [labels])  # same labels, given again
    assert (s2["stored"], s2["quarantined"], s2["skipped"]) == (0, 0, 2)
    assert _files(store) == before
    # the same records in another order and file are the same labels
    write_reports(labels, [report(2, 300001, 2, "OK"), report(1, 300001, 1, "Satellite", 100, 50)])
    run_preprocess(spark, [root], store, cfg, [labels])
    assert _files(store) == before
    # a changed label rewrites its CCD only
    write_reports(labels, [report(1, 300001, 1, "Ghost", 100, 50), report(2, 300001, 2, "OK")])
    s4 = run_preprocess(spark, [root], store, cfg, [labels])
    assert (s4["stored"], s4["skipped"]) == (1, 1)
