"""What the training jobs read from the feature store: the labelled index, targets per problem,
the CNN's Petastorm -> ``tf.data`` stream, and the SVM's feature matrix collected with Spark.

Problems (the paper's two, plus the multi-label one it names as its main source of error):

- ``binary``: artifact (label 1) against clean (label 0);
- ``multiclass``: the CCD's primary class, with "no artifact" as an extra last class (the paper's
  many-class problem; CCDs whose only artifact reports had no known class are left out);
- ``multilabel``: the multi-hot vector over the taxonomy (sigmoid outputs; a clean CCD is all 0).

Only inspected CCDs with a usable label (``label`` 0 or 1: "OK" counts as clean) are labelled.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from ..config import PipelineConfig, _build
from ..errors import ConfigError, StoreError
from ..evaluate.context import WHOLE_EXPOSURE
from ..features.store import Store, decode_ndarray, decode_vector
from ..logs import import_tensorflow
from .channels import CHANNELS, DEFAULT_LEVEL_SPEC, SIGMA_CHANNELS, channel_planes, is_plane, level_sn_tf, store_columns

log = logging.getLogger(__name__)

PROBLEMS = ("binary", "multiclass", "multilabel")
ARCHITECTURES = ("strided", "paper")
THRESHOLD_RULES = ("cost", "fnr")
NO_ARTIFACT = "no artifact"
INDEX_COLUMNS = ["expnum", "ccdnum", "band", "nite", "inspected", "label", "primary_class", "multi_hot"]


@dataclass(frozen=True)
class TrainConfig:
    """``[train]`` in the pipeline config; every key optional (defaults here)."""

    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    target_fnr: float = 0.02  # the threshold is chosen on validation for this miss rate
    # the decision threshold on P(artifact), chosen on validation (training.choose_threshold):
    # "cost" minimises fn_cost * FNR + FPR (bootstrap median: stable with few positives, not
    # pulled down by a few invisible positives); "fnr": the largest threshold with validation
    # FNR <= target_fnr (falls back to "cost" when target_fnr * positives < 1)
    threshold_rule: str = "cost"
    fn_cost: float = 5.0
    # CNN. architecture "strided" (default, see cnn._strided_body) or "paper" (the reference:
    # the paper's layer order, sizes conv_filters / kernel_size / pool_size / dense_units)
    architecture: str = "strided"
    # model input channels (models/channels.py); level_sn is derived from stored columns
    channels: tuple[str, ...] = ("image", "mask_frac", "max_sn", "spread_sn", "sharp_sn", "level_sn")
    any_head: bool = True  # multilabel: an extra 'any artifact' sigmoid = P(artifact)
    any_weight: float = 1.0  # its loss weight against the mean over the class outputs
    stem: int = 4  # strided: the patch stem's size and stride, in bins
    line_k: int = 4  # strided: the k largest line S/N (models/lines.py, Radon) into the head; 0 = off
    # multilabel: classes the many-class decision caps at their exposure's median
    # (evaluate/context.py: the whole-exposure classes of des-data.md); () = off
    exposure_classes: tuple[str, ...] = WHOLE_EXPOSURE
    net_filters: tuple[int, ...] = (16, 32, 64, 128)
    batch_size: int = 16
    epochs: int = 30
    learning_rate: float = 0.001
    # "constant", or "cosine": decay to 2 % of learning_rate over epochs x steps (a late low-rate
    # phase that settles the noisy batch-norm statistics of 16-image batches)
    lr_schedule: str = "cosine"
    input_pool: int = 1  # extra block-mean of the stored image inside the model
    conv_filters: tuple[int, int] = (16, 32)
    kernel_size: int = 5
    pool_size: int = 4
    dense_units: tuple[int, int] = (128, 64)
    dropout: float = 0.25
    standardize: bool = True  # per-image sigma-clipped standardisation + arcsinh (see below)
    cache: bool = True  # keep decoded training rows in memory after the first pass
    # against overfitting, each switchable so they can be measured one by one
    class_weights: bool = True
    augment: bool = True  # flips only: see cnn.py for which keep the physics
    # score each CCD (val/test predictions, thresholds, batch inference) as the mean of the CNN's
    # outputs over its four flips, the ones `augment` trains with (layers.predict)
    score_flips: bool = True
    batch_norm: bool = True  # the strided network's; hurt the paper network (RESULTS.md)
    early_stopping_patience: int = 10  # epochs without val-loss gain; 0 = off
    shuffle_buffer: int = 512
    reader_workers: int = 2
    # SVM
    svm_coarsen: int = 8  # further block-mean of each channel for the SVM (6 x 64x32 = 12288 features)
    svm_c: float = 1.0
    svm_max_train: int = 20000
    learning_curve_points: int = 6


LR_SCHEDULES = ("constant", "cosine")


def train_config(cfg: PipelineConfig, overrides: dict | None = None) -> TrainConfig:
    """``[train]`` of the config with ``overrides`` applied, validated."""
    data = dict(cfg.extra.get("train", {}))
    data.update(overrides or {})
    tc = _build(TrainConfig, data, "train", "config")
    checks = [
        (tc.batch_size >= 1, "batch_size must be >= 1"),
        (tc.epochs >= 1, "epochs must be >= 1"),
        (0 < tc.learning_rate < 1, "learning_rate must be in (0, 1)"),
        (0 <= tc.dropout < 1, "dropout must be in [0, 1)"),
        (0 <= tc.target_fnr < 1, "target_fnr must be in [0, 1)"),
        (
            tc.input_pool >= 1 and tc.pool_size >= 1 and tc.kernel_size >= 1,
            "input_pool, pool_size, kernel_size must be >= 1",
        ),
        (min(tc.conv_filters + tc.dense_units) >= 1, "conv_filters and dense_units must be >= 1"),
        (tc.svm_coarsen >= 1 and tc.svm_c > 0, "svm_coarsen must be >= 1 and svm_c > 0"),
        (tc.early_stopping_patience >= 0, "early_stopping_patience must be >= 0"),
        (tc.learning_curve_points >= 2, "learning_curve_points must be >= 2"),
        (
            tc.shuffle_buffer >= 1 and tc.reader_workers >= 1 and tc.svm_max_train >= 10,
            "shuffle_buffer, reader_workers >= 1, svm_max_train >= 10",
        ),
        (tc.architecture in ARCHITECTURES, f"architecture must be one of {list(ARCHITECTURES)}"),
        (tc.threshold_rule in THRESHOLD_RULES, f"threshold_rule must be one of {list(THRESHOLD_RULES)}"),
        (tc.fn_cost > 0 and tc.any_weight >= 0, "fn_cost must be > 0 and any_weight >= 0"),
        (tc.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {list(LR_SCHEDULES)}"),
        (tc.line_k >= 0 and (tc.line_k == 0 or tc.standardize), "line_k must be >= 0, and needs standardize = true"),
        (
            len(tc.channels) >= 1
            and tc.channels[0] == "image"
            and set(tc.channels) <= set(CHANNELS)
            and len(set(tc.channels)) == len(tc.channels),
            f"channels must start with 'image' and be distinct names from {list(CHANNELS)}",
        ),
        (
            tc.stem >= 1 and len(tc.net_filters) >= 1 and min(tc.net_filters) >= 1,
            "stem >= 1 and net_filters non-empty, >= 1",
        ),
    ]
    # the default names des-data.md's classes: a taxonomy without some of them just skips those
    unknown = (
        sorted(set(tc.exposure_classes) - set(cfg.taxonomy.classes)) if tc.exposure_classes != WHOLE_EXPOSURE else []
    )
    checks.append((not unknown, f"exposure_classes {unknown} are not in [taxonomy] classes"))
    for ok, msg in checks:
        if not ok:
            raise ConfigError(f"[train] {msg} (got {dataclasses.asdict(tc)})")
    return tc


def output_classes(problem: str, taxonomy: list[str]) -> list[str]:
    """The names of a model's outputs for ``problem``."""
    if problem == "binary":
        return [NO_ARTIFACT, "artifact"]
    if problem == "multiclass":
        return list(taxonomy) + [NO_ARTIFACT]
    if problem == "multilabel":
        return list(taxonomy)
    raise ConfigError(f"unknown problem {problem!r}: use one of {list(PROBLEMS)}")


# ------------------------------------------------------------------------------ the index
def open_store(spark, store_uri: str, version: int | None = None) -> tuple[Store, dict]:
    """The store, pinned to its current version (or ``version``), and that version's metadata;
    StoreError if it has no features or metadata, UnsafeStore if its Unischema pickle is not ours."""
    store = Store(spark, store_uri)
    store.pin(version)
    store.check_readable()
    meta = store.meta()
    if not meta:
        raise StoreError(f"{store.uri} has no _store.json: not a store written by jobs/preprocess.py")
    return store, meta


def load_index(spark, store: Store):
    """Keys and labels of every stored CCD (no pixels), as a pandas DataFrame."""
    import pandas as pd

    df = store.read_features().select(*INDEX_COLUMNS)
    rows = [r.asDict() for r in df.collect()]
    idx = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    if len(idx):
        idx["multi_hot"] = [decode_vector(b).astype(np.int8) for b in idx["multi_hot"]]
    return idx


def labelled(idx, problem: str, n_classes: int):
    """The rows usable for ``problem`` with their target ``y`` (an int, or a multi-hot array)."""
    use = idx["inspected"].astype(bool) & idx["label"].isin([0, 1])
    if problem == "multiclass":
        use &= (idx["label"] == 0) | (idx["primary_class"] >= 0)
    out = idx[use].copy()
    if problem == "binary":
        out["y"] = out["label"].astype(int)
    elif problem == "multiclass":
        out["y"] = np.where(out["label"] == 1, out["primary_class"], n_classes).astype(int)
    else:
        out["y"] = list(np.stack(out["multi_hot"].to_list()) if len(out) else [])
    return out.sort_values(["expnum", "ccdnum"]).reset_index(drop=True)


def class_weights(y: np.ndarray, n_out: int, clip: float = 10.0) -> np.ndarray:
    """Balanced weights n / (k * n_c) for the classes present (k of them), clipped to [1/clip, clip]."""
    counts = np.bincount(y, minlength=n_out).astype(float)
    present = counts > 0
    w = np.ones(n_out)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return np.clip(w, 1 / clip, clip)


# ------------------------------------------------------------------------------ pixels
def stack_channels(planes: list) -> np.ndarray:
    """Same-shape planes ([N,] H, W), in channel order -> ([N,] H, W, C) float32 model input."""
    return np.stack([np.asarray(p, np.float32) for p in planes], axis=-1)


def standardize_image(img: np.ndarray, iterations: int = 2, clip: float = 3.0) -> np.ndarray:
    """Per image: subtract the sigma-clipped mean, divide by the clipped standard deviation,
    then arcsinh (noise ~ unit, bright sources log-compressed). Works on (..., H, W).

    Why: the paper's min/max arcsinh stretch maps [min, max] of each CCD to [0, 0.88]; one bright
    star sets the max, so the sky noise where most artifacts live ends up as ~0.002 wiggles
    around ~0.01 (measured on the simulated store). A network (and an SVM's per-feature
    scaler) barely sees that. Standardising each image against its own clipped noise keeps the
    stored rows the paper's and gives the models unit-scale inputs. The TF twin is
    ``cnn.Standardize``; both follow this function.
    """
    x = np.asarray(img, np.float32)
    axes = (-2, -1)
    mu = x.mean(axis=axes, keepdims=True)
    sd = x.std(axis=axes, keepdims=True)
    for _ in range(iterations):
        m = (np.abs(x - mu) <= clip * sd).astype(np.float32)
        n = np.maximum(m.sum(axis=axes, keepdims=True), 1.0)
        mu = (x * m).sum(axis=axes, keepdims=True) / n
        sd = np.sqrt((((x - mu) ** 2) * m).sum(axis=axes, keepdims=True) / n)
    return np.arcsinh((x - mu) / np.maximum(sd, 1e-6)).astype(np.float32)


def coarsen(img: np.ndarray, f: int) -> np.ndarray:
    """Plain block mean by ``f`` on the last two axes (trailing rows/cols cropped)."""
    if f == 1:
        return np.asarray(img, np.float32)
    h, w = img.shape[-2] // f * f, img.shape[-1] // f * f
    x = np.asarray(img[..., :h, :w], np.float32)
    return x.reshape(*x.shape[:-2], h // f, f, w // f, f).mean(axis=(-3, -1))


def read_rows(features_uri, expnums, fields: list[str], problem: str, workers: int = 2):
    """Every labelled row of the given exposures as a dict of numpy arrays (for val/test).

    Reads with Petastorm's ``make_reader`` (one pass, a predicate on the keys)."""
    from petastorm.predicates import in_lambda

    from .tfdata import read_columns

    wanted = {int(e) for e in expnums}
    keys = ["expnum", "inspected", "label", "primary_class"]
    cols = read_columns(features_uri, fields, in_lambda(keys, _row_filter(wanted, problem)), keys, workers)
    return {
        f: np.array(v) if v and np.ndim(v[0]) == 0 else (np.stack(v) if v else np.array([])) for f, v in cols.items()
    }


def svm_planes(columns: dict, channels, coarsen_by: int, standardize: bool, spec: dict | None = None) -> np.ndarray:
    """Store columns (name -> (N, H, W) planes or (N,) scalars) -> (N, d) SVM features: the image
    [standardised], the sky-sigma channels through arcsinh, each coarse-grained and flattened, in
    ``channels`` order (``spec``: see :func:`channels.level_spec`)."""
    out = []
    for c, plane in zip(channels, channel_planes(columns, channels, spec or DEFAULT_LEVEL_SPEC)):
        x = np.asarray(plane, np.float32)
        if c == "image" and standardize:
            x = standardize_image(x)
        elif c in SIGMA_CHANNELS:
            x = np.arcsinh(x)
        out.append(coarsen(x, coarsen_by).reshape(len(x), -1))
    return np.concatenate(out, axis=1).astype(np.float32)


def _row_filter(wanted: set, problem: str):
    def keep(expnum, inspected, label, primary_class):
        if int(expnum) not in wanted or not inspected or label not in (0, 1):
            return False
        return problem != "multiclass" or label == 0 or primary_class >= 0

    return keep


def targets_from_rows(rows: dict, problem: str, n_classes: int, any_head: bool = False) -> np.ndarray:
    """The training target per row: binary label, multiclass index, or multi-hot (with the
    'any artifact' bit appended for a multi-label model with an any head)."""
    if problem == "binary":
        return rows["label"].astype(np.int64)
    if problem == "multiclass":
        return np.where(rows["label"] == 1, rows["primary_class"], n_classes).astype(np.int64)
    mh = np.asarray(rows["multi_hot"], np.float32).reshape(len(rows["label"]), -1)
    if any_head:
        mh = np.concatenate([mh, (np.asarray(rows["label"]) == 1).astype(np.float32)[:, None]], axis=1)
    return mh


def train_stream(
    features_uri,
    expnums,
    problem: str,
    n_classes: int,
    tc: TrainConfig,
    weights: np.ndarray | None,
    cur_shard: int | None = None,
    shard_count: int | None = None,
    spec: dict | None = None,
):
    """Context manager -> an endless, shuffled, augmented, batched ``tf.data.Dataset`` of
    ``(x, y, sample_weight)`` read from the store through Petastorm (sharded by row group).

    With ``tc.cache`` the first pass over the reader (one epoch, row groups shuffled) is kept in
    memory as decoded float16 channels, and later epochs reshuffle that cache: the Petastorm
    read and the decompression are paid once, not once per epoch."""
    import contextlib

    tf = import_tensorflow()
    from petastorm.predicates import in_lambda

    from .tfdata import store_dataset

    chans = list(tc.channels)
    keys = ["expnum", "inspected", "label", "primary_class"]
    fields = keys + [c for c in store_columns(chans) if c not in keys]
    spec = spec or DEFAULT_LEVEL_SPEC
    if problem == "multilabel":
        fields.append("multi_hot")
    pred = in_lambda(["expnum", "inspected", "label", "primary_class"], _row_filter({int(e) for e in expnums}, problem))
    w = tf.constant(weights if weights is not None else np.ones(max(n_classes + 1, 2)), tf.float32)
    any_head = problem == "multilabel" and tc.any_head

    def plane(row, c):
        if c == "level_sn":
            return level_sn_tf(row.image, row.mask_frac, row.stretch_min, row.stretch_max, row.noise_sigma, spec)
        return getattr(row, c)

    def decode(row):
        x = tf.stack([tf.cast(plane(row, c), tf.float16) for c in chans], axis=-1)
        if problem == "binary":
            y = tf.cast(row.label, tf.int64)
        elif problem == "multiclass":
            y = tf.where(tf.equal(row.label, 1), tf.cast(row.primary_class, tf.int64), tf.constant(n_classes, tf.int64))
        else:
            y = tf.cast(row.multi_hot, tf.float32)
            if any_head:
                y = tf.concat([y, tf.reshape(tf.cast(tf.equal(row.label, 1), tf.float32), [1])], axis=0)
        return x, y

    def finish(x, y):
        x = tf.cast(x, tf.float32)
        if tc.augment:
            x = augment_flips(x)
        sw = tf.gather(w, y) if problem != "multilabel" else tf.constant(1.0)
        return x, y, sw

    @contextlib.contextmanager
    def cm():
        with store_dataset(
            features_uri,
            fields,
            cur_shard=cur_shard,
            shard_count=shard_count,
            num_epochs=1 if tc.cache else None,
            shuffle=True,
            seed=tc.seed,
            workers_count=tc.reader_workers,
            predicate=pred,
        ) as ds:
            ds = ds.map(decode, num_parallel_calls=2)
            if tc.cache:
                ds = ds.cache().repeat()
            yield (
                ds.shuffle(tc.shuffle_buffer, seed=tc.seed)
                .map(finish, num_parallel_calls=2)
                .batch(tc.batch_size)
                .prefetch(2)
            )

    return cm()


def augment_flips(x):
    """Random left-right and up-down flips of an (H, W, C) CCD image.

    Both keep every class what it is: a left-right flip swaps the two amplifiers (an A/B jump
    stays a step at the amplifier boundary, columns stay columns), an up-down flip reverses the
    row order (bleed trails and column defects stay vertical). Transposes and 90-degree
    rotations are NOT used: they turn readout-direction features (bleeds, column masks,
    vertical jumps and stripes, readout artifacts) into horizontal ones that do not exist.
    """
    tf = import_tensorflow()

    x = tf.image.random_flip_left_right(x)
    return tf.image.random_flip_up_down(x)


def collect_svm_features(
    spark,
    store: Store,
    expnums,
    problem: str,
    n_classes: int,
    coarsen_by: int,
    channels=("image",),
    standardize: bool = True,
    spec: dict | None = None,
):
    """Feature matrix for the SVM, built on the executors (decode + coarse-grain), collected.

    Returns (keys DataFrame, X float32 (n, d), y)."""
    import pandas as pd
    from pyspark.sql import functions as F

    wanted = sorted({int(e) for e in expnums})
    df = store.read_features().where(F.col("expnum").isin(wanted) & F.col("inspected") & F.col("label").isin(0, 1))
    if problem == "multiclass":
        df = df.where((F.col("label") == 0) | (F.col("primary_class") >= 0))
    channels = list(channels)
    keys = ["expnum", "ccdnum", "band", "nite", "label", "primary_class", "multi_hot"]
    needed = store_columns(channels)
    cols = keys + needed

    def featurize(rows):
        for r in rows:
            columns = {c: decode_ndarray(r[c])[None] if is_plane(c) else np.array([r[c]]) for c in needed}
            planes = svm_planes(columns, channels, coarsen_by, standardize, spec)
            yield (
                r["expnum"],
                r["ccdnum"],
                r["band"],
                r["nite"],
                r["label"],
                r["primary_class"],
                decode_vector(r["multi_hot"]).astype(np.int8),
                planes[0],
            )

    got = df.select(*cols).rdd.mapPartitions(featurize).collect()
    keys = pd.DataFrame(
        [g[:7] for g in got], columns=["expnum", "ccdnum", "band", "nite", "label", "primary_class", "multi_hot"]
    )
    X = np.stack([g[7] for g in got]) if got else np.zeros((0, 0), np.float32)
    order = np.lexsort((keys["ccdnum"].to_numpy(), keys["expnum"].to_numpy())) if len(keys) else np.arange(0)
    keys, X = keys.iloc[order].reset_index(drop=True), X[order]
    rows = {
        "label": keys["label"].to_numpy(),
        "primary_class": keys["primary_class"].to_numpy(),
        "multi_hot": np.stack(keys["multi_hot"].to_list()) if len(keys) else np.zeros((0, n_classes)),
    }
    return keys, X, targets_from_rows(rows, problem, n_classes)
