"""Exposure-level draws, made from (seed, exposure index) alone so every CCD task agrees.

Nothing here touches pixels: the plan holds scalars and the focal-plane geometry of the
exposure-wide artifacts. :func:`touches` tells, without pixel work, which CCDs a feature reaches.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np

from . import focalplane
from .config import EXPOSURE_CLASS_RATES, SimConfig

PIXEL_SCALE = 0.263  # arcsec / pixel


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """A generator determined by ``seed`` and ``keys`` (e.g. the exposure index)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *[int(k) for k in keys]])


def loguniform(rng, lo, hi):
    """A draw uniform in log between ``lo`` and ``hi`` (``lo`` when ``hi <= lo``)."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo)


@dataclass(frozen=True)
class ExposurePlan:
    """What an exposure is: its numbers, band, conditions and exposure-wide features."""

    index: int
    expnum: int
    nite: str
    band: str
    date_obs: str
    mjd: float
    exptime: float
    airmass: float
    seeing: float  # arcsec FWHM
    sky: float  # e- / pixel
    object: str
    features: tuple = ()  # exposure-wide artifacts: dicts with cls, fid, snr and focal-plane geometry
    ccd_artifact_prob: float = 0.5  # per-CCD probability of CCD-level artifacts (tops up to the share)
    touched: dict = field(default_factory=dict)  # fid -> tuple of CCDNUMs the feature reaches

    @property
    def fwhm_pix(self) -> float:
        """The seeing FWHM in pixels."""
        return self.seeing / PIXEL_SCALE


def _draw_feature(cls: str, rng, sc: SimConfig, shape, band: str) -> dict | None:
    R = focalplane.extent(shape)
    h, w = shape
    lo, hi = sc.snr(cls)
    f = {"cls": cls, "snr": loguniform(rng, lo, hi)}
    if cls in ("Satellite", "Airplane"):
        ang = rng.uniform(0, math.pi)
        f.update(x0=float(rng.uniform(-0.6, 0.6) * R), y0=float(rng.uniform(-0.6, 0.6) * R), angle=float(ang))
        if cls == "Satellite":
            f["width"] = float(rng.uniform(0.6, 3.0))
            # sometimes broken into segments: (start, stop) along the line in focal-plane pixels
            if rng.random() < 0.3:
                edges = np.sort(rng.uniform(-2 * R, 2 * R, 2 * int(rng.integers(1, 4))))
                f["segments"] = [[float(a), float(b)] for a, b in zip(edges[::2], edges[1::2])]
        else:
            n = int(rng.integers(1, 4))
            sep = float(rng.uniform(15, 60) * h / 4096)
            f.update(
                width=float(rng.uniform(2.0, 4.0)),
                offsets=[i * sep for i in range(n)],
                light_period=float(rng.uniform(300, 900) * h / 4096),
                light_radius=float(rng.uniform(8, 25)),
            )
    elif cls == "Wavy sky":
        f.update(
            wavelength=float(rng.uniform(0.15, 0.6) * 2 * R),
            angle=float(rng.uniform(0, math.pi)),
            phase=float(rng.uniform(0, 2 * math.pi)),
            wavelength2=float(rng.uniform(0.2, 0.8) * 2 * R),
            phase2=float(rng.uniform(0, 2 * math.pi)),
        )
    elif cls == "Fringing":
        if band not in ("z", "Y"):
            return None
        f["waves"] = [
            [float(rng.uniform(60, 250) * h / 4096), float(rng.uniform(0, math.pi)), float(rng.uniform(0, 2 * math.pi))]
            for _ in range(3)
        ]
        f["envelope"] = float(rng.uniform(0.3, 1.0) * R)
    elif cls == "Ghost":
        rad = float(rng.uniform(0.05, 0.3) * R)
        f.update(
            x0=float(rng.uniform(-0.7, 0.7) * R),
            y0=float(rng.uniform(-0.7, 0.7) * R),
            radius=rad,
            width=float(rng.uniform(0.1, 0.35) * rad),
            fill=float(rng.uniform(0.2, 0.6)),
        )
    elif cls == "Haze":
        f.update(
            x0=float(rng.uniform(-0.5, 0.5) * R),
            y0=float(rng.uniform(-0.5, 0.5) * R),
            scale=float(rng.uniform(0.4, 1.2) * R),
            star_scale=float(rng.uniform(150, 600) * h / 4096),
        )
    elif cls == "Guiding":
        f.update(g=float(rng.uniform(lo, hi)), angle=float(rng.uniform(0, math.pi)))
        f["snr"] = float("nan")  # strength is the ellipticity g, not a S/N (see truth table docs)
    elif cls == "Shutter":
        f.update(length=float(rng.uniform(100, 800) * h / 4096), direction=int(rng.choice([-1, 1])))
    elif cls == "Bright spray":
        phi = rng.uniform(0, 2 * math.pi)
        f.update(
            x0=float(math.cos(phi) * R),
            y0=float(math.sin(phi) * R),
            angle=float(phi + math.pi + rng.uniform(-0.3, 0.3)),
            half_open=float(rng.uniform(0.08, 0.3)),
            length=float(rng.uniform(0.3, 0.8) * R),
        )
    return f


def touches(f: dict, box, shape) -> bool:
    """Does exposure-wide feature ``f`` reach the CCD whose focal-plane box is ``box``? (geometry only)"""
    cls = f["cls"]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_diag = 0.5 * math.hypot(x1 - x0, y1 - y0)
    if cls in ("Satellite", "Airplane"):
        s, c = math.sin(f["angle"]), math.cos(f["angle"])
        # distance of the CCD centre from the line (normal = (-s, c)), and position along it
        d = -(cx - f["x0"]) * s + (cy - f["y0"]) * c
        extra = max(f.get("offsets", [0.0])) + 4 * f["width"] + f.get("light_radius", 0)
        if abs(d) > half_diag + extra:
            return False
        # the line crosses a box if the box corners are not all on one side
        sides = [-(x - f["x0"]) * s + (y - f["y0"]) * c for x in (x0, x1) for y in (y0, y1)]
        if min(sides) > extra or max(sides) < -extra:
            return False
        if "segments" in f:
            t = (cx - f["x0"]) * c + (cy - f["y0"]) * s
            return any(a - half_diag <= t <= b + half_diag for a, b in f["segments"])
        return True
    if cls == "Ghost":
        dist = math.hypot(cx - f["x0"], cy - f["y0"])
        # nearest and farthest distance of the box from the ring centre
        nx = min(max(f["x0"], x0), x1) - f["x0"]
        ny = min(max(f["y0"], y0), y1) - f["y0"]
        near = math.hypot(nx, ny)
        far = dist + half_diag
        return near <= f["radius"] + 2 * f["width"] and far >= (f["radius"] - 2 * f["width"]) * (1 - f["fill"] > 0.5)
    if cls == "Bright spray":
        dx, dy = cx - f["x0"], cy - f["y0"]
        rho = math.hypot(dx, dy)
        if rho - half_diag > 2.5 * f["length"]:
            return False
        dang = (math.atan2(dy, dx) - f["angle"] + math.pi) % (2 * math.pi) - math.pi
        return abs(dang) <= f["half_open"] * 2 + math.atan2(half_diag, max(rho, 1.0))
    return True  # Wavy sky, Fringing, Haze, Guiding, Shutter: the whole exposure


def _nite(sc: SimConfig, index: int) -> tuple[str, dt.datetime]:
    d0 = dt.datetime.strptime(sc.first_nite, "%Y%m%d")
    day = d0 + dt.timedelta(days=index // sc.exposures_per_night)
    t = day + dt.timedelta(hours=23, seconds=int(100 * (index % sc.exposures_per_night)))
    return day.strftime("%Y%m%d"), t


_PLANS: dict = {}


def exposure_plan(sc: SimConfig, seed: int, index: int, shape: tuple, ccds: tuple) -> ExposurePlan:
    """Everything drawn once per exposure (deterministic in seed and index; cached per process)."""
    key = (repr(sc), seed, index, tuple(shape), tuple(ccds))
    if key not in _PLANS:
        if len(_PLANS) > 64:
            _PLANS.clear()
        _PLANS[key] = _exposure_plan(sc, seed, index, tuple(shape), tuple(ccds))
    return _PLANS[key]


def _exposure_plan(sc: SimConfig, seed: int, index: int, shape: tuple, ccds: tuple) -> ExposurePlan:
    rng = rng_for(seed, index, 0xE)
    w = np.asarray(sc.band_weights, float)
    band = sc.bands[int(rng.choice(len(sc.bands), p=w / w.sum()))]
    airmass = float(rng.uniform(1.0, 1.6))
    seeing = float(rng.uniform(*sc.seeing_range) * airmass**0.6)
    sky = float(sc.sky_for_band(band) * rng.uniform(*sc.sky_factor_range) * sc.exptime / 90.0 * airmass**0.5)
    nite, t = _nite(sc, index)
    mjd = (t - dt.datetime(1858, 11, 17)).total_seconds() / 86400.0
    feats, touched = [], {}
    boxes = {c: focalplane.ccd_box(c, shape) for c in ccds}
    for k, cls in enumerate(EXPOSURE_CLASS_RATES):
        if rng.random() >= sc.rate(cls):
            continue
        f = _draw_feature(cls, rng, sc, shape, band)
        if f is None:
            continue
        f["fid"] = f"e{index}-{k}"
        hit = tuple(c for c, b in boxes.items() if touches(f, b, shape))
        if hit:
            feats.append(f)
            touched[f["fid"]] = hit
    # CCD-level artifacts top the share up: exposures with a whole-exposure effect are all
    # artifact CCDs, so the others get p with P_whole + (1 - P_whole) * p ~ artifact_share.
    pw = sc.whole_exposure_probability()
    p = (sc.artifact_share - pw) / (1 - pw) if pw < 1 else 0.0
    n_hit = len({c for h in touched.values() for c in h})
    frac = n_hit / max(len(ccds), 1)  # partial features (satellites, ghosts...) already cover these
    p = (p - frac) / (1 - frac) if frac < 1 else 0.0
    return ExposurePlan(
        index=index,
        expnum=sc.first_expnum + index,
        nite=nite,
        band=band,
        date_obs=t.strftime("%Y-%m-%dT%H:%M:%S"),
        mjd=round(mjd, 6),
        exptime=sc.exptime,
        airmass=round(airmass, 3),
        seeing=round(seeing, 3),
        sky=round(sky, 2),
        object=f"DES survey hex {int(rng.integers(1000, 9999))}",
        features=tuple(feats),
        ccd_artifact_prob=float(min(max(p, 0.0), 1.0)),
        touched=touched,
    )
