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
    from artifactspark.features.isolation import run_isolated
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
    encode_unit(units[0])  # warm: imports, first-call costs
    inproc, isolated = [], []
    for _ in range(args.rounds):
        for u in units:
            t = time.perf_counter()
            a = encode_unit(u)
            inproc.append(time.perf_counter() - t)
            t = time.perf_counter()
            ok, b = run_isolated(encode_unit, (u,))
            isolated.append(time.perf_counter() - t)
            assert ok is True and b[0] == a[0], "the isolated row differs from the in-process one"
    m_in, m_iso = statistics.median(inproc), statistics.median(isolated)
    row_bytes = sum(len(v) for v in a[0] if isinstance(v, (bytes, bytearray)))
    print(f"{len(units)} full-size CCDs x {args.rounds} rounds, one core")
    print(f"in-process: median {m_in:.3f} s per CCD; isolated (fork + pipe): median {m_iso:.3f} s per CCD")
    print(f"ratio isolated / in-process: {m_iso / m_in:.3f} (+{(m_iso - m_in) * 1000:.0f} ms per CCD)")
    print(f"encoded row: {row_bytes / 1e6:.2f} MB through the pipe")
    print(
        json.dumps(
            {
                "ccds": len(units),
                "rounds": args.rounds,
                "inprocess_s": round(m_in, 4),
                "isolated_s": round(m_iso, 4),
                "ratio": round(m_iso / m_in, 4),
                "row_mb": round(row_bytes / 1e6, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
