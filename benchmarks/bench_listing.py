"""Listing and pairing at archive scale, and the no-op re-scan of an unchanged archive.

  .venv/bin/python benchmarks/bench_listing.py [--sizes 10000 100000 200000] [--data /work/scale-data/listing]
      [--cores 2] [--no-rescan]

For every size N, a DESDM-layout tree (``NITE/DEXPNUM/p01/red/{immask,bkg}/...``) of N placeholder
files named like DES products (N/2 ``*_immasked.fits.fz`` + N/2 ``*_bkg.fits.fz``, 61 CCDs per
exposure) is built once under ``--data`` (not in git). The files hold one byte: Spark's
``binaryFile`` source does not list zero-length files. Then, each size in a fresh process (cold
JVM, as a ``spark-submit`` job), with the SparkSession started before timing:

  1. ``discover(spark, [root], cfg)`` materialised (written to Parquet, as the preprocess run pins
     it): seconds, the number of units;
  2. with ``--rescan`` (default): a first ``run_preprocess`` into a fresh store (every placeholder
     is quarantined ``not_fits`` by its read: this is the per-input cost outside CCD work), then a
     second, no-op ``run_preprocess`` over the unchanged tree: listing + manifest comparison, no
     task reads a file;
  3. the peak resident memory (VmHWM) of the driver's JVM and of the driver's Python process.

Results: one line per size and a JSON line at the end; the load average is printed with each.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CCDS_PER_EXPOSURE = 61
BANDS = "griz"


def vm_hwm_kb(pid="self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def build_tree(root: str, n_files: int, orphans: bool = False) -> str:
    """N placeholder files in the DESDM layout (idempotent: a complete tree is reused); with
    ``orphans``, N background files without their image (quarantined from their names alone)."""
    done = os.path.join(root, "_complete")
    if os.path.exists(done):
        return root
    shutil.rmtree(root, ignore_errors=True)
    pairs = n_files if orphans else n_files // 2
    i = 0
    expnum = 300000
    while i < pairs:
        band = BANDS[expnum % len(BANDS)]
        nite = 20130901 + (expnum - 300000) // 20
        base = os.path.join(root, str(nite), f"D{expnum:08d}", "p01", "red")
        os.makedirs(os.path.join(base, "immask"))
        os.makedirs(os.path.join(base, "bkg"))
        for ccd in range(1, CCDS_PER_EXPOSURE + 1):
            if i >= pairs:
                break
            stem = f"D{expnum:08d}_{band}_c{ccd:02d}_r1234p01"
            for sub, kind in (("bkg", "bkg"),) if orphans else (("immask", "immasked"), ("bkg", "bkg")):
                with open(os.path.join(base, sub, f"{stem}_{kind}.fits.fz"), "wb") as f:
                    f.write(b"\0")
            i += 1
        expnum += 1
    open(done, "w").close()  # "_" : hidden from Spark's listing
    return root


def live_heap_mb(spark) -> int:
    """The driver JVM's heap in use after a full GC (what the listing holds, not what the GC let grow)."""
    rt = spark._jvm.java.lang.Runtime.getRuntime()
    spark._jvm.java.lang.System.gc()
    return round((rt.totalMemory() - rt.freeMemory()) / 2**20)


def java_pid():
    import psutil

    for p in psutil.Process().children(recursive=True):
        if p.name() == "java":
            return p.pid
    return None


def one_size(root: str, n: int, cores: int, data: str, rescan: bool, first_cpt: int) -> dict:
    from artifactspark.config import load_config
    from artifactspark.features.discover import discover
    from artifactspark.spark import get_spark

    cfg = load_config(None)
    t = time.perf_counter()
    # shuffle partitions as conf/spark/local.conf gives a spark-submit job
    conf = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "16"}
    spark = get_spark(f"bench-listing-{n}", master=f"local[{cores}]", conf=conf)
    spark.range(4).count()
    first_cpt = first_cpt or cfg.store.ccds_per_task
    out = {"tree": os.path.basename(root), "files": n, "cores": cores, "first_run_ccds_per_task": first_cpt}
    out.update(jvm_start_seconds=round(time.perf_counter() - t, 1), load_start=load())
    jpid = java_pid()
    tmp = os.path.join(data, f"units-{os.path.basename(root)}")
    t = time.perf_counter()
    units = discover(spark, [root], cfg)
    units.write.mode("overwrite").parquet(tmp)
    n_units = spark.read.parquet(tmp).count()
    out["discover_seconds"] = round(time.perf_counter() - t, 1)
    out["units"] = n_units
    out["jvm_hwm_mb_after_discover"] = round(vm_hwm_kb(jpid) / 1024) if jpid else None
    out["jvm_live_heap_mb_after_discover"] = live_heap_mb(spark)
    shutil.rmtree(tmp, ignore_errors=True)
    if rescan:
        import dataclasses

        from artifactspark.features.preprocess import run_preprocess

        # Every placeholder image fails its read (not_fits), an orphan needs none. The first run
        # builds the manifest; its tasks are made big (--first-ccds-per-task) unless told otherwise:
        # the shipped 4 CCDs a task would spend hours on 10^5 one-byte placeholders.
        cfg1 = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, ccds_per_task=first_cpt))
        store = os.path.join(data, f"store-{os.path.basename(root)}")
        shutil.rmtree(store, ignore_errors=True)
        t = time.perf_counter()
        s1 = run_preprocess(spark, [root], store, cfg1)
        out["first_run_seconds"] = round(time.perf_counter() - t, 1)
        out["first_run_timings"] = s1.get("timings")
        out["first_run_quarantined"] = s1["quarantined"]
        out["first_run_ccd_task_seconds"] = s1.get("ccd_task_seconds")
        t = time.perf_counter()
        s2 = run_preprocess(spark, [root], store, cfg1)
        out["noop_rescan_seconds"] = round(time.perf_counter() - t, 1)
        assert s2["skipped"] == s2["inputs"] == s1["inputs"], (s1, s2)
        out["noop_skipped"] = s2["skipped"]
        shutil.rmtree(store, ignore_errors=True)
    out["jvm_hwm_mb"] = round(vm_hwm_kb(jpid) / 1024) if jpid else None
    out["jvm_live_heap_mb_end"] = live_heap_mb(spark)
    out["python_driver_hwm_mb"] = round(vm_hwm_kb() / 1024)
    out["load_end"] = load()
    spark.stop()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 200_000])
    ap.add_argument("--data", default="/work/scale-data/listing")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--no-rescan", dest="rescan", action="store_false")
    ap.add_argument("--first-ccds-per-task", type=int, default=256)
    ap.add_argument("--orphans", type=int, nargs="*", default=[], help="also trees of N orphan bkg files")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON out
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from artifactspark.logs import setup_logging

    setup_logging("WARNING")
    if args.one:
        root = os.path.join(args.data, args.tree)
        print(json.dumps(one_size(root, args.one, args.cores, args.data, args.rescan, args.first_ccds_per_task)))
        return
    os.makedirs(args.data, exist_ok=True)
    results = []
    trees = [(f"tree-{n}", n, False) for n in args.sizes] + [(f"orphans-{n}", n, True) for n in args.orphans]
    for name, n, orphans in trees:
        t = time.perf_counter()
        build_tree(os.path.join(args.data, name), n, orphans)
        print(f"{name} ready ({time.perf_counter() - t:.0f} s)", flush=True)
        cmd = [sys.executable, __file__, "--one", str(n), "--tree", name, "--data", args.data]
        # orphans: the shipped [store] ccds_per_task (0), as the probe ran them
        cmd += ["--cores", str(args.cores), "--first-ccds-per-task", str(0 if orphans else args.first_ccds_per_task)]
        r = subprocess.run(cmd + ([] if args.rescan else ["--no-rescan"]), capture_output=True, text=True)
        if r.returncode:
            print(r.stderr[-3000:], file=sys.stderr)
            raise SystemExit(r.returncode)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        results.append(res)
        print(json.dumps(res), flush=True)
    base = results[0]
    for r in results[1:]:
        if not r["tree"].startswith("tree-"):
            continue
        k = r["files"] / base["files"]
        r["discover_time_ratio_per_file"] = round(r["discover_seconds"] / base["discover_seconds"] / k, 3)
        if "noop_rescan_seconds" in r:
            r["noop_time_ratio_per_file"] = round(r["noop_rescan_seconds"] / base["noop_rescan_seconds"] / k, 3)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
