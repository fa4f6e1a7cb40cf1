"""Calibrate the simulator's strength ranges against the detectability floors (sim/detect.py).

Simulates full-size CCDs in memory (nothing written) with every class switched on, and for every
injected feature measures how strong it would have to be to pass its class's floor. The
detectability numbers scale linearly with the amplitude (sn_binned, contrast), so the
per-pixel S/N that reaches the floor is ``floor / (measure / snr)`` for each geometry drawn.
Prints, per class: the median and 80th percentile of that required S/N, the share of the
current range [lo, hi] below the floor, and the smallest lo that keeps that share <= --target.

    .venv/bin/python benchmarks/calibrate_floors.py --exposures 6 --ccds 20 --procs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from artifactspark.config import load_config  # noqa: E402
from artifactspark.sim import detect  # noqa: E402
from artifactspark.sim.config import CCD_CLASS_WEIGHTS, EXPOSURE_CLASS_RATES, sim_config  # noqa: E402


def _config(mode: str = "ccd"):
    """Every exposure-wide class on (mode "exposure"), or every CCD-level class on an artifact
    CCD, and nothing exposure-wide (mode "ccd", which the exposure-wide classes would crowd out)."""
    cfg = load_config(None)
    data = dict(cfg.extra.get("simulate", {}))
    expo = mode == "exposure"
    data.update(
        artifact_share=1.0,
        extra_classes_per_ccd=1.5,
        exposure_rates={c: float(expo) for c in EXPOSURE_CLASS_RATES if c != "Guiding"},
        class_weights={c: 1.0 for c in CCD_CLASS_WEIGHTS},
    )
    return cfg, sim_config(data)


def _one(item):
    from artifactspark.sim.archive import simulate_ccd

    index, ccd, n_ccds = item
    cfg, sc = _config("exposure" if index % 2 == 0 else "ccd")
    ccds = tuple(range(1, n_ccds + 1))
    out = simulate_ccd(
        sc, 99, index, ccd, tuple(cfg.input.ccd_shape), ccds, None, cfg.labels, tuple(cfg.taxonomy.classes), write=False
    )
    return [{k: t[k] for k in ("cls", "snr", "sn_binned", "contrast", "n_sharp", "detectable")} for t in out["truth"]]


def required_snr(t: dict) -> float:
    """Per-pixel S/N at which this geometry reaches its class's floor (inf: never)."""
    rule = detect.FLOOR_RULE[t["cls"]]
    if rule in ("mask", "erased_by_binning") or not math.isfinite(t["snr"]) or t["snr"] <= 0:
        return float("nan")
    per_sn = t["sn_binned"] / t["snr"]
    need_sn = detect.SN_FLOOR / per_sn if per_sn > 0 else math.inf
    if rule == "compact":
        need_sharp = (
            detect.SHARP_SIGMA * 1.05
            if t["n_sharp"] >= detect.SHARP_FLOOR or t["snr"] < detect.SHARP_SIGMA
            else math.inf
        )
        return min(need_sn, need_sharp)
    per_c = t["contrast"] / t["snr"]
    return max(need_sn, detect.CONTRAST_FLOOR / per_c if per_c > 0 else math.inf)


def share_below(req: np.ndarray, lo: float, hi: float) -> float:
    """Mean over geometries of P(loguniform(lo, hi) < required)."""
    a, b = math.log(lo), math.log(hi)
    r = np.log(np.clip(req, 1e-12, None))
    return float(np.mean(np.clip((r - a) / max(b - a, 1e-12), 0.0, 1.0)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exposures", type=int, default=6)
    ap.add_argument("--ccds", type=int, default=20)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--target", type=float, default=0.10, help="largest share below the floor per class")
    ap.add_argument("--json", help="write the table here")
    a = ap.parse_args(argv)
    items = [(i, c, a.ccds) for i in range(a.exposures) for c in range(1, a.ccds + 1)]
    with ProcessPoolExecutor(a.procs) as ex:
        rows = [t for ts in ex.map(_one, items) for t in ts]
    _, sc = _config()
    table = {}
    for cls in sorted({r["cls"] for r in rows}):
        g = [r for r in rows if r["cls"] == cls]
        req = np.array([required_snr(r) for r in g])
        det = float(np.mean([r["detectable"] for r in g]))
        lo, hi = sc.snr(cls)
        row = {"n": len(g), "detectable_share_now": round(det, 3), "range": [lo, hi]}
        fin = req[np.isfinite(req)]
        if fin.size:
            row.update(
                req_median=round(float(np.median(fin)), 3),
                req_p80=round(float(np.quantile(fin, 0.8)), 3),
                never=int(np.sum(~np.isfinite(req) & ~np.isnan(req))),
                below_share_at_range=round(share_below(req[~np.isnan(req)], lo, hi), 3),
            )
            cands = np.geomspace(min(lo, fin.min()) / 2, hi, 400)
            ok = [c for c in cands if share_below(req[~np.isnan(req)], c, hi) <= a.target]
            row["lo_for_target"] = round(float(ok[0]), 3) if ok else None
        table[cls] = row
        print(f"{cls:18s} {json.dumps(row)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(table, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
