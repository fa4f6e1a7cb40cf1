"""The README's main command, end to end on full-size CCDs (tiny size), run twice."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.timeout(900)
def test_demo_runs_and_reruns_incrementally(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, str(ROOT / "jobs" / "demo.py"), "--size", "tiny", "--out", str(out), "--master", "local[2]"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=800)
    assert first.returncode == 0, first.stderr[-3000:]
    s1 = json.loads(first.stdout.strip().splitlines()[-1])
    console = first.stdout.splitlines() + first.stderr.splitlines()  # what a person sees
    assert len(console) < 40, "the console should read as a story:\n" + "\n".join(console)
    assert first.stdout.strip().splitlines() == [first.stdout.strip()]  # stdout: the JSON summary alone
    for noise in ("log4j", "WARN Utils", "NativeCodeLoader", "oneDNN", "absl", "FutureWarning", "Cache cleanup"):
        assert noise not in first.stderr, noise
    logs = sorted((out / "_logs").glob("demo-*.log"))
    assert len(logs) == 1 and str(logs[0]) in first.stderr  # the details, and where they are
    assert "artifactspark.spark: Spark" in logs[0].read_text()
    assert s1["preprocess"]["inputs"] == 20 and s1["preprocess"]["stored"] == 20
    assert "[1/6] simulating" in first.stderr and "Where to look" in first.stderr
    assert os.path.exists(out / "store" / "features" / "_common_metadata")
    assert s1["gallery_pngs"] >= 1
    assert set(s1["train"]) == {"cnn-multilabel", "svm-binary", "svm-multiclass"}
    assert [i["scored"] for i in s1["infer"]] == [20]
    for view in ("binary", "multiclass"):
        assert (out / "models" / "cnn-multilabel" / "views" / view / "predictions_test.parquet").exists()
    assert (out / "report" / "report.html").stat().st_size > 1000
    splits = {json.load(open(out / "models" / m / "model.json"))["split"]["id"] for m in s1["train"]}
    assert len(splits) == 1  # CNN and SVM on one split
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=800)
    assert second.returncode == 0, second.stderr[-3000:]
    s2 = json.loads(second.stdout.strip().splitlines()[-1])
    assert "reusing it" in second.stderr
    assert (s2["preprocess"]["stored"], s2["preprocess"]["skipped"]) == (0, 20)
    assert set(s2["train"].values()) == {"reused"}
    assert [(i["scored"], i["already_scored"]) for i in s2["infer"]] == [(0, 20)]
