"""Logging, set up once per process: a quiet console, a detailed log file per job, the JSON summary.

By default the console (stderr) shows what a person needs: progress lines (records logged with
``extra=PROGRESS``), warnings and errors of artifactspark itself, and errors of anything else.
A job's log file (:func:`log_file`, under its output folder) gets every record at INFO and above,
Python's warnings, and, when the job starts Spark's JVM itself, the JVM's and the Python workers'
output (:mod:`artifactspark.spark`). ``ARTIFACTSPARK_LOG=LEVEL`` shows every record at LEVEL on
the console instead; ``ARTIFACTSPARK_LOG=DEBUG`` also leaves Spark's and TensorFlow's own output
there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import warnings
from urllib.parse import urlparse

#: ``log.info(..., extra=PROGRESS)``: a progress line, shown on the quiet console.
PROGRESS = {"progress": True}
#: ``log.error(..., extra=FILE_ONLY)``: for the log file only (a traceback the console summarises).
FILE_ONLY = {"file_only": True}
#: The folder of the log files inside a job's output folder ("_": Spark, pyarrow and DuckDB skip it).
LOG_DIR = "_logs"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_DONE = False
_FILES: list[str] = []


def requested_level() -> str | None:
    """``$ARTIFACTSPARK_LOG`` (upper case), or None for the quiet default."""
    level = os.environ.get("ARTIFACTSPARK_LOG", "").strip().upper()
    return level or None


def debug() -> bool:
    """Is everything wanted on the console (``ARTIFACTSPARK_LOG=DEBUG``)?"""
    return requested_level() == "DEBUG"


class _ConsoleFilter(logging.Filter):
    """The quiet console: progress lines, artifactspark's warnings, anybody's errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):
            return False
        if getattr(record, "progress", False) or record.levelno >= logging.ERROR:
            return True
        return record.levelno >= logging.WARNING and record.name.split(".")[0] == "artifactspark"


class _ConsoleFormatter(logging.Formatter):
    """Progress lines as they are; warnings and errors with their level and source."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "progress", False) and record.levelno < logging.WARNING:
            return record.getMessage()
        return f"{record.levelname} {record.name}: {super().format(record)}"


def quiet_native_logs() -> None:
    """TensorFlow's C++ logging off (``TF_CPP_MIN_LOG_LEVEL=3``) unless it is set or DEBUG is asked
    for; set before TensorFlow is imported, and inherited by a local Spark's Python workers."""
    if not debug():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def setup_logging(level: str | None = None) -> None:
    """Configure the console once per process (see the module's docstring)."""
    global _DONE
    if _DONE:
        return
    quiet_native_logs()
    requested = (level or requested_level() or "").upper() or None
    console = logging.StreamHandler(sys.stderr)
    if requested:
        console.setFormatter(logging.Formatter(FORMAT))
    else:
        console.addFilter(_ConsoleFilter())
        console.setFormatter(_ConsoleFormatter("%(message)s"))
    # a no-op where logging is configured already (e.g. under pytest), as before
    logging.basicConfig(level=requested or logging.INFO, handlers=[console])
    # Python warnings (library deprecations) go through logging: to the log file, not the console
    logging.captureWarnings(True)
    # petastorm 0.13 uses pyarrow's legacy dataset API (the reason for the pyarrow 14 pin) and
    # warns about it on every open; the warnings are known and not actionable by a user.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\..*)?")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"petastorm(\..*)?")
    for noisy in ("py4j", "matplotlib", "petastorm", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _DONE = True


def job_log_path(output: str | None, job: str) -> str:
    """Where a job's log file goes: ``OUTPUT/_logs/JOB-<UTC time>.log`` for a local output folder,
    the same under the system's temporary folder for a remote one (``hdfs://``, ``s3a://``) or none."""
    u = urlparse(output or "")
    folder = u.path if output and u.scheme in ("", "file") else os.path.join(tempfile.gettempdir(), "artifactspark")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return os.path.join(folder, LOG_DIR, f"{job}-{stamp}-{os.getpid()}.log")


@contextlib.contextmanager
def log_file(path: str | None):
    """Every record at INFO and above (DEBUG when asked for) also goes to ``path`` inside the block."""
    if path is None:
        yield None
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.DEBUG if debug() else logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    _FILES.append(path)
    try:
        yield path
    finally:
        _FILES.remove(path)
        root.removeHandler(handler)
        handler.close()


def current_log_file() -> str | None:
    """The log file of the job running in this process, if any."""
    return _FILES[-1] if _FILES else None


@contextlib.contextmanager
def native_stderr_to_log():
    """While the block runs, what C/C++ code writes to stderr (file descriptor 2) goes to the job's
    log file, or nowhere where there is none (a Spark worker); ``ARTIFACTSPARK_LOG=DEBUG``: untouched."""
    if debug():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(current_log_file() or os.devnull, "ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """``import tensorflow`` without its C++ start-up lines on the console (oneDNN notes, printed
    before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``): they go to the log (see above)."""
    if "tensorflow" not in sys.modules:
        with native_stderr_to_log():
            import tensorflow  # noqa: F401
    return sys.modules["tensorflow"]


class LogWriter:
    """A file-like object whose lines become log records (for libraries that print)."""

    def __init__(self, logger: logging.Logger, level: int = logging.INFO):
        self.logger, self.level, self._buf = logger, level, ""

    def write(self, text: str) -> int:
        """Log each complete line of ``text``."""
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self.logger.log(self.level, line)
        return len(text)

    def flush(self) -> None:
        """Log a pending partial line."""
        if self._buf.strip():
            self.logger.log(self.level, self._buf)
        self._buf = ""


def emit_summary(summary: dict) -> None:
    """The job's one machine-readable line on stdout."""
    print(json.dumps(summary, sort_keys=True), flush=True)
