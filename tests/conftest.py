import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(ROOT / "jobs"))  # the jobs' main() are called in-process too

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cluster: starts a real Spark standalone cluster on 127.0.0.1 (slow; select with -m cluster)",
    )


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the in-process integration tests."""
    from artifactspark.spark import get_spark

    s = get_spark(
        "artifactspark-tests",
        master="local[2]",
        conf={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1"},
    )
    yield s
    s.stop()


@pytest.fixture
def small_cfg(tmp_path):
    """Pipeline config for the small test CCDs, as a file and as the loaded object."""
    from desarchive import SMALL_CONF

    from artifactspark.config import load_config

    p = tmp_path / "small.toml"
    p.write_text(SMALL_CONF)
    return p, load_config(p)


# ------------------------------------------------------------------------------ trained toy models
@pytest.fixture(scope="session")
def toy(spark, tmp_path_factory):
    """A separable toy archive (tests/toystore.py) preprocessed into a labelled store."""
    from toystore import TOY_CONF, build_toy

    from artifactspark.config import load_config
    from artifactspark.features.preprocess import run_preprocess

    d = tmp_path_factory.mktemp("toy")
    conf = d / "toy.toml"
    conf.write_text(TOY_CONF)
    cfg = load_config(conf)
    kinds = build_toy(str(d / "archive"))
    s = run_preprocess(spark, [str(d / "archive")], str(d / "store"), cfg, [str(d / "archive" / "labels.json")])
    assert s["stored"] == len(kinds)
    return {"dir": d, "conf": str(conf), "cfg": cfg, "store": str(d / "store"), "kinds": kinds}


@pytest.fixture(scope="session")
def trained(spark, toy):
    """CNN binary + multiclass + multilabel (the default network) + SVM binary, on the same split,
    through the jobs' main()."""
    import train_cnn
    import train_svm

    out = {}
    for name, mod, args in (
        ("cnn_binary", train_cnn, ["--problem", "binary"]),
        ("cnn_multiclass", train_cnn, ["--problem", "multiclass"]),
        ("cnn_multilabel", train_cnn, ["--problem", "multilabel"]),
        ("svm_binary", train_svm, ["--problem", "binary", "--kernel", "linear"]),
    ):
        md = str(toy["dir"] / name)
        extra = ["--split", str(toy["dir"] / "cnn_binary" / "model.json")] if name != "cnn_binary" else []
        assert mod.main(["--store", toy["store"], "--model-dir", md, "--config", toy["conf"], *args, *extra]) == 0
        out[name] = md
    return out
