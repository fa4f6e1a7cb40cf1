"""The one place that builds the SparkSession (and checks Java first)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys

from .config import DEFAULT_CONFIG_PATH
from .errors import EnvironmentProblem
from .logs import current_log_file, debug

log = logging.getLogger(__name__)

#: Spark's JVM log settings (WARN; known-harmless warnings off): passed to log4j2 through
#: ``LOG4J_CONFIGURATION_FILE`` (here and in submit.sh), which also keeps Spark from printing
#: "Using Spark's default log4j profile".
LOG4J_CONF = DEFAULT_CONFIG_PATH.parent / "log4j2.properties"

#: Settings every job needs, whatever the profile (profile files in conf/spark/ add to them).
BASE_CONF = {
    # Python workers are reused across tasks so that imports (numpy, fitsio, TF) happen once.
    "spark.python.worker.reuse": "true",
    # pyspark 4.x needs pyarrow >= 18 for every Arrow path (mapInArrow, pandas UDFs, toPandas),
    # but petastorm pins pyarrow 14: Arrow transfer stays off; Python <-> JVM data goes pickled.
    "spark.sql.execution.arrow.pyspark.enabled": "false",
    # Image rows are ~0.5 MB each: keep Arrow batches small so no batch nears Arrow's 2 GB limit.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "64",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.ui.showConsoleProgress": "false",
}


def quiet_conf() -> dict:
    """Settings that keep the executors' Python workers quiet, unless ``ARTIFACTSPARK_LOG=DEBUG``:
    TensorFlow's C++ logging as in the driver (``TF_CPP_MIN_LOG_LEVEL``), and no FutureWarning of
    petastorm's use of pyarrow's legacy filesystem (the reason for the pyarrow pin, see setup.cfg)."""
    if debug():
        return {}
    out = {
        "spark.executorEnv.PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore::FutureWarning:petastorm.fs_utils")
    }
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") is not None:
        out["spark.executorEnv.TF_CPP_MIN_LOG_LEVEL"] = os.environ["TF_CPP_MIN_LOG_LEVEL"]
    return out


@contextlib.contextmanager
def _jvm_env(master: str):
    """While this process starts Spark's JVM: Spark's log settings and, for a local master, the
    loopback address (no "hostname resolves to a loopback address" warning). Set for the JVM
    only: this process's environment is restored after (other JVMs it starts keep theirs)."""
    env = {}
    if not debug():
        if LOG4J_CONF.is_file():
            env["LOG4J_CONFIGURATION_FILE"] = str(LOG4J_CONF)
        if master.startswith("local"):
            env["SPARK_LOCAL_IP"] = "127.0.0.1"
    env = {k: v for k, v in env.items() if k not in os.environ}
    os.environ.update(env)
    try:
        yield
    finally:
        for k in env:
            os.environ.pop(k, None)


def _launch_jvm(settings: dict, log_path: str) -> None:
    """Start Spark's JVM (as ``SparkSession.builder`` would, with the same settings) with its stderr
    in the job's log file: the JVM's own warnings, log4j's console and the Python workers' output."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    with open(log_path, "ab") as f:
        gateway = launch_gateway(
            SparkConf(loadDefaults=False).setAll(list(settings.items())), popen_kwargs={"stderr": f}
        )
    SparkContext._ensure_initialized(gateway=gateway)


def check_java() -> str:
    """Return the Java version string, or raise a one-line EnvironmentProblem if it is unusable."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java or not os.path.exists(java):
        raise EnvironmentProblem(
            "Java not found: artifactspark needs Java 17 or newer "
            "(install a JDK 17 and put java on PATH or set JAVA_HOME)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise EnvironmentProblem(f"cannot tell the Java version from `java -version`: {out.strip()[:200]}")
    major = int(m.group(1)) if m.group(1) != "1" else int(m.group(2))
    if major < 17:
        raise EnvironmentProblem(f"Java {major} found at {java}; artifactspark needs Java 17 or newer")
    return out.splitlines()[0]


def local_driver_memory() -> str:
    """``spark.driver.memory`` of the local profile (conf/spark/local.conf), for a JVM that plain
    Python starts (``spark-submit`` reads the profile itself); 4g if the file does not say."""
    path = DEFAULT_CONFIG_PATH.parent / "spark" / "local.conf"
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "spark.driver.memory":
                return parts[1]
    return "4g"


def get_spark(app_name: str = "artifactspark", master: str | None = None, conf: dict | None = None):
    """Build (or return the running) SparkSession.

    Under ``spark-submit`` the master and profile settings come from the command line and
    ``--properties-file``; run as plain Python, the master defaults to ``local[*]`` (or
    ``$ARTIFACTSPARK_MASTER``).
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    check_java()
    # Executors' Python must be the driver's (the venv with numpy, fitsio, petastorm, ...)
    # unless the caller chose another one.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    # spark-submit starts the JVM first and hands its gateway to this process: the master and
    # the profile's settings are already in force there.
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    settings = {**BASE_CONF, **quiet_conf(), **(conf or {}), "spark.app.name": app_name}
    if master or not under_submit:
        settings["spark.master"] = master or os.environ.get("ARTIFACTSPARK_MASTER", "local[*]")
        builder = builder.master(settings["spark.master"])
    if not under_submit and "--driver-memory" not in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        # The JVM starts here: without this it gets Spark's 1 GB default, in which (local mode:
        # the executors are that JVM) an incremental preprocess of 630 CCDs into a 3255-CCD
        # store ran out of heap while reading the stored rows back.
        settings.setdefault("spark.driver.memory", local_driver_memory())
    for k, v in settings.items():
        builder = builder.config(k, v)
    if under_submit:
        spark = builder.getOrCreate()
    else:
        from pyspark import SparkContext

        with _jvm_env(settings["spark.master"]):
            if SparkContext._gateway is None and current_log_file() and not debug():
                _launch_jvm(settings, current_log_file())
            spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("ARTIFACTSPARK_SPARK_LOG", "INFO" if debug() else "WARN"))
    log.info(
        "Spark %s, master %s, default parallelism %d",
        spark.version,
        spark.sparkContext.master,
        spark.sparkContext.defaultParallelism,
    )
    return spark


@contextlib.contextmanager
def scoped_conf(spark, settings: dict):
    """Session settings in force inside the block only (restored after, also on error). A scan's
    split settings are read when its RDD is built: build it (``df.rdd``, an action) inside."""
    old = {k: spark.conf.get(k, None) for k in settings}
    try:
        for k, v in settings.items():
            spark.conf.set(k, str(v))
        yield
    finally:
        for k, v in old.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)
