"""A trained model on disk: its metadata, its saved predictions, and loading it to predict.

    MODEL_DIR/
      model.keras | model.joblib   the CNN (Keras) or the SVM (scikit-learn pipeline)
      model.json                   metadata: kind, problem, classes, version, threshold(s), split,
                                   the store's preprocessing config hash and data version, seeds,
                                   training config, input shape/channels, metrics, timings
      predictions_val.parquet      one row per validation CCD (the threshold was chosen on these)
      predictions_test.parquet     one row per held-out test CCD (the report's numbers)
      history.json                 CNN: loss and error per epoch (train / val / test)
      learning_curve.json          SVM: train and test error against training-set size

``load_predictor(dir)`` gives an object whose ``predict(image, mask_frac)`` maps a batch of stored
planes (N, H, W) to class probabilities (N, n_outputs): the one code path that training
evaluation and batch inference (jobs/infer.py) share.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

from ..errors import ConfigError
from ..logs import import_tensorflow

MODEL_JSON = "model.json"


class ModelError(ConfigError):
    """A model directory that is missing, incomplete or does not fit the data (exit code 2)."""


def split_outputs(meta: dict, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A model's raw outputs -> (class probabilities, P(artifact)). A multi-label model with an
    'any artifact' head (``meta["any_head"]``) has it as its last output; otherwise P(artifact)
    follows from the class probabilities (:func:`p_artifact`)."""
    raw = np.asarray(raw, np.float32)
    if meta.get("any_head"):
        return raw[:, :-1], raw[:, -1]
    return raw, p_artifact(meta["problem"], raw)


def input_fields(meta: dict) -> list[str]:
    """The store planes a model takes, in channel order (older models: image [+ mask_frac])."""
    inp = meta["input"]
    if inp.get("fields"):
        return list(inp["fields"])
    return ["image"] + (["mask_frac"] if inp.get("mask_channel") else [])


def input_columns(meta: dict) -> list[str]:
    """The store columns a model reads: its channels' planes, and the scalars of derived channels."""
    from .channels import store_columns

    return list(meta["input"].get("columns") or store_columns(input_fields(meta)))


def p_artifact(problem: str, probs: np.ndarray) -> np.ndarray:
    """P(the CCD has an artifact) from a model's class probabilities (no any head)."""
    probs = np.asarray(probs, np.float32)
    if problem == "binary":
        return probs[:, 1]
    if problem == "multiclass":
        return 1.0 - probs[:, -1]  # the last class is "no artifact"
    return probs.max(axis=1) if probs.shape[1] else np.zeros(len(probs), np.float32)


def file_digest(path: str) -> str:
    """The first 12 hex digits of the file's SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def write_json(path: str, obj) -> None:
    """Atomic JSON write (numpy values converted)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=_jsonable)
    os.replace(tmp, path)


def write_meta(model_dir: str, meta: dict) -> None:
    """Write ``model.json`` into ``model_dir`` (atomically)."""
    write_json(os.path.join(model_dir, MODEL_JSON), meta)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def read_meta(model_dir: str) -> dict:
    """``model_dir/model.json``; ModelError if there is none."""
    p = os.path.join(model_dir, MODEL_JSON)
    if not os.path.isfile(p):
        raise ModelError(
            f"{model_dir} has no {MODEL_JSON}: pass the --model-dir a train_cnn.py / train_svm.py run wrote"
        )
    with open(p) as f:
        return json.load(f)


def write_predictions(
    path: str, keys, probs: np.ndarray, y_true, problem: str, p_art: np.ndarray | None = None
) -> None:
    """keys: DataFrame/dict with expnum, ccdnum, band, nite, label, primary_class, multi_hot;
    ``p_art``: P(artifact) when it is not derived from ``probs`` (an any head)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(probs)
    y = np.asarray(y_true)
    cols = {
        "expnum": pa.array(np.asarray(keys["expnum"], np.int64)),
        "ccdnum": pa.array(np.asarray(keys["ccdnum"], np.int16)),
        "band": pa.array([str(b) for b in keys["band"]], pa.string()),
        "nite": pa.array(np.asarray(keys["nite"], np.int32)),
        "label": pa.array(np.asarray(keys["label"], np.int8)),
        "primary_class": pa.array(np.asarray(keys["primary_class"], np.int16)),
        "multi_hot": pa.array([np.asarray(m, np.int8).tolist() for m in keys["multi_hot"]], pa.list_(pa.int8())),
        "y_true": pa.array(np.full(n, -1, np.int16) if y.ndim == 2 else y.astype(np.int16)),
        "probs": pa.array([p.tolist() for p in np.asarray(probs, np.float32)], pa.list_(pa.float32())),
        "p_artifact": pa.array(np.asarray(p_artifact(problem, probs) if p_art is None else p_art, np.float32)),
    }
    pq.write_table(pa.table(cols), path)


def new_version(model_file: str) -> str:
    """A model version: the UTC time and the model file's digest."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + file_digest(model_file)


class Predictor:
    """A loaded model: ``predict({field: (N, H, W) planes}) -> (probs, p_artifact)``; loaded
    once, called per batch. ``fields`` names the store planes it needs."""

    def __init__(self, model_dir: str):
        self.dir = model_dir
        self.meta = read_meta(model_dir)
        self.kind, self.problem = self.meta["kind"], self.meta["problem"]
        inp = self.meta["input"]
        self.fields, self.coarsen = input_fields(self.meta), inp.get("coarsen", 1)
        self.columns = input_columns(self.meta)
        from .channels import DEFAULT_LEVEL_SPEC

        self.level = inp.get("level") or DEFAULT_LEVEL_SPEC
        self.shape = tuple(inp["image_shape"])
        self.score_flips = bool(inp.get("score_flips", False))  # models from before it: single pass
        path = os.path.join(model_dir, self.meta["model_file"])
        if not os.path.isfile(path):
            raise ModelError(f"{path} is missing: the model directory is incomplete")
        if self.kind == "cnn":
            tf = import_tensorflow()

            from .layers import custom_objects

            self.model = tf.keras.models.load_model(path, custom_objects=custom_objects(), compile=False)
        elif self.kind == "svm":
            import joblib

            self.model = joblib.load(path)
        else:
            raise ModelError(f"{model_dir}: unknown model kind {self.kind!r}")

    def check_shape(self, shape) -> None:
        """ModelError unless stored planes of ``shape`` are what the model was trained on."""
        if tuple(shape) != self.shape:
            raise ModelError(f"stored images are {tuple(shape)} but the model was trained on {self.shape}")

    def _check_columns(self, columns: dict) -> None:
        missing = [f for f in self.columns if f not in columns]
        if missing:
            raise ModelError(f"the model needs the store columns {missing}: re-preprocess the store with this version")

    def cnn_input(self, columns: dict) -> np.ndarray:
        """The CNN's (N, H, W, C) input from store columns (derived channels such as ``level_sn``
        computed here from the stored ones)."""
        from .channels import channel_planes
        from .trainingdata import stack_channels

        self._check_columns(columns)
        return stack_channels(channel_planes(columns, self.fields, self.level))

    def predict(self, columns: dict, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """columns: store column -> (N, H, W) planes or (N,) scalars, for every name in ``self.columns``."""
        from .trainingdata import svm_planes

        if self.kind == "cnn":
            from .layers import predict

            raw = predict(self.model, self.cnn_input(columns), batch_size, flips=self.score_flips)
            return split_outputs(self.meta, raw)
        self._check_columns(columns)
        standardize = self.meta["input"].get("standardize", False)
        X = svm_planes(columns, self.fields, self.coarsen, standardize, self.level)
        return split_outputs(self.meta, svm_probs(self.model, X, self.problem, len(self.meta["classes"])))


def svm_probs(model, X: np.ndarray, problem: str, n_out: int) -> np.ndarray:
    """Class probabilities on the model's full output set (classes unseen in training get 0)."""
    p = model.predict_proba(X)
    out = np.zeros((len(X), n_out), np.float32)
    out[:, model.classes_.astype(int)] = p
    return out
