"""Issue 11, items 1 and 3: atomic store versions and hostile store metadata.

Real Spark (local[2]), real Petastorm readers, real files: a reader thread runs across 20+
incremental commits and must only ever see one committed version's rows; an interrupted commit
leaves the previous version current; vacuum keeps the configured versions; an earlier version
reads back by number; model.json records the version trained on. A store whose Unischema pickle
would run a command is refused by every entry point before anything unpickles it."""

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT
from desarchive import SMALL_CONF, write_pair
from storelayout import to_old_layout

from artifactspark.config import load_config
from artifactspark.errors import StoreError, UnsafeStore
from artifactspark.features import versions
from artifactspark.features.preprocess import run_preprocess
from artifactspark.features.store import Store, decode_ndarray, feature_schema
from artifactspark.io.safepickle import check_pickle, pickle_globals

EXPS = {"r": (500001, "20131115"), "g": (500002, "20131116")}
CCDS = (1, 2, 3)
N_COMMITS = 20


def _conf(d, keep=40):
    p = d / f"conf-{keep}.toml"
    p.write_text(SMALL_CONF + f"keep_versions = {keep}\n")
    return load_config(p)


def _rows_arrow(v: versions.StoreVersion) -> frozenset:
    """(expnum, ccdnum, band, nite, sha1 of the decoded image) of every row, through pyarrow."""
    t = v.arrow_dataset().to_table(columns=["expnum", "ccdnum", "band", "nite", "image"]).to_pylist()
    return frozenset(
        (
            r["expnum"],
            r["ccdnum"],
            r["band"],
            int(r["nite"]),
            hashlib.sha1(decode_ndarray(r["image"]).tobytes()).hexdigest(),
        )
        for r in t
    )


def _rows_petastorm(v: versions.StoreVersion) -> frozenset:
    from artifactspark.models.tfdata import open_reader

    with open_reader(
        v, schema_fields=["expnum", "ccdnum", "band", "nite", "image"], workers_count=1, shuffle_row_groups=False
    ) as r:
        return frozenset(
            (int(x.expnum), int(x.ccdnum), str(x.band), int(x.nite), hashlib.sha1(x.image.tobytes()).hexdigest())
            for x in r
        )


def _rows_spark(spark, store, number=None) -> frozenset:
    df = Store(spark, store).read_features(number).select("expnum", "ccdnum", "band", "nite", "image")
    return frozenset(
        (r.expnum, r.ccdnum, r.band, r.nite, hashlib.sha1(decode_ndarray(r.image).tobytes()).hexdigest())
        for r in df.collect()
    )


def _change(root, i):
    """Commit i rewrites one CCD in each band: two partitions change in one commit."""
    for band, (exp, nite) in EXPS.items():
        write_pair(root, exp, CCDS[i % len(CCDS)], band=band, nite=nite, seed=10_000 + i)


@pytest.fixture(scope="module")
def history(spark, tmp_path_factory):
    """A store after 1 + N_COMMITS commits, the rows of each version, and what a reader thread
    saw while the commits happened."""
    d = tmp_path_factory.mktemp("versions")
    root, store = str(d / "archive"), str(d / "store")
    for band, (exp, nite) in EXPS.items():
        for ccd in CCDS:
            write_pair(root, exp, ccd, band=band, nite=nite, seed=exp + ccd)
    cfg = _conf(d)
    assert run_preprocess(spark, [root], store, cfg)["stored"] == 6
    truth = {1: _rows_arrow(versions.open_version(store))}

    seen, errors, stop = [], [], threading.Event()

    def reader():
        k = 0
        while not stop.is_set():
            try:
                v = versions.open_version(store)
                rows = _rows_petastorm(v) if k % 3 == 2 else _rows_arrow(v)
                seen.append((v.number, "petastorm" if k % 3 == 2 else "pyarrow", rows))
            except Exception as e:  # any failure is a finding: reported by the test
                errors.append(repr(e))
            k += 1
            time.sleep(0.02)  # leave the committing driver some of the GIL

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t0 = time.time()
    try:
        for i in range(N_COMMITS):
            _change(root, i)
            s = run_preprocess(spark, [root], store, cfg)
            assert s["stored"] == 2, s
            v = versions.open_version(store)
            assert v.number == i + 2
            truth[v.number] = _rows_arrow(v)
    finally:
        stop.set()
        t.join(timeout=120)
    return {
        "store": store,
        "root": root,
        "dir": d,
        "truth": truth,
        "seen": seen,
        "errors": errors,
        "seconds": time.time() - t0,
    }


def test_reader_across_commits_sees_only_whole_versions(history):
    truth, seen = history["truth"], history["seen"]
    assert len(truth) == N_COMMITS + 1
    assert len(set(truth.values())) == len(truth)  # every commit changed the row set
    assert all(len(rows) == 6 and len({(e, c) for e, c, *_ in rows}) == 6 for rows in truth.values())
    assert not history["errors"], history["errors"][:3]
    for number, how, rows in seen:
        assert rows == truth[number], (number, how)  # exactly one committed version: never a mix
    versions_seen = {n for n, _, _ in seen}
    print(
        f"reader loop: {len(seen)} reads ({sum(h == 'petastorm' for _, h, _ in seen)} Petastorm) of "
        f"{len(versions_seen)} distinct versions across {N_COMMITS} commits in {history['seconds']:.0f} s"
    )
    assert len(versions_seen) >= 5 and any(h == "petastorm" for _, h, _ in seen)


def test_petastorm_reads_are_whole_and_carry_their_own_band_and_nite(history):
    """Two petastorm 0.13.1 races that versions.make_reader closes: a row got another band's night
    (the Reader and its workers list the folders separately; ~half of the reads of a 4-band store),
    and a one-epoch read could end before its first row (~1 in 10 reads of a small store under
    load). 30 reads, 1 to 3 workers, shuffled or not: every one gives every row, with its own
    band and night."""
    store, truth = history["store"], history["truth"]
    want = {(e, c): (b, n) for e, c, b, n, _ in truth[max(truth)]}
    fields = ["expnum", "ccdnum", "band", "nite"]
    for i in range(30):
        v = versions.open_version(store)
        with versions.make_reader(v, schema_fields=fields, workers_count=1 + i % 3, shuffle_row_groups=i % 2 == 0) as r:
            got = {(int(x.expnum), int(x.ccdnum)): (str(x.band), int(x.nite)) for x in r}
        assert got == want, i


def test_unchanged_partitions_are_not_copied(history):
    """A commit writes only the partitions it changed; files are never rewritten in place."""
    store = history["store"]
    v = versions.open_version(store)
    leaves = {p: e["leaf"] for p, e in v.partitions.items()}
    assert set(leaves) == {"band=r/nite=20131115", "band=g/nite=20131116"}
    assert all(leaf == f"c{v.number}p{i}" for i, leaf in enumerate(leaves[p] for p in sorted(leaves)))
    # every version's files are still there and distinct (40 MB-scale stores would hold 21 copies otherwise)
    names = [f for n in range(1, v.number + 1) for f in versions.open_version(store, n).files()]
    assert len(names) == len(set(names))


def test_earlier_version_by_number(spark, history):
    store, truth = history["store"], history["truth"]
    for n in (1, 7, N_COMMITS + 1):
        v = versions.open_version(store, n)
        assert v.number == n and v.meta["config_hash"]
        assert _rows_arrow(v) == truth[n]
        assert _rows_spark(spark, store, n) == truth[n]
    assert _rows_petastorm(versions.open_version(store, 3)) == truth[3]
    with pytest.raises(StoreError, match=r"version 99 .* does not exist: kept versions are \[1, 2"):
        versions.open_version(store, 99)
    # the side tables are versioned with the features: version 1's manifest is version 1's
    m1 = Store(spark, store).read_table("manifest", 1).where("status = 'stored'").count()
    assert m1 == 6


def test_duckdb_source_reads_the_version(history):
    import duckdb

    store, truth = history["store"], history["truth"]
    v = versions.open_version(store, 4)
    rows = duckdb.sql(f"SELECT band, count(*) FROM {v.duckdb_source()} GROUP BY band ORDER BY band").fetchall()
    assert rows == [("g", 3), ("r", 3)]
    keys = duckdb.sql(f"SELECT expnum, ccdnum FROM {v.duckdb_source()}").fetchall()
    assert sorted(keys) == sorted((e, c) for e, c, *_ in truth[4])


def test_interrupted_commit_leaves_the_previous_version_current(spark, history, monkeypatch):
    """Killed after the new partitions were moved into place but before the version record:
    every reader still sees the previous version whole; the next run completes the commit."""
    store, root = history["store"], history["root"]
    cfg = _conf(history["dir"])
    before = versions.open_version(store)
    rows_before = _rows_arrow(before)
    real = Store._write_common_metadata

    def killed(self, record):
        raise KeyboardInterrupt("simulated kill during commit")

    _change(root, 99)
    monkeypatch.setattr(Store, "_write_common_metadata", killed)
    with pytest.raises(KeyboardInterrupt):
        run_preprocess(spark, [root], store, cfg)
    monkeypatch.setattr(Store, "_write_common_metadata", real)
    journal = json.load(open(os.path.join(store, "_journal.json")))
    for p, leaf in journal["new"].items():  # the new files are in place...
        assert os.path.isdir(os.path.join(store, "features", p, f"v={leaf}"))
    now = versions.open_version(store)  # ...and invisible
    assert now.number == before.number
    assert _rows_arrow(now) == rows_before == _rows_petastorm(now) == _rows_spark(spark, store)
    s = run_preprocess(spark, [root], store, cfg)
    assert s["stored"] == 0 and s["skipped"] == 6  # rolled forward, nothing processed again
    after = versions.open_version(store)
    assert after.number == before.number + 1 and not os.path.exists(os.path.join(store, "_journal.json"))
    assert _rows_arrow(after) != rows_before and _rows_petastorm(after) == _rows_arrow(after)
    history["truth"][after.number] = _rows_arrow(after)


def test_vacuum_keeps_the_configured_versions(spark, history):
    import vacuum

    store, truth = history["store"], history["truth"]
    current = versions.open_version(store).number
    assert vacuum.main(["--store", store, "--keep", "0"]) == 2
    assert vacuum.main(["--store", store, "--keep", "3"]) == 0
    kept = versions.list_versions(versions.ArrowFS(store), versions.fsmod.to_uri(store))
    assert kept == [current - 2, current - 1, current]
    with pytest.raises(StoreError, match="kept versions are"):
        versions.open_version(store, 1)
    for n in kept:  # the kept versions still read whole, through every reader
        assert _rows_arrow(versions.open_version(store, n)) == truth[n]
    assert _rows_petastorm(versions.open_version(store, kept[0])) == truth[kept[0]]
    # on disk: exactly the leaves and side-table folders the kept versions refer to
    want = {
        os.path.join("features", p, f"v={e['leaf']}")
        for n in kept
        for p, e in versions.open_version(store, n).partitions.items()
    }
    got = {
        os.path.relpath(d, store)
        for d, _, fs in os.walk(os.path.join(store, "features"))
        if any(f.endswith(".parquet") for f in fs)
    }
    assert got == want
    tables = {t for n in kept for t in versions.open_version(store, n).record["tables"].values()}
    on_disk = {
        f"{t}/{n}"
        for t in ("manifest", "quarantine", "label_reports")
        if os.path.isdir(os.path.join(store, t))
        for n in os.listdir(os.path.join(store, t))
        if n.startswith("v=")
    }
    assert on_disk == tables

    # a commit vacuums by [store] keep_versions
    cfg2 = _conf(history["dir"], keep=2)
    _change(history["root"], 123)
    run_preprocess(spark, [history["root"]], store, cfg2)
    assert versions.list_versions(versions.ArrowFS(store), versions.fsmod.to_uri(store)) == [current, current + 1]


# ---------------------------------------------------------------------------------- model.json
def test_model_json_records_the_store_version(spark, toy, tmp_path):
    import train_svm

    from artifactspark.features.labels import write_reports

    store = str(tmp_path / "store")
    shutil.copytree(toy["store"], store)
    labels = json.load(open(os.path.join(toy["dir"], "archive", "labels.json")))
    dropped = labels[:-6]  # version 2: six CCDs fewer with a volunteer label
    write_reports(dropped, str(tmp_path / "labels2.json"))
    run_preprocess(spark, [str(toy["dir"] / "archive")], store, toy["cfg"], [str(tmp_path / "labels2.json")])
    assert versions.open_version(store).number == 2
    counts = {}
    for n in (1, None):
        md = str(tmp_path / f"svm-{n}")
        args = ["--store", store, "--model-dir", md, "--config", toy["conf"], "--problem", "binary"]
        assert train_svm.main(args + (["--store-version", str(n)] if n else [])) == 0
        meta = json.load(open(os.path.join(md, "model.json")))
        counts[meta["store_version"]] = sum(meta["split_counts"].values())
    assert set(counts) == {1, 2}
    assert counts[1] == len(toy["kinds"]) and counts[2] == len(toy["kinds"]) - 6


# ---------------------------------------------------------------------------------- hostile metadata
SENTINEL_CMD = "touch {path}"


def _getattr_import_chain(cmd: str) -> bytes:
    """petastorm issue #741: builtins.getattr(builtins.__import__('os'), 'system')(cmd), protocol 0."""
    return b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V" + cmd.encode() + b"\ntR."


class _System:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _computed_stack_global(cmd: str) -> bytes:
    """STACK_GLOBAL whose module name is computed (numpy.str_('builtins'), an allowed callable):
    the import it makes cannot be read off constants."""
    import pickletools

    p = (
        b"\x80\x04"
        + b"\x8c\x05numpy\x94\x8c\x04str_\x94\x93\x94"  # numpy.str_
        + b"\x8c\x08builtins\x94\x85\x94R\x94"  # numpy.str_('builtins')
        + b"\x8c\x04eval\x94\x93\x94"  # STACK_GLOBAL(<computed>, 'eval')
        + b"\x8c"
        + bytes([len(f"__import__('os').system('{cmd}')")])
        + f"__import__('os').system('{cmd}')".encode()
        + b"\x94\x85\x94R\x94."
    )
    pickletools.dis(p, out=open(os.devnull, "w"))  # well-formed
    return p


def _tamper(src: str, dst: str, payload: bytes) -> None:
    import pyarrow.parquet as pq

    shutil.copytree(src, dst)
    path = os.path.join(dst, "features", "_common_metadata")
    schema = pq.read_schema(path)
    md = dict(schema.metadata)
    md[versions.UNISCHEMA_KEY] = payload
    pq.write_metadata(schema.with_metadata(md), path)


def _hostile_payloads(sentinel: str) -> dict:
    cmd = SENTINEL_CMD.format(path=sentinel)
    return {
        "getattr_import_chain": (_getattr_import_chain(cmd), "builtins.getattr"),
        "os_system_reduce": (pickle.dumps(_System(cmd)), f"{os.system.__module__}.system"),
        "computed_stack_global": (_computed_stack_global(cmd), "not a plain string constant"),
    }


def test_the_getattr_chain_runs_a_command_in_petastorm_itself(history, tmp_path):
    """The control: petastorm 0.13.1's own (restricted) loader runs the #741 payload, so the
    refusals below are what stands between a hostile store and a shell."""
    sentinel = tmp_path / "pwned"
    bad = str(tmp_path / "bad")
    _tamper(history["store"], bad, _hostile_payloads(str(sentinel))["getattr_import_chain"][0])
    code = f"from petastorm.etl.dataset_metadata import get_schema_from_dataset_url as g; g('file://{bad}/features')"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert sentinel.exists()


@pytest.mark.parametrize("kind", ["getattr_import_chain", "os_system_reduce", "computed_stack_global"])
def test_hostile_store_is_refused_by_every_entry_point(spark, history, tmp_path, kind):
    import query
    import train_cnn

    from artifactspark.models.tfdata import open_reader
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import read_rows, train_config
    from artifactspark.serve.query import register_views

    sentinel = tmp_path / "pwned"
    payload, names = _hostile_payloads(str(sentinel))[kind]
    bad = str(tmp_path / "bad")
    _tamper(history["store"], bad, payload)
    cfg = _conf(tmp_path)
    calls = [
        lambda: versions.open_version(bad),
        lambda: open_reader(bad).__enter__(),
        lambda: read_rows(bad, [500001], ["image"], "binary"),
        lambda: prepare(spark, bad, "binary", cfg, train_config(cfg, {})),
        lambda: register_views(spark, bad),
        lambda: Store(spark, bad).read_features(),
    ]
    for call in calls:
        with pytest.raises(UnsafeStore, match="refused") as e:
            call()
        assert names in str(e.value) and "_common_metadata" in str(e.value)
    conf = tmp_path / "c.toml"
    conf.write_text(SMALL_CONF)
    rc = train_cnn.main(["--store", bad, "--model-dir", str(tmp_path / "m"), "--config", str(conf)])
    assert rc == 4  # EXIT_STORE, with the one-line message
    assert query.main(["--store", bad, "--config", str(conf), "sql", "SELECT 1"]) == 4
    assert not sentinel.exists()


def test_genuine_schema_passes_and_the_allow_list_is_minimal():
    used = set()
    for dtype in ("float16", "float32"):
        for n_classes in (1, 7, 20):
            blob = pickle.dumps(feature_schema((512, 256), n_classes, dtype))
            check_pickle(blob, versions.SCHEMA_GLOBALS)
            used |= set(pickle_globals(blob))
    assert used == set(versions.SCHEMA_GLOBALS)  # nothing on the list that our schema does not use


def test_scanner_refuses_what_it_cannot_read():
    with pytest.raises(UnsafeStore, match="not a well-formed pickle"):
        pickle_globals(b"\x80\x04garbage")
    with pytest.raises(UnsafeStore, match="extension registry"):
        pickle_globals(b"\x80\x02\x82\x01.")  # EXT1 1
    with pytest.raises(UnsafeStore, match="imports builtins.eval"):
        check_pickle(pickle.dumps(eval), versions.SCHEMA_GLOBALS)


def test_store_written_before_versions_is_upgraded_in_place(spark, tmp_path):
    """The old layout (files straight in band=/nite= folders, side tables flat, no _versions):
    readers get a StoreError saying what to do; the next preprocess run makes it version 1,
    moving files, not copying them."""
    root, store = str(tmp_path / "a"), str(tmp_path / "s")
    for ccd in (1, 2):
        write_pair(root, 500001, ccd, band="r", nite="20131115", seed=ccd)
    cfg = _conf(tmp_path)
    run_preprocess(spark, [root], store, cfg)
    v = versions.open_version(store)
    want = _rows_arrow(v)
    to_old_layout(store)
    inodes = {
        f: os.stat(os.path.join(dp, f)).st_ino
        for dp, _, fs in os.walk(os.path.join(store, "features", "band=r"))
        for f in fs
        if f.endswith(".parquet")
    }
    with pytest.raises(StoreError, match="written before versioned stores: run jobs/preprocess.py"):
        versions.open_version(store)
    s = run_preprocess(spark, [root], store, cfg)
    assert s["stored"] == 0 and s["skipped"] == 2
    v = versions.open_version(store)
    assert v.number == 1 and _rows_arrow(v) == want == _rows_petastorm(v)
    moved = {
        f: os.stat(os.path.join(dp, f)).st_ino
        for dp, _, fs in os.walk(os.path.join(store, "features", "band=r"))
        for f in fs
        if f.endswith(".parquet")
    }
    assert moved == inodes  # the same files, moved
    assert Store(spark, store).read_table("manifest").count() == 2


def test_keep_versions_is_validated(tmp_path):
    from artifactspark.config import config_from_dict
    from artifactspark.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[store\] keep_versions must be >= 1"):
        config_from_dict({"store": {"keep_versions": 0}})
    with pytest.raises(ConfigError, match="keep_versions"):
        config_from_dict({"store": {"keep_versions": "many"}})
    assert config_from_dict({}).store.keep_versions == 5
    assert (ROOT / "jobs" / "vacuum.py").exists()


def test_listing_a_deep_store_does_not_deadlock(tmp_path):
    """petastorm's Reader lists with ``metadata_nthreads=10``; pyarrow 14 then waits inside its own
    pool on every level, and a versioned store (band / nite / leaf) of 5 x 2 partitions takes all
    10 threads: the listing hangs. Through ``_OneListing`` it ends, and finds every file."""
    import threading

    import pyarrow as pa
    import pyarrow.parquet as pq

    from artifactspark.features.versions import _OneListing

    for band in "grizY":
        for nite in (20131115, 20131116):
            leaf = tmp_path / f"band={band}" / f"nite={nite}" / "v=c1p0"
            leaf.mkdir(parents=True)
            pq.write_table(pa.table({"expnum": [1, 2]}), leaf / "part-0.parquet")
    got = {}

    def listing():
        got["ds"] = _OneListing(pq).ParquetDataset(  # as petastorm 0.13.1's Reader calls it
            str(tmp_path), validate_schema=False, metadata_nthreads=10, use_legacy_dataset=True
        )

    t = threading.Thread(target=listing, daemon=True)  # a hung listing must not hang the test run
    t.start()
    t.join(60)
    assert not t.is_alive(), "the listing of a 5 x 2 x 1 partition store did not end in 60 s"
    assert len(got["ds"].pieces) == 10


def test_every_petastorm_listing_goes_through_one_listing():
    """Every petastorm module that calls ``ParquetDataset(..., metadata_nthreads=...)`` (the
    threaded listing that hangs on a deep store) has its ``pq`` replaced by ``_OneListing``."""
    import importlib
    import pathlib

    import petastorm

    from artifactspark.features import versions

    versions._share_listing()
    root = pathlib.Path(petastorm.__file__).parent
    threaded = {
        "petastorm." + ".".join(p.relative_to(root).with_suffix("").parts)
        for p in root.rglob("*.py")
        if "metadata_nthreads" in p.read_text() and "tests" not in p.parts
    }
    assert threaded and threaded <= set(versions.PETASTORM_LISTERS), threaded
    for name in versions.PETASTORM_LISTERS:
        assert isinstance(importlib.import_module(name).pq, versions._OneListing), name
