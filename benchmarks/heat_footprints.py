"""The truth footprints of the quality run's test CCDs, for the localisation evaluation (issue 12).

The simulator's truth table keeps, per injected feature, its geometry and the one position a
simulated volunteer clicked, not its footprint. ``simulate_ccd(..., write=False)`` is
deterministic in (config, seed, exposure index, CCD), so this rebuilds the test CCDs in memory
and keeps each feature's footprint points ((row, col), full resolution: every pixel of a track
or column, a 64-point sample of an extended feature), checked against truth.parquet (same
classes and S/N in the same order). Output: one row per truth feature with ``points_row`` and
``points_col`` lists, read by ``artifactspark.evaluate.localise`` (``report --footprints``).

    .venv/bin/python benchmarks/heat_footprints.py --run /work/qdata/quality \
        --model /work/qdata/quality/models/cnn-multilabel --out /work/heat-data/footprints.parquet [--side val]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from quality import CCDS, EXTRA_FIRST_EXPNUM, quality_config  # noqa: E402


def _r(v):
    """S/N for the comparison: rounded, NaN (Guiding has no S/N) equal to itself."""
    return "nan" if v != v else round(float(v), 6)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="the quality run's folder (its truth/truth.parquet)")
    ap.add_argument("--model", required=True, help="a model directory: its test split's exposures are rebuilt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--side", default="test", choices=("train", "val", "test"), help="which split's exposures")
    a = ap.parse_args(argv)
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from artifactspark.sim.archive import simulate_ccd
    from artifactspark.sim.config import sim_config

    meta = json.load(open(os.path.join(a.model, "model.json")))
    truth = pq.read_table(os.path.join(a.run, "truth", "truth.parquet")).to_pandas()
    cfg = quality_config()
    ecfg = quality_config()
    ecfg.extra["simulate"]["first_expnum"] = EXTRA_FIRST_EXPNUM
    shape = tuple(cfg.input.ccd_shape)
    rows, t0, bad = [], time.time(), 0
    exps = sorted(int(e) for e in meta["split"][a.side])
    for k, e in enumerate(exps):
        extra = e >= EXTRA_FIRST_EXPNUM
        sc = sim_config(ecfg if extra else cfg)
        seed, index = (a.seed + 1, e - EXTRA_FIRST_EXPNUM) if extra else (a.seed, e - sc.first_expnum)
        for ccd in CCDS:
            out = simulate_ccd(sc, seed, index, ccd, shape, CCDS, None, cfg.labels, tuple(cfg.taxonomy.classes), False)
            want = truth[(truth.expnum == e) & (truth.ccd == ccd)]
            got = [(t["cls"], _r(t["snr"])) for t in out["truth"]]
            if got != [(c, _r(s)) for c, s in zip(want.cls, want.snr)]:
                bad += 1
                print(f"mismatch {e} {ccd}: {got} vs {list(zip(want.cls, want.snr))}", flush=True)
                continue
            for t, pts in zip(out["truth"], out["points"]):
                pts = np.asarray(pts, int).reshape(-1, 2)
                rows.append(
                    {
                        "expnum": e,
                        "ccdnum": ccd,
                        "cls": t["cls"],
                        "fid": t["fid"],
                        "detectable": bool(t["detectable"]),
                        "points_row": pts[:, 0].tolist(),
                        "points_col": pts[:, 1].tolist(),
                    }
                )
        print(f"{k + 1}/{len(exps)} exposures, {time.time() - t0:.0f} s", flush=True)
    pq.write_table(pa.Table.from_pylist(rows), a.out)
    print(json.dumps({"features": len(rows), "mismatched_ccds": bad, "seconds": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
