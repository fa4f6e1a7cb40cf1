"""The exposure-context rule (models/context.py) on an already trained multi-label CNN: an A/B
on the same network, the same split and the same predictions, the rule being the only change.

    .venv/bin/python benchmarks/exposure_context.py MODEL_DIR NEW_MODEL_DIR

copies MODEL_DIR (a multi-label model with an any head, trained without the rule) to
NEW_MODEL_DIR, applies the rule to its validation and test predictions, chooses the class
thresholds again on validation (as training does) and rewrites metrics.json and the views. Then
the quality report compares both, e.g.

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
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from artifactspark.evaluate.summary import summarize_model  # noqa: E402
from artifactspark.models import modelio  # noqa: E402
from artifactspark.models.context import MIN_CCDS, WHOLE_EXPOSURE, exposure_context  # noqa: E402
from artifactspark.models.thresholds import class_thresholds  # noqa: E402
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
        raise SystemExit(f"{a.model_dir}: its predictions already have the rule")
    if os.path.exists(a.new_model_dir):
        shutil.rmtree(a.new_model_dir)
    shutil.copytree(a.model_dir, a.new_model_dir, ignore=shutil.ignore_patterns("views"))
    classes = list(meta["classes"])
    ctx = {"classes": [c for c in WHOLE_EXPOSURE if c in classes], "min_ccds": MIN_CCDS}
    for side in ("val", "test"):
        path = os.path.join(a.new_model_dir, f"predictions_{side}.parquet")
        t = pq.read_table(path)
        probs = np.asarray(t.column("probs").to_pylist(), dtype=np.float64)
        new = exposure_context(probs, t.column("expnum").to_numpy(), classes, ctx["classes"])
        changed = int(np.sum(np.any(new != probs, axis=1)))
        print(f"{side}: {len(probs)} CCDs, {changed} with a whole-exposure probability capped")
        arr = pa.array([p.tolist() for p in new.astype(np.float32)], pa.list_(pa.float32()))
        t = t.set_column(t.column_names.index("probs"), "probs", arr)
        pq.write_table(t, path)
        if side == "val":
            mh = np.asarray(t.column("multi_hot").to_pylist(), dtype=np.int64)
            tc = meta.get("train_config", {})
            meta["class_thresholds"], meta["class_threshold_rules"] = class_thresholds(
                mh, new, tc.get("fn_cost", 5.0), seed=tc.get("seed", 0)
            )
    meta["exposure_context"] = ctx
    meta["version"] = modelio.new_version(os.path.join(a.new_model_dir, meta["model_file"]))
    modelio.write_meta(a.new_model_dir, meta)
    modelio.write_json(os.path.join(a.new_model_dir, "metrics.json"), summarize_model(a.new_model_dir))
    print("views:", write_views(a.new_model_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
