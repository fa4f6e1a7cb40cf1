"""The preprocess job on local[2] against a small DES-format archive written with astropy,
with every kind of bad input the job must quarantine (never lose, never die on)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT
from desarchive import E1, E2, E3, SMALL_CONF, build_archive, report, write_pair, write_reports

from artifactspark.config import config_from_dict, load_config
from artifactspark.errors import StoreError
from artifactspark.features.preprocess import run_preprocess
from artifactspark.features.store import decode_ndarray, decode_vector
from artifactspark.features.versions import open_version

CLASSES = config_from_dict({}).taxonomy.classes


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    d = tmp_path_factory.mktemp("arch")
    root = str(d / "archive")
    exp = build_archive(root)
    labels = str(d / "labels.json")
    write_reports(
        labels,
        [
            report(1, E1, 1, "Satellite", 100, 50),
            report(2, E1, 1, "Satellite", 120, 60),
            report(3, E1, 1, "Ghost", 10, 10),
            report(4, E1, 2, "OK"),
            report(5, E1, 3, "Excessive mask", 5, 5, fp=True),
            report(6, E2, 1, "Unheard-of", 1, 1),
        ],
    )
    conf = str(d / "small.toml")
    open(conf, "w").write(SMALL_CONF)
    return {"root": root, "expected": exp, "labels": labels, "conf": conf, "dir": d}


def _uri(p):
    return "file:" + os.path.abspath(p)  # the form Spark lists local files in


def features(store):
    """The current version's feature rows (through the store's one reading helper)."""
    return open_version(store).arrow_dataset().to_table().drop(["v"]).to_pylist()


def table(store, name):
    import pyarrow.dataset as ds

    return ds.dataset(open_version(store).table_uri(name)[len("file://") :], format="parquet").to_table().to_pylist()


def snapshot(store):
    """The store's logical content: feature rows (without nothing volatile) and manifest statuses."""
    rows = sorted(
        (
            r["expnum"],
            r["ccdnum"],
            r["band"],
            r["nite"],
            bytes(r["image"]),
            bytes(r["mask_frac"]),
            r["label"],
            r["path"],
            bytes(r["max_sn"]),
            bytes(r["spread_sn"]),
            r["noise_sigma"],
        )
        for r in features(store)
    )
    man = sorted((r["path"], r["status"], r["reason"], r["fingerprint"]) for r in table(store, "manifest"))
    return rows, man


@pytest.fixture(scope="module")
def first_run(spark, archive):
    store = str(archive["dir"] / "store")
    cfg = load_config(archive["conf"])
    s = run_preprocess(spark, [archive["root"]], store, cfg, [archive["labels"]])
    return store, s


def test_accounting_and_quarantine(first_run, archive):
    store, s = first_run
    exp = archive["expected"]
    n_stored = sum(v == "stored" for v in exp.values())
    assert s["inputs"] == len(exp) == 19
    assert (s["stored"], s["quarantined"], s["skipped"]) == (n_stored, len(exp) - n_stored, 0)
    assert s["inputs"] == s["stored"] + s["quarantined"] + s["skipped"]
    assert s["labels"]["unknown_classes"] == {"Unheard-of": 1}
    q = {r["path"]: r for r in table(store, "quarantine")}
    man = {r["path"]: r for r in table(store, "manifest")}
    assert len(man) == len(exp)
    for path, want in exp.items():
        uri = _uri(path)
        if want == "stored":
            assert man[uri]["status"] == "stored", (path, man[uri])
            assert uri not in q
        elif want == "corrupt":
            assert q[uri]["reason"] in ("corrupt_fits", "not_fits"), q[uri]
        else:
            assert q[uri]["reason"] == want, (path, q[uri])
            assert q[uri]["detail"]
    rows = features(store)
    assert len(rows) == n_stored
    assert len({(r["expnum"], r["ccdnum"]) for r in rows}) == n_stored  # one row per CCD


def test_feature_values_match_independent_computation(first_run, archive):
    """Stored image of a plain-FITS CCD vs astropy read + numpy masked arrays (no library code)."""
    from astropy.io import fits

    store, _ = first_run
    cfg = load_config(archive["conf"])
    path = [p for p, v in archive["expected"].items() if "c02" in p and f"D00{E1}" in p][0]
    with fits.open(path) as h:
        sci, msk, wgt = h["SCI"].data.astype(float), h["MSK"].data, h["WGT"].data
    with fits.open(path.replace("immask", "bkg").replace("_bkged.", "_bkg.")) as h:
        bkg = h["SCI"].data.astype(float)
    bad = ((msk & cfg.mask.bitmask) != 0) | (wgt <= 0) | ~np.isfinite(sci)
    f = cfg.downsample.factor
    H, W = sci.shape[0] // f, sci.shape[1] // f
    blocks = np.ma.masked_array(sci - bkg, bad).reshape(H, f, W, f).transpose(0, 2, 1, 3).reshape(H, W, f * f)
    mean = blocks.mean(axis=2).filled(0.0)
    frac = bad.reshape(H, f, W, f).mean(axis=(1, 3))
    m, M = mean[frac < 1].min(), mean[frac < 1].max()
    want = np.arcsinh((np.clip(mean, m, M) - m) / (M - m))
    row = [r for r in features(store) if r["expnum"] == E1 and r["ccdnum"] == 2][0]
    img = decode_ndarray(row["image"])
    assert img.dtype == np.float16 and img.shape == (H, W)
    np.testing.assert_allclose(img.astype(float), want, atol=2e-3)
    np.testing.assert_allclose(decode_ndarray(row["mask_frac"]).astype(float), frac, atol=1e-3)
    assert row["bkg_source"] == "file" and row["nite"] == 20131115 and row["band"] == "r"
    assert row["exptime"] == 90.0
    assert row["detpos"] == "S2"  # the header has no DETPOS: derived from CCDNUM 2


def test_sharpness_channels_in_store(first_run, archive):
    """max_sn / spread_sn / noise_sigma read back from the store (pyarrow and Petastorm) equal
    image.py's functions on the same file's pixels read with astropy."""
    from astropy.io import fits

    from artifactspark.features.image import bin_laplacian_max, bin_sharpness, noise_sigma
    from artifactspark.models.tfdata import open_reader

    store, s = first_run
    cfg = load_config(archive["conf"])
    path = [p for p, v in archive["expected"].items() if "c02" in p and f"D00{E1}" in p][0]
    with fits.open(path) as h:
        sci, msk, wgt = h["SCI"].data.astype(np.float32), h["MSK"].data, h["WGT"].data
    with fits.open(path.replace("immask", "bkg").replace("_bkged.", "_bkg.")) as h:
        bkg = h["SCI"].data.astype(np.float32)
    valid = ((msk & cfg.mask.bitmask) == 0) & (wgt > 0) & np.isfinite(sci)
    sub = sci - bkg
    sigma = noise_sigma(sub, valid)
    mx, spread = bin_sharpness(sub, valid, cfg.downsample.factor, sigma, cfg.downsample.edge)
    row = [r for r in features(store) if r["expnum"] == E1 and r["ccdnum"] == 2][0]
    assert row["noise_sigma"] == pytest.approx(sigma, rel=1e-6)
    assert row["noise_sigma"] == pytest.approx(10.0, rel=0.05)  # the archive's noise (desarchive.make_planes)
    got_max, got_spread = decode_ndarray(row["max_sn"]), decode_ndarray(row["spread_sn"])
    assert got_max.dtype == got_spread.dtype == np.float16 and got_max.shape == got_spread.shape == (32, 16)
    np.testing.assert_allclose(got_max.astype(float), mx, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(got_spread.astype(float), spread, rtol=1e-3, atol=1e-3)
    sharp = bin_laplacian_max(sub, valid, cfg.downsample.factor, sigma, cfg.downsample.edge)
    np.testing.assert_allclose(decode_ndarray(row["sharp_sn"]).astype(float), sharp, rtol=1e-3, atol=1e-3)
    # the planted 5x5 "star" (+500 = 50 sigma at rows/cols 83-87 / 40-44) is the brightest bin
    assert np.unravel_index(np.argmax(got_max), got_max.shape) == (85 // 8, 42 // 8) and got_max.max() > 40
    assert np.median(got_spread.astype(float)) == pytest.approx(1.0, abs=0.15)
    # every stored row has finite channels; Petastorm decodes them with the Unischema
    for r in features(store):
        for c in ("max_sn", "spread_sn", "sharp_sn"):
            assert np.isfinite(decode_ndarray(r[c]).astype(np.float32)).all()
        assert r["noise_sigma"] > 0
    with open_reader(
        store,
        schema_fields=["expnum", "ccdnum", "max_sn", "spread_sn", "noise_sigma"],
        num_epochs=1,
        workers_count=1,
        shuffle_row_groups=False,
    ) as rd:
        got = {(int(x.expnum), int(x.ccdnum)): x for x in rd}
    assert len(got) == s["stored"]
    x = got[(E1, 2)]
    assert x.max_sn.dtype == np.float16 and x.max_sn.shape == (32, 16)
    np.testing.assert_array_equal(x.max_sn, got_max)
    np.testing.assert_array_equal(x.spread_sn, got_spread)


def test_labels_and_metadata_in_rows(first_run):
    store, _ = first_run
    rows = {(r["expnum"], r["ccdnum"]): r for r in features(store)}
    sat = rows[(E1, 1)]
    mh = decode_vector(sat["multi_hot"])
    assert sat["label"] == 1 and sat["inspected"] and mh.sum() == 2
    assert CLASSES[sat["primary_class"]] == "Satellite"
    assert list(decode_vector(sat["report_row"])) == [100, 120, 10]
    assert list(decode_vector(sat["report_brow"])) == [100 // 8, 120 // 8, 10 // 8]
    assert rows[(E1, 2)]["label"] == 0 and rows[(E1, 2)]["inspected"]
    fp = rows[(E1, 3)]
    assert fp["label"] == 0 and fp["has_false_positive"] and decode_vector(fp["multi_hot"]).sum() == 0
    assert rows[(E2, 2)]["label"] == -1 and not rows[(E2, 2)]["inspected"]
    g = rows[(E3, 1)]
    assert g["bkg_source"] == "estimated" and g["band"] == "g" and g["nite"] == 20131116
    for r in rows.values():
        img = decode_ndarray(r["image"])
        assert np.isfinite(img.astype(np.float32)).all()


def test_petastorm_sharded_read_into_tensorflow(first_run):
    """make_reader with cur_shard/shard_count -> make_petastorm_dataset -> batches in TF."""
    from artifactspark.models.tfdata import open_reader

    store, s = first_run
    url = "file://" + os.path.abspath(os.path.join(store, "features"))  # the features folder works too
    seen = []
    for shard in range(2):
        with open_reader(
            store,
            schema_fields=["expnum", "ccdnum", "image", "label"],
            cur_shard=shard,
            shard_count=2,
            num_epochs=1,
            workers_count=1,
            shuffle_row_groups=False,
        ) as r:
            seen.append({(int(x.expnum), int(x.ccdnum)) for x in r})
    assert seen[0] and seen[1] and not (seen[0] & seen[1])
    assert len(seen[0] | seen[1]) == s["stored"]
    from artifactspark.models.tfdata import store_dataset

    with store_dataset(url, ["image", "mask_frac", "label"], workers_count=1) as ds:
        batches = list(ds.batch(4))
    n = sum(int(b.image.shape[0]) for b in batches)
    assert n == s["stored"]
    b = batches[0]
    assert tuple(b.image.shape[1:]) == (32, 16) and b.image.dtype.name == "float16"
    assert set(int(v) for bb in batches for v in bb.label.numpy()) <= {-1, 0, 1}


def test_data_engineer_reads_with_pyarrow_and_duckdb(first_run):
    import duckdb
    import pyarrow.dataset as ds

    store, _ = first_run
    v = open_version(store)  # the current version: what the README shows
    d = v.arrow_dataset()
    g = d.to_table(filter=ds.field("band") == "g", columns=["expnum", "ccdnum", "nite", "image"])
    assert g.num_rows == 1 and g["expnum"][0].as_py() == E3 and g["nite"][0].as_py() == 20131116
    img = decode_ndarray(g["image"][0].as_py())
    assert img.shape == (32, 16) and np.isfinite(img.astype(np.float32)).all()
    rows = duckdb.sql(
        f"SELECT band, nite, count(*) AS n, sum(CASE WHEN label = 1 THEN 1 ELSE 0 END) AS flagged "
        f"FROM {v.duckdb_source()} "
        f"WHERE nite BETWEEN 20131115 AND 20131115 GROUP BY ALL ORDER BY band"
    ).fetchall()
    assert rows == [("r", 20131115, 6, 1)]
    q = duckdb.sql(
        f"SELECT reason, count(*) FROM read_parquet('{v.table_uri('quarantine')[7:]}/*.parquet') "
        "GROUP BY reason ORDER BY reason"
    ).fetchall()
    assert dict(q)["orphan_bkg"] == 1 and sum(n for _, n in q) == 12


def test_rerun_is_a_noop_then_changes_are_incremental(spark, first_run, archive):
    store, s1 = first_run
    cfg = load_config(archive["conf"])
    before = snapshot(store)
    files_before = sorted(os.path.relpath(os.path.join(d, f), store) for d, _, fs in os.walk(store) for f in fs)
    s2 = run_preprocess(spark, [archive["root"]], store, cfg)  # labels reused from the store
    assert (s2["inputs"], s2["stored"], s2["quarantined"], s2["skipped"]) == (s1["inputs"], 0, 0, s1["inputs"])
    assert snapshot(store) == before
    files_after = sorted(os.path.relpath(os.path.join(d, f), store) for d, _, fs in os.walk(store) for f in fs)
    assert files_after == files_before

    # change one CCD's pixels: only it is processed again, its row replaced, nothing duplicated
    write_pair(archive["root"], E2, 2, seed=999)
    s3 = run_preprocess(spark, [archive["root"]], store, cfg)
    assert (s3["stored"], s3["quarantined"], s3["skipped"]) == (1, 0, s1["inputs"] - 1)
    after = snapshot(store)
    assert len(after[0]) == len(before[0])
    changed = [a for a, b in zip(after[0], before[0]) if a != b]
    assert [(c[0], c[1]) for c in changed] == [(E2, 2)]
    # the partition the change did not touch (band g) keeps its very files
    g_files = sorted(f for f in files_before if "band=g" in f)
    assert (
        sorted(
            f
            for f in (os.path.relpath(os.path.join(d, f), store) for d, _, fs in os.walk(store) for f in fs)
            if "band=g" in f
        )
        == g_files
    )

    # the only CCD of partition band=g goes bad: its row and the emptied partition disappear
    g_path = [p for p in archive["expected"] if f"D00{E3}" in p][0]
    original = open(g_path, "rb").read()
    open(g_path, "wb").write(b"SIMPLE  =  garbage")
    try:
        s35 = run_preprocess(spark, [archive["root"]], store, cfg)
    finally:
        open(g_path, "wb").write(original)  # the archive is shared with later tests
    assert (s35["stored"], s35["quarantined"], s35["skipped"]) == (0, 1, s1["inputs"] - 1)
    assert not [p for p in open_version(store).partitions if p.startswith("band=g")]
    assert len(features(store)) == s1["stored"] - 1
    assert _uri(g_path) in {r["path"] for r in table(store, "quarantine")}

    # a changed config rebuilds every row (the band-g CCD is readable again)
    cfg2 = config_from_dict({**_toml(archive["conf"]), "stretch": {"softening": 0.5}})
    s4 = run_preprocess(spark, [archive["root"]], store, cfg2)
    assert s4["rebuild"] and s4["stored"] == s1["stored"] and s4["skipped"] == 0
    rows = features(store)
    assert len(rows) == s1["stored"] and {r["config_hash"] for r in rows} == {cfg2.config_hash}
    assert json.load(open(os.path.join(store, "_store.json")))["config_hash"] == cfg2.config_hash


def _toml(path):
    import tomllib

    return tomllib.loads(open(path).read())


def test_missing_input_root_is_a_clear_error(spark, tmp_path, small_cfg):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_preprocess(spark, [str(tmp_path / "nowhere")], str(tmp_path / "s"), small_cfg[1])


def test_interrupted_commit_is_rolled_forward(spark, archive, tmp_path, monkeypatch):
    from artifactspark.io import fs as fsmod

    cfg = load_config(archive["conf"])
    clean = str(tmp_path / "clean")
    run_preprocess(spark, [archive["root"]], clean, cfg, [archive["labels"]])
    broken = str(tmp_path / "broken")
    calls = {"n": 0}
    real = fsmod.HadoopFS.rename

    def failing_rename(self, src, dst):
        if os.path.exists(os.path.join(broken, "_journal.json")):  # a rename of the commit
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("simulated kill during commit")
        return real(self, src, dst)

    monkeypatch.setattr(fsmod.HadoopFS, "rename", failing_rename)
    with pytest.raises(KeyboardInterrupt):
        run_preprocess(spark, [archive["root"]], broken, cfg, [archive["labels"]])
    monkeypatch.setattr(fsmod.HadoopFS, "rename", real)
    assert os.path.exists(os.path.join(broken, "_journal.json"))
    with pytest.raises(StoreError, match="holds no feature dataset yet"):  # nothing visible
        open_version(broken)
    s = run_preprocess(spark, [archive["root"]], broken, cfg, [archive["labels"]])
    assert not os.path.exists(os.path.join(broken, "_journal.json"))
    assert not os.listdir(os.path.join(broken, "_staging"))
    assert s["stored"] == 0 and s["skipped"] == s["inputs"]
    assert snapshot(broken) == snapshot(clean)


@pytest.mark.timeout(600)
def test_killed_run_leaves_nothing_visible_and_rerun_matches_clean(archive, tmp_path):
    """SIGKILL the job while it processes; the next run gives exactly the clean store."""
    store = str(tmp_path / "store")
    cmd = [
        sys.executable,
        str(ROOT / "jobs" / "preprocess.py"),
        "--input",
        archive["root"],
        "--labels",
        archive["labels"],
        "--output",
        store,
        "--config",
        archive["conf"],
        "--master",
        "local[1]",
    ]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    staging = os.path.join(store, "_staging")
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if os.path.isdir(staging) and any(
            os.path.isdir(os.path.join(staging, d, "results")) for d in os.listdir(staging)
        ):
            break
        time.sleep(0.05)
    assert p.poll() is None, "the job ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not os.path.exists(os.path.join(store, "features"))  # nothing published
    assert not os.path.exists(os.path.join(store, "manifest"))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["stored"] == sum(v == "stored" for v in archive["expected"].values())
    assert not os.listdir(os.path.join(store, "_staging"))
    rows = features(store)
    assert len(rows) == summary["stored"] and len({(r["expnum"], r["ccdnum"]) for r in rows}) == len(rows)


def test_cli_bad_config_exit_code(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[downsample]\nfactor = -1\n")
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "preprocess.py"),
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "s"),
            "--config",
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "[downsample] factor = -1" in out.stderr and "Traceback" not in out.stderr


def test_one_writer_at_a_time(spark, archive, tmp_path):
    import socket

    from artifactspark.errors import StoreError

    cfg = load_config(archive["conf"])
    store = tmp_path / "locked"
    store.mkdir()
    lock = store / "_lock.json"
    for holder in (
        {"run_id": "r1", "host": "another-host", "pid": os.getpid()},
        {"run_id": "r2", "host": socket.gethostname(), "pid": os.getppid()},
    ):
        lock.write_text(json.dumps(holder))
        with pytest.raises(StoreError, match=f"being written by run {holder['run_id']}"):
            run_preprocess(spark, [archive["root"]], str(store), cfg)
        assert lock.exists()  # somebody else's lock is left alone
    # a lock whose process is gone (a killed run on this host) is taken over
    lock.write_text(json.dumps({"run_id": "dead", "host": socket.gethostname(), "pid": 2**22 + 12345}))
    s = run_preprocess(spark, [archive["root"]], str(store), cfg)
    assert s["stored"] == sum(v == "stored" for v in archive["expected"].values())
    assert not lock.exists()


def test_new_attempt_replacing_a_vanished_file_leaves_one_row(spark, tmp_path, small_cfg):
    """Run 1 stores attempt p01; before run 2 p01 disappears and p02 arrives: one row, p01 'replaced'."""
    root = str(tmp_path / "a")
    old, _ = write_pair(root, 400001, 5, att=1)
    write_pair(root, 400001, 6, att=1)
    store = str(tmp_path / "s")
    cfg = small_cfg[1]
    assert run_preprocess(spark, [root], store, cfg)["stored"] == 2
    shutil.rmtree(os.path.dirname(os.path.dirname(os.path.dirname(old))))  # the whole p01 tree
    write_pair(root, 400001, 5, att=2, seed=5)
    s = run_preprocess(spark, [root], store, cfg)
    assert (s["inputs"], s["stored"], s["replaced"]) == (1, 1, 1)
    rows = features(store)
    assert sorted((r["ccdnum"], r["attnum"]) for r in rows) == [(5, 2), (6, 1)]
    man = {r["path"]: r for r in table(store, "manifest")}
    assert man[_uri(old)]["status"] == "replaced" and "row replaced by" in man[_uri(old)]["detail"]


def test_feature_version_bump_rebuilds_an_old_store(spark, tmp_path, small_cfg, monkeypatch):
    """A store written before FEATURE_VERSION 2 (its config hash, rows without max_sn / spread_sn /
    noise_sigma) is rebuilt row by row by the next run, even though no input changed."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq
    from storelayout import to_old_layout

    from artifactspark import config as config_mod

    root = str(tmp_path / "a")
    write_pair(root, 400001, 5)
    write_pair(root, 400001, 6)
    store = str(tmp_path / "s")
    cfg = small_cfg[1]
    assert run_preprocess(spark, [root], store, cfg)["stored"] == 2
    to_old_layout(store)  # that release's layout too (no versions): the next run upgrades it in place
    with monkeypatch.context() as m:  # the same config under the previous feature version
        m.setattr(config_mod, "FEATURE_VERSION", config_mod.FEATURE_VERSION - 1)
        old_hash = cfg.config_hash
    assert old_hash != cfg.config_hash

    # turn the store into one the previous version wrote
    def drop_crc(path):  # Hadoop's checksum of the old bytes (a missing one is not checked)
        crc = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".crc")
        if os.path.exists(crc):
            os.unlink(crc)

    def rewrite(path, fn):
        t = fn(pq.ParquetFile(path).read())
        i = t.column_names.index("config_hash")
        pq.write_table(t.set_column(i, "config_hash", pa.array([old_hash] * t.num_rows, pa.string())), path)
        drop_crc(path)

    new_cols = ["max_sn", "spread_sn", "noise_sigma"]
    n_files = 0
    for sub, fn in (("features", lambda t: t.drop(new_cols)), ("manifest", lambda t: t)):
        for d, _, fs in os.walk(os.path.join(store, sub)):
            for f in fs:
                if f.endswith(".parquet"):
                    rewrite(os.path.join(d, f), fn)
                    n_files += 1
    assert n_files >= 2
    meta_path = os.path.join(store, "_store.json")
    meta = json.load(open(meta_path))
    meta["config_hash"] = old_hash
    open(meta_path, "w").write(json.dumps(meta))
    drop_crc(meta_path)
    old_rows = pads.dataset(os.path.join(store, "features"), partitioning="hive").to_table().to_pylist()
    assert len(old_rows) == 2 and all("max_sn" not in r and r["config_hash"] == old_hash for r in old_rows)

    s = run_preprocess(spark, [root], store, cfg)
    assert s["rebuild"] and (s["inputs"], s["stored"], s["skipped"]) == (2, 2, 0)
    rows = features(store)
    assert len(rows) == 2 and {r["config_hash"] for r in rows} == {cfg.config_hash}
    for r in rows:
        assert decode_ndarray(r["max_sn"]).shape == decode_ndarray(r["spread_sn"]).shape == (32, 16)
        assert r["noise_sigma"] == pytest.approx(10.0, rel=0.05)
    assert json.load(open(meta_path))["config_hash"] == cfg.config_hash
    assert {r["config_hash"] for r in table(store, "manifest")} == {cfg.config_hash}
    s2 = run_preprocess(spark, [root], store, cfg)  # rebuilt once, then up to date
    assert not s2["rebuild"] and (s2["stored"], s2["skipped"]) == (0, 2)
