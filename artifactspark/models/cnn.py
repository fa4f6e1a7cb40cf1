"""The CNN (TensorFlow / Keras): the paper's architecture, trained from the Petastorm store.

Reference configuration (DeRose & Morningstar, section 4.2), in the paper's order:

    conv -> max-pool -> ReLU
    conv -> max-pool -> dropout -> ReLU
    flatten -> dense -> dropout -> ReLU
    dense -> dropout -> ReLU
    dense -> softmax (sigmoid for the multi-label problem)

Adam, cross-entropy. The paper gives no sizes; ours are in ``[train]`` (trainingdata.TrainConfig).
Against the overfitting the paper reports, each switchable in ``[train]`` so they can be
measured one by one (benchmarks/ablate_cnn.py): class weights, flips that keep the physics,
batch normalisation (before each ReLU), early stopping on validation loss (best weights kept).
"""

from __future__ import annotations

import logging
import math
import os
import time

import numpy as np

from ..logs import PROGRESS, import_tensorflow
from . import modelio
from .channels import SIGMA_CHANNELS, channel_planes, level_spec, store_columns
from .layers import artifact_accuracy, grid_level_layer, line_layer, predict, standardize_layer, top_k_layer
from .training import TrainingSet
from .trainingdata import (
    TrainConfig,
    class_weights,
    read_rows,
    stack_channels,
    targets_from_rows,
    train_stream,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"


def _paper_body(x, tc: TrainConfig, act):
    """The paper's reference network (section 4.2) after the input preparation."""
    from tensorflow.keras import layers

    x = layers.Conv2D(tc.conv_filters[0], tc.kernel_size, padding="same")(x)
    x = act(layers.MaxPooling2D(tc.pool_size, padding="same")(x))
    x = layers.Conv2D(tc.conv_filters[1], tc.kernel_size, padding="same")(x)
    x = layers.MaxPooling2D(tc.pool_size, padding="same")(x)
    x = act(layers.Dropout(tc.dropout)(x))
    x = layers.Flatten()(x)
    x = act(layers.Dropout(tc.dropout)(layers.Dense(tc.dense_units[0])(x)))
    return act(layers.Dropout(tc.dropout)(layers.Dense(tc.dense_units[1])(x)))


def _strided_body(x, tc: TrainConfig, act, extra=None):
    """The default network, built for 2 CPU cores: a strided patch stem (``stem`` x ``stem`` bins
    to one vector: a learned summary of the mean, max and spread channels), then 3x3
    convolutions halving the map while the width grows (``net_filters``), batch norm before
    each ReLU, and global average + max pooling (no 16k-wide flatten into a dense layer, so
    few parameters to overfit and any CCD position is treated alike)."""
    from tensorflow.keras import layers

    f = tc.net_filters
    x = act(layers.Conv2D(f[0], tc.stem, strides=tc.stem, padding="valid", use_bias=not tc.batch_norm)(x))
    for width in f[1:]:
        x = act(layers.Conv2D(width, 3, strides=2, padding="same", use_bias=not tc.batch_norm)(x))
        x = act(layers.Conv2D(width, 3, padding="same", use_bias=not tc.batch_norm)(x))
    parts = [layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)]
    if extra is not None:
        parts.append(layers.BatchNormalization(momentum=0.9)(extra) if tc.batch_norm else extra)
    x = layers.Concatenate()(parts)
    return layers.Dropout(tc.dropout)(x)


def any_weighted_bce(any_weight: float = 1.0):
    """Multi-label loss with an 'any artifact' head (the last output): the mean binary
    cross-entropy over the class outputs plus ``any_weight`` times the head's. With a plain mean
    over the 27 outputs the decision that matters most (artifact or not) would carry 1/27 of
    the gradient, and the rare class outputs (mostly 0) would dominate."""
    tf = import_tensorflow()

    def loss(y_true, y_pred):
        bce = tf.keras.backend.binary_crossentropy(tf.cast(y_true, y_pred.dtype), y_pred)
        return tf.reduce_mean(bce[:, :-1], axis=-1) + any_weight * bce[:, -1]

    return loss


def n_outputs(problem: str, n_classes_out: int, tc: TrainConfig) -> int:
    """Width of the network's last layer: the classes, plus the 'any artifact' sigmoid of a
    multi-label model with ``any_head``."""
    return n_classes_out + (1 if problem == "multilabel" and tc.any_head else 0)


def build_model(input_shape, n_out: int, problem: str, tc: TrainConfig, decay_steps: int = 1):
    """The compiled Keras model: input preparation, the ``[train] architecture`` body, ``n_out``
    outputs; ``decay_steps`` (epochs x steps per epoch) sets the cosine schedule's length."""
    tf = import_tensorflow()
    from tensorflow.keras import layers

    def act(x):
        if tc.batch_norm:  # momentum 0.9: running statistics settle within ~20 steps, also on small sets
            x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inp = tf.keras.Input(shape=tuple(input_shape), name="ccd")
    x = layers.AveragePooling2D(tc.input_pool)(inp) if tc.input_pool > 1 else inp
    sn = [i for i, c in enumerate(tc.channels) if c in SIGMA_CHANNELS]
    chans = list(tc.channels)
    pair = [chans.index("max_sn"), chans.index("sharp_sn")] if {"max_sn", "sharp_sn"} <= set(chans) else None
    if tc.standardize or sn:
        x = standardize_layer()(asinh_channels=sn, standardize=tc.standardize, sharp_pair=pair, name="standardize")(x)
    if tc.architecture == "paper":
        x = _paper_body(x, tc, act)
    else:
        extra = [top_k_layer()(8, name="top_sharp")(x)] if pair else []
        mask_index = chans.index("mask_frac") if "mask_frac" in chans else None
        if tc.line_k:
            extra.append(line_layer()(tc.line_k, mask_index, name="line_sn")(x))
        if "level_sn" in chans:
            extra.append(grid_level_layer()(chans.index("level_sn"), mask_index, name="level_grid")(x))
        x = _strided_body(x, tc, act, layers.Concatenate()(extra) if len(extra) > 1 else (extra or [None])[0])
    out = layers.Dense(n_out, activation="sigmoid" if problem == "multilabel" else "softmax", name="probs")(x)
    model = tf.keras.Model(inp, out, name=f"artifactspark_cnn_{problem}")
    if problem == "multilabel":
        loss = any_weighted_bce(tc.any_weight) if tc.any_head else tf.keras.losses.BinaryCrossentropy()
        metrics = [artifact_accuracy]
    else:
        loss, metrics = tf.keras.losses.SparseCategoricalCrossentropy(), ["sparse_categorical_accuracy"]
    lr = tc.learning_rate
    if tc.lr_schedule == "cosine":
        lr = tf.keras.optimizers.schedules.CosineDecay(tc.learning_rate, decay_steps=max(1, decay_steps), alpha=0.02)
    model.compile(optimizer=tf.keras.optimizers.Adam(lr), loss=loss, metrics=metrics)
    return model


def errors_of(problem: str, y, probs: np.ndarray) -> float:
    """The error the paper plots: 1 - accuracy (multi-label: of artifact yes/no)."""
    if len(probs) == 0:
        return float("nan")
    if problem == "multilabel":
        return float(np.mean((np.asarray(y).max(axis=1) > 0.5) != (probs.max(axis=1) >= 0.5)))
    return float(np.mean(np.argmax(probs, axis=1) != np.asarray(y)))


def load_side(ts: TrainingSet, side: str, tc: TrainConfig):
    """A validation/test side as (keys dict, x (N, H, W, C) float32, y)."""
    keys = ["expnum", "ccdnum", "band", "nite", "label", "primary_class", "multi_hot"]
    columns = store_columns(tc.channels)
    rows = read_rows(ts.features_uri, ts.split[side], keys + columns, ts.problem, tc.reader_workers)
    if not len(rows["expnum"]):
        return rows, np.zeros((0,)), np.zeros((0,))
    order = np.lexsort((rows["ccdnum"], rows["expnum"]))
    rows = {k: v[order] for k, v in rows.items()}
    planes = channel_planes({c: rows.pop(c) for c in columns}, tc.channels, level_spec(ts.store_meta.get("config")))
    y = targets_from_rows(rows, ts.problem, len(ts.taxonomy), ts.problem == "multilabel" and tc.any_head)
    return rows, stack_channels(planes), y


def train_cnn(
    ts: TrainingSet, model_dir: str, tc: TrainConfig, cur_shard: int | None = None, shard_count: int | None = None
) -> dict:
    """Train the CNN on ``ts`` into ``model_dir`` (model, history, predictions, model.json); the job summary."""
    tf = import_tensorflow()

    from .training import finish

    t0 = time.time()
    os.makedirs(model_dir, exist_ok=True)
    tf.keras.utils.set_random_seed(tc.seed)
    n_classes = len(ts.taxonomy)
    n_out = n_outputs(ts.problem, len(ts.classes), tc)
    any_head = n_out > len(ts.classes)
    image_shape = tuple(ts.store_meta["image_shape"])
    input_shape = (*image_shape, len(tc.channels))

    weights = None
    if tc.class_weights and ts.problem != "multilabel":
        weights = class_weights(np.asarray(ts.side("train")["y"], int), n_out)
        log.info("class weights: %s", np.round(weights, 2).tolist())
    val = load_side(ts, "val", tc)
    test = load_side(ts, "test", tc)
    log.info("validation %d and test %d CCDs in memory", len(val[1]), len(test[1]))

    n_train = ts.counts["train"] // (shard_count or 1)
    steps = max(1, math.ceil(n_train / tc.batch_size))
    model = build_model(input_shape, n_out, ts.problem, tc, decay_steps=steps * tc.epochs)
    history = {
        "epoch": [],
        "loss": [],
        "val_loss": [],
        "train_error": [],
        "val_error": [],
        "test_error": [],
        "seconds": [],
        "scoring_seconds": [],  # of "seconds", the per-epoch scoring of the val and test sides
    }
    acc_key = "artifact_accuracy" if ts.problem == "multilabel" else "sparse_categorical_accuracy"

    class Track(tf.keras.callbacks.Callback):
        """Per-epoch errors (fig. 4) and a progress line. The validation side is scored once per
        epoch, here: its loss goes into ``logs["val_loss"]`` for early stopping (listed after this
        callback) instead of a second pass by ``fit(validation_data=...)``. The test error is
        recorded for the plot only: nothing (threshold, early stopping, best epoch) is chosen on it."""

        def __init__(self):
            super().__init__()
            self.t = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            t_scoring = time.time()
            if len(val[1]):
                p = predict(self.model, val[1])
                logs["val_loss"] = float(tf.reduce_mean(self.model.loss(tf.constant(val[2]), tf.constant(p))))
            history["epoch"].append(epoch + 1)
            history["loss"].append(float(logs.get("loss", np.nan)))
            history["val_loss"].append(float(logs.get("val_loss", np.nan)))
            history["train_error"].append(1.0 - float(logs.get(acc_key, np.nan)))
            history["val_error"].append(errors_of(ts.problem, val[2], p) if len(val[1]) else float("nan"))
            history["test_error"].append(errors_of(ts.problem, test[2], predict(self.model, test[1])))
            history["seconds"].append(round(time.time() - self.t, 2))
            history["scoring_seconds"].append(round(time.time() - t_scoring, 2))
            log.info(
                "cnn %s epoch %d/%d: loss %.4f val_loss %.4f | error train %.3f val %.3f (%.1f s; scoring %.1f s)",
                ts.problem,
                epoch + 1,
                tc.epochs,
                history["loss"][-1],
                history["val_loss"][-1],
                history["train_error"][-1],
                history["val_error"][-1],
                history["seconds"][-1],
                history["scoring_seconds"][-1],
                extra=PROGRESS,
            )
            self.t = time.time()

    callbacks = [Track()]
    has_val = len(val[1]) > 0
    if tc.early_stopping_patience and has_val:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=tc.early_stopping_patience, restore_best_weights=True
            )
        )
    log.info(
        "training %s CNN: %d train CCDs, %d steps of %d per epoch, up to %d epochs, input %s",
        ts.problem,
        n_train,
        steps,
        tc.batch_size,
        tc.epochs,
        input_shape,
    )
    t_fit = time.time()
    with train_stream(
        ts.features_uri,
        ts.split["train"],
        ts.problem,
        n_classes,
        tc,
        weights,
        cur_shard,
        shard_count,
        level_spec(ts.store_meta.get("config")),
    ) as ds:
        model.fit(
            ds,
            steps_per_epoch=steps,
            epochs=tc.epochs,
            verbose=0,
            callbacks=callbacks,
        )
    fit_seconds = time.time() - t_fit
    vl = [v for v in history["val_loss"] if not np.isnan(v)]
    history["best_epoch"] = int(np.argmin(vl) + 1) if vl and tc.early_stopping_patience else len(history["epoch"])
    model.save(os.path.join(model_dir, MODEL_FILE))
    modelio.write_json(os.path.join(model_dir, "history.json"), history)

    preds = {}
    for side, (keys, x, y) in (("val", val), ("test", test)):
        raw = predict(model, x, flips=tc.score_flips) if len(x) else np.zeros((0, n_out), np.float32)
        probs, p_art = modelio.split_outputs({"any_head": any_head, "problem": ts.problem}, raw)
        preds[side] = (keys, probs, y[:, : len(ts.classes)] if any_head and len(y) else y, p_art)
    extra = {
        "input": {
            "fields": list(tc.channels),
            "columns": store_columns(tc.channels),
            "level": level_spec(ts.store_meta.get("config")),
            "image_shape": list(image_shape),
            "coarsen": 1,
            "input_shape": list(input_shape),
            "score_flips": tc.score_flips,
        },
        "architecture": tc.architecture,
        "any_head": any_head,
        "epochs_run": len(history["epoch"]),
        "best_epoch": history["best_epoch"],
        "shard": {"cur_shard": cur_shard, "shard_count": shard_count},
        "timing": {
            "fit_seconds": round(fit_seconds, 2),
            "images_per_second": round(len(history["epoch"]) * steps * tc.batch_size / fit_seconds, 2),
        },
        "params": int(model.count_params()),
    }
    summary = finish(ts, model_dir, "cnn", MODEL_FILE, tc, extra, preds, t0)
    from .training import write_views

    summary["views"] = write_views(model_dir)
    return summary
