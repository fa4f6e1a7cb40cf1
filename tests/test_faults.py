"""Fault test (issue 5): kill the driver of a preprocess run on a real standalone cluster, run
again, and the store ends exactly as after one clean run.

One store goes through: run 1 SIGKILLed while its executors process CCDs; run 2 (taking over
the dead run's lock) SIGKILLed in the middle of its commit (``_journal.json`` present, some
renames done); run 3 to completion. Another store gets one clean run. The two must hold the
same rows, images, labels, manifest statuses, quarantine rows, reports and metadata, and no
``_staging`` run, ``_journal.json`` or ``_lock.json`` may be left.

Run 2 goes through a copy of jobs/preprocess.py that pauses after each rename of the commit,
so that the kill lands inside the commit every time (unpaused, the journal exists for a second
or two, too short to hit reliably); the kill itself is a real SIGKILL of the whole driver
process group (spark-submit's JVM and the Python driver).
"""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import ROOT
from desarchive import E1, SMALL_CONF, build_archive, report, write_pair, write_reports
from sparkcluster import StandaloneCluster

pytestmark = pytest.mark.cluster

SLOW_COMMIT = '''"""jobs/preprocess.py, pausing after every rename of the commit (for the fault test)."""
import os, sys, time
sys.path.insert(0, {jobs!r})
from artifactspark.io import fs
_rename = fs.HadoopFS.rename
def _slow_rename(self, src, dst):
    _rename(self, src, dst)
    if "/_staging/" in src and "/_journal.json" not in dst:  # a rename of the commit
        open(os.path.join({marks!r}, "swap-%d" % time.monotonic_ns()), "w").close()
        time.sleep({pause})
fs.HadoopFS.rename = _slow_rename
import preprocess
sys.exit(preprocess.main())
'''


def _archive(tmp_path):
    root = str(tmp_path / "archive")
    expected = build_archive(root)  # every quarantine reason, 7 stored CCDs
    for i, (band, nite) in enumerate((("g", "20131117"), ("z", "20131119"))):
        for ccd in range(1, 7):
            expected[write_pair(root, 300010 + i, ccd, band=band, nite=nite)[0]] = "stored"
    labels = str(tmp_path / "labels.json")
    write_reports(
        labels,
        [
            report(1, E1, 1, "Satellite", 100, 50),
            report(2, E1, 2, "OK"),
            report(3, 300010, 3, "Ghost", 20, 20, band="g"),
            report(4, 300010, 5, "OK", band="g"),
            report(5, 300011, 1, "Tree Rings", 30, 30, band="z"),
        ],
    )
    conf = tmp_path / "small.toml"
    conf.write_text(SMALL_CONF)
    return root, expected, labels, str(conf)


def _cmd(cl, conf, job, root, labels, store):
    """submit.sh on the cluster; one core (one executor) per application, so that the clean run
    and the killed ones run side by side instead of one waiting for the other's executors."""
    return [
        str(ROOT / "submit.sh"),
        "--profile",
        "standalone",
        "--master",
        cl.master_url,
        "--config",
        conf,
        "--spark-conf",
        "spark.driver.host=127.0.0.1",
        "--spark-conf",
        "spark.executor.memory=1g",
        "--spark-conf",
        "spark.cores.max=1",
        job,
        "--input",
        root,
        "--labels",
        labels,
        "--output",
        store,
    ]


def _start(cmd, log):
    """The job in its own session; stdout to LOG.out (under spark-submit the Python driver's log
    lines arrive there too: Spark's PythonRunner merges the driver's stderr into its stdout),
    stderr to LOG.err."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True)


def _log(log):
    return open(f"{log}.out").read() + open(f"{log}.err").read()


def _wait_until(p, cond, what, log, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        assert p.poll() is None, f"the run ended before {what} (exit {p.returncode}):\n{_log(log)[-3000:]}"
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout} s:\n{_log(log)[-3000:]}")


def _kill(p):
    os.killpg(p.pid, signal.SIGKILL)  # the driver: spark-submit's JVM and the Python driver
    p.wait()


def _wait_gone(pid, timeout=20):
    """SIGKILL is asynchronous and the Python driver is the JVM's child: wait until its pid is
    gone as the store's lock sees it (signal 0 fails)."""
    from artifactspark.features.store import _pid_alive

    deadline = time.time() + timeout
    while _pid_alive(pid):
        assert time.time() < deadline, (
            f"the killed driver's pid {pid} is still there: {open(f'/proc/{pid}/status').read()[:200]}"
        )
        time.sleep(0.05)


def _finish(cmd, log):
    p = _start(cmd, log)
    p.wait(timeout=300)
    assert p.returncode == 0, _log(log)[-4000:]
    return json.loads(open(f"{log}.out").read().strip().splitlines()[-1])


def _runs(store):
    return sorted(os.listdir(os.path.join(store, "_staging"))) if os.path.isdir(os.path.join(store, "_staging")) else []


def _table(path):
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet").to_table().to_pylist()


def _detail(r):
    """A quarantine detail, except that of a corrupt FITS file is cut to its first line: the rest
    is cfitsio's error-message stack, which also holds messages left from earlier files read by
    the same Python worker (e.g. "ffgcnn could not find column: ZBLANK"), so it depends on
    which files a worker happened to read before."""
    d = r["detail"]
    return d.split("\n", 1)[0] if r["reason"] == "corrupt_fits" and d else d


def _state(store):
    """The store's logical content, without what differs from run to run (run ids, times)."""
    import pyarrow.dataset as ds

    from artifactspark.features.store import decode_ndarray, decode_vector

    feats = ds.dataset(os.path.join(store, "features"), format="parquet", partitioning="hive").to_table().to_pylist()
    rows, images = set(), {}
    for r in feats:
        key = (r["expnum"], r["ccdnum"])
        rows.add(
            (
                *key,
                r["band"],
                r["nite"],
                r["path"],
                r["bkg_path"],
                r["config_hash"],
                r["label"],
                r["inspected"],
                r["primary_class"],
                tuple(decode_vector(r["multi_hot"])),
                r["n_reports"],
                r["has_false_positive"],
                r["stretch_min"],
                r["stretch_max"],
                r["masked_fraction"],
                r["bkg_source"],
            )
        )
        images[key] = (decode_ndarray(r["image"]), decode_ndarray(r["mask_frac"]))
    assert len(rows) == len(feats) == len(images)  # one row per CCD
    manifest = sorted(
        (
            r["path"],
            r["status"],
            r["reason"],
            _detail(r),
            r["fingerprint"],
            r["config_hash"],
            r["label_digest"],
            r["expnum"],
            r["ccdnum"],
            r["band"],
        )
        for r in _table(os.path.join(store, "manifest"))
    )
    quarantine = sorted(
        (r["path"], r["reason"], _detail(r), r["expnum"], r["ccdnum"], r["band"], r["config_hash"])
        for r in _table(os.path.join(store, "quarantine"))
    )
    reports = sorted(r["record_json"] for r in _table(os.path.join(store, "label_reports")))
    meta = json.load(open(os.path.join(store, "_store.json")))
    meta.pop("last_run")
    partitions = sorted(
        os.path.relpath(d, store)
        for d, _, fs in os.walk(os.path.join(store, "features"))
        if any(f.endswith(".parquet") for f in fs)
    )
    return {
        "rows": rows,
        "images": images,
        "manifest": manifest,
        "quarantine": quarantine,
        "reports": reports,
        "meta": meta,
        "partitions": partitions,
        "top": sorted(os.listdir(store)),
    }


def _petastorm_keys(store):
    from petastorm import make_reader

    with make_reader(
        "file://" + os.path.join(store, "features"),
        schema_fields=["expnum", "ccdnum"],
        num_epochs=1,
        workers_count=1,
        shuffle_row_groups=False,
    ) as r:
        return sorted((int(x.expnum), int(x.ccdnum)) for x in r)


@pytest.mark.timeout(600)
def test_killed_driver_then_rerun_gives_the_clean_store(tmp_path):
    root, expected, labels, conf = _archive(tmp_path)
    n_stored = sum(v == "stored" for v in expected.values())
    clean, store = str(tmp_path / "clean"), str(tmp_path / "store")
    marks = tmp_path / "swaps"
    marks.mkdir()
    slow = tmp_path / "preprocess_slow_commit.py"
    slow.write_text(SLOW_COMMIT.format(jobs=str(ROOT / "jobs"), marks=str(marks), pause=1.5))
    logs = tmp_path / "logs"
    logs.mkdir()
    t_start = time.time()
    cl = StandaloneCluster(tmp_path / "cluster", n_workers=2, cores_per_worker=1, memory_per_worker="2g")
    clean_run = None
    try:
        cl.start(timeout=180)
        t0 = time.time()
        # The clean run goes alongside the killed ones (one executor each, see _cmd).
        clean_run = _start(_cmd(cl, conf, "preprocess", root, labels, clean), logs / "clean")
        # submit.sh rebuilds build/artifactspark.zip through one fixed temporary name: start the
        # next submit only once this one is past that (its JVM is writing to stderr).
        _wait_until(clean_run, lambda: os.path.getsize(logs / "clean.err") > 0, "spark-submit's start", logs / "clean")

        # 1. kill while the executors process CCDs: nothing may become visible
        log1 = logs / "run1"
        p = _start(_cmd(cl, conf, "preprocess", root, labels, store), log1)
        _wait_until(
            p,
            lambda: any(os.path.isdir(os.path.join(store, "_staging", r, "results")) for r in _runs(store)),
            "processing",
            log1,
        )
        assert not os.path.exists(os.path.join(store, "_journal.json"))
        _kill(p)
        lock = json.load(open(os.path.join(store, "_lock.json")))  # left behind, its pid gone
        _wait_gone(lock["pid"])
        for name in ("features", "manifest", "quarantine", "label_reports", "_store.json", "_journal.json"):
            assert not os.path.exists(os.path.join(store, name)), name
        assert len(_runs(store)) == 1

        # 2. the next run takes the dead run's lock over; kill it halfway through its commit
        log2 = logs / "run2"
        p = _start(_cmd(cl, conf, str(slow), root, labels, store), log2)
        _wait_until(
            p,
            lambda: os.path.exists(os.path.join(store, "_journal.json")) and len(os.listdir(marks)) >= 2,
            "a half-applied commit",
            log2,
        )
        _kill(p)
        assert "taking over the lock of run" in _log(log2)
        assert os.path.exists(os.path.join(store, "_journal.json"))
        assert os.path.exists(os.path.join(store, "features"))  # some renames were applied, not all
        assert not os.path.exists(os.path.join(store, "_store.json"))
        assert not os.path.exists(os.path.join(store, "_versions"))  # no version published: nothing visible
        n_swaps = len(os.listdir(marks))
        assert 2 <= n_swaps < 7, n_swaps  # of 7: 4 partitions, manifest, quarantine, label_reports

        # 3. run to completion: the interrupted commit is rolled forward, nothing is processed again
        log3 = logs / "run3"
        s3 = _finish(_cmd(cl, conf, "preprocess", root, labels, store), log3)
        text = _log(log3)
        assert "rolling forward the interrupted commit" in text and "taking over the lock" in text
        assert (s3["inputs"], s3["stored"], s3["quarantined"], s3["skipped"]) == (len(expected), 0, 0, len(expected))
        t_killed = time.time() - t0

        clean_run.wait(timeout=300)
        assert clean_run.returncode == 0, _log(logs / "clean")[-4000:]
        s_clean = json.loads(open(logs / "clean.out").read().strip().splitlines()[-1])
        assert (s_clean["inputs"], s_clean["stored"]) == (len(expected), n_stored)
    finally:
        if clean_run is not None and clean_run.poll() is None:
            _kill(clean_run)
        cl.stop()

    for s in (store, clean):
        for name in ("_journal.json", "_lock.json"):
            assert not os.path.exists(os.path.join(s, name)), (s, name)
        assert _runs(s) == [], _runs(s)
    got, want = _state(store), _state(clean)
    assert got["rows"] == want["rows"] and len(got["rows"]) == n_stored
    assert got["images"].keys() == want["images"].keys()
    for k, (img, frac) in want["images"].items():
        assert np.array_equal(got["images"][k][0], img) and np.array_equal(got["images"][k][1], frac), k
    for part in ("manifest", "quarantine", "reports", "meta", "partitions", "top"):
        assert got[part] == want[part], part
    assert len(got["quarantine"]) == len(expected) - n_stored
    assert {m[1] for m in got["manifest"]} == {"stored", "quarantined"}
    assert _petastorm_keys(store) == _petastorm_keys(clean) == sorted(k for k in want["images"])
    print(
        f"fault test: kill/kill/rerun sequence {t_killed:.0f} s, clean run phases "
        f"{s_clean['timings']}, whole test {time.time() - t_start:.0f} s"
    )
