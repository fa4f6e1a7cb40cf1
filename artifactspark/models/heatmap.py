"""Where on the CCD: class activation maps of the trained CNN, at tile resolution (issue 12).

The strided network ends in a (16, 8, 128) feature map F (one cell = 32 x 32 binned = 256 x 256
full-resolution pixels) that is pooled globally (average and max) into the dense output layer,
beside position-free scalars (TopK sharp values, LineSN line S/N). The pooled part of an
output's logit therefore splits exactly over the cells:

    logit_c = sum_ij A_c(i, j) + (scalars' part) + b_c,
    A_c(i, j) = sum_k F_ijk * (W_avg[k, c] / (H W) + W_max[k, c] * [ (i, j) = argmax F_..k ])

(``mode="exact"``; ``mode="smooth"`` spreads the max weights over every cell, A_c = sum_k F_ijk
(W_avg + W_max)). Only its positive part is kept (evidence *for* the output), upsampled
bilinearly to tiles of ``TILE`` x ``TILE`` full-resolution pixels (32 x 16 tiles on a 4096 x 2048
CCD). No gradient and no second pass: one extra output (F) on the forward pass the score needs,
and a (B, 128) x (128, maps) product. benchmarks/bench_heatmap.py measures the cost and
benchmarks/RESULTS.md the alternatives (Grad-CAM at the 32 x 16 layer).

Maps: ``any`` (P(artifact): the any-head of a multi-label model, the artifact class of a binary
one, artifact minus "no artifact" for a many-class one), then one per checker menu group
(``GROUPS``) for models with per-class outputs: the classes' maps weighted by their
probabilities within the group.

Stored (serve/infer.py): ``heatmap`` = uint8 bytes of (maps, rows, cols), each map scaled to its
own maximum (255); ``heatmap_scale`` = that maximum in logit units per map (0: no evidence);
``heatmap_shape`` = [maps, rows, cols]; ``hot_row``, ``hot_col`` = full-resolution centre of the
hottest tile of the ``any`` map (numpy (row, col) of the FITS array: (NAXIS2, NAXIS1) - 1).
"""

from __future__ import annotations

import numpy as np

from ..evaluate.tiles import (  # re-exported for serve/, which sees evaluate/ through models/ only
    GROUPS,
    HOT_SHARE,
    TILE,
    dequantise,
    distance_to_hot,
    group_of,
    hot_tiles,
    map_names,
    quantise,
    tile_grid,
    upsample,
)

__all__ = [
    "GROUPS",
    "HOT_SHARE",
    "TILE",
    "dequantise",
    "distance_to_hot",
    "group_of",
    "hot_tiles",
    "map_names",
    "quantise",
    "tile_grid",
    "upsample",
    "CamModel",
    "HeatModel",
    "fit_heatmap",
    "heat_columns",
    "load_head",
    "tile_features_model",
    "train_head",
    "target_maps",
]
from ..logs import import_tensorflow


class CamModel:
    """A loaded CNN with its heatmap: ``run(x) -> (raw outputs, (N, maps, rows, cols) float32)``."""

    def __init__(self, model, meta: dict, ccd_shape=(4096, 2048), mode: str = "exact", tile: int = TILE):
        tf = import_tensorflow()
        gap = next((la for la in model.layers if type(la).__name__ == "GlobalAveragePooling2D"), None)
        if gap is None:
            raise ValueError("the model has no global average pooling: no class activation map (architecture 'paper')")
        dense = model.get_layer("probs")
        self.fmap_channels = int(gap.input.shape[-1])
        self.model = tf.keras.Model(model.input, [model.output, gap.input])
        kernel = dense.get_weights()[0]  # (features, outputs): [avg | max | scalars]
        k = self.fmap_channels
        self.w_avg, self.w_max = kernel[:k], kernel[k : 2 * k]
        self.meta, self.mode, self.tile = meta, mode, tile
        self.grid = tile_grid(ccd_shape, tile)
        self.names = map_names(meta)
        self.classes = list(meta.get("classes", []))

    def _maps(self, raw: np.ndarray, fmap: np.ndarray) -> np.ndarray:
        n, h, w, k = fmap.shape
        flat = fmap.reshape(n, h * w, k)
        wa = self.w_avg / (h * w)
        if self.mode == "smooth":
            cam = flat @ (wa + self.w_max)  # (n, cells, outputs)
        else:
            arg = flat.argmax(axis=1)  # (n, k): the cell each channel's max comes from
            at_max = np.zeros_like(flat)
            np.put_along_axis(at_max, arg[:, None, :], np.take_along_axis(flat, arg[:, None, :], 1), axis=1)
            cam = flat @ wa + at_max @ self.w_max
        out = [self._any(cam, raw)]
        for g in self.names[1:]:
            idx = [self.classes.index(c) for c in GROUPS[g] if c in self.classes]
            p = raw[:, idx] + 1e-6
            out.append(np.einsum("ncj,nj->nc", cam[:, :, idx], p / p.sum(axis=1, keepdims=True)))
        maps = np.maximum(np.stack(out, axis=1), 0).reshape(n, len(out), h, w)
        return upsample(maps, self.grid).astype(np.float32)

    def _any(self, cam: np.ndarray, raw: np.ndarray) -> np.ndarray:
        problem = self.meta.get("problem")
        if problem == "multilabel" and self.meta.get("any_head"):
            return cam[:, :, -1]
        if problem == "binary":
            return cam[:, :, 1] - cam[:, :, 0]
        if problem == "multiclass":
            p = raw[:, :-1] + 1e-6
            return np.einsum("ncj,nj->nc", cam[:, :, :-1], p / p.sum(axis=1, keepdims=True)) - cam[:, :, -1]
        p = raw + 1e-6
        return np.einsum("ncj,nj->nc", cam, p / p.sum(axis=1, keepdims=True))

    def run(self, x: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """x (N, H, W, C) model input -> (raw outputs (N, outputs), maps (N, maps, rows, cols))."""
        raws, maps = [], []
        for i in range(0, len(x), batch_size):
            raw, fmap = self.model(x[i : i + batch_size], training=False)
            raw = raw.numpy()
            raws.append(raw)
            maps.append(self._maps(raw, fmap.numpy()))
        if not raws:
            return np.zeros((0, self.model.output[0].shape[-1]), np.float32), np.zeros((0, len(self.names), *self.grid))
        return np.concatenate(raws), np.concatenate(maps)


# ------------------------------------------------------------------------------ the tile head
HEAD_FILE = "heatmap_head.keras"
TEST_FILE = "heatmaps_test.parquet"


def tile_features_model(model, tile_bins: int = 16, coherent: bool = True, lines: bool = False):
    """A Keras model: CNN input -> (N, rows, cols, F) per-tile features for the tile head: the
    network's feature map at tile resolution (the last ReLU with ``rows`` x ``cols`` cells, i.e.
    one cell per tile), the tile max and mean of the prepared input (``Standardize``'s output),
    with ``coherent`` the largest excess of one column's (row's) mean over the tile above its
    running mean across the tile (what one bin column of a long defect adds up to), and with
    ``lines`` (a network with a ``LineSN`` layer) the best line S/N of any line crossing the tile:
    the network's own line detector, back-projected, so that a track too faint for any tile alone
    is located where it runs."""
    tf = import_tensorflow()
    prep = model.get_layer("standardize").output
    h, w = int(prep.shape[1]) // tile_bins, int(prep.shape[2]) // tile_bins
    fmap = [la.output for la in model.layers if type(la).__name__ == "ReLU" and tuple(la.output.shape[1:3]) == (h, w)]
    if not fmap:
        raise ValueError(f"the model has no {h} x {w} feature map for a tile head")
    from tensorflow.keras import layers

    # explicit names: a loaded model's own layers are named "concatenate", ... and the combined
    # model (HeatModel) needs every name once
    t = tile_bins
    mx, mean = layers.MaxPooling2D(t, name="heat_max")(prep), layers.AveragePooling2D(t, name="heat_mean")(prep)
    parts = [fmap[-1], mx, mean]
    line_layers = [la for la in model.layers if type(la).__name__ == "LineSN"] if lines else []
    if line_layers:
        ln = line_layers[0]
        per_tile = t // ln.pool
        cells = layers.Lambda(ln.cell_map, name="heat_line_cells")(ln.input)
        parts.append(layers.MaxPooling2D(per_tile, name="heat_line_max")(cells[:, : h * per_tile, : w * per_tile]))
    if coherent:  # a column (row) standing out over the tile's height (width): column defects, cross-talk
        for k, (along, across) in enumerate((((t, 1), (1, t)), ((1, t), (t, 1)))):
            line = layers.AveragePooling2D(along, name=f"heat_line{k}")(prep)
            run = layers.AveragePooling2D(across, strides=(1, 1), padding="same", name=f"heat_run{k}")(line)
            excess = layers.Subtract(name=f"heat_excess{k}")([line, run])
            parts.append(layers.MaxPooling2D(across, name=f"heat_peak{k}")(excess))
    return tf.keras.Model(model.input, layers.Concatenate(name="heat_tiles")(parts), name="heat_features")


def build_head(n_features: int, n_maps: int, mean, var, hidden: int = 32):
    """The tile head: standardised tile features and their difference to the CCD's mean tile
    (what stands out on this CCD), a 1x1 and a 3x3 convolution, one logit map per heatmap."""
    tf = import_tensorflow()
    from tensorflow.keras import layers

    inp = tf.keras.Input((None, None, n_features), name="tiles")
    x = layers.Normalization(mean=mean, variance=var, name="tile_norm")(inp)
    rel = layers.Subtract()([x, layers.GlobalAveragePooling2D(keepdims=True)(x)])
    x = layers.Concatenate()([x, rel])
    x = layers.Conv2D(hidden, 1, activation="relu")(x)
    x = layers.Conv2D(hidden, 3, padding="same", activation="relu")(x)
    return tf.keras.Model(inp, layers.Conv2D(n_maps, 1, name="tile_logits")(x), name="heatmap_head")


def target_maps(positions, names: list[str], grid: tuple[int, int], tile: int = TILE, spread: int = 1) -> np.ndarray:
    """Weak labels of one CCD: (rows, cols, maps), 1 on the tiles within ``spread`` tiles of a
    report of the map's group (``any``: every report); ``positions``: (class name, row, col) full
    resolution."""
    y = np.zeros((*grid, len(names)), np.float32)
    for cls, row, col in positions:
        r, c, s = int(row) // tile, int(col) // tile, int(spread)
        for m, name in enumerate(names):
            if name == "any" or group_of(cls) == name:
                y[max(r - s, 0) : r + s + 1, max(c - s, 0) : c + s + 1, m] = 1
    return y


def train_head(feats: np.ndarray, targets: np.ndarray, epochs: int = 5, seed: int = 0, hidden: int = 32):
    """Fit the tile head as a multiple-instance 'which tile' problem: per CCD and map with a
    report, the cross-entropy between the softmax over the CCD's tiles and the reported tiles
    (spread evenly), so a map only has to rank the tiles of one CCD. ``feats`` (N, rows, cols, F),
    ``targets`` (N, rows, cols, maps). 5 epochs: the quality run's pointing against the test
    reports peaked there (benchmarks/RESULTS.md)."""
    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(seed)
    flat = feats.reshape(-1, feats.shape[-1])
    head = build_head(feats.shape[-1], targets.shape[-1], flat.mean(0), flat.var(0) + 1e-6, hidden)
    has = (targets.reshape(len(targets), -1, targets.shape[-1]).max(axis=1) > 0).astype(np.float32)
    keep = has[:, 0] > 0
    x, y, h = feats[keep], targets[keep], has[keep]
    y = y / np.maximum(y.sum(axis=(1, 2), keepdims=True), 1.0)
    opt = tf.keras.optimizers.Adam(3e-3)

    @tf.function
    def step(xb, yb, hb):
        with tf.GradientTape() as tape:
            lg = head(xb, training=True)
            n, m = tf.shape(lg)[0], tf.shape(lg)[-1]
            lf = tf.reshape(tf.transpose(lg, [0, 3, 1, 2]), [n, m, -1])
            yf = tf.reshape(tf.transpose(yb, [0, 3, 1, 2]), [n, m, -1])
            ce = -tf.reduce_sum(yf * tf.nn.log_softmax(lf, -1), -1)
            loss = tf.reduce_sum(ce * hb) / tf.maximum(tf.reduce_sum(hb), 1.0)
        opt.apply_gradients(zip(tape.gradient(loss, head.trainable_variables), head.trainable_variables))
        return loss

    rng, losses = np.random.default_rng(seed), []
    for _ in range(epochs):
        idx, ls = rng.permutation(len(x)), []
        for i in range(0, len(idx), 64):
            b = idx[i : i + 64]
            ls.append(float(step(x[b], y[b], h[b])))
        losses.append(round(float(np.mean(ls)), 4) if ls else None)
    return head, {"ccds_with_reports": int(keep.sum()), "loss": losses}


def tile_softmax(logits: np.ndarray) -> np.ndarray:
    """(N, rows, cols, maps) logits -> (N, maps, rows, cols): each map a distribution over tiles."""
    z = np.transpose(logits, (0, 3, 1, 2)).astype(np.float64)
    z = np.exp(z - z.max(axis=(2, 3), keepdims=True))
    return (z / z.sum(axis=(2, 3), keepdims=True)).astype(np.float32)


class HeatModel:
    """A CNN with its tile head, one forward pass: ``run(x) -> (raw outputs, (N, maps, rows, cols))``."""

    def __init__(self, model, head, meta: dict, tile: int = TILE):
        tf = import_tensorflow()
        bins = tile // int(meta.get("input", {}).get("level", {}).get("factor", 8))  # binned pixels per tile side
        # the feature set the head was fitted on (heads fitted before the line or the coherence
        # features have fewer inputs)
        for coherent, lines in ((True, True), (True, False), (False, False)):
            feats = tile_features_model(model, bins, coherent=coherent, lines=lines)
            if int(feats.output.shape[-1]) == int(head.input.shape[-1]):
                break
        self.model = tf.keras.Model(model.input, [model.output, head(feats.output)])
        self.names = map_names(meta)
        self.grid = tuple(int(s) for s in feats.output.shape[1:3])

    def run(self, x: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """x (N, H, W, C) model input -> (raw outputs, maps (N, maps, rows, cols), each summing to 1)."""
        raws, maps = [], []
        for i in range(0, len(x), batch_size):
            raw, lg = self.model(x[i : i + batch_size], training=False)
            raws.append(raw.numpy())
            maps.append(tile_softmax(lg.numpy()))
        if not raws:
            return np.zeros((0, self.model.output[0].shape[-1]), np.float32), np.zeros((0, len(self.names), *self.grid))
        return np.concatenate(raws), np.concatenate(maps)


def load_head(model_dir: str):
    """The tile head saved beside a CNN (None when the model has none)."""
    import os

    path = os.path.join(model_dir, HEAD_FILE)
    if not os.path.isfile(path):
        return None
    tf = import_tensorflow()
    return tf.keras.models.load_model(path, compile=False)


def heat_columns(maps: np.ndarray, tile: int = TILE) -> list[tuple]:
    """(N, maps, rows, cols) -> per CCD (heatmap bytes, shape, scale, hot_row, hot_col): the stored
    columns (hot: the centre of the ``any`` map's hottest tile, full-resolution numpy (row, col))."""
    out = []
    for m in maps:
        blob, scale = quantise(m)
        tr, tc = np.unravel_index(int(np.argmax(m[0])), m[0].shape)
        out.append((blob, [int(s) for s in m.shape], scale, int(tr * tile + tile // 2), int(tc * tile + tile // 2)))
    return out


# ------------------------------------------------------------------------------ the job
def _read_side(features_uri: str, expnums, fields: list[str], workers: int = 2):
    """Labelled rows of ``expnums`` (lists per field, report vectors kept ragged), sorted by key."""
    from petastorm.predicates import in_lambda

    from .tfdata import read_columns

    want = {int(e) for e in expnums}
    keys = ["expnum", "label"]
    pred = in_lambda(keys, lambda e, lab: int(e) in want and int(lab) in (0, 1))
    cols = read_columns(features_uri, fields, pred, keys, workers)
    order = np.lexsort((np.array(cols["ccdnum"]), np.array(cols["expnum"])))
    return {f: [v[i] for i in order] for f, v in cols.items()}


REPORT_FIELDS = ["report_class", "report_fp", "report_row", "report_col"]


def report_positions(rows: dict, i: int, taxonomy: list[str]) -> list[tuple[str, int, int]]:
    """(class, row, col) of row ``i``'s volunteer reports with a position (false positives left out)."""
    out = []
    for k, fp, r, c in zip(*(np.asarray(rows[f][i]).ravel() for f in REPORT_FIELDS)):
        if not fp and 0 <= int(k) < len(taxonomy) and int(r) >= 0:
            out.append((taxonomy[int(k)], int(r), int(c)))
    return out


def _batches(rows: dict, pred, size: int = 32):
    """The CNN's input, ``size`` rows at a time, from rows read with ``pred.columns``."""
    from .channels import is_plane

    for i in range(0, len(rows["expnum"]), size):
        cols = {c: (np.stack if is_plane(c) else np.asarray)(rows[c][i : i + size]) for c in pred.columns}
        yield pred.cnn_input(cols)


def fit_heatmap(
    store_uri: str,
    model_dir: str,
    out_dir: str | None = None,
    epochs: int = 5,
    seed: int = 0,
    spread: int = 1,
    lines: bool = False,
) -> dict:
    """Train the tile head of the CNN in ``model_dir`` on its training split's report positions,
    save it (``HEAD_FILE``, ``model.json["heatmap"]``) into ``out_dir`` (default ``model_dir``; else
    a copy of the model directory with the head) and write the test split's heatmaps
    (``TEST_FILE``, for the report); the job summary."""
    import json
    import os
    import shutil
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..features import versions
    from ..io import fs as fsmod
    from .modelio import Predictor, new_version

    t0 = time.time()
    out_dir = out_dir or model_dir
    if os.path.abspath(out_dir) != os.path.abspath(model_dir):
        shutil.copytree(model_dir, out_dir, dirs_exist_ok=True)
    pred = Predictor(out_dir)
    meta = pred.meta
    if pred.kind != "cnn":
        raise ValueError(f"{model_dir} is a {pred.kind} model: heatmaps need a CNN")
    names, taxonomy = map_names(meta), list(meta.get("taxonomy") or meta["classes"])
    # the store version the CNN was trained on (model.json), so that the head sees the same rows
    # (models trained before numbered versions recorded the store's run id instead: current version)
    number = meta.get("store_version") if isinstance(meta.get("store_version"), int) else None
    features_uri = versions.open_version(fsmod.to_uri(store_uri), number)
    fields = ["expnum", "ccdnum", *REPORT_FIELDS, *dict.fromkeys(["image", *pred.columns])]
    fm = tile_features_model(pred.model, lines=lines)
    grid = tuple(int(s) for s in fm.output.shape[1:3])
    train = _read_side(features_uri, meta["split"]["train"], fields)
    feats = np.concatenate([fm(x, training=False).numpy() for x in _batches(train, pred)])
    targets = np.stack(
        [target_maps(report_positions(train, i, taxonomy), names, grid, spread=spread) for i in range(len(feats))]
    )
    head, fit = train_head(feats, targets, epochs=epochs, seed=seed)
    head.save(os.path.join(out_dir, HEAD_FILE))
    # a new model version: infer scores every CCD again (now with heatmaps), and no worker keeps
    # serving the cached model without its head
    meta["version"] = new_version(os.path.join(out_dir, HEAD_FILE))
    meta["heatmap"] = {"method": "tile_head", "file": HEAD_FILE, "maps": names, "grid": list(grid), "tile": TILE}
    meta["heatmap"].update(epochs=epochs, seed=seed, spread=spread, lines=lines, **fit)
    meta["heatmap"]["features"] = int(fm.output.shape[-1])
    with open(os.path.join(out_dir, "model.json"), "w") as f:
        json.dump(meta, f, indent=1)
    hm = HeatModel(pred.model, head, meta)
    test = _read_side(features_uri, meta["split"]["test"], fields)
    maps = np.concatenate([hm.run(x)[1] for x in _batches(test, pred)]) if test["expnum"] else np.zeros(0)
    cols = heat_columns(maps)
    preview = (
        [np.asarray(img, np.float32).reshape(128, 4, 64, 4).mean(axis=(1, 3)) for img in test["image"]]
        if (test["expnum"] and np.shape(test["image"][0]) == (512, 256))
        else [np.zeros((0, 0))] * len(cols)
    )
    table = pa.table(
        {
            "expnum": pa.array([int(e) for e in test["expnum"]], pa.int64()),
            "ccdnum": pa.array([int(c) for c in test["ccdnum"]], pa.int16()),
            "heatmap": pa.array([c[0] for c in cols], pa.binary()),
            "heatmap_shape": [c[1] for c in cols],
            "heatmap_scale": [c[2] for c in cols],
            "hot_row": pa.array([c[3] for c in cols], pa.int32()),
            "hot_col": pa.array([c[4] for c in cols], pa.int32()),
            "preview": pa.array([p.astype(np.float16).tobytes() for p in preview], pa.binary()),
            "preview_shape": [list(p.shape) for p in preview],
            "report_class": [[p[0] for p in report_positions(test, i, taxonomy)] for i in range(len(cols))],
            "report_row": [[p[1] for p in report_positions(test, i, taxonomy)] for i in range(len(cols))],
            "report_col": [[p[2] for p in report_positions(test, i, taxonomy)] for i in range(len(cols))],
        }
    )
    pq.write_table(table, os.path.join(out_dir, TEST_FILE))
    return {
        "job": "train_heatmap",
        "model_dir": out_dir,
        "maps": names,
        "train_ccds": len(feats),
        "test_ccds": len(cols),
        **fit,
        "seconds": round(time.time() - t0, 1),
    }
