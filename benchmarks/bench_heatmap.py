"""Inference cost of the heatmap (issue 12): scoring alone against scoring + heatmap, per CCD.

Both paths as serve/infer.py runs them on an executor (TensorFlow limited to --tf-threads, the
rows of one batch decoded already): ``Predictor.predict`` (the scores, what infer did before)
against ``serve.heatmap.predict_with_heat`` (one forward pass with the tile head, the maps
softmaxed, quantised and the hottest tile found). Interleaved repeats, median per path, the ratio
in the same run. Also the CAM alternative (``models.heatmap.CamModel``, no training).

    .venv/bin/python benchmarks/bench_heatmap.py --store /work/qdata/quality/store \
        --model /work/heat-data/models/cnn-multilabel --ccds 128 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", required=True, help="a CNN model directory with a tile head (jobs/train_heatmap.py)")
    ap.add_argument("--ccds", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64, help="[infer] batch_size")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tf-threads", type=int, default=1, help="[infer] tf_threads")
    a = ap.parse_args(argv)
    import numpy as np

    from artifactspark.io import fs as fsmod
    from artifactspark.logs import import_tensorflow

    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(a.tf_threads)
    tf.config.threading.set_inter_op_parallelism_threads(a.tf_threads)
    from artifactspark.features.versions import open_version
    from artifactspark.models.channels import is_plane
    from artifactspark.models.heatmap import CamModel, _read_side, heat_columns
    from artifactspark.models.modelio import Predictor
    from artifactspark.serve.heatmap import predict_with_heat

    pred = Predictor(a.model)
    number = pred.meta.get("store_version")  # a run id (not a number) in models from before versions
    version = open_version(fsmod.to_uri(a.store), number if isinstance(number, int) else None)
    rows = _read_side(version, pred.meta["split"]["test"], ["expnum", "ccdnum", *pred.columns])
    planes = {c: (np.stack if is_plane(c) else np.asarray)(rows[c][: a.ccds]) for c in pred.columns}
    n = len(planes["image"])
    cam = CamModel(pred.model, pred.meta)

    def batches(fn):
        for i in range(0, n, a.batch_size):
            fn({f: p[i : i + a.batch_size] for f, p in planes.items()})

    paths = {
        "score": lambda b: pred.predict(b, a.batch_size),
        "score+heatmap": lambda b: predict_with_heat(pred, b, a.batch_size),
        "score+cam": lambda b: heat_columns(cam.run(pred.cnn_input(b), a.batch_size)[1]),
    }
    for fn in paths.values():  # warm-up: graph tracing, the head's load
        fn({f: p[:2] for f, p in planes.items()})
    times = {k: [] for k in paths}
    for _ in range(a.repeats):
        for k, fn in paths.items():
            t = time.perf_counter()
            batches(fn)
            times[k].append((time.perf_counter() - t) / n)
    med = {k: float(np.median(v)) for k, v in times.items()}
    out = {
        "ccds": n,
        "batch_size": a.batch_size,
        "tf_threads": a.tf_threads,
        "repeats": a.repeats,
        "ms_per_ccd": {k: round(1000 * v, 2) for k, v in med.items()},
        "ratio_heatmap": round(med["score+heatmap"] / med["score"], 3),
        "ratio_cam": round(med["score+cam"] / med["score"], 3),
        "load_1min": os.getloadavg()[0],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
