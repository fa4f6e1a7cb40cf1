"""The Arrow question: pickled-row Python paths against Arrow paths, on rows of image cells.

  .venv/bin/python benchmarks/bench_arrow.py [--rows 2000] [--cores 1 2] [--data /work/scale-data/arrow]
  /work/arrow-venv/bin/python benchmarks/bench_arrow.py ...      # the same on another pyspark/pyarrow

Runs under whatever pyspark + pyarrow the interpreter has, so the same command under two venvs
compares the stacks. One Parquet file of ``--rows`` rows shaped like the feature store's (expnum,
ccdnum, two float16 512 x 256 cells encoded with the store's codec, ~200 KB a row) is written once
with pyarrow. Then, in one process per core count (local[c], SparkSession up before timing), each
path reads the file, and:

  * ``score``: decodes the cells, stacks a batch of 64, and a small numpy "model" (a per-image
    mean, a dot product) gives one float per row: inference without TensorFlow;
  * ``emit``: from each input row's key, builds a ~200 KB binary cell in Python (as the
    preprocess row output) and returns it to the JVM;
  * ``bytes``: returns len() of the cells only: the transport alone.

Paths: ``rdd`` (DataFrame.rdd.mapPartitions + createDataFrame: the shipped path), ``udf`` (a plain
Python UDF), ``mapInPandas``, ``mapInArrow``, ``pandas_udf`` (Series -> Series). Every result goes
to Spark's ``noop`` sink, so no Parquet write is in the timing. The baseline is a plain loop in the
driver process over the same file (pyarrow read, the same Python work), measured in the same run:
ratios to it are what compares across runs. A path the stack refuses is reported as such.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = 64
SHAPE = (512, 256)


def encode(arr):
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, arr=arr)
    return buf.getvalue()


def decode(cell):
    import io

    import numpy as np

    return np.load(io.BytesIO(cell))["arr"]


def make_cell(seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    return encode((rng.standard_normal(SHAPE) * 0.01 + 0.3).astype(np.float16))


def ensure_data(path: str, rows: int) -> str:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cells = [make_cell(i) for i in range(64)]  # 64 distinct cells, repeated: same cost per row
    mask = encode(np.zeros(SHAPE, np.float16))
    t = pa.table(
        {
            "expnum": pa.array(np.arange(rows) // 61 + 300000, pa.int64()),
            "ccdnum": pa.array(np.arange(rows) % 61 + 1, pa.int16()),
            "image": pa.array([cells[i % 64] for i in range(rows)], pa.binary()),
            "mask_frac": pa.array([mask] * rows, pa.binary()),
        }
    )
    pq.write_table(t, path + ".part", row_group_size=64)
    os.replace(path + ".part", path)
    return path


W = None


def score_batch(images, masks):
    """The numpy "model": one float per row from both decoded planes."""
    import numpy as np

    global W
    if W is None:
        W = np.random.default_rng(0).standard_normal(SHAPE[1]).astype(np.float32)
    x = np.stack([decode(c) for c in images]).astype(np.float32)
    m = np.stack([decode(c) for c in masks]).astype(np.float32)
    return ((x * (1 - m)).mean(axis=1) @ W).tolist()


def emit_cell(key: int) -> bytes:
    import numpy as np

    # a fresh cell per row (encode cost included), as preprocess builds its row's cells
    return encode(np.full(SHAPE, key % 7, np.float16) + np.float16(0.5))


def loop(path: str, work: str) -> float:
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    pf = pq.ParquetFile(path)
    n = 0
    for b in pf.iter_batches(batch_size=BATCH, columns=["expnum", "image", "mask_frac"]):
        d = b.to_pydict()
        if work == "score":
            score_batch(d["image"], d["mask_frac"])
        elif work == "emit":
            [emit_cell(k) for k in d["expnum"]]
        else:
            [len(c) + len(m) for c, m in zip(d["image"], d["mask_frac"])]
        n += len(d["expnum"])
    return time.perf_counter() - t0


def spark_paths(spark, path: str, work: str):
    import pyspark.sql.functions as F
    from pyspark.sql import types as T

    # emit reads only the key (as preprocess reads a path); no repartition: the scan's splits
    cols = ["expnum"] if work == "emit" else ["expnum", "image", "mask_frac"]
    df = spark.read.parquet(path).select(*cols)
    out_t = T.BinaryType() if work == "emit" else T.DoubleType()
    schema = T.StructType([T.StructField("expnum", T.LongType()), T.StructField("out", out_t)])

    def py_batch(keys, images=None, masks=None):
        if work == "score":
            return score_batch(images, masks)
        if work == "emit":
            return [emit_cell(k) for k in keys]
        return [float(len(c) + len(m)) for c, m in zip(images, masks)]

    def rdd_path():
        def part(rows):
            buf = []
            for r in rows:
                buf.append(r)
                if len(buf) == BATCH:
                    yield from zip([x[0] for x in buf], py_batch(*zip(*buf)))
                    buf = []
            if buf:
                yield from zip([x[0] for x in buf], py_batch(*zip(*buf)))

        return spark.createDataFrame(df.rdd.mapPartitions(part), schema)

    def udf_path():
        if work == "score":
            f = F.udf(lambda i, m: score_batch([i], [m])[0], out_t)
            return df.select("expnum", f("image", "mask_frac").alias("out"))
        if work == "emit":
            return df.select("expnum", F.udf(emit_cell, out_t)("expnum").alias("out"))
        return df.select("expnum", F.udf(lambda i, m: float(len(i) + len(m)), out_t)("image", "mask_frac").alias("out"))

    def pandas_path():
        import pandas as pd

        def f(it):
            for pdf in it:
                for s in range(0, len(pdf), BATCH):
                    c = pdf.iloc[s : s + BATCH]
                    out = py_batch(*[list(c[k]) for k in cols])
                    yield pd.DataFrame({"expnum": c["expnum"].values, "out": out})

        return df.mapInPandas(f, schema)

    def arrow_path():
        import pyarrow as pa

        def f(it):
            for b in it:
                d = b.to_pydict()
                out = py_batch(*[d[k] for k in cols])
                typ = pa.binary() if work == "emit" else pa.float64()
                cols_out = [pa.array(d["expnum"], pa.int64()), pa.array(out, typ)]
                yield pa.RecordBatch.from_arrays(cols_out, ["expnum", "out"])

        return df.mapInArrow(f, schema)

    def pandas_udf_path():
        import pandas as pd

        if work == "emit":

            @F.pandas_udf(out_t)
            def g(k: pd.Series) -> pd.Series:
                return pd.Series([emit_cell(x) for x in k])

            return df.select("expnum", g("expnum").alias("out"))

        @F.pandas_udf(out_t)
        def h(i: pd.Series, m: pd.Series) -> pd.Series:
            return pd.Series(py_batch(None, list(i), list(m)), dtype="float64")

        return df.select("expnum", h("image", "mask_frac").alias("out"))

    return {
        "rdd": rdd_path,
        "udf": udf_path,
        "mapInPandas": pandas_path,
        "mapInArrow": arrow_path,
        "pandas_udf": pandas_udf_path,
    }


def one_core_count(path: str, cores: int, works, rounds: int) -> dict:
    import pyspark

    from artifactspark.spark import get_spark

    conf = {
        "spark.ui.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(BATCH),
        "spark.sql.shuffle.partitions": str(2 * cores),
    }
    spark = get_spark(f"bench-arrow-{cores}", master=f"local[{cores}]", conf=conf)
    spark.range(4).count()
    n = spark.read.parquet(path).count()
    res = {"pyspark": pyspark.__version__, "pyarrow": __import__("pyarrow").__version__, "cores": cores, "rows": n}
    for work in works:
        loop_s = min(loop(path, work) for _ in range(rounds))
        loop_rate = n / loop_s
        res[f"{work}/loop_rows_per_s"] = round(loop_rate, 1)
        for name, build in spark_paths(spark, path, work).items():
            best = None
            try:
                for _ in range(rounds):
                    t = time.perf_counter()
                    build().write.format("noop").mode("overwrite").save()
                    dt = time.perf_counter() - t
                    best = dt if best is None else min(best, dt)
            except Exception as e:  # the stack refuses the path (e.g. pyspark 4 without pyarrow >= 18)
                res[f"{work}/{name}"] = f"refused: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
                continue
            rate = n / best / cores
            res[f"{work}/{name}_rows_per_s_per_core"] = round(rate, 1)
            res[f"{work}/{name}_ratio_to_loop"] = round(rate / loop_rate, 3)
        print(json.dumps({k: v for k, v in res.items() if k.startswith(work)}), file=sys.stderr, flush=True)
    spark.stop()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", nargs="+", default=["bytes", "score", "emit"])
    ap.add_argument("--data", default="/work/scale-data/arrow")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    from artifactspark.logs import setup_logging

    setup_logging("WARNING")
    path = ensure_data(os.path.join(args.data, f"cells-{args.rows}.parquet"), args.rows)
    if args.one:
        print(json.dumps(one_core_count(path, args.one, args.work, args.rounds)))
        return
    import subprocess

    out = []
    for c in args.cores:
        cmd = [sys.executable, __file__, "--one", str(c), "--rows", str(args.rows), "--data", args.data]
        cmd += ["--rounds", str(args.rounds), "--work", *args.work]
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if r.returncode:
            print(r.stderr[-3000:], file=sys.stderr)
            raise SystemExit(r.returncode)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["load"] = " ".join(open("/proc/loadavg").read().split()[:3])
        print(json.dumps(res), flush=True)
        out.append(res)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
