"""Batch inference on a real standalone cluster (master + 2 workers on 127.0.0.1): one worker is
killed in the middle of the run; the run still ends with exactly one prediction per CCD."""

import glob
import json
import os
import subprocess
import time

import pyarrow.dataset as pads
import pytest
from conftest import ROOT
from sparkcluster import StandaloneCluster

pytestmark = pytest.mark.cluster


@pytest.mark.timeout(900)
def test_kill_a_worker_during_inference(trained, toy, tmp_path):
    conf = tmp_path / "infer.toml"
    # many small tasks so the run lasts long enough to lose a worker in the middle
    conf.write_text(open(toy["conf"]).read() + "\n[infer]\nbatch_size = 2\nccds_per_task = 2\n")
    out = str(tmp_path / "predictions")
    cl = StandaloneCluster(tmp_path / "cluster", n_workers=2, cores_per_worker=1, memory_per_worker="2g")
    try:
        cl.start(timeout=180)
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
            "infer",
            "--store",
            toy["store"],
            "--model",
            trained["cnn_binary"],
            "--output",
            out,
        ]
        with open(tmp_path / "driver.log", "w") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
            deadline, killed_at = time.time() + 400, None
            while time.time() < deadline and proc.poll() is None:
                done = glob.glob(os.path.join(out, "_temporary", "*", "task_*")) + glob.glob(
                    os.path.join(out, "_temporary", "*", "_temporary", "*")
                )
                if len(done) >= 2:  # tasks have run: the job is in the middle
                    cl.kill_worker(1)
                    killed_at = time.time()
                    break
                time.sleep(0.2)
            stdout, _ = proc.communicate(timeout=600)
        assert killed_at is not None, "the run ended before a worker could be killed"
        assert proc.returncode == 0, (tmp_path / "driver.log").read_text()[-4000:]
        assert cl.alive_workers() == 1
        summary = json.loads(stdout.strip().splitlines()[-1])
        assert summary["scored"] == len(toy["kinds"])
    finally:
        cl.stop()
    t = pads.dataset(out, partitioning="hive").to_table(columns=["expnum", "ccdnum", "model_version"]).to_pandas()
    assert len(t) == len(toy["kinds"])
    assert not t.duplicated(["expnum", "ccdnum"]).any()
    assert set(zip(t["expnum"], t["ccdnum"])) == set(toy["kinds"])
