"""Model input channels: the store planes, and ``level_sn``, derived from stored columns.

A stored plane (``image``, ``mask_frac``, ``max_sn``, ``spread_sn``, ``sharp_sn``) is a channel
as it is. ``level_sn`` is computed when rows are read, by :func:`level_sn` (numpy) or
:func:`level_sn_tf` (the same in TensorFlow, for the training feed):

``level_sn``
    the binned, background-subtracted image in units of the per-bin sky noise
    (``noise_sigma / factor``), undone from the paper's stretch with the row's ``stretch_min`` /
    ``stretch_max``: ``I = m + (M - m) * softening * sinh(y)``. Bins without data are 0.

Why: the paper's stretch maps each CCD's own [min, max] to [0, 0.88], and the models then
standardise every image against its own clipped mean and spread. Both throw away the absolute
residual sky level and its large-scale gradient, which is exactly what a sky-subtraction failure
or a broad scattered-light fan (Bright spray, Haze) leaves after the pipeline's background is
subtracted. Measured on the quality run's test split (benchmarks/RESULTS.md): the median of
``level_sn`` alone separates Bright spray CCDs from clean ones with ROC AUC 0.97, where the
CNN without it scored 0.40. The stored rows keep the paper's stretch; nothing in the store
changes.
"""

from __future__ import annotations

import numpy as np

#: Channels that are stored planes (binned shape, one per row).
STORED = ("image", "mask_frac", "max_sn", "spread_sn", "sharp_sn")
#: Derived channel -> the store columns it is computed from.
DERIVED = {"level_sn": ("image", "mask_frac", "stretch_min", "stretch_max", "noise_sigma")}
#: Every channel a model can take; the first must be "image".
CHANNELS = STORED + tuple(DERIVED)
#: Channels in units of the CCD's sky noise (the model takes their arcsinh).
SIGMA_CHANNELS = ("max_sn", "spread_sn", "sharp_sn", "level_sn")
#: ``level_sn`` is clipped to +-this (a saturated star's core; float16, which the training cache
#: keeps, ends at 65504).
LEVEL_CLIP = 6.0e4
#: The stretch and binning ``level_sn`` needs when a store's config does not say (the defaults).
DEFAULT_LEVEL_SPEC = {"softening": 1.0, "factor": 8}


def store_columns(channels) -> list[str]:
    """The store columns that ``channels`` are made from, in a stable order, each once."""
    out = []
    for c in channels:
        for col in DERIVED.get(c, (c,)):
            if col not in out:
                out.append(col)
    return out


def level_spec(store_config: dict | None) -> dict:
    """``{"softening", "factor"}`` of a store, from its config (``_store.json``'s ``config``)."""
    cfg = store_config or {}
    return {
        "softening": float(cfg.get("stretch", {}).get("softening", DEFAULT_LEVEL_SPEC["softening"])),
        "factor": int(cfg.get("downsample", {}).get("factor", DEFAULT_LEVEL_SPEC["factor"])),
    }


def _bcast(v, ndim):
    v = np.asarray(v, np.float64)
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def level_sn(image, mask_frac, stretch_min, stretch_max, noise_sigma, spec: dict) -> np.ndarray:
    """``level_sn`` of one row ((H, W) planes, scalars) or of a batch ((N, H, W), (N,)); float32."""
    y = np.asarray(image, np.float64)
    m, M = _bcast(stretch_min, y.ndim), _bcast(stretch_max, y.ndim)
    s = np.maximum(_bcast(noise_sigma, y.ndim), 1e-12) / spec["factor"]
    level = np.clip((m + (M - m) * spec["softening"] * np.sinh(y)) / s, -LEVEL_CLIP, LEVEL_CLIP)
    return np.where(np.asarray(mask_frac) >= 1.0, 0.0, level).astype(np.float32)


def level_sn_tf(image, mask_frac, stretch_min, stretch_max, noise_sigma, spec: dict):
    """:func:`level_sn` of one row in TensorFlow (the training feed's decode step)."""
    import tensorflow as tf

    y = tf.cast(image, tf.float32)
    m, M = tf.cast(stretch_min, tf.float32), tf.cast(stretch_max, tf.float32)
    s = tf.maximum(tf.cast(noise_sigma, tf.float32), 1e-12) / float(spec["factor"])
    level = tf.clip_by_value((m + (M - m) * float(spec["softening"]) * tf.sinh(y)) / s, -LEVEL_CLIP, LEVEL_CLIP)
    return tf.where(tf.cast(mask_frac, tf.float32) >= 1.0, tf.zeros_like(level), level)


def channel_planes(columns: dict, channels, spec: dict) -> list:
    """Store columns (name -> (N, H, W) planes or (N,) scalars) -> the channel planes, in order."""
    out = []
    for c in channels:
        if c == "level_sn":
            out.append(level_sn(*(columns[k] for k in DERIVED[c]), spec))
        else:
            out.append(columns[c])
    return out


def is_plane(column: str) -> bool:
    """Is this store column an image plane (a CompressedNdarrayCodec cell) rather than a scalar?"""
    return column in STORED
