"""A scheduled full-archive re-scan: incremental preprocess, then incremental inference.

Safe to run from cron or a workflow scheduler: one rescan per store at a time
(``STORE/_rescan_lock.json``; a second one exits with 75 = EX_TEMPFAIL without touching
anything), and both steps are incremental, so unchanged inputs are neither re-read nor
re-scored. Each step takes its own store / table lock as well.
"""

from __future__ import annotations

import logging
import time
import uuid

from ..config import PipelineConfig
from ..errors import Busy
from ..features.preprocess import run_preprocess
from ..features.store import Store
from ..logs import PROGRESS, emit_summary
from .infer import run_infer

log = logging.getLogger(__name__)

RESCAN_LOCK = "_rescan_lock.json"


def run_rescan(
    spark,
    inputs: list[str],
    label_paths: list[str],
    store_uri: str,
    model_dirs: list[str],
    output_uri: str,
    cfg: PipelineConfig,
) -> dict:
    """Preprocess ``inputs`` into the store, then score it with each model; the job summary."""
    t0 = time.time()
    store = Store(spark, store_uri)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    with store.lock(run_id, RESCAN_LOCK):
        log.info(
            "rescan %s: [1/%d] preprocess %s -> %s", run_id, 1 + len(model_dirs), inputs, store.uri, extra=PROGRESS
        )
        pre = run_preprocess(spark, inputs, store_uri, cfg, label_paths)
        inf = []
        for i, m in enumerate(model_dirs, 2):
            log.info("rescan %s: [%d/%d] infer with %s", run_id, i, 1 + len(model_dirs), m, extra=PROGRESS)
            inf.append(run_infer(spark, store_uri, m, output_uri, cfg))
    keep = ("inputs", "stored", "quarantined", "skipped", "replaced", "vanished", "seconds")
    return {
        "job": "rescan",
        "run_id": run_id,
        "store": store.uri,
        "output": output_uri,
        "preprocess": {k: pre.get(k) for k in keep},
        "infer": [
            {k: s.get(k) for k in ("model_version", "scored", "already_scored", "flagged", "seconds")} for s in inf
        ],
        "changed": bool(pre.get("stored") or pre.get("quarantined") or any(s["scored"] for s in inf)),
        "seconds": round(time.time() - t0, 2),
    }


def run_rescan_every(spark, every: float, times: int, *args, emit=emit_summary) -> dict:
    """The warm mode: ``run_rescan(spark, *args)`` every ``every`` seconds (start to start) in
    this one SparkSession, ``times`` times (0: until stopped), each run's summary line emitted as it
    ends. One JVM and its Python workers stay up: no run pays the cold JVM, the first queries'
    planning and JIT, nor the Python workers' imports again (benchmarks/RESULTS.md, issue 10). A
    run that finds the store busy (another writer) is skipped, not fatal; the summary of the
    last run is returned."""
    i, last = 0, {}
    while times == 0 or i < times:
        t = time.time()
        try:
            last = run_rescan(spark, *args)
        except Busy as e:
            last = {"job": "rescan", "skipped_busy": str(e), "changed": False}
        i += 1
        last["round"] = i
        if times == 0 or i < times:
            emit(last)
            time.sleep(max(0.0, every - (time.time() - t)))
    return last
