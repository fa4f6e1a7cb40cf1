"""The preprocess job through submit.sh on a real standalone cluster (master + 2 workers on 127.0.0.1)."""

import json
import os
import subprocess

import pytest
from conftest import ROOT
from desarchive import SMALL_CONF, build_archive, report, write_reports
from sparkcluster import StandaloneCluster
from storelayout import current_features

pytestmark = pytest.mark.cluster


@pytest.mark.timeout(900)
def test_preprocess_via_submit_on_standalone_cluster(tmp_path):
    root = str(tmp_path / "archive")
    expected = build_archive(root)
    labels = str(tmp_path / "labels.json")
    write_reports(labels, [report(1, 300001, 1, "Satellite", 100, 50)])
    conf = tmp_path / "small.toml"
    conf.write_text(SMALL_CONF)
    store = str(tmp_path / "store")
    cl = StandaloneCluster(tmp_path / "cluster", n_workers=2, cores_per_worker=1, memory_per_worker="2g")
    try:
        cl.start(timeout=180)
        assert cl.alive_workers() == 2
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
        cmd = [
            str(ROOT / "submit.sh"),
            "--profile",
            "standalone",
            "--master",
            cl.master_url,
            "--config",
            str(conf),
            "--spark-conf",
            "spark.driver.host=127.0.0.1",
            "--spark-conf",
            "spark.executor.memory=1g",
            "preprocess",
            "--input",
            root,
            "--labels",
            labels,
            "--output",
            store,
        ]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=800)
        assert out.returncode == 0, out.stderr[-4000:]
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        n_stored = sum(v == "stored" for v in expected.values())
        assert (summary["inputs"], summary["stored"], summary["quarantined"]) == (
            len(expected),
            n_stored,
            len(expected) - n_stored,
        )
        # the application ran on the cluster, with an executor on each worker
        apps = cl.status()["completedapps"] + cl.status()["activeapps"]
        assert [a["name"] for a in apps] == ["artifactspark-preprocess"]
        for i in range(2):
            log = (tmp_path / "cluster" / "logs" / f"worker-{i}.log").read_text()
            assert "Asked to launch executor" in log, f"worker {i} ran no executor"
    finally:
        cl.stop()
    assert len(current_features(store, ["expnum", "ccdnum"])) == n_stored
