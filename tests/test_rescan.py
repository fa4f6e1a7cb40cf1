"""The scheduled re-scan (issue 5): preprocess + infer chained, nothing redone, a lock, exit codes."""

import json
import os
import socket

import rescan as rescan_job


def _run(toy, trained, store, out, capsys):
    rc = rescan_job.main(
        [
            "--input",
            str(toy["dir"] / "archive"),
            "--labels",
            str(toy["dir"] / "archive" / "labels.json"),
            "--store",
            store,
            "--model",
            trained["cnn_binary"],
            "--model",
            trained["svm_binary"],
            "--output",
            out,
            "--config",
            toy["conf"],
        ]
    )
    captured = capsys.readouterr()
    return rc, (json.loads(captured.out.strip().splitlines()[-1]) if rc == 0 else captured.err)


def test_rescan_chains_then_does_nothing_then_refuses_when_busy(toy, trained, tmp_path, capsys):
    n = len(toy["kinds"])
    store, out = str(tmp_path / "store"), str(tmp_path / "predictions")
    rc, s = _run(toy, trained, store, out, capsys)
    assert rc == 0 and s["changed"] and s["preprocess"]["stored"] == n
    assert [i["scored"] for i in s["infer"]] == [n, n]
    rc, s = _run(toy, trained, store, out, capsys)
    assert rc == 0 and not s["changed"]
    assert s["preprocess"]["skipped"] == n and [i["scored"] for i in s["infer"]] == [0, 0]
    # another rescan holds the lock (a live process on this host): exit 75, nothing touched
    lock = os.path.join(store, "_rescan_lock.json")
    with open(lock, "w") as f:
        json.dump({"run_id": "other", "host": socket.gethostname(), "pid": 1}, f)
    rc, err = _run(toy, trained, store, out, capsys)
    assert rc == 75 and "being written by run other" in err
    os.unlink(lock)
    # a stale lock (dead pid) is taken over
    with open(lock, "w") as f:
        json.dump({"run_id": "dead", "host": socket.gethostname(), "pid": 2**22 + 12345}, f)
    rc, s = _run(toy, trained, store, out, capsys)
    assert rc == 0 and not s["changed"] and not os.path.exists(lock)


def test_warm_mode_reruns_in_one_session_and_prints_a_line_per_run(toy, trained, tmp_path, capsys):
    n = len(toy["kinds"])
    store, out = str(tmp_path / "store"), str(tmp_path / "predictions")
    args = ["--input", str(toy["dir"] / "archive"), "--labels", str(toy["dir"] / "archive" / "labels.json")]
    args += ["--store", store, "--model", trained["svm_binary"], "--output", out, "--config", toy["conf"]]
    assert rescan_job.main(args + ["--every", "0", "--times", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines() if x.startswith("{")]
    assert [s["round"] for s in lines] == [1, 2]
    assert lines[0]["changed"] and lines[0]["preprocess"]["stored"] == n and lines[0]["infer"][0]["scored"] == n
    assert not lines[1]["changed"] and lines[1]["preprocess"]["skipped"] == n and lines[1]["infer"][0]["scored"] == 0
