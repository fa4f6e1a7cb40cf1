"""Logging, set up once per process."""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings

_DONE = False


def setup_logging(level: str | None = None) -> None:
    global _DONE
    if _DONE:
        return
    logging.basicConfig(
        level=(level or os.environ.get("ARTIFACTSPARK_LOG", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # petastorm 0.13 uses pyarrow's legacy dataset API (the reason for the pyarrow 14 pin) and
    # warns about it on every open; the warnings are known and not actionable by a user.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\..*)?")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"petastorm(\..*)?")
    for noisy in ("py4j", "matplotlib", "petastorm", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _DONE = True


def emit_summary(summary: dict) -> None:
    """The job's one machine-readable line on stdout."""
    print(json.dumps(summary, sort_keys=True), flush=True)
