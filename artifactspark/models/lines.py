"""Straight-line detection on the binned CCD: a discrete Radon transform in S/N units.

Why: a faint satellite or airplane track is above the detectability floor (sim/detect.py) by
its S/N integrated along the whole track, while each 8x8 bin it crosses holds well under one
sigma of it. A stack of 3x3 convolutions would have to learn to integrate along ~500 bins at an
unknown angle from a few hundred examples; the Radon transform does that integral for every
line at once, the classic streak detector of survey pipelines. The network gets the few
largest line S/N values of each CCD beside its pooled features (cnn.line_layer).

The transform here is a fixed sparse matrix (built once per image shape, see
:func:`radon_matrix`), so in TensorFlow it is one sparse x dense product per batch. This module
is pure numpy: the reference the TensorFlow layer is tested against.

Steps, on a noise-normalised binned image ``z`` (unit variance per bin, masked bins invalid):

1. 2x2 sums over valid bins, divided by sqrt(their count): unit variance again, at 16 px;
2. clipped to +-``clip`` sigma, minus the mean of the valid cells in a ``box`` x ``box`` window
   around each (residual sky, gradients, haze and the halos of bright stars are smooth on that
   scale; a track is one cell wide), clipped again: a star adds at most a few sigma to any line;
3. for ``n_angles`` angles in [0, pi) and every integer offset, the sum over the cells whose
   centre rounds to that line, divided by sqrt(number of valid cells): S/N of that line;
   lines with fewer than ``min_cells`` valid cells get 0;
4. minus the mean over ``window`` neighbouring offsets (smooth sky, gradients and haze project
   to smooth profiles; a track to a peak one offset wide);
5. the larger of each value and the sum of 3 neighbouring offsets / sqrt(3) (a track between
   two angles spreads over neighbouring offsets).
"""

from __future__ import annotations

import math

import numpy as np

#: Defaults shared by the numpy reference and the TensorFlow layer.
POOL = 2
N_ANGLES = 180
CLIP = 3.0
MIN_CELLS = 32
WINDOW = 17
BOX = 15


def radon_geometry(shape, n_angles: int = N_ANGLES):
    """``(rows, cols, n_offsets)`` of the Radon matrix of an ``shape`` image: the non-zeros
    (row = angle * n_offsets + offset, col = flattened pixel), sorted by row then column."""
    h, w = int(shape[0]), int(shape[1])
    rr, cc = np.meshgrid(np.arange(h) - (h - 1) / 2.0, np.arange(w) - (w - 1) / 2.0, indexing="ij")
    half = int(math.ceil(math.hypot(h, w) / 2.0)) + 1
    n_off = 2 * half + 1
    pix = np.arange(h * w, dtype=np.int64)
    rows, cols = [], []
    for k in range(n_angles):
        th = math.pi * k / n_angles
        off = np.rint(rr * math.cos(th) + cc * math.sin(th)).astype(np.int64).ravel() + half
        rows.append(k * n_off + off)
        cols.append(pix)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], n_off


def box_sum(x: np.ndarray, box: int) -> np.ndarray:
    """Sum over the ``box`` x ``box`` window centred on each cell (zeros beyond the edges)."""
    pad = box // 2
    c = np.pad(x, ((pad + 1, pad), (pad + 1, pad))).cumsum(0).cumsum(1)
    return c[box:, box:] - c[:-box, box:] - c[box:, :-box] + c[:-box, :-box]


def pool_normalised(z: np.ndarray, valid: np.ndarray, pool: int = POOL, clip: float = CLIP, box: int = BOX):
    """Steps 1-2 for one (H, W) image: (pooled, locally flattened, clipped values; pooled validity)."""
    h, w = (z.shape[0] // pool) * pool, (z.shape[1] // pool) * pool
    v = valid[:h, :w].astype(np.float64)
    s = (z[:h, :w] * v).reshape(h // pool, pool, w // pool, pool).sum(axis=(1, 3))
    n = v.reshape(h // pool, pool, w // pool, pool).sum(axis=(1, 3))
    ok = (n > 0).astype(np.float64)
    x = np.clip(s / np.sqrt(np.maximum(n, 1.0)), -clip, clip)
    local = box_sum(x * ok, box) / np.maximum(box_sum(ok, box), 1.0)
    return np.clip((x - local) * ok, -clip, clip), ok


def line_sn(
    z: np.ndarray,
    valid: np.ndarray,
    n_angles: int = N_ANGLES,
    pool: int = POOL,
    clip: float = CLIP,
    min_cells: int = MIN_CELLS,
    window: int = WINDOW,
    box: int = BOX,
) -> np.ndarray:
    """The (n_angles, n_offsets) high-passed line S/N map of one image (steps 1-5)."""
    x, v = pool_normalised(np.asarray(z, np.float64), np.asarray(valid, bool), pool, clip, box)
    rows, cols, n_off = radon_geometry(x.shape, n_angles)
    size = n_angles * n_off
    s = np.bincount(rows, weights=(x * v).ravel()[cols], minlength=size)
    n = np.bincount(rows, weights=v.ravel()[cols], minlength=size)
    sn = np.where(n >= min_cells, s / np.sqrt(np.maximum(n, 1.0)), 0.0).reshape(n_angles, n_off)
    return high_pass(sn, window)


def high_pass(sn: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Steps 4-5 along the last axis (zero padding at the ends, as the TensorFlow layer)."""
    pad = window // 2
    k = np.ones(window) / window
    mean = np.apply_along_axis(lambda r: np.convolve(np.pad(r, pad), k, mode="valid"), -1, sn)
    hp = sn - mean
    tri = np.apply_along_axis(lambda r: np.convolve(np.pad(r, 1), np.ones(3), mode="valid"), -1, hp) / math.sqrt(3.0)
    return np.maximum(hp, tri)
