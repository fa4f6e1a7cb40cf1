"""One injector per exposure-checker class (morphology as in des-data.md).

``inject(cls, cv, amp, feat)`` changes the canvas (``sig`` = what the sky shows, ``bkg`` = the
background model, ``msk`` = pipeline bits) and returns ``{"geometry": {...}, "points": (N, 2)
int array of (row, col) pixels on the feature}``; a report is placed at one of the points.
``amp`` is the feature's amplitude in e- per pixel (its S/N times the sky sigma). CCD-level
injectors draw their geometry from ``cv.rng``; exposure-wide ones get ``feat``, whose geometry is
in focal-plane pixels (see :mod:`.focalplane`), so all CCDs of the exposure agree.

Sky-estimation classes (Dark rim, Dark halo, Quilted sky, Anti-bleed) are errors of the
background model: they raise ``bkg``, so that SCI - BKG shows the dark feature.
"""

from __future__ import annotations

import math

import numpy as np

from ..io.des import MASK_BITS as M
from .sky import Canvas, add_bright_star, add_stamp

INJECTORS = {}


def injector(name):
    """Register the decorated function as the injector of class ``name``."""

    def deco(fn):
        INJECTORS[name] = fn
        return fn

    return deco


def inject(cls: str, cv: Canvas, amp: float, feat: dict | None = None) -> dict:
    """Inject one ``cls`` feature into the canvas; its description, with the points kept on the CCD."""
    out = INJECTORS[cls](cv, amp, feat or {})
    pts = np.asarray(out.get("points", np.zeros((0, 2), int)), dtype=np.int64).reshape(-1, 2)
    h, w = cv.shape
    keep = (pts[:, 0] >= 0) & (pts[:, 0] < h) & (pts[:, 1] >= 0) & (pts[:, 1] < w)
    out["points"] = pts[keep]
    return out


def _where_points(mask: np.ndarray, rng, n: int = 64, offset=(0, 0)) -> np.ndarray:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return np.zeros((0, 2), int)
    pick = rng.choice(idx, size=min(n, idx.size), replace=False)
    r, c = np.unravel_index(pick, mask.shape)
    return np.stack([r + offset[0], c + offset[1]], axis=1)


def _ensure_bright_star(cv: Canvas, near_edge: bool = False):
    """A saturated star to hang a feature on; added if the CCD has none."""
    if cv.bright and not near_edge:
        return cv.bright[int(cv.rng.integers(0, len(cv.bright)))]
    h, w = cv.shape
    row = int(cv.rng.integers(h // 10, h // 4)) if near_edge else int(cv.rng.integers(h // 8, 7 * h // 8))
    if near_edge and cv.rng.random() < 0.5:
        row = h - 1 - row
    col = int(cv.rng.integers(w // 8, 7 * w // 8))
    flux = cv.saturation * 400 * float(cv.rng.uniform(1, 10))
    tpl = getattr(cv, "_bright_template", None)
    if tpl is None:
        import galsim

        n = int(2 * math.ceil(20 * cv.fwhm_pix) + 1)
        tpl = galsim.Moffat(beta=2.2, fwhm=cv.fwhm_pix).drawImage(nx=n, ny=n, scale=1.0).array.astype(np.float32)
        cv._bright_template = tpl
    add_bright_star(cv, row, col, flux, tpl)
    return (row, col, flux)


# ----------------------------------------------------------------------------- tracks
def _line_profile(cv, x0, y0, angle, width, offsets=(0.0,), segments=None):
    """Per-pixel Gaussian cross-section of lines through focal-plane (x0, y0) at ``angle``."""
    X, Y = cv.fp_grid()
    s, c = math.sin(angle), math.cos(angle)
    d = (Y - y0) * c - (X - x0) * s  # signed distance from the line
    prof = np.zeros(cv.shape, np.float32)
    for off in offsets:
        dd = d - off
        near = np.abs(dd) < 4 * width
        prof[near] += np.exp(-0.5 * (dd[near] / width) ** 2)
    if segments:
        t = (X - x0) * c + (Y - y0) * s  # position along the line
        on = np.zeros(cv.shape, bool)
        for a, b in segments:
            on |= (t >= a) & (t <= b)
        prof[~on] = 0.0
    return prof


@injector("Satellite")
def satellite(cv, amp, f):
    """A long, straight, thin, unsaturated streak (Gaussian cross-section, peak ``amp``), possibly in segments."""
    prof = _line_profile(cv, f["x0"], f["y0"], f["angle"], f["width"], segments=f.get("segments"))
    cv.sig += amp * prof
    return {
        "geometry": {k: f[k] for k in ("x0", "y0", "angle", "width") if k in f} | {"frame": "focal_plane"},
        "points": _where_points(prof > 0.5, cv.rng),
    }


@injector("Airplane")
def airplane(cv, amp, f):
    """Wider, brighter parallel tracks with blinking lights drawn as out-of-focus donuts."""
    prof = _line_profile(cv, f["x0"], f["y0"], f["angle"], f["width"], offsets=f["offsets"])
    cv.sig += amp * prof
    # donuts every light_period along the first line
    X0, Y0 = cv.fp_origin
    h, w = cv.shape
    s, c = math.sin(f["angle"]), math.cos(f["angle"])
    R = f["light_radius"]
    n = int(2 * R + 5) | 1
    yy, xx = np.mgrid[:n, :n] - n // 2
    rr = np.hypot(yy, xx)
    donut = (np.exp(-0.5 * ((rr - 0.7 * R) / (0.2 * R)) ** 2)).astype(np.float32)
    # position along the line of the CCD's corners -> range of lights to draw
    ts = [(x - f["x0"]) * c + (y - f["y0"]) * s for x in (X0, X0 + h) for y in (Y0, Y0 + w)]
    P = f["light_period"]
    for k in range(int(math.floor(min(ts) / P)), int(math.ceil(max(ts) / P)) + 1):
        t = k * P
        row, col = f["x0"] + t * c - X0, f["y0"] + t * s - Y0
        if -n < row < h + n and -n < col < w + n:
            add_stamp(cv.sig, donut, int(row), int(col), 3 * amp)
    # the track ruins the sky estimate: the background model picks up part of it
    cv.bkg += 0.1 * amp * np.clip(_line_profile(cv, f["x0"], f["y0"], f["angle"], 60.0 * h / 4096), 0, 1)
    return {
        "geometry": {k: f[k] for k in ("x0", "y0", "angle", "width", "offsets")} | {"frame": "focal_plane"},
        "points": _where_points(prof > 0.5, cv.rng),
    }


# ----------------------------------------------------------------------------- masking problems
@injector("Column mask")
def column_mask(cv, amp, f):
    """A bad column, bright or dark, over part or all of its length, partly or not masked (BPM)."""
    h, w = cv.shape
    col = int(cv.rng.integers(2, w - 2))
    r0 = int(cv.rng.integers(0, h // 2)) if cv.rng.random() < 0.5 else 0
    r1 = h if cv.rng.random() < 0.6 else int(cv.rng.integers(r0 + h // 8, h + 1))
    sign = 1.0 if cv.rng.random() < 0.6 else -1.0
    cv.sig[r0:r1, col] += sign * amp
    masked = float(cv.rng.choice([0.0, 0.3, 0.7]))
    m1 = r0 + int(masked * (r1 - r0))
    cv.msk[r0:m1, col] |= M["BPM"]
    pts = np.stack([np.arange(m1, r1), np.full(r1 - m1, col)], axis=1)
    return {"geometry": {"col": col, "row0": r0, "row1": r1, "sign": sign, "masked_fraction": masked}, "points": pts}


@injector("Cosmic ray")
def cosmic_ray(cv, amp, f):
    """Long, sharp, bright tracks a few pixels wide, left unmasked or only partly masked (CRAY)."""
    h, w = cv.shape
    pts, tracks = [], []
    for _ in range(int(cv.rng.integers(1, 4))):
        L = int(cv.rng.integers(15, 150))
        ang = cv.rng.uniform(0, math.pi)
        width = int(cv.rng.integers(1, 4))
        r0, c0 = cv.rng.uniform(0, h), cv.rng.uniform(0, w)
        t = np.arange(L)
        rr = (r0 + t * math.sin(ang)).astype(int)
        cc = (c0 + t * math.cos(ang)).astype(int)
        rows, cols = [], []
        for dw in range(width):
            rows.append(rr + (dw if abs(math.cos(ang)) > 0.7 else 0))
            cols.append(cc + (dw if abs(math.cos(ang)) <= 0.7 else 0))
        rr, cc = np.concatenate(rows), np.concatenate(cols)
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        rr, cc = rr[ok], cc[ok]
        if rr.size == 0:
            continue
        cv.sig[rr, cc] += amp
        frac = float(cv.rng.choice([0.0, 0.0, 0.3, 0.6]))
        k = int(frac * rr.size)
        cv.msk[rr[:k], cc[:k]] |= M["CRAY"]
        pts.append(np.stack([rr[k:], cc[k:]], axis=1))
        tracks.append(
            {"row": int(r0), "col": int(c0), "length": L, "angle": float(ang), "width": width, "masked_fraction": frac}
        )
    return {"geometry": {"tracks": tracks}, "points": np.concatenate(pts) if pts else np.zeros((0, 2), int)}


@injector("Cross-talk")
def cross_talk(cv, amp, f):
    """A long excess along the rows a few pixels wide, widest in the middle, mirrored from a very
    bright star across the amplifier boundary (column w-1-col); not masked."""
    h, w = cv.shape
    row, col, _ = _ensure_bright_star(cv)
    mcol = w - 1 - col
    L = int(cv.rng.uniform(0.05, 0.3) * h)
    half_w = float(cv.rng.uniform(1.5, 4.0))
    rr = np.arange(max(row - L // 2, 0), min(row + L // 2, h))
    t = (rr - row) / max(L / 2, 1)
    width = np.maximum(half_w * np.sqrt(np.clip(1 - t * t, 0, 1)), 0.5)
    pts = []
    for dc in range(-int(math.ceil(half_w)), int(math.ceil(half_w)) + 1):
        cc = mcol + dc
        if not 0 <= cc < w:
            continue
        on = np.abs(dc) <= width
        cv.sig[rr[on], cc] += amp
        pts.append(np.stack([rr[on], np.full(on.sum(), cc)], axis=1))
    return {
        "geometry": {"source_row": row, "source_col": col, "col": mcol, "length": L, "half_width": half_w},
        "points": np.concatenate(pts) if pts else np.zeros((0, 2), int),
    }


@injector("Edge-bleed")
def edge_bleed(cv, amp, f):
    """Bright bleed spreading along the readout edge (row 0 or the last row) from a saturated
    star; its EDGEBLEED mask strip missing, too small or too large."""
    h, w = cv.shape
    row, col, _ = _ensure_bright_star(cv, near_edge=True)
    top = row < h // 2
    depth = int(cv.rng.uniform(0.005, 0.03) * h) + 2
    spread = int(cv.rng.uniform(0.05, 0.4) * w) + 4
    c0, c1 = max(col - spread // 2, 0), min(col + spread // 2, w)
    rows = slice(0, depth) if top else slice(h - depth, h)
    prof = np.exp(-np.abs(np.arange(c0, c1) - col) / max(spread / 4, 1)).astype(np.float32)
    cv.sig[rows, c0:c1] += amp * prof[None, :]
    # the bleed trail of the star reaches the edge
    cv.sig[(slice(0, row) if top else slice(row, h)), col] = np.maximum(
        cv.sig[(slice(0, row) if top else slice(row, h)), col], cv.saturation
    )
    kind = str(cv.rng.choice(["missing", "small", "large"]))
    if kind != "missing":
        k = 0.3 if kind == "small" else 2.5
        mc0, mc1 = max(col - int(k * spread / 2), 0), min(col + int(k * spread / 2), w)
        md = max(int(depth * k), 1)
        cv.msk[(slice(0, md) if top else slice(h - md, h)), mc0:mc1] |= M["EDGEBLEED"]
    region = np.zeros(cv.shape, bool)
    region[rows, c0:c1] = prof[None, :] > 0.3
    return {
        "geometry": {"col": col, "edge": "row0" if top else "rowmax", "depth": depth, "spread": spread, "mask": kind},
        "points": _where_points(region, cv.rng),
    }


@injector("Excessive mask")
def excessive_mask(cv, amp, f):
    """Large regions masked for no visible reason (pixels unchanged)."""
    h, w = cv.shape
    boxes, pts = [], []
    bit = int(cv.rng.choice([M["BPM"], M["STREAK"], M["TRAIL"], M["CRAY"]]))
    for _ in range(int(cv.rng.integers(1, 4))):
        bh, bw = int(cv.rng.uniform(0.1, 0.5) * h), int(cv.rng.uniform(0.15, 0.7) * w)
        r0, c0 = int(cv.rng.integers(0, h - bh)), int(cv.rng.integers(0, w - bw))
        cv.msk[r0 : r0 + bh, c0 : c0 + bw] |= bit
        boxes.append([r0, r0 + bh, c0, c0 + bw])
        pts.append([r0 + bh // 2, c0 + bw // 2])
    return {"geometry": {"boxes": boxes, "bit": bit}, "points": np.array(pts)}


# ----------------------------------------------------------------------------- sky estimation
@injector("Dark rim")
def dark_rim(cv, amp, f):
    """Over-subtracted sky at corners and edges: the background model is too high there."""
    h, w = cv.shape
    r, c = cv.grid()
    L = float(cv.rng.uniform(0.02, 0.1) * w)
    dist = np.minimum(np.minimum(r, h - 1 - r), np.minimum(c, w - 1 - c))
    prof = np.exp(-dist / L).astype(np.float32)
    cv.bkg += amp * prof
    return {"geometry": {"scale": L}, "points": _where_points(prof > 0.5, cv.rng)}


@injector("Dark halo")
def dark_halo(cv, amp, f):
    """A dark ring around a bright star: the background model over-estimates the sky near it."""
    row, col, _ = _ensure_bright_star(cv)
    R = float(cv.rng.uniform(60, 400) * cv.shape[0] / 4096)
    width = float(cv.rng.uniform(0.2, 0.5) * R)
    n = int(2 * (R + 3 * width)) | 1
    yy, xx = np.mgrid[:n, :n] - n // 2
    ring = np.exp(-0.5 * ((np.hypot(yy, xx) - R) / width) ** 2).astype(np.float32)
    add_stamp(cv.bkg, ring, row, col, amp)
    region = np.zeros(cv.shape, np.float32)
    add_stamp(region, ring, row, col)
    return {
        "geometry": {"row": row, "col": col, "radius": R, "width": width},
        "points": _where_points(region > 0.6, cv.rng),
    }


@injector("Quilted sky")
def quilted_sky(cv, amp, f):
    """Rectilinear pattern in 512-pixel blocks (up to a 4x8 quilt) in the background model."""
    h, w = cv.shape
    nr, nc = int(cv.rng.choice([4, 8])), int(cv.rng.choice([2, 4]))
    vals = cv.rng.uniform(-1, 1, (nr, nc)).astype(np.float32)
    bh, bw = -(-h // nr), -(-w // nc)
    pattern = np.repeat(np.repeat(vals, bh, 0), bw, 1)[:h, :w]
    cv.bkg += amp * pattern
    return {
        "geometry": {"blocks": [nr, nc], "values": vals.round(3).tolist()},
        "points": _where_points(np.abs(pattern) > 0.5, cv.rng),
    }


@injector("Anti-bleed")
def anti_bleed(cv, amp, f):
    """Dark streaks from a bright star toward a long edge (column 0 or the last column)."""
    h, w = cv.shape
    row, col, _ = _ensure_bright_star(cv)
    half = int(cv.rng.integers(2, 8))
    r0, r1 = max(row - half, 0), min(row + half + 1, h)
    if cv.rng.random() < 0.5:
        cs = slice(0, max(col - 5, 0))
    else:
        cs = slice(min(col + 5, w), w)
    cv.bkg[r0:r1, cs] += amp
    region = np.zeros(cv.shape, bool)
    region[r0:r1, cs] = True
    return {
        "geometry": {"row": row, "col": col, "rows": [r0, r1], "cols": [cs.start, cs.stop]},
        "points": _where_points(region, cv.rng),
    }


@injector("Wavy sky")
def wavy_sky(cv, amp, f):
    """Large-scale wavy background structure over the whole exposure (focal-plane coordinates)."""
    X, Y = cv.fp_grid()
    s, c = math.sin(f["angle"]), math.cos(f["angle"])
    u = X * c + Y * s
    v = Y * c - X * s
    pat = (
        np.sin(2 * np.pi * u / f["wavelength"] + f["phase"])
        * (0.6 + 0.4 * np.sin(2 * np.pi * v / f["wavelength2"] + f["phase2"]))
    ).astype(np.float32)
    cv.sig += amp * pat
    return {
        "geometry": {k: f[k] for k in ("wavelength", "angle", "phase")} | {"frame": "focal_plane"},
        "points": _where_points(np.abs(pat) > 0.7, cv.rng),
    }


# ----------------------------------------------------------------------------- flat field
@injector("A/B jump")
def ab_jump(cv, amp, f):
    """A background step of ``amp`` between the amplifier halves (added to one half)."""
    s = cv.split
    side = "A" if cv.rng.random() < 0.5 else "B"
    sign = 1.0 if cv.rng.random() < 0.5 else -1.0
    if side == "A":
        cv.sig[:, s:] += sign * amp
    else:
        cv.sig[:, :s] += sign * amp
    h = cv.shape[0]
    rows = cv.rng.integers(0, h, 32)
    cols = s + cv.rng.integers(0, 8, 32) if side == "A" else s - 1 - cv.rng.integers(0, 8, 32)
    return {"geometry": {"amp": side, "sign": sign, "split_col": s}, "points": np.stack([rows, cols], 1)}


@injector("Fringing")
def fringing(cv, amp, f):
    """Interference pattern (red bands): a few short waves under a slow envelope, coherent in the focal plane."""
    X, Y = cv.fp_grid()
    pat = np.zeros(cv.shape, np.float32)
    for lam, ang, ph in f["waves"]:
        pat += np.sin(2 * np.pi * (X * math.cos(ang) + Y * math.sin(ang)) / lam + ph)
    env = np.exp(-((X / f["envelope"]) ** 2 + (Y / f["envelope"]) ** 2) / 4).astype(np.float32)
    pat *= env / 2.0
    cv.sig += amp * pat
    return {
        "geometry": {"waves": f["waves"], "envelope": f["envelope"], "frame": "focal_plane"},
        "points": _where_points(pat > 0.5, cv.rng),
    }


@injector("Tape bump")
def tape_bump(cv, amp, f):
    """Small distorted patches near the long edges, at the tape positions (three per long edge)."""
    from .sky import tape_bump_regions

    regs = tape_bump_regions(cv.shape)
    pick = cv.rng.choice(len(regs), size=int(cv.rng.integers(1, 4)), replace=False)
    pts = []
    for k in pick:
        a, b, c0, c1 = regs[k]
        a, b = max(a, 0), min(b, cv.shape[0])
        rr = np.linspace(-1, 1, b - a, dtype=np.float32)[:, None]
        cc = np.linspace(-1, 1, c1 - c0, dtype=np.float32)[None, :]
        rad = np.hypot(rr, cc)
        bump = (np.cos(np.pi * rad) * (rad < 1)).astype(np.float32)
        cv.sig[a:b, c0:c1] += amp * bump
        pts.append([(a + b) // 2, (c0 + c1) // 2])
    return {"geometry": {"regions": [list(map(int, regs[k])) for k in pick]}, "points": np.array(pts)}


@injector("Tree rings")
def tree_rings(cv, amp, f):
    """Concentric circular arcs centred off the CCD (the wafer centre), period shrinking outward."""
    h, w = cv.shape
    ang = cv.rng.uniform(0, 2 * math.pi)
    dist = float(cv.rng.uniform(0.6, 1.2) * h)
    r0, c0 = h / 2 + dist * math.cos(ang), w / 2 + dist * math.sin(ang)
    period = float(cv.rng.uniform(150, 500) * h / 4096)
    r, c = cv.grid()
    rad = np.hypot(r - np.float32(r0), c - np.float32(c0))
    pat = np.sin(2 * np.pi * rad / period * (1 + rad / (4 * dist))).astype(np.float32)
    cv.sig += amp * pat
    return {
        "geometry": {"centre_row": r0, "centre_col": c0, "period": period},
        "points": _where_points(pat > 0.8, cv.rng),
    }


@injector("Vertical jump")
def vertical_jump(cv, amp, f):
    """A background step across the CCD near its centre (rows >= r0 shifted; a bad flat)."""
    h = cv.shape[0]
    r0 = int(h / 2 + cv.rng.uniform(-0.1, 0.1) * h)
    sign = 1.0 if cv.rng.random() < 0.5 else -1.0
    cv.sig[r0:, :] += sign * amp
    cols = cv.rng.integers(0, cv.shape[1], 32)
    return {"geometry": {"row": r0, "sign": sign}, "points": np.stack([r0 + cv.rng.integers(0, 6, 32), cols], 1)}


# ----------------------------------------------------------------------------- reflections
@injector("Ghost")
def ghost(cv, amp, f):
    """A diffuse ring (doughnut) reflection of a bright star, focal-plane centred, possibly over many CCDs."""
    X, Y = cv.fp_grid()
    rad = np.hypot(X - f["x0"], Y - f["y0"])
    ring = np.exp(-0.5 * ((rad - f["radius"]) / f["width"]) ** 2)
    disk = f["fill"] * (rad < f["radius"])
    pat = np.maximum(ring, disk).astype(np.float32)
    cv.sig += amp * pat
    return {
        "geometry": {k: f[k] for k in ("x0", "y0", "radius", "width", "fill")} | {"frame": "focal_plane"},
        "points": _where_points(pat > 0.5 * max(float(pat.max()), 0.2), cv.rng),
    }


@injector("Bright spray")
def bright_spray(cv, amp, f):
    """A broad bright fan of scattered light from the focal-plane edge."""
    X, Y = cv.fp_grid()
    dx, dy = X - f["x0"], Y - f["y0"]
    rho = np.hypot(dx, dy)
    dang = (np.arctan2(dy, dx) - f["angle"] + np.pi) % (2 * np.pi) - np.pi
    pat = (np.exp(-rho / f["length"]) * np.exp(-0.5 * (dang / f["half_open"]) ** 2)).astype(np.float32)
    pat /= max(float(pat.max()), 1e-6)
    cv.sig += amp * pat
    return {
        "geometry": {k: f[k] for k in ("x0", "y0", "angle", "half_open", "length")} | {"frame": "focal_plane"},
        "points": _where_points(pat > 0.5, cv.rng),
    }


def _arc(cv, radius, width, span, point):
    """A Gaussian-profile circular arc through ``point`` (row, col), computed inside its bounding box."""
    h, w = cv.shape
    a0 = float(cv.rng.uniform(-math.pi, math.pi))
    centre = (point[0] - radius * math.sin(a0), point[1] - radius * math.cos(a0))
    out = np.zeros(cv.shape, np.float32)
    ext = radius + 4 * width
    r0, r1 = max(int(centre[0] - ext), 0), min(int(centre[0] + ext) + 1, h)
    c0, c1 = max(int(centre[1] - ext), 0), min(int(centre[1] + ext) + 1, w)
    if r1 <= r0 or c1 <= c0:
        return out, a0
    r = np.arange(r0, r1, dtype=np.float32)[:, None] - np.float32(centre[0])
    c = np.arange(c0, c1, dtype=np.float32)[None, :] - np.float32(centre[1])
    rad = np.hypot(r, c)
    near = np.abs(rad - radius) < 4 * width
    rr, cc = np.nonzero(near)
    dang = (np.arctan2(r[rr, 0], c[0, cc]) - a0 + np.pi) % (2 * np.pi) - np.pi
    val = np.exp(-0.5 * ((rad[rr, cc] - radius) / width) ** 2) * np.cos(
        np.clip(dang / span * np.pi, -np.pi / 2, np.pi / 2)
    )
    val[np.abs(dang) >= span / 2] = 0.0
    out[rr + r0, cc + c0] = val
    return out, centre


@injector("Brush strokes")
def brush_strokes(cv, amp, f):
    """Diffuse, sweeping, smaller scattered-light features: a few broad curved strokes."""
    h, w = cv.shape
    pat = np.zeros(cv.shape, np.float32)
    strokes = []
    for _ in range(int(cv.rng.integers(1, 4))):
        R = float(cv.rng.uniform(0.3, 1.0) * h)
        point = (cv.rng.uniform(0, h), cv.rng.uniform(0, w))
        width = float(cv.rng.uniform(15, 60) * h / 4096)
        p, centre = _arc(cv, R, width, float(cv.rng.uniform(0.3, 0.9)), point)
        pat = np.maximum(pat, p)
        strokes.append({"centre": [float(centre[0]), float(centre[1])], "radius": R, "width": width})
    cv.sig += amp * pat
    return {"geometry": {"strokes": strokes}, "points": _where_points(pat > 0.5, cv.rng)}


@injector("Bright arc")
def bright_arc(cv, amp, f):
    """A thin bright arc of scattered light."""
    h, w = cv.shape
    R = float(cv.rng.uniform(0.15, 0.8) * h)
    point = (cv.rng.uniform(0.2, 0.8) * h, cv.rng.uniform(0.2, 0.8) * w)
    width = float(cv.rng.uniform(1.5, 4.0))
    pat, centre = _arc(cv, R, width, float(cv.rng.uniform(0.4, 1.5)), point)
    cv.sig += amp * pat
    return {
        "geometry": {"centre": [float(centre[0]), float(centre[1])], "radius": R, "width": width},
        "points": _where_points(pat > 0.5, cv.rng),
    }


# ----------------------------------------------------------------------------- instrument / site
@injector("Guiding")
def guiding(cv, amp, f):
    """Every source elongated the same way: done by the sheared PSF of the exposure (sky.templates);
    the report sits on one of the CCD's brighter stars."""
    stars = sorted(cv.stars, key=lambda s: -s[2])[:20] or [(cv.shape[0] // 2, cv.shape[1] // 2, 0.0)]
    return {"geometry": {"g": f.get("g"), "angle": f.get("angle")}, "points": np.array([[s[0], s[1]] for s in stars])}


@injector("Shutter")
def shutter(cv, amp, f):
    """Star trails along the readout direction (the row axis), ``amp`` per pixel for a typical bright star."""
    h = cv.shape[0]
    L = int(f.get("length", 300))
    d = int(f.get("direction", 1))
    stars = sorted(cv.stars, key=lambda s: -s[2])[:40] + list(cv.bright)
    if not stars:
        return {"geometry": {"length": L}, "points": np.zeros((0, 2), int)}
    ref = float(np.median([s[2] for s in stars]))
    pts = []
    for row, col, flux in stars:
        a = min(amp * flux / ref, 20 * amp)
        r0, r1 = (row, min(row + L, h)) if d > 0 else (max(row - L, 0), row)
        cv.sig[r0:r1, col] += a
        if r1 > r0:
            pts.append([(r0 + r1) // 2, col])
    return {"geometry": {"length": L, "direction": d}, "points": np.array(pts)}


@injector("Readout")
def readout(cv, amp, f):
    """Hatched lines along the columns, slightly tilted, in a band near a short edge (row 0 or last)."""
    h, w = cv.shape
    band = int(cv.rng.uniform(0.01, 0.05) * h) + 4
    top = cv.rng.random() < 0.5
    r0 = 0 if top else h - band
    period = float(cv.rng.uniform(4, 10))
    tilt = float(cv.rng.uniform(-0.02, 0.02))
    r = np.arange(r0, r0 + band, dtype=np.float32)[:, None]
    c = np.arange(w, dtype=np.float32)[None, :]
    pat = (np.sin(2 * np.pi * (r + tilt * c) / period) > 0.6).astype(np.float32)
    cv.sig[r0 : r0 + band, :] += amp * pat
    region = np.zeros(cv.shape, bool)
    region[r0 : r0 + band, :] = pat > 0
    return {
        "geometry": {"rows": [r0, r0 + band], "period": period, "tilt": tilt},
        "points": _where_points(region, cv.rng),
    }


@injector("Haze")
def haze(cv, amp, f):
    """A large diffuse glow over the exposure (focal-plane centred) plus broad glows around bright objects."""
    X, Y = cv.fp_grid()
    glow = np.exp(-((X - f["x0"]) ** 2 + (Y - f["y0"]) ** 2) / (2 * f["scale"] ** 2)).astype(np.float32)
    cv.sig += amp * glow
    S = f["star_scale"]
    n = int(6 * S) | 1
    yy, xx = np.mgrid[:n, :n] - n // 2
    halo = np.exp(-np.hypot(yy, xx) / S).astype(np.float32)
    pts = []
    for row, col, _flux in list(cv.bright) + sorted(cv.stars, key=lambda s: -s[2])[:3]:
        add_stamp(cv.sig, halo, row, col, 2 * amp)
        pts.append([row + int(cv.rng.integers(-S // 2, S // 2 + 1)), col + int(cv.rng.integers(-S // 2, S // 2 + 1))])
    pts = np.array(pts) if pts else _where_points(glow > 0.5 * glow.max(), cv.rng)
    return {
        "geometry": {k: f[k] for k in ("x0", "y0", "scale", "star_scale")} | {"frame": "focal_plane"},
        "points": pts,
    }


@injector("Vertical stripes")
def vertical_stripes(cv, amp, f):
    """Grainy striping of whole rows (lines across the columns) in a region, sometimes heavily masked."""
    h, w = cv.shape
    rh = int(cv.rng.uniform(0.1, 0.5) * h)
    r0 = int(cv.rng.integers(0, h - rh))
    offs = cv.rng.normal(0, 1, (rh, 1)).astype(np.float32)
    grain = 1 + 0.5 * cv.rng.standard_normal((rh, w), dtype=np.float32)
    cv.sig[r0 : r0 + rh, :] += amp * offs * grain
    masked = cv.rng.random() < 0.3
    if masked:
        cv.msk[r0 : r0 + rh, :][np.abs(offs[:, 0]) > 1.0, :] |= M["BADAMP"]
    region = np.zeros(cv.shape, bool)
    region[r0 : r0 + rh, :] = True
    return {"geometry": {"rows": [r0, r0 + rh], "masked": bool(masked)}, "points": _where_points(region, cv.rng)}
