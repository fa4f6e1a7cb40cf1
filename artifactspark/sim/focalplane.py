"""DECam focal plane in pixel units: where each CCD sits, so exposure-wide features agree across CCDs.

Twelve rows of 3,4,5,6,6,7,7,6,6,5,4,3 CCDs (62), CCDNUM counted row by row. A CCD's numpy rows
(its long, 4096-pixel axis) run along focal-plane X and its columns along focal-plane Y; gaps of
about 200 pixels separate CCDs. The layout is scaled with the CCD shape so that small test CCDs
keep the same geometry.
"""

from __future__ import annotations

import functools

ROW_COUNTS = (3, 4, 5, 6, 6, 7, 7, 6, 6, 5, 4, 3)


@functools.lru_cache(maxsize=8)
def layout(shape: tuple[int, int]) -> dict:
    """CCDNUM -> (X0, Y0): focal-plane coordinates of the CCD's pixel (row 0, col 0)."""
    h, w = shape
    gx, gy = h * 200 // 4096, w * 250 // 2048
    out, n = {}, 0
    nrows = len(ROW_COUNTS)
    for r, count in enumerate(ROW_COUNTS):
        yc = ((nrows - 1) / 2 - r) * (w + gy)
        for k in range(count):
            n += 1
            xc = (k - (count - 1) / 2) * (h + gx)
            out[n] = (xc - h / 2, yc - w / 2)
    return out


def extent(shape: tuple[int, int]) -> float:
    """Radius of the focal plane (pixels) in the layout's units."""
    h, w = shape
    return 0.5 * max(7 * h * 1.05, 12 * w * 1.12)


def ccd_box(ccdnum: int, shape) -> tuple[float, float, float, float]:
    """The CCD's (x0, y0, x1, y1) in focal-plane pixels."""
    x0, y0 = layout(tuple(shape))[ccdnum]
    return x0, y0, x0 + shape[0], y0 + shape[1]
