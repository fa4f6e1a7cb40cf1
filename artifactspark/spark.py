"""The one place that builds the SparkSession (and checks Java first)."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys

from .errors import EnvironmentProblem

log = logging.getLogger(__name__)

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


def check_java() -> str:
    """Return the Java version string, or raise a one-line EnvironmentProblem if it is unusable."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java or not os.path.exists(java):
        raise EnvironmentProblem("Java not found: artifactspark needs Java 17 or newer (install a JDK 17 and put java on PATH or set JAVA_HOME)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise EnvironmentProblem(f"cannot tell the Java version from `java -version`: {out.strip()[:200]}")
    major = int(m.group(1)) if m.group(1) != "1" else int(m.group(2))
    if major < 17:
        raise EnvironmentProblem(f"Java {major} found at {java}; artifactspark needs Java 17 or newer")
    return out.splitlines()[0]


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
    if master or not under_submit:
        builder = builder.master(master or os.environ.get("ARTIFACTSPARK_MASTER", "local[*]"))
    for k, v in {**BASE_CONF, **(conf or {})}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("ARTIFACTSPARK_SPARK_LOG", "WARN"))
    log.info("Spark %s, master %s, default parallelism %d", spark.version,
             spark.sparkContext.master, spark.sparkContext.defaultParallelism)
    return spark

