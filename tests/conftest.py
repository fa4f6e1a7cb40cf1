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

    s = get_spark("artifactspark-tests", master="local[2]",
                  conf={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
                        "spark.driver.host": "127.0.0.1"})
    yield s
    s.stop()


@pytest.fixture
def small_cfg(tmp_path):
    """Pipeline config for the small test CCDs, as a file and as the loaded object."""
    from artifactspark.config import load_config
    from desarchive import SMALL_CONF

    p = tmp_path / "small.toml"
    p.write_text(SMALL_CONF)
    return p, load_config(p)
