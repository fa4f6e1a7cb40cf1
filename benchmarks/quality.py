"""The quality run: simulate >= 3000 labelled full-size CCDs, preprocess, train, evaluate against truth.

    .venv/bin/python benchmarks/quality.py [--out benchmarks/data/quality] [--exposures 185] [--extra-exposures 0]
        [--stages simulate,preprocess,train,report] [--epochs 25] [--reference]

Stages (each skipped when its output is already there, so a run can be resumed or split):

1. simulate: ``--exposures`` x 21 CCDs spread over the focal plane (CCDNUM 2, 5, ..., 62), full
   size, RICE-compressed, with the default [simulate] settings except ``inspected_share = 0.95``
   (185 x 21 = 3885 CCDs; ~80 % carry a volunteer label, since a CCD counts as labelled only
   with a report, and the simulator gives clean inspected CCDs an explicit "OK" 70 % of the time:
   ~3100 labelled; the label noise rates stay the defaults). ``--extra-exposures N`` adds a
   second batch (seed + 1, exposure numbers from 329000) under OUT/archive-extra, to grow a run
   without simulating it again; preprocess and the report then take both (the report's truth
   is the two truth tables together, OUT/truth);
2. preprocess into a Petastorm store;
3. train: the default CNN (multi-label with the 'any artifact' head; its binary and many-class
   views are written beside it), then the SVM (RBF) on the binary and the many-class problem on
   the same split by exposure; ``--reference`` adds the paper's network on the binary problem;
4. report: against the simulator's truth and against the volunteer labels, with the targets
   MET / NOT MET (report.md, report.json under OUT/report).

Prints one JSON line with the figures; the stage times are in it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CCDS = tuple(range(2, 63, 3))
STAGES = ("simulate", "preprocess", "train", "report")


def quality_config(config_path=None):
    from artifactspark.config import load_config

    cfg = load_config(config_path)
    cfg.extra.setdefault("simulate", {})["inspected_share"] = 0.95
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "quality"))
    ap.add_argument("--exposures", type=int, default=185)
    ap.add_argument("--extra-exposures", type=int, default=0, help="a second simulated batch (see above)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--epochs", type=int, default=None, help="override [train] epochs")
    ap.add_argument("--reference", action="store_true", help="also train the paper's network (binary)")
    ap.add_argument("--config")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--models", default="models", help="models folder under OUT (another name: an A/B beside a run)")
    ap.add_argument("--report", default="report", help="report folder under OUT")
    ap.add_argument("--reuse-svm", help="models folder under OUT whose SVMs the report takes (none trained)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="[train] override; repeatable")
    a = ap.parse_args(argv)
    stages = [s for s in a.stages.split(",") if s]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        ap.error(f"unknown stages {bad}; use {list(STAGES)}")

    from artifactspark.logs import setup_logging
    from artifactspark.spark import get_spark

    setup_logging(os.environ.get("ARTIFACTSPARK_LOG", "INFO"))
    cfg = quality_config(a.config)
    out = os.path.abspath(a.out)
    archive, store, models, report = (os.path.join(out, d) for d in ("archive", "store", a.models, a.report))
    extra = os.path.join(out, "archive-extra")
    labels = os.path.join(archive, "labels", "checker_export.json")
    extra_labels = os.path.join(extra, "labels", "checker_export.json")
    res, times = {"out": out}, {}
    spark = get_spark("artifactspark-quality", a.master)
    try:
        if "simulate" in stages:
            t = time.time()
            if os.path.exists(labels):
                print(f"quality: archive already at {archive}", file=sys.stderr)
            else:
                from artifactspark.sim.archive import run_simulation

                s = run_simulation(spark, archive, a.exposures, cfg, ccds=CCDS, seed=a.seed)
                res["simulate"] = _sim_summary(s)
            if a.extra_exposures and not os.path.exists(extra_labels):
                from artifactspark.sim.archive import run_simulation

                ecfg = quality_config(a.config)
                ecfg.extra["simulate"]["first_expnum"] = EXTRA_FIRST_EXPNUM
                s = run_simulation(spark, extra, a.extra_exposures, ecfg, ccds=CCDS, seed=a.seed + 1)
                res["simulate_extra"] = _sim_summary(s)
            times["simulate"] = round(time.time() - t, 1)
        if "preprocess" in stages:
            from artifactspark.features.preprocess import run_preprocess

            t = time.time()
            have_extra = os.path.exists(extra_labels)
            p = run_preprocess(
                spark, [archive] + [extra] * have_extra, store, cfg, [labels] + [extra_labels] * have_extra
            )
            res["preprocess"] = {k: p.get(k) for k in ("inputs", "stored", "quarantined", "skipped")}
            times["preprocess"] = round(time.time() - t, 1)
        dirs = []
        if "train" in stages or "report" in stages:
            dirs = train(spark, cfg, store, models, a, res, times, run="train" in stages)
        if "report" in stages:
            from artifactspark.evaluate.report import build_report

            t = time.time()
            res["report"] = build_report(dirs, report, truth_dir(out, archive, extra))
            times["report"] = round(time.time() - t, 1)
    finally:
        spark.stop()
    res["seconds"] = times
    print(json.dumps(res, default=str))
    return 0


EXTRA_FIRST_EXPNUM = 329000


def _sim_summary(s: dict) -> dict:
    return {
        k: s.get(k)
        for k in (
            "ccds",
            "artifact_ccds",
            "detectable_artifact_ccds",
            "artifact_ccds_below_floor_share",
            "inspected_ccds",
            "ccds_per_second",
            "features_below_floor_by_class",
        )
    }


def truth_dir(out: str, archive: str, extra: str) -> str:
    """The labels folder holding the run's truth: the archive's, or with an extra batch both
    batches' truth.parquet and ccds.parquet concatenated into OUT/truth."""
    import pandas as pd

    batches = [os.path.join(d, "labels") for d in (archive, extra) if os.path.isdir(os.path.join(d, "labels"))]
    if len(batches) == 1:
        return batches[0]
    dest = os.path.join(out, "truth")
    os.makedirs(dest, exist_ok=True)
    for name in ("truth.parquet", "ccds.parquet"):
        pd.concat([pd.read_parquet(os.path.join(b, name)) for b in batches], ignore_index=True).to_parquet(
            os.path.join(dest, name)
        )
    return dest


def train(spark, cfg, store, models, a, res, times, run: bool) -> list[str]:
    """Train (or find) the quality run's models; returns the model directories for the report."""
    from artifactspark.models.cnn import train_cnn
    from artifactspark.models.svm import train_svm
    from artifactspark.models.training import prepare
    from artifactspark.models.trainingdata import train_config

    over = {"epochs": a.epochs} if a.epochs else {}
    for kv in a.set:
        k, _, v = kv.partition("=")
        over[k] = json.loads(v)
    tc = train_config(cfg, over)
    cnn = os.path.join(models, "cnn-multilabel")
    plan = [("cnn", "multilabel", cnn, tc)]
    svm_dir = os.path.join(os.path.dirname(models), a.reuse_svm) if a.reuse_svm else models
    plan += [("svm", pr, os.path.join(svm_dir, f"svm-{pr}"), tc) for pr in ("binary", "multiclass")]
    if a.reference:
        ref = train_config(
            cfg, {**over, "architecture": "paper", "batch_norm": False, "channels": ["image", "mask_frac"]}
        )
        plan.append(("cnn", "binary", os.path.join(models, "cnn-paper-binary"), ref))
    # an A/B beside a run takes its split by exposure (the SVMs' model.json holds it)
    split = os.path.join(svm_dir, "svm-binary", "model.json") if a.reuse_svm else None
    res.setdefault("train", {})
    for kind, problem, md, tcx in plan:
        done = os.path.isfile(os.path.join(md, "model.json"))
        if run and not done:
            t = time.time()
            ts = prepare(spark, store, problem, cfg, tcx, split)
            s = train_cnn(ts, md, tcx) if kind == "cnn" else train_svm(spark, ts, md, tcx, "rbf")
            res["train"][os.path.basename(md)] = {"test": s["test"], "rows": s["rows"]}
            times[f"train {os.path.basename(md)}"] = round(time.time() - t, 1)
        split = split or os.path.join(cnn, "model.json")
    dirs = [d for _, _, d, _ in plan if os.path.isfile(os.path.join(d, "model.json"))]
    views = [os.path.join(cnn, "views", v) for v in ("binary", "multiclass")]
    return dirs + [v for v in views if os.path.isfile(os.path.join(v, "model.json"))]


if __name__ == "__main__":
    raise SystemExit(main())
