"""Tile geometry of the localisation heatmaps (issue 12): the grid, the checker's menu groups
(one map each), the hottest tile, and the stored uint8 form. Pure numpy, shared by
``models.heatmap`` (which makes the maps), ``serve`` (which stores and queries them) and
``evaluate.localise`` (which scores them)."""

from __future__ import annotations

import numpy as np

#: Full-resolution pixels per tile side.
TILE = 128
#: The exposure checker's menu groups (des-data.md), the per-group maps in this order after "any".
GROUPS = {
    "Masking": ("Column mask", "Cosmic ray", "Cross-talk", "Edge-bleed", "Excessive mask"),
    "Sky estimation": ("Dark rim", "Dark halo", "Quilted sky", "Wavy sky", "Anti-bleed"),
    "Flat field": ("A/B jump", "Fringing", "Tape bump", "Tree rings", "Vertical jump"),
    "Reflections": ("Ghost", "Bright spray", "Brush strokes", "Bright arc"),
    "Tracks": ("Satellite", "Airplane"),
    "Instrument/site": ("Guiding", "Shutter", "Readout", "Haze", "Vertical stripes"),
}
#: A tile is "hot" at or above this share of its map's maximum (the query's hot region, coverage).
HOT_SHARE = 0.5


def group_of(cls: str) -> str | None:
    """The checker menu group of a class name, None when it is in none."""
    return next((g for g, members in GROUPS.items() if cls in members), None)


def map_names(meta: dict) -> list[str]:
    """The maps a model's heatmap holds, in stored order."""
    if meta.get("problem") == "binary":
        return ["any"]
    classes = set(meta.get("classes", []))
    return ["any"] + [g for g, members in GROUPS.items() if classes & set(members)]


def tile_grid(ccd_shape=(4096, 2048), tile: int = TILE) -> tuple[int, int]:
    """(rows, cols) of tiles on a CCD."""
    return -(-int(ccd_shape[0]) // tile), -(-int(ccd_shape[1]) // tile)


def upsample(maps: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (..., h, w) to (..., H, W) with cell centres aligned (half-pixel
    convention, edges clamped): separable, numpy only."""
    h, w = maps.shape[-2:]
    H, W = out_hw

    def weights(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        m = np.zeros((n_out, n_in), np.float32)
        np.add.at(m, (np.arange(n_out), lo), 1 - (pos - lo))
        np.add.at(m, (np.arange(n_out), hi), pos - lo)
        return m

    return np.einsum("Hh,...hw,Ww->...HW", weights(h, H), maps, weights(w, W))


def hottest(tiles: np.ndarray, tile: int = TILE) -> tuple[int, int, int, int]:
    """(tile row, tile col, full-res row, full-res col) of the hottest tile of a (rows, cols) map
    (the first on ties); the full-resolution position is the tile's centre."""
    tr, tc = np.unravel_index(int(np.argmax(tiles)), tiles.shape)
    return int(tr), int(tc), int(tr * tile + tile // 2), int(tc * tile + tile // 2)


def quantise(maps: np.ndarray) -> tuple[bytes, list[float]]:
    """(maps, rows, cols) float -> (uint8 bytes, each map scaled to its own max; the maxima)."""
    m = np.maximum(np.asarray(maps, np.float32), 0)
    scale = m.reshape(len(m), -1).max(axis=1)
    q = np.round(255 * m / np.where(scale > 0, scale, 1)[:, None, None]).astype(np.uint8)
    return q.tobytes(), [float(s) for s in scale]


def dequantise(blob: bytes, shape, scale=None) -> np.ndarray:
    """The stored ``heatmap`` bytes -> (maps, rows, cols) float32 (in logit units with ``scale``,
    else 0..1 of each map's maximum)."""
    q = np.frombuffer(blob, np.uint8).reshape(tuple(int(s) for s in shape)).astype(np.float32) / 255.0
    return q * np.asarray(scale, np.float32)[:, None, None] if scale is not None else q


def hot_tiles(m: np.ndarray, share: float = HOT_SHARE) -> np.ndarray:
    """(rows, cols) bool: the tiles at or above ``share`` of the map's maximum (none if it is 0)."""
    mx = float(np.max(m)) if m.size else 0.0
    return m >= share * mx if mx > 0 else np.zeros(m.shape, bool)


def distance_to_hot(m: np.ndarray, row: float, col: float, tile: int = TILE, share: float = HOT_SHARE) -> float:
    """Euclidean distance in full-resolution pixels from (row, col) to the nearest hot tile
    (0 inside one; inf when no tile is hot). Tile (i, j) covers rows [i*tile, (i+1)*tile - 1]."""
    tr, tc = np.nonzero(hot_tiles(m, share))
    if not len(tr):
        return float("inf")
    dr = np.maximum(np.maximum(tr * tile - row, row - ((tr + 1) * tile - 1)), 0)
    dc = np.maximum(np.maximum(tc * tile - col, col - ((tc + 1) * tile - 1)), 0)
    return float(np.sqrt(dr.astype(float) ** 2 + dc.astype(float) ** 2).min())
