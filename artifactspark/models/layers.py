"""The CNN's custom Keras objects and batched prediction: what loading and running a saved CNN
needs (``models.modelio.Predictor``), apart from building and training one (``models.cnn``).

The layer classes are built lazily, so importing this module needs no TensorFlow. A saved
``model.keras`` names them by class name (``Standardize``, ``TopK``, ``LineSN``, ``GridLevel``); :func:`custom_objects`
maps those names back to the classes, whichever module defines them.
"""

from __future__ import annotations

import numpy as np

from ..logs import import_tensorflow


def artifact_accuracy(y_true, y_pred):
    """Multi-label: accuracy of 'any artifact' (max output >= 0.5) against 'any class true'."""
    tf = import_tensorflow()

    t = tf.reduce_max(y_true, axis=-1) > 0.5
    p = tf.reduce_max(y_pred, axis=-1) >= 0.5
    return tf.reduce_mean(tf.cast(tf.equal(t, p), tf.float32))


_STANDARDIZE = None
#: The largest share of its peak by which a PSF-shaped source's pixel exceeds its 4 neighbours
#: (Gaussian PSF, sigma >= 1.1 px, i.e. FWHM >= 0.68" at DECam's 0.263"/px; with pixel phase ~0.45).
SHARP_PSF_RATIO = 0.5
#: ... counted only in bins whose peak reaches this many sigma: the largest of 131 000 bins' noise
#: maxima is ~5 sigma, and on the simulated store the ungated map ranked cosmic-ray CCDs against
#: clean ones with AUC 0.77, gated at 6 sigma 0.97 (benchmarks/RESULTS.md).
SHARP_MIN_PEAK = 6.0


def fast_asinh(t):
    """arcsinh from elementary ops: sign(t) * log1p(|t| + t^2 / (1 + sqrt(1 + t^2))), the same
    function (within float32 rounding, tested against numpy up to 1e18) at ~1/3 of ``tf.math.asinh``'s CPU
    time, which was half of the input layer's cost (benchmarks/RESULTS.md, "Forward cost")."""
    tf = import_tensorflow()

    a = tf.minimum(tf.abs(t), 1e18)  # a * a stays finite: inputs beyond 1e18 map to asinh(1e18) = 42.1
    return tf.sign(t) * tf.math.log1p(a + a * a / (1.0 + tf.sqrt(1.0 + a * a)))


def box_mean(t, box: int):
    """Mean over the ``box`` x ``box`` window around each pixel of (N, H, W, C) ``t`` (SAME
    padding: edge windows average their in-image part), as a box x 1 then a 1 x box pass: the
    same means as one 2-D pool (the in-image count factorises by axis), ~5x faster on CPU."""
    tf = import_tensorflow()

    return tf.nn.avg_pool2d(tf.nn.avg_pool2d(t, (box, 1), 1, "SAME"), (1, box), 1, "SAME")


def standardize_layer():
    """The input preparation layer (Keras), built lazily so importing this module needs no TF.

    Channel 0 (the stored image) gets ``trainingdata.standardize_image``'s twin when
    ``standardize``: a per-image sigma-clipped standardisation and an arcsinh. Channels in
    ``asinh_channels`` (the sky-sigma channels max_sn, spread_sn) get an arcsinh, which keeps
    the noise (~1) linear and compresses stars and tracks of thousands of sigma. The rest
    (mask_frac) pass unchanged."""
    global _STANDARDIZE
    if _STANDARDIZE is not None:
        return _STANDARDIZE
    tf = import_tensorflow()

    class Standardize(tf.keras.layers.Layer):
        def __init__(self, iterations=2, clip=3.0, asinh_channels=(), standardize=True, sharp_pair=None, **kw):
            super().__init__(**kw)
            self.iterations, self.clip = iterations, clip
            self.asinh_channels, self.standardize = [int(c) for c in asinh_channels], bool(standardize)
            self.sharp_pair = [int(c) for c in sharp_pair] if sharp_pair else None

        def call(self, x):
            img = x[..., :1]
            if self.standardize:
                mu = tf.reduce_mean(img, axis=[1, 2], keepdims=True)
                sd = tf.math.reduce_std(img, axis=[1, 2], keepdims=True)
                for _ in range(self.iterations):
                    m = tf.cast(tf.abs(img - mu) <= self.clip * sd, tf.float32)
                    n = tf.maximum(tf.reduce_sum(m, axis=[1, 2], keepdims=True), 1.0)
                    mu = tf.reduce_sum(img * m, axis=[1, 2], keepdims=True) / n
                    sd = tf.sqrt(tf.reduce_sum(tf.square(img - mu) * m, axis=[1, 2], keepdims=True) / n)
                img = fast_asinh((img - mu) / tf.maximum(sd, 1e-6))
            planes = [img] + [
                fast_asinh(x[..., c : c + 1]) if c in self.asinh_channels else x[..., c : c + 1]
                for c in range(1, x.shape[-1])
            ]
            if self.sharp_pair:
                i_max, i_sharp = self.sharp_pair
                mx = x[..., i_max : i_max + 1]
                excess = tf.nn.relu(x[..., i_sharp : i_sharp + 1] - SHARP_PSF_RATIO * mx)
                excess *= tf.cast(mx >= SHARP_MIN_PEAK, excess.dtype)  # not the maxima of pure noise
                planes.append(fast_asinh(excess))
            return tf.concat(planes, axis=-1)

        def get_config(self):
            return {
                **super().get_config(),
                "iterations": self.iterations,
                "clip": self.clip,
                "asinh_channels": self.asinh_channels,
                "standardize": self.standardize,
                "sharp_pair": self.sharp_pair,
            }

    _STANDARDIZE = Standardize
    return Standardize


def custom_objects() -> dict:
    """The custom objects a saved CNN names, for ``keras.models.load_model``."""
    return {
        "artifact_accuracy": artifact_accuracy,
        "Standardize": standardize_layer(),
        "TopK": top_k_layer(),
        "LineSN": line_layer(),
        "GridLevel": grid_level_layer(),
    }


_TOPK = None


def top_k_layer():
    """The Keras layer giving the ``k`` largest values of the last channel of its input (the
    appended 'sharper than the PSF' map), sorted: a compact artifact is one or a few bins among
    ~131 000, which a convolutional stack has to learn to single out from few examples; as
    scalars beside the pooled features the head only has to learn a threshold on them. Built
    lazily, like :func:`standardize_layer`."""
    global _TOPK
    if _TOPK is not None:
        return _TOPK
    tf = import_tensorflow()

    class TopK(tf.keras.layers.Layer):
        def __init__(self, k=8, **kw):
            super().__init__(**kw)
            self.k = int(k)

        def call(self, t):
            flat = tf.reshape(t[..., -1], [tf.shape(t)[0], -1])
            return tf.math.top_k(flat, k=self.k).values

        def get_config(self):
            return {**super().get_config(), "k": self.k}

    _TOPK = TopK
    return TopK


_LINES = None


def line_layer():
    """The Keras layer giving the ``k`` largest line S/N values of a CCD (lines.py: a Radon
    transform of the noise-normalised image, high-passed across offsets), sorted. Input: the
    Standardize layer's output (channel 0 the image in noise units; ``mask_index`` the stored
    mask_frac, bins at least half masked are left out). Built lazily like the other layers; the
    sparse Radon matrix is rebuilt from the image shape when the model is built or loaded, so it
    is not in the model file."""
    global _LINES
    if _LINES is not None:
        return _LINES
    tf = import_tensorflow()
    import math

    from . import lines

    class LineSN(tf.keras.layers.Layer):
        def __init__(
            self,
            k=4,
            mask_index=None,
            n_angles=lines.N_ANGLES,
            pool=lines.POOL,
            clip=lines.CLIP,
            min_cells=lines.MIN_CELLS,
            window=lines.WINDOW,
            box=lines.BOX,
            **kw,
        ):
            super().__init__(**kw)
            self.box = int(box)
            self.k, self.mask_index, self.n_angles, self.pool = int(k), mask_index, int(n_angles), int(pool)
            self.clip, self.min_cells, self.window = float(clip), float(min_cells), int(window)

        def build(self, input_shape):
            h, w = int(input_shape[1]) // self.pool, int(input_shape[2]) // self.pool
            rows, cols, self.n_off = lines.radon_geometry((h, w), self.n_angles)
            # gather + sorted segment sum: ~6x faster than tf.sparse matmul on CPU (same sums)
            self.rows, self.cols = tf.constant(rows.astype(np.int32)), tf.constant(cols.astype(np.int32))
            self.tail = self.n_angles * self.n_off - 1 - int(rows[-1])  # empty lines after the last
            self.cells = h * w
            self.grid = (h, w)

        def call(self, x):
            return tf.math.top_k(self.line_scores(x), k=self.k).values

        def cell_map(self, x):
            """(N, H / pool, W / pool, 1): per pooled cell, the best line score of any line through
            it (the line scores back-projected by their maximum): where the CCD's lines are."""
            best = tf.transpose(self.line_scores(x))  # (lines, N)
            cells = tf.math.unsorted_segment_max(tf.gather(best, self.rows), self.cols, self.cells)  # (cells, N)
            return tf.reshape(tf.transpose(cells), [-1, self.grid[0], self.grid[1], 1])

        def line_scores(self, x):
            """(N, lines): every line's S/N score (angle-major), as the top k are taken from."""
            p = self.pool
            img = x[..., :1]
            valid = (
                tf.cast(x[..., self.mask_index : self.mask_index + 1] < 0.5, x.dtype)
                if self.mask_index is not None
                else tf.ones_like(img)
            )
            s = tf.nn.avg_pool2d(img * valid, p, p, "VALID") * (p * p)
            n = tf.nn.avg_pool2d(valid, p, p, "VALID") * (p * p)
            w = tf.cast(n > 0, x.dtype)
            z = tf.clip_by_value(s / tf.sqrt(tf.maximum(n, 1.0)), -self.clip, self.clip)
            b = self.box  # local mean of the valid cells (avg_pool's divisor cancels in the ratio)
            local = box_mean(z * w, b) / tf.maximum(box_mean(w, b), 1e-6)
            z = tf.clip_by_value((z - local) * w, -self.clip, self.clip)
            zw = tf.transpose(tf.reshape(tf.concat([z, w], -1), [-1, self.cells, 2]), [1, 0, 2])  # (P, B, 2)
            both = tf.math.segment_sum(tf.gather(zw, self.cols), self.rows)
            both = tf.pad(both, [[0, self.tail], [0, 0], [0, 0]])  # (lines, B, [sum, count])
            sn = tf.where(both[..., 1] >= self.min_cells, both[..., 0] / tf.sqrt(tf.maximum(both[..., 1], 1.0)), 0.0)
            sn = tf.reshape(tf.transpose(sn), [-1, self.n_off, 1])  # (B * angles, offsets, 1)
            mean = tf.nn.conv1d(sn, tf.ones([self.window, 1, 1]) / self.window, 1, "SAME")
            hp = sn - mean
            tri = tf.nn.conv1d(hp, tf.ones([3, 1, 1]) / math.sqrt(3.0), 1, "SAME")
            return tf.reshape(tf.maximum(hp, tri), [tf.shape(x)[0], -1])

        def get_config(self):
            return {
                **super().get_config(),
                "k": self.k,
                "mask_index": self.mask_index,
                "n_angles": self.n_angles,
                "pool": self.pool,
                "clip": self.clip,
                "min_cells": self.min_cells,
                "window": self.window,
                "box": self.box,
            }

    _LINES = LineSN
    return LineSN


_GRID_LEVEL = None


def grid_level_layer():
    """The Keras layer giving the residual sky level of a CCD on a coarse grid: the sigma-clipped
    mean of the ``level_index`` channel (``level_sn`` after Standardize's arcsinh: the binned
    background-subtracted image in units of its noise, see channels.py) in each of ``grid``
    cells, bins at least half masked (``mask_index``) left out. Stars and tracks are clipped; what
    is left is the sky's own level and its large-scale gradient, which per-image standardisation
    removes from every other channel: a sky-subtraction failure, a scattered-light fan. As a few
    scalars beside the pooled features, the head needs no large receptive field to see them.
    Built lazily like the other layers."""
    global _GRID_LEVEL
    if _GRID_LEVEL is not None:
        return _GRID_LEVEL
    tf = import_tensorflow()

    class GridLevel(tf.keras.layers.Layer):
        def __init__(self, level_index=0, mask_index=None, grid=(4, 2), iterations=2, clip=3.0, **kw):
            super().__init__(**kw)
            self.level_index, self.mask_index = int(level_index), mask_index
            self.grid, self.iterations, self.clip = [int(g) for g in grid], int(iterations), float(clip)

        def call(self, x):
            gr, gc = self.grid
            h, w = int(x.shape[1]) // gr, int(x.shape[2]) // gc

            def cells(t):  # (B, H, W) -> (B, gr * gc, h * w)
                t = tf.reshape(t[:, : gr * h, : gc * w], [-1, gr, h, gc, w])
                return tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4]), [-1, gr * gc, h * w])

            v = cells(x[..., self.level_index])
            mi = self.mask_index
            valid = cells(tf.cast(x[..., mi] < 0.5, x.dtype)) if mi is not None else tf.ones_like(v)
            m = valid
            for i in range(self.iterations + 1):
                n = tf.maximum(tf.reduce_sum(m, -1, keepdims=True), 1.0)
                mu = tf.reduce_sum(v * m, -1, keepdims=True) / n
                if i < self.iterations:
                    sd = tf.sqrt(tf.reduce_sum(tf.square(v - mu) * m, -1, keepdims=True) / n)
                    m = valid * tf.cast(tf.abs(v - mu) <= self.clip * sd, x.dtype)
            return mu[..., 0]

        def get_config(self):
            return {
                **super().get_config(),
                "level_index": self.level_index,
                "mask_index": self.mask_index,
                "grid": self.grid,
                "iterations": self.iterations,
                "clip": self.clip,
            }

    _GRID_LEVEL = GridLevel
    return GridLevel


def predict(model, x: np.ndarray, batch_size: int = 64, flips: bool = False) -> np.ndarray:
    """The model's outputs in batches, through one compiled graph per model and mode (a
    ``tf.function`` with a free batch dimension, traced once and kept on the model; it reads the
    model's current weights, so the per-epoch scoring during training sees each epoch's). No
    tf.data set-up per call. Training evaluation and ``modelio.Predictor`` (batch inference) share it.

    ``flips``: each CCD's outputs are the mean over its four flips (as is, left-right, up-down,
    both), the flips training augments with (``augment_flips``), which keep every class what it
    is. The four passes run one after the other, so memory stays that of one batch."""
    fns = getattr(model, "_artifactspark_forward", None)
    if fns is None:
        fns = model._artifactspark_forward = {}
    fn = fns.get(bool(flips))
    if fn is None:
        tf = import_tensorflow()
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)

        def forward(t):
            views = (t, tf.reverse(t, [2]), tf.reverse(t, [1]), tf.reverse(t, [1, 2])) if flips else (t,)
            return tf.add_n([model(v, training=False) for v in views]) / float(len(views))

        fn = fns[bool(flips)] = tf.function(forward, input_signature=[spec])
    out = [fn(np.ascontiguousarray(x[i : i + batch_size], np.float32)).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)
