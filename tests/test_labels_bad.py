"""Issue 11, item 6: bad exposure-checker exports. A broken export stops the job with a one-line
error and exit 2 before anything is written; single bad records are counted in the summary.

Each refusal runs in-process (run_preprocess raises LabelError, which cli.py turns into exit 2);
the exit code and the one-line message go through the real CLI (jobs/preprocess.py in a
subprocess) for the malformed file and the 1 GB file."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from desarchive import SMALL_CONF, report, write_pair, write_reports
from storelayout import current_features

from artifactspark.config import load_config
from artifactspark.errors import LabelError
from artifactspark.features.labels import read_records
from artifactspark.features.preprocess import run_preprocess


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("labels_bad")
    root = str(d / "archive")
    write_pair(root, 300001, 1)
    write_pair(root, 300001, 2)
    conf = d / "small.toml"
    conf.write_text(SMALL_CONF)
    return {"dir": d, "root": root, "conf": str(conf)}


def _job(small, labels, store, extra_conf=""):
    conf = small["conf"]
    if extra_conf:
        conf = str(small["dir"] / "limit.toml")
        open(conf, "w").write(SMALL_CONF.replace("[input]", extra_conf + "\n[input]"))
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "preprocess.py"),
            "--input",
            small["root"],
            "--labels",
            labels,
            "--output",
            store,
            "--config",
            conf,
            "--master",
            "local[1]",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


BAD = {
    "malformed": ('[{"qa_id": 1, "expname": "DECam_00300001", "ccd": 1,', "is not valid JSON: Expecting"),
    "object": (json.dumps({"qa_id": 1, "expname": "DECam_00300001", "ccd": 1}), "found a JSON object"),
    "no_records_usable": (json.dumps([{"qa_id": 1, "problem": "Ghost"}, {"id": 2}]), "none of its 2 records"),
    "duplicate_qa_id": (
        json.dumps([report(7, 300001, 1, "Ghost", 1, 1), report(7, 300001, 2, "Satellite", 5, 5)]),
        "qa_id 7 appears twice with different content",
    ),
    "not_utf8": (b'[{"problem": "\xff\xfe"}]', "is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_export_refused_before_anything_is_written(spark, small, tmp_path, case):
    text, message = BAD[case]
    labels = tmp_path / "labels.json"
    labels.write_bytes(text if isinstance(text, bytes) else text.encode())
    store = tmp_path / "store"
    with pytest.raises(LabelError) as e:
        run_preprocess(spark, [small["root"]], str(store), load_config(small["conf"]), [str(labels)])
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not store.exists()  # not even the lock


def test_bad_export_cli_exit_2_one_line(small, tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(BAD["malformed"][0])
    store = tmp_path / "store"
    out = _job(small, str(labels), str(store))
    assert out.returncode == 2, out.stderr[-2000:]
    err = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "is not valid JSON: Expecting" in err[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    # nothing written but the job's own log file
    assert not store.exists() or sorted(os.listdir(store)) == ["_logs"], sorted(os.listdir(store))


def test_one_gigabyte_export_is_refused_unread(small, tmp_path):
    """A 1 GB file (sparse: no disk used) is refused by its size before a byte is parsed; the
    limit is configurable, and a small limit refuses a small file the same way."""
    big = tmp_path / "huge.json"
    subprocess.run(["truncate", "-s", "1G", str(big)], check=True)
    with pytest.raises(LabelError, match=r"is 1024 MB, over the \[labels\] max_export_mb = 256 MB limit"):
        read_records([str(big)])
    store = tmp_path / "store"
    out = _job(small, str(big), str(store))
    assert out.returncode == 2 and "max_export_mb = 256 MB" in out.stderr, out.stderr[-2000:]
    small_file = tmp_path / "labels.json"
    write_reports(str(small_file), [report(i, 300001, 1, "Ghost", 1, 1) for i in range(30000)])  # ~4 MB
    out = _job(small, str(small_file), str(store), extra_conf="[labels]\nmax_export_mb = 1")
    assert out.returncode == 2 and "over the [labels] max_export_mb = 1 MB limit" in out.stderr, out.stderr[-2000:]
    assert load_config(small["conf"]).labels.max_export_mb == 256


def test_bad_records_are_counted_not_fatal(spark, small, tmp_path):
    """Records missing expname or ccd are rejected one by one and counted in the summary; a
    record repeated verbatim (same qa_id, same content) counts once."""
    labels = str(tmp_path / "labels.json")
    good = report(1, 300001, 1, "Satellite", 100, 50)
    no_exp = {k: v for k, v in report(2, 300001, 2, "Ghost").items() if k != "expname"}
    no_ccd = {k: v for k, v in report(3, 300001, 2, "Ghost").items() if k != "ccd"}
    write_reports(labels, [good, no_exp, no_ccd, report(4, 300001, 2, "OK"), good, "junk"])
    store = str(tmp_path / "store")
    s = run_preprocess(spark, [small["root"]], store, load_config(small["conf"]), [labels])
    assert s["stored"] == 2
    assert s["labels"]["rejected_records"] == {"missing_keys": 3, "duplicate_record": 1}
    assert s["labels"]["records"] == 5 and s["labels"]["ccds"] == 2
    rows = current_features(store)
    by_ccd = {r["ccdnum"]: r for r in rows}
    assert (by_ccd[1]["label"], by_ccd[1]["n_reports"], by_ccd[2]["label"]) == (1, 1, 0)
