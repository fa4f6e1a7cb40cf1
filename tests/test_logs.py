"""The quiet console (artifactspark.logs): what a person sees, what goes to the job's log file."""

import logging
import os

import pytest

from artifactspark import logs


def _record(name, level, **extra):
    r = logging.LogRecord(name, level, __file__, 1, "message", None, None)
    r.__dict__.update(extra)
    return r


@pytest.mark.parametrize(
    ("name", "level", "extra", "shown"),
    [
        ("artifactspark.progress", logging.INFO, logs.PROGRESS, True),  # progress lines
        ("artifactspark.models.cnn", logging.INFO, {}, False),  # details: the log file only
        ("artifactspark.features.store", logging.WARNING, {}, True),  # a warning that needs a person
        ("py.warnings", logging.WARNING, {}, False),  # a library's deprecation warning
        ("py4j", logging.ERROR, {}, True),  # anybody's error
        ("artifactspark.cli", logging.ERROR, logs.FILE_ONLY, False),  # a traceback the console summarises
    ],
)
def test_the_quiet_console_shows_progress_warnings_and_errors(name, level, extra, shown):
    assert logs._ConsoleFilter().filter(_record(name, level, **extra)) is shown


def test_progress_lines_read_plainly_and_warnings_say_what_they_are():
    f = logs._ConsoleFormatter("%(message)s")
    assert f.format(_record("artifactspark.progress", logging.INFO, **logs.PROGRESS)) == "message"
    assert f.format(_record("artifactspark.features.store", logging.WARNING)) == (
        "WARNING artifactspark.features.store: message"
    )


def test_a_jobs_log_file_is_under_its_local_output_folder(tmp_path):
    p = logs.job_log_path(str(tmp_path / "store"), "preprocess")
    assert os.path.dirname(p) == str(tmp_path / "store" / "_logs")
    assert os.path.basename(p).startswith("preprocess-") and p.endswith(".log")
    assert logs.job_log_path(f"file://{tmp_path}/store", "infer").startswith(str(tmp_path / "store" / "_logs"))
    remote = logs.job_log_path("hdfs://nn/des/store", "preprocess")
    assert not remote.startswith("hdfs") and "_logs" in remote


def test_log_file_gets_the_details_while_the_job_runs(tmp_path):
    path = str(tmp_path / "out" / "_logs" / "x.log")
    log = logging.getLogger("artifactspark.test_logs")
    old = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        with logs.log_file(path):
            assert logs.current_log_file() == path
            log.info("a detail")
            print("printed by a library", file=logs.LogWriter(log))
        log.info("after the job")
    finally:
        logging.getLogger().setLevel(old)
    assert logs.current_log_file() is None
    text = open(path).read()
    assert "a detail" in text and "printed by a library" in text and "after the job" not in text


def test_native_stderr_goes_to_the_log_file(tmp_path, monkeypatch):
    monkeypatch.delenv("ARTIFACTSPARK_LOG", raising=False)
    path = str(tmp_path / "x.log")
    with logs.log_file(path), logs.native_stderr_to_log():
        os.write(2, b"I0000 a C++ start-up line\n")
    assert "a C++ start-up line" in open(path).read()


def test_a_jvm_started_from_plain_python_gets_the_local_profiles_driver_memory(spark):
    """Not Spark's 1 GB default: in local mode the executors are the driver's JVM, and an
    incremental preprocess into a 3255-CCD store ran out of heap with 1 GB (benchmarks/RESULTS.md)."""
    from artifactspark.spark import local_driver_memory

    assert local_driver_memory() == "4g"  # conf/spark/local.conf
    if "--driver-memory" not in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        assert spark.sparkContext.getConf().get("spark.driver.memory") == "4g"
        max_heap = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()
        assert max_heap > 2 * 1024**3, max_heap
