"""Position questions over the predictions table's heatmaps (issue 12): jobs/query.py ``near`` and ``hot``.

- :func:`near`: CCDs flagged (or predicted as a class) whose hot region (tiles at or above
  ``HOT_SHARE`` of the map's maximum: the ``any`` map, or the class's menu-group map) comes within
  ``radius`` full-resolution pixels of a position;
- :func:`hot_region`: the hot tiles of one CCD, per map, with their pixel ranges.

Positions are numpy (row, col) of the full-resolution CCD array, or the exposure checker's (x, y)
turned through ``features.labels.report_to_pixel`` with the config's ``[labels]`` orientation
(``x_axis``, ``flip_x``, ``flip_y``); answers give both (``pixel_to_report`` back).
"""

from __future__ import annotations

import numpy as np

from ..config import LabelConfig
from ..features.labels import pixel_to_report, report_to_pixel
from ..models.heatmap import HOT_SHARE, TILE, dequantise, distance_to_hot, group_of, hot_tiles, map_names
from .query import QueryError, Result, _collect, _latest_scores, _prepare, _sql
from .views import read_models


def to_pixel(row=None, col=None, x=None, y=None, lc: LabelConfig | None = None) -> tuple[int, int]:
    """A position given as (row, col) or as checker (x, y) -> numpy (row, col)."""
    if (row is None) != (col is None) or (x is None) != (y is None) or (row is None) == (x is None):
        raise QueryError("give a position as --row and --col (numpy, full resolution) or as --x and --y (checker)")
    if row is not None:
        return int(row), int(col)
    return report_to_pixel(float(x), float(y), lc or LabelConfig())


def _map_index(info: dict, models: list[dict], cls: str | None) -> tuple[int, str]:
    meta = next((m for m in models if m.get("version") == info.get("model_version")), {})
    names = (meta.get("heatmap") or {}).get("maps") or map_names(meta)
    g = group_of(cls) if cls else None
    return (names.index(g), g) if g in names else (0, "any")


def near(
    spark,
    store_uri: str,
    predictions_uri: str,
    row=None,
    col=None,
    x=None,
    y=None,
    radius: float = 256,
    cls: str | None = None,
    lc: LabelConfig | None = None,
    limit: int | None = None,
    **scope,
) -> Result:
    """CCDs flagged (with ``cls``: predicted as ``cls``) whose hot region lies within ``radius``
    pixels of the position. Rows: band, nite, expnum, ccdnum, p_artifact, predicted_classes,
    distance (pixels to the nearest hot tile, 0 inside), hot_row, hot_col, hot_x, hot_y."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    lc = lc or LabelConfig()
    prow, pcol = to_pixel(row, col, x, y, lc)
    if radius < 0:
        raise QueryError(f"radius {radius}: give a distance in pixels >= 0")
    sc, args, canon, info = _prepare(
        spark,
        store_uri,
        predictions_uri,
        scope.get("band"),
        scope.get("nite_from"),
        scope.get("nite_to"),
        scope.get("nite"),
        scope.get("model_version"),
        cls,
    )
    m_idx, m_name = _map_index(info, read_models(spark, predictions_uri), canon)
    hit = "array_contains(predicted_classes, :cls)" if canon is not None else "flagged"
    if canon is not None:
        args["cls"] = canon
    df = _sql(spark, f"SELECT * FROM ({_latest_scores(sc)}) WHERE {hit} AND heatmap IS NOT NULL", args)

    def dist(blob, shape, r=prow, c=pcol, i=m_idx):
        return distance_to_hot(dequantise(bytes(blob), shape)[i], r, c, TILE)

    df = df.withColumn("distance", F.udf(dist, T.DoubleType())("heatmap", "heatmap_shape"))
    df = df.where(F.col("distance") <= float(radius)).select(
        "band", "nite", "expnum", "ccdnum", "p_artifact", "predicted_classes", "distance", "hot_row", "hot_col"
    )
    rows, truncated = _collect(df.orderBy("distance", "band", "nite", "expnum", "ccdnum"), limit)
    for r in rows:
        r["hot_x"], r["hot_y"] = pixel_to_report(r["hot_row"], r["hot_col"], lc)
    rx, ry = pixel_to_report(prow, pcol, lc)
    info.update(question="near", row=prow, col=pcol, x=rx, y=ry, radius=radius, map=m_name, truncated=truncated)
    return Result(rows, [*df.columns, "hot_x", "hot_y"], info)


def hot_region(
    spark,
    store_uri: str,
    predictions_uri: str,
    expnum: int,
    ccdnum: int,
    model_version: str | None = None,
    lc: LabelConfig | None = None,
    share: float = HOT_SHARE,
) -> Result:
    """The hot tiles of CCD (expnum, ccdnum), one row per map and tile, hottest first: map,
    tile_row, tile_col, share (of the map's maximum), row_min, row_max, col_min, col_max
    (full-resolution pixels, inclusive), x_min, x_max, y_min, y_max (checker orientation)."""
    lc = lc or LabelConfig()
    sc, args, _, info = _prepare(spark, store_uri, predictions_uri, None, None, None, None, model_version, None)
    args.update(e=int(expnum), c=int(ccdnum))
    found = _sql(spark, f"SELECT * FROM ({_latest_scores(sc)}) WHERE expnum = :e AND ccdnum = :c", args).collect()
    info.update(question="hot", expnum=int(expnum), ccdnum=int(ccdnum))
    if not found:
        raise QueryError(f"CCD {expnum}/{ccdnum} has no prediction of model {info.get('model_version')}")
    p = found[0]
    if p["heatmap"] is None:
        info["note"] = "this model version wrote no heatmap (no tile head: jobs/train_heatmap.py)"
        return Result([], [], info)
    maps = dequantise(bytes(p["heatmap"]), p["heatmap_shape"])
    meta = next((m for m in read_models(spark, predictions_uri) if m.get("version") == info["model_version"]), {})
    names = (meta.get("heatmap") or {}).get("maps") or map_names(meta)
    rows = []
    for k, m in enumerate(maps):
        hot = hot_tiles(m, share)
        for tr, tc in sorted(zip(*np.nonzero(hot)), key=lambda t: -m[t]):
            r0, r1, c0, c1 = tr * TILE, (tr + 1) * TILE - 1, tc * TILE, (tc + 1) * TILE - 1
            xs, ys = zip(pixel_to_report(r0, c0, lc), pixel_to_report(r1, c1, lc))
            rows.append(
                {
                    "map": names[k] if k < len(names) else str(k),
                    "tile_row": int(tr),
                    "tile_col": int(tc),
                    "share": round(float(m[tr, tc]), 3),
                    "row_min": int(r0),
                    "row_max": int(r1),
                    "col_min": int(c0),
                    "col_max": int(c1),
                    "x_min": min(xs),
                    "x_max": max(xs),
                    "y_min": min(ys),
                    "y_max": max(ys),
                }
            )
    hx, hy = pixel_to_report(p["hot_row"], p["hot_col"], lc)
    info.update(hot_row=p["hot_row"], hot_col=p["hot_col"], hot_x=hx, hot_y=hy, p_artifact=p["p_artifact"])
    return Result(rows, list(rows[0]) if rows else [], info)
