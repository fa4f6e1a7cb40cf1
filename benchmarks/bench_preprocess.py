"""Preprocess throughput and memory: the Spark job versus a plain single-process loop.

  .venv/bin/python benchmarks/bench_preprocess.py [--exposures 2] [--ccds 1-60] [--data benchmarks/data]

One script run, same files for every measurement:
  1. a full-size simulated archive (RICE-compressed 4096x2048 CCDs), generated once and cached;
  2. the baseline: one Python process calling the same library function the executors call
     (artifactspark.features.extract.process_unit: read SCI/MSK/WGT/bkg, subtract, mask, bin,
     stretch, sharpness channels) and encoding the row with the same Petastorm codecs, for every CCD;
  3. the Spark job (run_preprocess: listing, processing, Petastorm write, manifest, commit)
     into a fresh store on local[1] and on local[2]; the SparkSession is started before timing.
Each Spark run happens in a fresh process (cold JVM, as a spark-submit job). Reports CCDs per
second per core over the whole run and over the processing phase alone (steady state: the
run minus its fixed costs of listing, planning and committing), the ratios of those to the
loop's rate, peak RSS of
any one Python worker during the Spark run (= memory per concurrent task), and the encoded
size of a row's image channels (image, mask_frac, max_sn, spread_sn) in float16 and float32.
Prints one JSON line at the end.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchcommon import RSSWatcher  # noqa: E402

#: The per-bin channels of a feature row (CompressedNdarrayCodec cells).
CHANNELS = ("image", "mask_frac", "max_sn", "spread_sn")


def ensure_archive(data: str, exposures: int, ccds: str) -> str:
    from artifactspark.config import load_config
    from artifactspark.io.des import parse_ccd_list
    from artifactspark.sim.archive import run_simulation
    from artifactspark.spark import get_spark

    root = os.path.join(data, f"archive-{exposures}x{ccds}")
    if os.path.exists(os.path.join(root, "labels", "checker_export.json")):
        return root
    spark = get_spark("bench-simulate", master="local[2]")
    run_simulation(spark, root, exposures, load_config(None), ccds=parse_ccd_list(ccds), seed=11)
    spark.stop()
    return root


def linked_archive(src: str, n: int, data: str) -> str:
    """The first ``n`` CCDs (image + bkg) of an existing archive, hard-linked into a tree of their
    own with the same names and layout (names must stay: the header is checked against them)."""
    root = os.path.join(data, f"linked-{n}")
    if os.path.exists(os.path.join(root, "_complete")):
        return root
    shutil.rmtree(root, ignore_errors=True)
    pairs = sorted(list_units(src), key=lambda u: u["path"])[:n]
    if len(pairs) < n:
        raise SystemExit(f"{src} has only {len(pairs)} CCDs")
    for u in pairs:
        for p in (u["path"], u["bkg_path"]):
            dst = os.path.join(root, os.path.relpath(p, src))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.link(p, dst)
    open(os.path.join(root, "_complete"), "w").close()
    return root


def list_units(root: str) -> list[dict]:
    from artifactspark.io.des import parse_name

    imgs, bkgs = {}, {}
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith("_immasked.fits.fz"):
                imgs[parse_name(f).stem] = os.path.join(d, f)
            elif f.endswith("_bkg.fits.fz"):
                bkgs[parse_name(f).stem] = os.path.join(d, f)
    return [{"path": p, "bkg_path": bkgs.get(s), "static_reason": None} for s, p in sorted(imgs.items())]


def loop_baseline(units, cfg):
    from petastorm.unischema import dict_to_spark_row

    from artifactspark.features.extract import process_unit
    from artifactspark.features.store import schema_for_config

    schema = schema_for_config(cfg)
    process_unit(units[0], cfg, None)  # warm-up: imports, page cache
    t = time.perf_counter()
    sizes = []
    for u in units:
        row, status, reason, _ = process_unit(u, cfg, None)
        assert status == "stored", reason
        enc = dict_to_spark_row(schema, row)
        sizes.append(sum(len(enc[c]) for c in CHANNELS))
    return time.perf_counter() - t, sizes


def _loop_chunk(args):
    units, cfg_path = args
    from artifactspark.config import load_config

    return loop_baseline(units, load_config(cfg_path))[0]


def loop_two_processes(units):
    """The same loop split over 2 processes at once: how far this machine itself scales to 2 cores."""
    import multiprocessing as mp

    halves = [units[0::2], units[1::2]]
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_loop_chunk, [(units[:2], None)] * 2)  # start-up and imports outside the timing
        t = time.perf_counter()
        pool.map(_loop_chunk, [(h, None) for h in halves])
        return time.perf_counter() - t


def dtype_sizes(units, cfg, n=8):
    """Encoded bytes of the image channels per CCD for float16 and float32 (same CCDs)."""
    import dataclasses

    from artifactspark.features.extract import process_unit

    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, image_dtype="float32"))
    from artifactspark.features.store import feature_schema

    schemas = {dt: feature_schema(cfg.binned_shape(), len(cfg.taxonomy.classes), dt) for dt in ("float16", "float32")}
    out = {"float16": 0, "float32": 0}
    err = 0.0
    for u in units[:n]:
        row, *_ = process_unit(u, cfg, None)
        for dt in out:
            for c in CHANNELS:
                f = schemas[dt].fields[c]
                out[dt] += len(f.codec.encode(f, row[c].astype(dt)))
        import numpy as np

        f32 = row["image"].astype(np.float32)
        err = max(err, float(np.abs(f32 - f32.astype(np.float16).astype(np.float32)).max()))
    return {k: round(v / n / 1024, 1) for k, v in out.items()} | {"float16_max_abs_error": err}


def spark_run(root, cfg, cores: int, data: str):
    from artifactspark.features.preprocess import run_preprocess
    from artifactspark.spark import get_spark

    spark = get_spark(
        f"bench-preprocess-{cores}",
        master=f"local[{cores}]",
        conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": str(2 * cores)},
    )
    spark.range(4).count()  # JVM and a Python worker up before timing
    store = os.path.join(data, f"store-{os.path.basename(root)}-{cores}")
    shutil.rmtree(store, ignore_errors=True)
    w = RSSWatcher()
    w.start()
    t = time.perf_counter()
    labels = os.path.join(root, "labels", "checker_export.json")
    summary = run_preprocess(spark, [root], store, cfg, [labels] if os.path.exists(labels) else [])
    wall = time.perf_counter() - t
    w.stop.set()
    w.join()
    spark.stop()
    return wall, summary, w.peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exposures", type=int, default=2)
    ap.add_argument("--ccds", default="1-60")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parent / "data"))
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--archive", help="instead of simulating: hard-link --n CCDs of this archive")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--loop-sample", type=int, default=0, help="time the loop on this many CCDs only (0: all)")
    ap.add_argument("--spark-only", type=int, help=argparse.SUPPRESS)  # internal: one Spark run, JSON out
    args = ap.parse_args()
    from artifactspark.config import load_config
    from artifactspark.logs import setup_logging

    setup_logging("WARNING")
    cfg = load_config(None)
    if args.archive:
        root = linked_archive(args.archive, args.n, args.data)
    else:
        root = ensure_archive(args.data, args.exposures, args.ccds)
    if args.spark_only:
        wall, summary, peak = spark_run(root, cfg, args.spark_only, args.data)
        print(json.dumps({"wall": wall, "summary": summary, "peak": peak}))
        return
    units = list_units(root)
    n = len(units)
    sample = units[: args.loop_sample] if args.loop_sample else units
    loop_s, sizes = loop_baseline(sample, cfg)
    loop_rate = len(sample) / loop_s
    res = {
        "ccds": n,
        "loop_ccds": len(sample),
        "load_loop": " ".join(open("/proc/loadavg").read().split()[:3]),
        "loop_seconds": round(loop_s, 1),
        "loop_ccd_per_s": round(loop_rate, 3),
        "encoded_kib_per_ccd": round(sum(sizes) / len(sample) / 1024, 1),
    }
    print(f"loop: {len(sample)} CCDs in {loop_s:.1f} s = {loop_rate:.3f} CCD/s on 1 core", flush=True)
    if 2 in args.cores:
        two = loop_two_processes(sample)
        res["loop2_ccd_per_s_per_core"] = round(len(sample) / two / 2, 3)
        print(f"loop in 2 processes: {two:.1f} s = {len(sample) / two / 2:.3f} CCD/s/core", flush=True)
    for c in args.cores:
        # each Spark run in a fresh process: every run pays the same cold JVM (JIT, codegen)
        import subprocess

        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--spark-only",
                str(c),
                "--data",
                args.data,
                "--exposures",
                str(args.exposures),
                "--ccds",
                args.ccds,
                *(["--archive", args.archive, "--n", str(args.n)] if args.archive else []),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        wall, summary, peak = r["wall"], r["summary"], r["peak"]
        assert summary["stored"] == n, summary
        rate = n / wall / c
        res[f"spark{c}_seconds"] = round(wall, 1)
        res[f"spark{c}_ccd_per_s_per_core"] = round(rate, 3)
        res[f"spark{c}_ratio_to_loop"] = round(rate / loop_rate, 3)
        res[f"spark{c}_peak_worker_rss_mb"] = round(peak / 2**20)
        res[f"spark{c}_timings"] = summary["timings"]
        steady = n / summary["timings"]["process"] / c
        res[f"spark{c}_steady_ccd_per_s_per_core"] = round(steady, 3)
        res[f"spark{c}_steady_ratio_to_loop"] = round(steady / loop_rate, 3)
        res[f"spark{c}_fixed_seconds"] = round(wall - summary["timings"]["process"], 1)
        res[f"spark{c}_ccd_task_seconds"] = summary["ccd_task_seconds"]
        res[f"load_spark{c}"] = " ".join(open("/proc/loadavg").read().split()[:3])
        if c == 2 and "loop2_ccd_per_s_per_core" in res:
            res["spark2_ratio_to_loop2"] = round(rate / res["loop2_ccd_per_s_per_core"], 3)
        print(
            f"spark local[{c}]: {wall:.1f} s = {rate:.3f} CCD/s/core, ratio {rate / loop_rate:.3f}, "
            f"steady-state ratio {n / summary['timings']['process'] / c / loop_rate:.3f}, "
            f"peak worker RSS {peak / 2**20:.0f} MB, phases {summary['timings']}, "
            f"time in CCD work {summary['ccd_task_seconds']} s",
            flush=True,
        )
    res["store_kib_per_ccd"] = dtype_sizes(units, cfg)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
