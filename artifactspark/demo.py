"""The end-to-end demo on the embedded default: local Spark, a generated sample archive.

1. simulates a DES-format archive with injected artifacts and exposure-checker labels
   (artifactspark.sim; full-size 4096x2048 CCDs, RICE-compressed);
2. preprocesses it into a Petastorm feature store;
3. trains the CNN (multi-label, with binary and many-class views) and the SVM (binary and many-class)
   on one split by exposure;
4. scores the whole store with the CNN into a predictions table (batch inference);
5. writes the report (confusion matrices, FPR/FNR curve, error vs epoch, learning curves,
   recall vs artifact strength, CNN vs SVM) and a gallery with one PNG per class;
and prints where to look. Running it again reuses what did not change: the archive, the store
(the second preprocess skips every input), the models (when no CCD changed) and the predictions.
"""

import json
import os
import resource
import sys
import time

from .evaluate.report import build_report
from .features.preprocess import run_preprocess
from .io.des import parse_ccd_list
from .logs import current_log_file
from .models.cnn import train_cnn
from .models.svm import train_svm
from .models.training import prepare
from .models.trainingdata import train_config
from .serve.infer import run_infer
from .sim.archive import run_simulation
from .sim.gallery import make_gallery

# exposures, CCDs, [train] overrides
SIZES = {
    "tiny": (5, "1-4", {"epochs": 2}),
    "small": (12, "1-20", {}),
    "medium": (30, "1-62", {}),
    "large": (60, "1-62", {}),
}
# the main CNN is multi-label (its binary and many-class views are written under views/); the SVMs
# are trained on the binary and many-class problems on its split
MODELS = (("cnn", "multilabel"), ("svm", "binary"), ("svm", "multiclass"))

STEPS = 6


def step(i: int, text: str) -> None:
    """A numbered progress line on the console."""
    print(f"[{i}/{STEPS}] {text}", file=sys.stderr, flush=True)


def run_demo(spark, cfg, size: str, out: str, seed: int = 1) -> dict:
    """Run the demo of ``size`` (a key of :data:`SIZES`) into the folder ``out``; the job summary."""
    paths = {d: os.path.join(out, d) for d in ("archive", "store", "models", "predictions", "report", "gallery")}
    n_exp, ccds, overrides = SIZES[size]
    res, t_all = {}, time.time()
    archive, store = paths["archive"], paths["store"]
    labels = os.path.join(archive, "labels", "checker_export.json")
    t = time.time()
    if os.path.exists(labels):
        step(1, f"sample archive already at {archive}: reusing it")
    else:
        step(1, f"simulating {n_exp} exposures x CCDs {ccds} into {archive}")
        run_simulation(spark, archive, n_exp, cfg, ccds=parse_ccd_list(ccds), seed=seed)
    print(f"      {time.time() - t:.0f} s", file=sys.stderr, flush=True)

    t = time.time()
    step(2, f"preprocess -> feature store {store}")
    pre = run_preprocess(spark, [archive], store, cfg, [labels])
    res["preprocess"] = {k: pre[k] for k in ("inputs", "stored", "quarantined", "skipped", "seconds")}
    changed = bool(pre["stored"] or pre["quarantined"])
    print(f"      {time.time() - t:.0f} s: {json.dumps(res['preprocess'])}", file=sys.stderr, flush=True)

    tc = train_config(cfg, overrides)
    dirs, split_file, res["train"] = {}, None, {}
    for i, (kind, problem) in enumerate(MODELS, 1):
        md = os.path.join(paths["models"], f"{kind}-{problem}")
        dirs[(kind, problem)] = md
        t = time.time()
        if not changed and os.path.isfile(os.path.join(md, "model.json")):
            step(3, f"model {i}/{len(MODELS)} {kind} {problem}: store unchanged, reusing {md}")
            res["train"][f"{kind}-{problem}"] = "reused"
        else:
            step(3, f"model {i}/{len(MODELS)}: training the {kind.upper()} on the {problem} problem -> {md}")
            ts = prepare(spark, store, problem, cfg, tc, split_file)
            s = train_cnn(ts, md, tc) if kind == "cnn" else train_svm(spark, ts, md, tc, "linear")
            res["train"][f"{kind}-{problem}"] = {"test": s["test"], "seconds": s["seconds"]}
            print(
                f"      {time.time() - t:.0f} s: test {json.dumps(s['test'], default=str)[:300]}",
                file=sys.stderr,
                flush=True,
            )
        split_file = split_file or os.path.join(md, "model.json")  # every model on the first one's split

    t = time.time()
    step(4, f"batch inference with the CNN -> predictions table {paths['predictions']}")
    res["infer"] = [
        {k: s[k] for k in ("model_version", "scored", "already_scored", "flagged")}
        for s in (run_infer(spark, store, dirs[("cnn", "multilabel")], paths["predictions"], cfg),)
    ]
    print(f"      {time.time() - t:.0f} s: {json.dumps(res['infer'])}", file=sys.stderr, flush=True)

    step(5, f"report -> {paths['report']}")
    truth = os.path.join(archive, "labels", "truth.parquet")
    cnn = dirs[("cnn", "multilabel")]
    views = [os.path.join(cnn, "views", v) for v in ("binary", "multiclass")]
    res["report"] = build_report(
        list(dirs.values()) + [v for v in views if os.path.isdir(v)],
        paths["report"],
        truth if os.path.exists(truth) else None,
    )
    step(6, f"gallery -> {paths['gallery']}")
    make_gallery(archive, paths["gallery"], cfg)
    res["gallery_pngs"] = len([f for f in os.listdir(paths["gallery"]) if f.endswith(".png")])
    print(
        "\nWhere to look:\n"
        f"  the report (open in a browser) {os.path.join(paths['report'], 'report.html')}\n"
        f"  archive (DES layout)           {archive}\n"
        f"  labels + simulator truth       {os.path.join(archive, 'labels')}\n"
        f"  feature store                  {store}  (versioned: open with versions.open_version; README 'The store')\n"
        f'  quarantine / manifest          ./submit.sh query --store {store} sql "SELECT * FROM quarantine"\n'
        f"  models (model.json, metrics)   {paths['models']}\n"
        f"  predictions table              {paths['predictions']}  (query: ./submit.sh query --store {store} "
        f"--predictions {paths['predictions']} disagree)\n"
        f"  one PNG per class              {paths['gallery']}\n"
        f"  every detail (the log)         {current_log_file() or 'ARTIFACTSPARK_LOG=INFO shows it here'}\n"
        f"  total {time.time() - t_all:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    res["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # training runs here
    return {"job": "demo", "size": size, "out": out, "seconds": round(time.time() - t_all, 1), **res}
