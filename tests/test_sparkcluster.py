"""A real standalone cluster: 2 workers x 1 core, a job must run on 2 distinct executor JVMs."""
import sys
import time

import pytest

from sparkcluster import StandaloneCluster, _proc_stat

pytestmark = pytest.mark.cluster


def _alive(pid):
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


@pytest.mark.timeout(300)
def test_two_worker_cluster_runs_on_two_executors(tmp_path, monkeypatch):
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        pytest.skip("a SparkContext is already active in this process; run with -m cluster alone")
    # The driver picks the executors' Python and must bind to loopback too.
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")

    cluster = StandaloneCluster(tmp_path / "cluster", n_workers=2, cores_per_worker=1,
                                memory_per_worker="2g")
    seen = set()
    try:
        t0 = time.monotonic()
        cluster.start(timeout=120)
        print(f"cluster {cluster.master_url} up in {time.monotonic() - t0:.1f} s")
        assert cluster.alive_workers() == 2
        seen.update(cluster.pids())

        spark = (SparkSession.builder.master(cluster.master_url)
                 .appName("sparkcluster-test")
                 .config("spark.executor.cores", "1")
                 .config("spark.executor.memory", "1g")
                 .config("spark.cores.max", "2")
                 .config("spark.driver.host", "127.0.0.1")
                 .config("spark.driver.bindAddress", "127.0.0.1")
                 .config("spark.ui.enabled", "false")
                 .config("spark.ui.showConsoleProgress", "false")
                 .getOrCreate())
        try:
            sc = spark.sparkContext
            assert sc.master == cluster.master_url
            # Executors register asynchronously: wait for both (plus the driver's entry).
            deadline = time.monotonic() + 90
            while sc._jsc.sc().getExecutorMemoryStatus().size() < 3:
                assert time.monotonic() < deadline, "executors did not register"
                time.sleep(0.5)
            assert sc._jsc.sc().getExecutorMemoryStatus().size() == 3

            def probe(_):
                # Defined here so cloudpickle ships it by value (the test module is not
                # importable on the executors).  Walk up from the Python worker to the
                # executor JVM that owns it.
                import os
                import time as t

                t.sleep(0.2)
                pid = p = os.getpid()
                while p > 1:
                    with open(f"/proc/{p}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                    if b"org.apache.spark.executor.CoarseGrainedExecutorBackend" in argv:
                        eid = argv[argv.index(b"--executor-id") + 1].decode()
                        return pid, p, eid
                    with open(f"/proc/{p}/stat") as f:
                        stat = f.read()
                    p = int(stat[stat.rindex(")") + 2:].split()[1])
                return pid, None, None

            rows = sc.parallelize(range(8), 8).map(probe).collect()
            print("python worker pid, executor jvm pid, executor id:", sorted(set(rows)))
            jvms = {r[1] for r in rows}
            assert None not in jvms
            assert len(jvms) == 2, rows
            assert len({r[2] for r in rows}) == 2, rows
            cluster_pids = set(cluster.pids())
            assert jvms <= cluster_pids, "executors are not processes of this cluster"
            seen.update(cluster_pids)
            seen.update(r[0] for r in rows)
        finally:
            spark.stop()
    finally:
        t0 = time.monotonic()
        cluster.stop()
        print(f"cluster stopped in {time.monotonic() - t0:.1f} s")

    cluster.stop()  # idempotent
    assert cluster.pids() == []
    assert [p for p in seen if _alive(p)] == []
