"""Cost of crash isolation (issue 11, item 2): one input's work in a forked child versus in-process.

  .venv/bin/python benchmarks/bench_isolation.py [--ccds 4] [--rounds 3] [--data benchmarks/data]

Full-size CCDs (4096 x 2048, SCI/MSK/WGT RICE-compressed, plus a bkg file; written once with
tests/desarchive.py and cached) go through exactly what a preprocess task does per input:
``process_unit`` (read, subtract, mask, bin, stretch, sharpness channels) and the Petastorm
encoding of the row, once in the calling process and once through
``artifactspark.features.isolation.run_isolated`` (fork, the work in the child, the encoded row
pickled back through a pipe, waitpid), alternated CCD by CCD for several rounds on one core.
Prints the per-CCD medians, the ratio isolated / in-process, and one JSON line.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

FULL = (4096, 2048)


def ensure_ccds(data: str, n: int) -> list[dict]:
    from desarchive import header, make_planes, write_pair

    root = os.path.join(data, "isolation-archive")
    units = []
    for ccd in range(1, n + 1):
        img = os.path.join(root, "20131115", "D00320001", "p01", "red", "immask")
        img = os.path.join(img, f"D00320001_r_c{ccd:02d}_r2357p01_immasked.fits.fz")
        bkg = img.replace("/immask/", "/bkg/").replace("_immasked.", "_bkg.")
        if not (os.path.exists(img) and os.path.exists(bkg)):
            img, bkg = write_pair(root, 320001, ccd, planes=make_planes(ccd, shape=FULL), hdr=header(320001, ccd))
        units.append({"path": img, "bkg_path": bkg, "static_reason": None, "expnum": 320001, "ccdnum": ccd})
    return units


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ccds", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", default=str(HERE / "data"))
    args = p.parse_args(argv)

    from petastorm.unischema import dict_to_spark_row

    from artifactspark.config import PipelineConfig
    from artifactspark.features.extract import process_unit
    from artifactspark.features.isolation import run_isolated, run_isolated_many
    from artifactspark.features.store import schema_for_config

    cfg = PipelineConfig()
    schema = schema_for_config(cfg)
    names = [f.name for f in schema.as_spark_schema().fields]

    def encode_unit(u):
        row, status, reason, detail = process_unit(u, cfg, None)
        assert row is not None, (u["path"], reason, detail)
        enc = dict_to_spark_row(schema, row).asDict()
        return [enc[n] for n in names], status, reason, detail

    units = ensure_ccds(args.data, args.ccds)
    ref = [encode_unit(u)[0] for u in units]  # warm: imports, first-call costs; the reference rows
    times = {"inprocess": [], "per_task": [], "per_input": []}
    ways = {
        "inprocess": lambda: [encode_unit(u)[0] for u in units],
        "per_task": lambda: [v[0] for _, ok, v in run_isolated_many(encode_unit, units) if ok],
        "per_input": lambda: [run_isolated(encode_unit, (u,))[1][0] for u in units],
    }
    order = list(ways)
    for i in range(args.rounds):
        for k in order[i % 3 :] + order[: i % 3]:  # each way goes first in turn: no order bias
            t = time.perf_counter()
            rows = ways[k]()
            times[k].append((time.perf_counter() - t) / len(units))
            assert rows == ref, f"{k}: rows differ from the in-process ones"
    med = {k: statistics.median(v) for k, v in times.items()}
    row_bytes = sum(len(v) for v in ref[0] if isinstance(v, (bytes, bytearray)))
    print(f"{len(units)} full-size CCDs per task x {args.rounds} rounds, one core")
    for k in ("inprocess", "per_task", "per_input"):
        print(f"{k:>10}: median {med[k]:.3f} s per CCD, ratio to in-process {med[k] / med['inprocess']:.3f}")
    print(f"encoded row: {row_bytes / 1e6:.2f} MB through the pipe")
    out = {"ccds": len(units), "rounds": args.rounds, "row_mb": round(row_bytes / 1e6, 3)}
    out.update({f"{k}_s": round(v, 4) for k, v in med.items()})
    out.update({f"ratio_{k}": round(med[k] / med["inprocess"], 4) for k in ("per_task", "per_input")})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
