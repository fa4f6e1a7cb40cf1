"""What the CNN and SVM training jobs share: the labelled set, its split, the threshold, the
model directory's metadata and predictions, the metrics."""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np

from . import modelio, splits
from .config import PipelineConfig
from .errors import ConfigError, StoreError
from .store import FEATURES
from .trainingdata import PROBLEMS, TrainConfig, labelled, load_index, open_store, output_classes

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingSet:
    store_uri: str
    features_uri: str
    store_meta: dict
    problem: str
    taxonomy: list
    classes: list
    index: object          # pandas: labelled rows of this problem with their target y
    split: dict
    counts: dict           # side -> rows

    def side(self, name: str):
        return self.index[self.index["expnum"].isin(self.split[name])]


def prepare(spark, store_uri: str, problem: str, cfg: PipelineConfig, tc: TrainConfig,
            split_path: str | None = None) -> TrainingSet:
    if problem not in PROBLEMS:
        raise ConfigError(f"unknown problem {problem!r}: use one of {list(PROBLEMS)}")
    store, meta = open_store(spark, store_uri)
    if meta.get("config_hash") != cfg.config_hash:
        log.warning("the store was preprocessed with config %s, this run's config is %s: the store's own "
                    "config (its classes, its image shape) is used for training", meta.get("config_hash"), cfg.config_hash)
    taxonomy = list(meta.get("classes") or cfg.taxonomy.classes)
    idx = labelled(load_index(spark, store), problem, len(taxonomy))
    if len(idx) == 0:
        raise StoreError(f"{store.uri} has no labelled CCDs for the {problem} problem: preprocess with "
                         "--labels (an exposure-checker export) so that CCDs carry volunteer labels")
    if split_path:
        split = splits.load_split(split_path)
        splits.check_split(split, idx["expnum"].unique())
        log.info("split %s from %s", split["id"], split_path)
    else:
        split = splits.split_exposures(idx["expnum"].unique(), tc.split_fractions, tc.seed)
    ts = TrainingSet(store.uri, store.path(FEATURES), meta, problem, taxonomy, output_classes(problem, taxonomy),
                     idx, split, {})
    ts.counts = {s: int(len(ts.side(s))) for s in splits.SIDES}
    for s in ("train", "test"):
        if ts.counts[s] == 0:
            raise StoreError(f"the {s} side of split {split['id']} has no labelled CCDs; use more exposures")
    log.info("%s: %d labelled CCDs in %d exposures; split %s: train %d, val %d, test %d CCDs",
             problem, len(idx), idx["expnum"].nunique(), split["id"], ts.counts["train"], ts.counts["val"], ts.counts["test"])
    return ts


def binary_truth(keys) -> np.ndarray:
    return (np.asarray(keys["label"]) == 1).astype(int)


def choose_threshold(ts: TrainingSet, keys_val, probs_val: np.ndarray, tc: TrainConfig) -> tuple[float, str]:
    """The decision threshold on P(artifact) for the target miss rate, chosen on validation."""
    from .metrics import threshold_for_fnr

    if len(probs_val) == 0 or binary_truth(keys_val).sum() == 0:
        return 0.5, "default 0.5: the validation side has no artifact CCDs"
    t = threshold_for_fnr(binary_truth(keys_val), modelio.p_artifact(ts.problem, probs_val), tc.target_fnr)
    return float(t), f"largest threshold with validation FNR <= {tc.target_fnr}"


def finish(ts: TrainingSet, model_dir: str, kind: str, model_file: str, tc: TrainConfig, extra: dict,
           preds: dict, t0: float) -> dict:
    """Write predictions, model.json and metrics.json; return the job summary.

    preds: side -> (keys, probs, y_true) for "val" and "test"."""
    from .metrics import summarize_model

    for side, (keys, probs, y) in preds.items():
        modelio.write_predictions(os.path.join(model_dir, f"predictions_{side}.parquet"), keys, probs, y, ts.problem)
    kv, pv, _ = preds["val"]
    threshold, how = choose_threshold(ts, kv, pv, tc)
    meta = {
        "name": f"{kind}-{ts.problem}", "kind": kind, "problem": ts.problem,
        "version": modelio.new_version(os.path.join(model_dir, model_file)), "model_file": model_file,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "classes": ts.classes, "taxonomy": ts.taxonomy,
        "threshold": threshold, "threshold_rule": how, "target_fnr": tc.target_fnr,
        "split": ts.split, "split_counts": ts.counts,
        "store": ts.store_uri, "config_hash": ts.store_meta.get("config_hash"),
        "store_version": ts.store_meta.get("last_run"), "seeds": {"split": ts.split["seed"], "train": tc.seed},
        "train_config": dataclasses.asdict(tc), **extra,
    }
    if ts.problem == "multilabel":
        meta["class_thresholds"] = [0.5] * len(ts.classes)
    modelio.write_meta(model_dir, meta)
    summary = summarize_model(model_dir)
    modelio.write_json(os.path.join(model_dir, "metrics.json"), summary)
    meta["test_metrics"] = {k: summary.get(k) for k in ("accuracy", "binary", "macro_f1") if k in summary}
    modelio.write_meta(model_dir, meta)
    return {"job": f"train_{kind}", "problem": ts.problem, "model_dir": model_dir, "version": meta["version"],
            "split": ts.split["id"], "rows": ts.counts, "threshold": threshold,
            "test": meta["test_metrics"], "seconds": round(time.time() - t0, 2)}


# ------------------------------------------------------------------------------ job plumbing
def add_common_args(p) -> None:
    """The arguments train_cnn.py and train_svm.py share."""
    from .cli import add_config_master_args

    p.add_argument("--store", required=True, help="feature store root written by jobs/preprocess.py")
    p.add_argument("--model-dir", required=True, help="folder to write the model, its metadata and predictions into")
    p.add_argument("--split", help="reuse a split: a split JSON or another model's model.json (default: made from [train] seed)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a [train] setting, e.g. --set epochs=5 --set augment=false (TOML values)")
    add_config_master_args(p)


def parse_overrides(items: list[str]) -> dict:
    import tomllib

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs=5")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out
