"""The exposure-context rule (evaluate/context.py) on an already trained multi-label CNN: an A/B
on the same network, the same split and the same predictions, the rule being the only change.

    .venv/bin/python benchmarks/exposure_context.py MODEL_DIR NEW_MODEL_DIR

copies MODEL_DIR (a multi-label model with an any head, trained without the rule) to
NEW_MODEL_DIR, records the rule in its model.json (what training does now), and rewrites
metrics.json and the views: the many-class decision changes, the stored probabilities do not.
Then the quality report compares both, e.g.

    .venv/bin/python benchmarks/quality.py --out OUT --stages report --models models-ctx \\
        --report report-ctx --reuse-svm models --extra-exposures 30
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from artifactspark.evaluate.context import MIN_CCDS, WHOLE_EXPOSURE, exposure_context  # noqa: E402
from artifactspark.evaluate.summary import summarize_model  # noqa: E402
from artifactspark.models import modelio  # noqa: E402
from artifactspark.models.training import write_views  # noqa: E402


def main(argv=None) -> int:
    """Copy, re-decide, summarise."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("new_model_dir")
    a = ap.parse_args(argv)
    meta = modelio.read_meta(a.model_dir)
    if meta.get("problem") != "multilabel" or not meta.get("any_head"):
        raise SystemExit(f"{a.model_dir}: needs a multi-label model with an any head")
    if meta.get("exposure_context"):
        raise SystemExit(f"{a.model_dir}: it already records the rule")
    if os.path.exists(a.new_model_dir):
        shutil.rmtree(a.new_model_dir)
    shutil.copytree(a.model_dir, a.new_model_dir, ignore=shutil.ignore_patterns("views"))
    classes = list(meta["classes"])
    ctx = {"classes": [c for c in WHOLE_EXPOSURE if c in classes], "min_ccds": MIN_CCDS}
    for side in ("val", "test"):
        t = pq.read_table(os.path.join(a.new_model_dir, f"predictions_{side}.parquet"))
        probs = np.asarray(t.column("probs").to_pylist(), dtype=np.float64)
        new = exposure_context(probs, t.column("expnum").to_numpy(), classes, ctx["classes"])
        print(f"{side}: {len(probs)} CCDs, {int(np.sum(np.any(new != probs, axis=1)))} with a class capped")
    meta["exposure_context"] = ctx
    meta["version"] = modelio.new_version(os.path.join(a.new_model_dir, meta["model_file"]))
    modelio.write_meta(a.new_model_dir, meta)
    modelio.write_json(os.path.join(a.new_model_dir, "metrics.json"), summarize_model(a.new_model_dir))
    print("views:", write_views(a.new_model_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
