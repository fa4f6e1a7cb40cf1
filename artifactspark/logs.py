"""Logging, set up once per process."""
from __future__ import annotations

import json
import logging
import os
import sys

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
    for noisy in ("py4j", "matplotlib", "petastorm", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _DONE = True


def emit_summary(summary: dict) -> None:
    """The job's one machine-readable line on stdout."""
    print(json.dumps(summary, sort_keys=True), flush=True)
