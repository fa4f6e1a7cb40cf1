"""The heatmap columns of the predictions table (issue 12): what serve/infer.py adds per CCD.

A CNN whose model directory holds a tile head (jobs/train_heatmap.py, ``model.json["heatmap"]``)
gets, from the same forward pass as its scores (``models.heatmap.HeatModel``):

- ``heatmap`` (binary): uint8 bytes of (maps, tile rows, tile cols), C order; each map is a
  distribution over the CCD's tiles (sums to 1), stored scaled to its own maximum (255);
- ``heatmap_shape`` (array<short>): [maps, rows, cols], e.g. [7, 32, 16] for 128 x 128-pixel
  tiles on a 4096 x 2048 CCD; map 0 is ``any`` (the artifact, any class), then the checker's
  menu groups present in the model (``_models/VERSION.json``: ``heatmap.maps``);
- ``heatmap_scale`` (array<float>): each map's maximum tile probability (multiply to undo the
  scaling: ``evaluate.tiles.dequantise``);
- ``hot_row``, ``hot_col`` (int): full-resolution numpy (row, col) of the centre of the ``any``
  map's hottest tile (row along NAXIS2, the 4096-pixel axis; the checker's (x, y) from it with
  ``features.labels.pixel_to_report`` and ``[labels]``).

Models without a head (SVMs, CNNs trained before) write nulls in these columns.
"""

from __future__ import annotations

import numpy as np


def heat_fields():
    """The Spark fields, in the order :func:`predict_with_heat`'s columns are yielded."""
    from pyspark.sql import types as T

    return [
        T.StructField("heatmap", T.BinaryType(), True),
        T.StructField("heatmap_shape", T.ArrayType(T.ShortType(), False), True),
        T.StructField("heatmap_scale", T.ArrayType(T.FloatType(), False), True),
        T.StructField("hot_row", T.IntegerType(), True),
        T.StructField("hot_col", T.IntegerType(), True),
    ]


NO_HEAT = (None, None, None, None, None)


def _heat_model(pred):
    """The predictor's HeatModel (built once per loaded model), None without a tile head."""
    if not hasattr(pred, "_heat_model"):
        from ..models.heatmap import HeatModel, load_head

        head = load_head(pred.dir) if pred.kind == "cnn" and pred.meta.get("heatmap") else None
        pred._heat_model = HeatModel(pred.model, head, pred.meta) if head is not None else None
    return pred._heat_model


def predict_with_heat(pred, planes: dict, batch_size: int = 64):
    """(probs, p_artifact, per-CCD heat column tuples) of one batch: one forward pass with the
    tile head when the model has one, else the plain scores and null columns."""
    hm = _heat_model(pred)
    if hm is None:
        probs, pa = pred.predict(planes, batch_size)
        return probs, pa, [NO_HEAT] * len(pa)
    from ..models.heatmap import heat_columns
    from ..models.modelio import split_outputs

    raw, maps = hm.run(pred.cnn_input(planes), batch_size)
    probs, pa = split_outputs(pred.meta, raw)
    return probs, pa, [tuple(c) for c in heat_columns(np.asarray(maps))]
