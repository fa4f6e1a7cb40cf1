"""The CNN's custom Keras objects and batched prediction: what loading and running a saved CNN
needs (``models.modelio.Predictor``), apart from building and training one (``models.cnn``).

The layer classes are built lazily, so importing this module needs no TensorFlow. A saved
``model.keras`` names them by class name (``Standardize``, ``TopK``); :func:`custom_objects`
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
                img = tf.math.asinh((img - mu) / tf.maximum(sd, 1e-6))
            planes = [img] + [
                tf.math.asinh(x[..., c : c + 1]) if c in self.asinh_channels else x[..., c : c + 1]
                for c in range(1, x.shape[-1])
            ]
            if self.sharp_pair:
                i_max, i_sharp = self.sharp_pair
                mx = x[..., i_max : i_max + 1]
                excess = tf.nn.relu(x[..., i_sharp : i_sharp + 1] - SHARP_PSF_RATIO * mx)
                excess *= tf.cast(mx >= SHARP_MIN_PEAK, excess.dtype)  # not the maxima of pure noise
                planes.append(tf.math.asinh(excess))
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
    return {"artifact_accuracy": artifact_accuracy, "Standardize": standardize_layer(), "TopK": top_k_layer()}


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


def predict(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Direct model calls in batches (no tf.data set-up per call): training evaluation and
    ``modelio.Predictor`` (batch inference) share it."""
    out = [model(x[i : i + batch_size], training=False).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)
