"""What the CNN and SVM training jobs share: the labelled set, its split, the threshold, the
model directory's metadata and predictions, the metrics."""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np

from ..config import PipelineConfig
from ..errors import ConfigError, StoreError
from ..evaluate.context import MIN_CCDS, context_probs
from . import modelio, splits
from .trainingdata import PROBLEMS, TrainConfig, labelled, load_index, open_store, output_classes

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingSet:
    """What a training job trains on: the labelled rows of one problem, their split and the store's metadata."""

    store_uri: str
    features_uri: object  # the StoreVersion trained on: what tfdata.open_reader / read_rows take
    store_meta: dict
    problem: str
    taxonomy: list
    classes: list
    index: object  # pandas: labelled rows of this problem with their target y
    split: dict
    counts: dict  # side -> rows

    def side(self, name: str):
        """The index rows of one side of the split (``train``, ``val``, ``test``)."""
        return self.index[self.index["expnum"].isin(self.split[name])]


def prepare(
    spark,
    store_uri: str,
    problem: str,
    cfg: PipelineConfig,
    tc: TrainConfig,
    split_path: str | None = None,
    store_version: int | None = None,
) -> TrainingSet:
    """The :class:`TrainingSet` of ``problem`` from the store's current version (or version
    ``store_version``): the split made, or read from ``split_path``."""
    if problem not in PROBLEMS:
        raise ConfigError(f"unknown problem {problem!r}: use one of {list(PROBLEMS)}")
    store, meta = open_store(spark, store_uri, store_version)
    if meta.get("config_hash") != cfg.config_hash:
        log.warning(
            "the store was preprocessed with config %s, this run's config is %s: the store's own "
            "config (its classes, its image shape) is used for training",
            meta.get("config_hash"),
            cfg.config_hash,
        )
    taxonomy = list(meta.get("classes") or cfg.taxonomy.classes)
    idx = labelled(load_index(spark, store), problem, len(taxonomy))
    if len(idx) == 0:
        raise StoreError(
            f"{store.uri} has no labelled CCDs for the {problem} problem: preprocess with "
            "--labels (an exposure-checker export) so that CCDs carry volunteer labels"
        )
    if split_path:
        split = splits.load_split(split_path)
        splits.check_split(split, idx["expnum"].unique())
        log.info("split %s from %s", split["id"], split_path)
    else:
        split = splits.split_exposures(idx["expnum"].unique(), tc.split_fractions, tc.seed)
    ts = TrainingSet(
        store.uri, store.version(), meta, problem, taxonomy, output_classes(problem, taxonomy), idx, split, {}
    )
    ts.counts = {s: int(len(ts.side(s))) for s in splits.SIDES}
    for s in ("train", "test"):
        if ts.counts[s] == 0:
            raise StoreError(f"the {s} side of split {split['id']} has no labelled CCDs; use more exposures")
    log.info(
        "%s: %d labelled CCDs in %d exposures; split %s: train %d, val %d, test %d CCDs",
        problem,
        len(idx),
        idx["expnum"].nunique(),
        split["id"],
        ts.counts["train"],
        ts.counts["val"],
        ts.counts["test"],
    )
    return ts


def binary_truth(keys) -> np.ndarray:
    """1 where a row's ``label`` is 1 (artifact), else 0."""
    return (np.asarray(keys["label"]) == 1).astype(int)


def choose_threshold(keys_val, p_val: np.ndarray, tc: TrainConfig) -> tuple[float, str]:
    """The decision threshold on P(artifact), chosen on validation by ``[train] threshold_rule``
    (see artifactspark/models/thresholds.py)."""
    from ..evaluate.scores import threshold_for_fnr
    from .thresholds import cost_threshold

    y = binary_truth(keys_val)
    if len(p_val) == 0 or y.sum() == 0 or y.sum() == len(y):
        return 0.5, "default 0.5: the validation side lacks artifact or clean CCDs"
    cost_rule = f"cost rule: minimises {tc.fn_cost} * FNR + FPR on validation (bootstrap median)"
    if tc.threshold_rule == "fnr":
        if tc.target_fnr * y.sum() >= 1:
            return float(
                threshold_for_fnr(y, p_val, tc.target_fnr)
            ), f"largest threshold with validation FNR <= {tc.target_fnr}"
        return cost_threshold(y, p_val, tc.fn_cost, seed=tc.seed), (
            f"{cost_rule}: with {int(y.sum())} validation positives, target FNR {tc.target_fnr} allows no miss"
        )
    return cost_threshold(y, p_val, tc.fn_cost, seed=tc.seed), cost_rule


def finish(
    ts: TrainingSet, model_dir: str, kind: str, model_file: str, tc: TrainConfig, extra: dict, preds: dict, t0: float
) -> dict:
    """Write predictions, model.json and metrics.json; return the job summary.

    preds: side -> (keys, probs, y_true[, p_artifact]) for "val" and "test" (p_artifact when a
    model has its own 'any artifact' output)."""
    from ..evaluate.summary import summarize_model
    from .thresholds import class_thresholds

    p_art = {}
    context = None
    if ts.problem == "multilabel" and tc.exposure_classes:
        # issue 9: the many-class decision caps these at their exposure's median (evaluate/context.py);
        # the probabilities written stay the CCD's own
        context = {"classes": [c for c in tc.exposure_classes if c in ts.classes], "min_ccds": MIN_CCDS}
    for side, (keys, probs, y, *pa) in preds.items():
        p_art[side] = pa[0] if pa else modelio.p_artifact(ts.problem, probs)
        modelio.write_predictions(
            os.path.join(model_dir, f"predictions_{side}.parquet"), keys, probs, y, ts.problem, p_art[side]
        )
    kv, pv = preds["val"][0], preds["val"][1]
    threshold, how = choose_threshold(kv, p_art["val"], tc)
    meta = {
        "name": f"{kind}-{ts.problem}",
        "kind": kind,
        "problem": ts.problem,
        "version": modelio.new_version(os.path.join(model_dir, model_file)),
        "model_file": model_file,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "classes": ts.classes,
        "taxonomy": ts.taxonomy,
        "threshold": threshold,
        "threshold_rule": how,
        "target_fnr": tc.target_fnr,
        "split": ts.split,
        "split_counts": ts.counts,
        "store": ts.store_uri,
        "config_hash": ts.store_meta.get("config_hash"),
        "store_version": ts.features_uri.number,  # jobs/train_*.py --store-version N reads it again
        "store_run": ts.store_meta.get("last_run"),
        "seeds": {"split": ts.split["seed"], "train": tc.seed},
        "train_config": dataclasses.asdict(tc),
        "exposure_context": context,
        **extra,
    }
    if ts.problem == "multilabel":
        mh = np.stack(list(kv["multi_hot"])) if len(pv) else np.zeros((0, len(ts.classes)))
        meta["class_thresholds"], meta["class_threshold_rules"] = class_thresholds(mh, pv, tc.fn_cost, seed=tc.seed)
    modelio.write_meta(model_dir, meta)
    summary = summarize_model(model_dir)
    modelio.write_json(os.path.join(model_dir, "metrics.json"), summary)
    meta["test_metrics"] = {k: summary.get(k) for k in ("accuracy", "binary", "macro_f1") if k in summary}
    modelio.write_meta(model_dir, meta)
    return {
        "job": f"train_{kind}",
        "problem": ts.problem,
        "model_dir": model_dir,
        "version": meta["version"],
        "split": ts.split["id"],
        "rows": ts.counts,
        "threshold": threshold,
        "test": meta["test_metrics"],
        "seconds": round(time.time() - t0, 2),
    }


# ------------------------------------------------------------------------------ views of a multi-label model
def write_views(model_dir: str) -> list[str]:
    """The binary and many-class views of a multi-label model with an 'any artifact' head,
    written as model directories ``MODEL_DIR/views/{binary,multiclass}`` for evaluation and
    for the CNN-vs-SVM comparison (one network serves the three problems):

    - binary: probs = [1 - p, p] with p = P(any artifact), the model's threshold;
    - multiclass: probs = [p * q_c ..., 1 - p] with q_c the class sigmoids (after the many-class
      decision's exposure rule, evaluate/context.py) normalised to sum 1,
      so P(no artifact) = 1 - p and the many-class problem's rows (label 0, or label 1 with a
      known primary class) are kept.

    Each view's model.json says ``derived_from`` and ``evaluation_only``: batch inference uses
    the multi-label model itself. Returns the view directories."""
    import pyarrow.parquet as pq

    from ..evaluate.summary import summarize_model
    from .trainingdata import output_classes

    meta = modelio.read_meta(model_dir)
    if meta.get("problem") != "multilabel" or not meta.get("any_head"):
        return []
    taxonomy = list(meta["taxonomy"])
    out = []
    for problem in ("binary", "multiclass"):
        vdir = os.path.join(model_dir, "views", problem)
        os.makedirs(vdir, exist_ok=True)
        for side in ("val", "test"):
            t = pq.read_table(os.path.join(model_dir, f"predictions_{side}.parquet")).to_pandas()
            if problem == "multiclass":
                t = t[(t["label"] == 0) | (t["primary_class"] >= 0)].reset_index(drop=True)
            p = t["p_artifact"].to_numpy(np.float32)
            if problem == "binary":
                probs = np.stack([1 - p, p], axis=1) if len(t) else np.zeros((0, 2), np.float32)
                y = t["label"].to_numpy()
            else:
                cp = (
                    np.stack(t["probs"].to_list()).astype(np.float32)
                    if len(t)
                    else np.zeros((0, len(taxonomy)), np.float32)
                )
                cp = context_probs(meta, cp, t["expnum"].to_numpy())  # the many-class decision's rule
                q = cp / np.maximum(cp.sum(axis=1, keepdims=True), 1e-9)
                probs = np.concatenate([p[:, None] * q, (1 - p)[:, None]], axis=1)
                y = np.where(t["label"] == 1, t["primary_class"], len(taxonomy))
            modelio.write_predictions(os.path.join(vdir, f"predictions_{side}.parquet"), t, probs, y, problem, p)
        vmeta = {
            **meta,
            "name": f"{meta['kind']}-{problem}",
            "problem": problem,
            "classes": output_classes(problem, taxonomy),
            "derived_from": os.path.abspath(model_dir),
            "evaluation_only": True,
            "any_head": False,
            "threshold_rule": f"{meta.get('threshold_rule')} (the multi-label model's P(any artifact))",
        }
        vmeta.pop("class_thresholds", None)
        vmeta.pop("class_threshold_rules", None)
        modelio.write_meta(vdir, vmeta)
        modelio.write_json(os.path.join(vdir, "metrics.json"), summarize_model(vdir))
        out.append(vdir)
    return out
