"""What every job's ``main`` shares: logging, config, the SparkSession, the JSON summary, exit codes.

Exit codes: 0 success; 2 bad arguments, config, model or input location; 3 environment problem
(Java, Spark); 4 store problem; 75 another run holds the lock (EX_TEMPFAIL: retry later);
1 anything else.
"""

from __future__ import annotations

import logging
import sys
import time

from .config import load_config
from .errors import ArtifactSparkError, Busy, ConfigError, EnvironmentProblem, LabelError, StoreError
from .logs import FILE_ONLY, PROGRESS, emit_summary, job_log_path, log_file, setup_logging

log = logging.getLogger("artifactspark")

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ENV, EXIT_STORE, EXIT_BUSY = 0, 1, 2, 3, 4, 75


def add_config_master_args(p) -> None:
    """``--config`` and ``--master``: every Spark job takes them."""
    p.add_argument("--config", help="pipeline config TOML (default: conf/pipeline.toml)")
    p.add_argument("--master", help="Spark master when run without spark-submit (default local[*])")


def run_plain(app_name: str, job, usage_errors: tuple = (), output: str | None = None) -> int:
    """Run ``job() -> summary dict`` with logging, one-line errors, exit codes and the JSON
    summary line; ``usage_errors``: further exception types that mean bad input (exit 2).
    The details go to the job's log file under ``output`` (:func:`artifactspark.logs.job_log_path`)."""
    setup_logging()
    t0 = time.time()
    path = job_log_path(output, app_name.removeprefix("artifactspark-"))
    with log_file(path):
        log.info("%s: details in %s", app_name, path, extra=PROGRESS)
        try:
            summary = job()
        except Exception as e:
            # the project's errors and bad input: their one-line message and exit code
            expected = (
                ((ConfigError, LabelError, FileNotFoundError, *usage_errors), EXIT_USAGE),
                (EnvironmentProblem, EXIT_ENV),
                (Busy, EXIT_BUSY),
                (StoreError, EXIT_STORE),
                (ArtifactSparkError, EXIT_FAIL),
            )
            code = next((c for types, c in expected if isinstance(e, types)), None)
            if code is not None:
                print(f"error: {e}", file=sys.stderr)
                return code
            # Spark/Java/IO failures: one line to stderr, the traceback in the log file
            log.error("%s failed", app_name, exc_info=True, extra=FILE_ONLY)
            first = str(e).strip().splitlines()[0][:500] if str(e).strip() else ""
            print(
                f"error: {type(e).__name__}: {first} (the traceback is in {path}; ARTIFACTSPARK_LOG=DEBUG gives more)",
                file=sys.stderr,
            )
            return EXIT_FAIL
    if summary is not None:
        summary.setdefault("seconds", round(time.time() - t0, 2))
        emit_summary(summary)
    return EXIT_OK


def run_job(app_name: str, args, job, spark_conf: dict | None = None, output: str | None = None) -> int:
    """Run ``job(spark, cfg) -> summary dict`` with the config loaded and the SparkSession built;
    return the exit code (see :func:`run_plain`; ``output``: the job's output folder)."""

    def with_spark():
        cfg = load_config(getattr(args, "config", None))
        from .spark import get_spark

        return job(get_spark(app_name, getattr(args, "master", None), spark_conf), cfg)

    return run_plain(app_name, with_spark, output=output)


# ------------------------------------------------------------------------------ the training jobs
def add_train_args(p) -> None:
    """The arguments train_cnn.py and train_svm.py share."""
    p.add_argument("--store", required=True, help="feature store root written by jobs/preprocess.py")
    p.add_argument("--model-dir", required=True, help="folder to write the model, its metadata and predictions into")
    p.add_argument(
        "--store-version",
        type=int,
        metavar="N",
        help="train on version N of the store (default: the current one; model.json records it)",
    )
    p.add_argument(
        "--split", help="reuse a split: a split JSON or another model's model.json (default: made from [train] seed)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a [train] setting, e.g. --set epochs=5 --set augment=false (TOML values)",
    )
    add_config_master_args(p)


def parse_overrides(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as a dict; a value is read as TOML (``5``, ``false``, ``[1, 2]``),
    else kept as a string."""
    import tomllib

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs=5")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out
