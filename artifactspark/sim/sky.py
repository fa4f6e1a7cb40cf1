"""One CCD before artifacts: sky, GalSim stars and galaxies, saturation and bleed trails, cosmic rays,
bad columns, masked edges; then noise, weight and the background model.

Pixel values are electrons. Sources are GalSim postage stamps drawn once per exposure (a PSF
that varies per exposure, a small galaxy-template library) and added at the object positions,
which keeps a full CCD well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..io.des import MASK_BITS
from .exposure import ExposurePlan

FULL_AREA = 4096 * 2048
M = MASK_BITS


@dataclass
class Canvas:
    """The planes of one CCD being built, plus what injectors need to know about it."""

    shape: tuple
    sig: np.ndarray  # noise-free signal (sky + sources + additive artifacts), e-
    bkg: np.ndarray  # the background model that will be written (sky + model errors)
    msk: np.ndarray  # int32 DESDM bits
    sky: float  # mean sky level, e-
    sigma: float  # sky noise per pixel, e-
    fp_origin: tuple  # focal-plane (X, Y) of pixel (0, 0)
    fwhm_pix: float
    saturation: float
    rng: np.random.Generator
    band: str = "r"
    stars: list = field(default_factory=list)  # (row, col, flux) of ordinary stars
    bright: list = field(default_factory=list)  # (row, col, flux) of saturated stars
    post: list = field(default_factory=list)  # callables(sci) applied after the noise

    @property
    def split(self) -> int:
        """The first column of amplifier A (the columns before it are amplifier B's)."""
        return self.shape[1] // 2

    def fp_grid(self):
        """Focal-plane X (column vector over rows) and Y (row vector over columns), float32."""
        h, w = self.shape
        X = (self.fp_origin[0] + np.arange(h, dtype=np.float32))[:, None]
        Y = (self.fp_origin[1] + np.arange(w, dtype=np.float32))[None, :]
        return X, Y

    def grid(self):
        """Row (column vector) and column (row vector) indices, float32."""
        h, w = self.shape
        return np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]


def blank_canvas(shape, sky=0.0, sigma=1.0, seed=0, fp_origin=(0.0, 0.0), fwhm_pix=4.0, saturation=1.5e5):
    """A flat, source-free canvas (used by tests and by the injector checks)."""
    sig = np.full(shape, sky, np.float32)
    return Canvas(
        shape=tuple(shape),
        sig=sig,
        bkg=sig.copy(),
        msk=np.zeros(shape, np.int32),
        sky=sky,
        sigma=sigma,
        fp_origin=fp_origin,
        fwhm_pix=fwhm_pix,
        saturation=saturation,
        rng=np.random.default_rng(seed),
    )


def add_stamp(img, stamp, r, c, scale=1.0):
    """img[r - s//2 : ..., c - s//2 : ...] += scale * stamp, clipped at the borders."""
    sh, sw = stamp.shape
    r0, c0 = int(r) - sh // 2, int(c) - sw // 2
    a0, b0 = max(r0, 0), max(c0, 0)
    a1, b1 = min(r0 + sh, img.shape[0]), min(c0 + sw, img.shape[1])
    if a1 <= a0 or b1 <= b0:
        return
    img[a0:a1, b0:b1] += scale * stamp[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0]


# ----------------------------------------------------------------------------- GalSim templates
_TEMPLATES: dict = {}


def psf_object(fwhm_arcsec: float, guiding: dict | None = None):
    """The GalSim PSF: a Moffat of ``fwhm_arcsec``, sheared by a guiding error."""
    import galsim

    psf = galsim.Moffat(beta=3.0, fwhm=fwhm_arcsec)
    if guiding:
        psf = psf.shear(g=guiding["g"], beta=guiding["angle"] * galsim.radians)
    return psf


def templates(plan: ExposurePlan, guiding: dict | None, n_gal: int = 24, seed: int = 0):
    """Unit-flux GalSim stamps for this exposure: star PSF, bright-star PSF (wide) and galaxies."""
    key = (plan.expnum, plan.seeing, None if guiding is None else (guiding["g"], guiding["angle"]), seed)
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    import galsim

    scale = 0.263
    psf = psf_object(plan.seeing, guiding)
    fw = plan.fwhm_pix
    n = int(2 * math.ceil(3.5 * fw) + 1)
    star = psf.drawImage(nx=n, ny=n, scale=scale).array.astype(np.float32)
    nb = int(2 * math.ceil(40 * fw) + 1)
    # Drawn in real space (no_pixel: the core saturates and is masked anyway): drawn by FFT, the
    # wide Moffat(beta=2.2) rings along the stamp's axes (~1e-5 of the peak at 0.8" seeing, one
    # pixel wide), which on a 10th-magnitude star is a sharp line of tens of sigma through it, a
    # feature no real star has. Truncated at the stamp's edge so its flux is the stamp's.
    bright = galsim.Moffat(beta=2.2, fwhm=plan.seeing, trunc=(nb // 2) * scale)
    if guiding:
        bright = bright.shear(g=guiding["g"], beta=guiding["angle"] * galsim.radians)
    bright = bright.drawImage(nx=nb, ny=nb, scale=scale, method="no_pixel").array.astype(np.float32)
    rng = np.random.default_rng([seed, plan.expnum, 7])
    gals = []
    for _ in range(n_gal):
        hlr = float(np.exp(rng.uniform(np.log(0.25), np.log(1.5))))
        g = rng.uniform(0, 0.5)
        prof = (
            galsim.Exponential(half_light_radius=hlr)
            if rng.random() < 0.7
            else galsim.DeVaucouleurs(half_light_radius=hlr, trunc=8 * hlr)
        )
        prof = prof.shear(g=g, beta=rng.uniform(0, math.pi) * galsim.radians)
        ng = int(2 * math.ceil(3.5 * fw + 3 * hlr / scale) + 1)
        ng = min(ng, 61)
        gals.append(galsim.Convolve(prof, psf).drawImage(nx=ng, ny=ng, scale=scale).array.astype(np.float32))
    if len(_TEMPLATES) > 8:
        _TEMPLATES.clear()
    _TEMPLATES[key] = (star, bright, gals)
    return _TEMPLATES[key]


def _powerlaw_mags(rng, n, m1, m2, slope):
    """Magnitudes with dN/dm ~ 10**(slope m) between m1 and m2."""
    u = rng.random(n)
    a, b = 10 ** (slope * m1), 10 ** (slope * m2)
    return np.log10(a + u * (b - a)) / slope


# ----------------------------------------------------------------------------- the base CCD
def base_canvas(
    plan: ExposurePlan, sc, ccdnum: int, shape, rng, fp_origin, amps: dict, guiding: dict | None = None, seed: int = 0
) -> Canvas:
    """Sky with a gentle gradient, sources, bright stars with bleed trails; masks SATURATE/STAR/TRAIL,
    bad columns (BPM, fixed per CCD) and EDGE."""
    h, w = shape
    area = h * w / FULL_AREA
    sky = plan.sky
    sat = min(amps["SATURATA"], amps["SATURATB"])
    rn = max(amps["RDNOISEA"], amps["RDNOISEB"])
    sigma = math.sqrt(sky + rn * rn)
    # smooth sky: the true sky has a slight gradient across the CCD (part of the focal-plane
    # illumination), which the background model follows
    gx, gy = rng.normal(0, 0.004, 2)
    r = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    c = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    true_sky = (sky * (1.0 + gx * r + gy * c)).astype(np.float32)  # broadcasts to (h, w)
    sig = np.empty(shape, np.float32)
    sig[...] = true_sky
    cv = Canvas(
        shape=tuple(shape),
        sig=sig,
        bkg=None,
        msk=np.zeros(shape, np.int32),
        sky=sky,
        sigma=sigma,
        fp_origin=fp_origin,
        fwhm_pix=plan.fwhm_pix,
        saturation=sat,
        rng=rng,
        band=plan.band,
    )
    # background model = true smooth sky + a smooth model error of ~bkg_error sky sigmas
    ex, ey = rng.normal(0, sc.bkg_error * sigma, 2)
    e0 = rng.normal(0, 0.5 * sc.bkg_error * sigma)
    cv.bkg = np.empty(shape, np.float32)
    cv.bkg[...] = true_sky + (e0 + ex * np.cos(np.pi * r) + ey * np.sin(np.pi * c))

    star, bright, gals = templates(plan, guiding, seed=seed)
    zp = sc.zeropoint
    ng = rng.poisson(sc.galaxies_per_ccd * area)
    rows, cols = rng.integers(0, h, ng), rng.integers(0, w, ng)
    flux = 10 ** (-0.4 * (_powerlaw_mags(rng, ng, 18.0, 25.5, 0.35) - zp))
    which = rng.integers(0, len(gals), ng)
    for i in range(ng):
        add_stamp(sig, gals[which[i]], rows[i], cols[i], flux[i])
    ns = rng.poisson(sc.stars_per_ccd * area)
    rows, cols = rng.integers(0, h, ns), rng.integers(0, w, ns)
    flux = 10 ** (-0.4 * (_powerlaw_mags(rng, ns, 16.5, 24.5, 0.12) - zp))
    for i in range(ns):
        add_stamp(sig, star, rows[i], cols[i], flux[i])
        cv.stars.append((int(rows[i]), int(cols[i]), float(flux[i])))
    for _ in range(rng.poisson(sc.bright_stars_per_ccd * area)):
        add_bright_star(
            cv,
            int(rng.integers(0, h)),
            int(rng.integers(0, w)),
            float(10 ** (-0.4 * (rng.uniform(10.0, 15.5) - zp))),
            bright,
        )
    cv._bright_template = bright
    return cv


def add_bright_star(cv: Canvas, row: int, col: int, flux: float, template=None, bleed: bool = True):
    """A saturated star: PSF wings, saturated core clipped, excess charge bled along the column axis
    (both directions) and masked SATURATE / TRAIL / STAR."""
    tpl = template if template is not None else cv._bright_template
    h, w = cv.shape
    stamp = (flux * tpl).astype(np.float32)
    sh = stamp.shape[0]
    r0, c0 = row - sh // 2, col - sh // 2
    a0, b0, a1, b1 = max(r0, 0), max(c0, 0), min(r0 + sh, h), min(c0 + sh, w)
    if a1 <= a0 or b1 <= b0:
        return
    sub = stamp[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0]
    region = cv.sig[a0:a1, b0:b1]
    region += sub
    sat = cv.saturation
    over = region > sat
    if not over.any():
        return
    excess = np.where(over, region - sat, 0.0).sum(axis=0)  # per column of the region
    region[over] = sat
    cv.msk[a0:a1, b0:b1][over] |= M["SATURATE"]
    # STAR: a circle around the star, radius growing with its brightness
    rad = int(min(max(3 * cv.fwhm_pix * math.log10(max(flux / sat, 1.0)) + 2 * cv.fwhm_pix, 5), sh // 2))
    ra, rb = max(row - rad, 0), min(row + rad + 1, h)
    ca, cb = max(col - rad, 0), min(col + rad + 1, w)
    rr = np.arange(ra, rb)[:, None] - row
    cc = np.arange(ca, cb)[None, :] - col
    cv.msk[ra:rb, ca:cb][(rr * rr + cc * cc) <= rad * rad] |= M["STAR"]
    if bleed:
        for j in np.nonzero(excess > 0)[0]:
            colj = b0 + j
            rows_sat = np.nonzero(over[:, j])[0] + a0
            n = int(math.ceil(excess[j] / sat / 2))
            lo, hi = max(rows_sat.min() - n, 0), min(rows_sat.max() + n + 1, h)
            cv.sig[lo:hi, colj] = np.maximum(cv.sig[lo:hi, colj], sat)
            cv.msk[lo:hi, colj] |= M["TRAIL"] | M["SATURATE"]
    cv.bright.append((row, col, float(flux)))


def add_cosmic_rays(
    cv: Canvas, n: int, rng, masked_fraction: float = 1.0, amp_range=(300.0, 8000.0), length_range=(1, 12), bit=True
):
    """Short cosmic-ray tracks; ``masked_fraction`` of each track's pixels gets CRAY. Returns pixel lists."""
    h, w = cv.shape
    tracks = []
    for _ in range(n):
        L = int(rng.integers(length_range[0], length_range[1] + 1))
        ang = rng.uniform(0, math.pi)
        r0, c0 = rng.uniform(0, h), rng.uniform(0, w)
        t = np.arange(L + 1, dtype=np.float32)
        rr = (r0 + t * math.sin(ang)).astype(int)
        cc = (c0 + t * math.cos(ang)).astype(int)
        np.minimum(np.maximum(rr, 0, out=rr), h - 1, out=rr)
        np.minimum(np.maximum(cc, 0, out=cc), w - 1, out=cc)
        amp = float(rng.uniform(*amp_range))
        cv.post.append(("add", rr, cc, amp))
        if bit:
            k = int(round(masked_fraction * len(rr)))
            cv.msk[rr[:k], cc[:k]] |= M["CRAY"]
        tracks.append((rr, cc, amp))
    return tracks


def bad_columns(cv: Canvas, ccdnum: int, seed: int):
    """Hot/dead columns fixed per CCD (the bad-pixel map), masked BPM."""
    rng = np.random.default_rng([ccdnum, 0xBAD])
    h, w = cv.shape
    for _ in range(int(rng.integers(0, 4))):
        col = int(rng.integers(0, w))
        r0 = int(rng.integers(0, h // 2)) if rng.random() < 0.5 else 0
        cv.sig[r0:, col] = cv.sig[r0:, col] * float(rng.choice([0.0, 3.0]))
        cv.msk[r0:, col] |= M["BPM"]


def tape_bump_regions(shape):
    """The six tape-bump patches, three per long edge: (row0, row1, col0, col1)."""
    h, w = shape
    bh, bw = max(h * 120 // 4096, 2), max(w * 70 // 2048, 2)
    out = []
    for frac in (1 / 6, 1 / 2, 5 / 6):
        rc = int(frac * h)
        out.append((rc - bh // 2, rc + bh // 2, 0, bw))
        out.append((rc - bh // 2, rc + bh // 2, w - bw, w))
    return out


def finish(cv: Canvas, amps: dict, rng, edge_width: int):
    """Poisson (Gaussian-approximated) + read noise per amplifier; post-noise additions (cosmic rays);
    EDGE mask; WGT = 1 / variance of the sky, 0 where the pixel is unusable.
    Returns sci, msk, wgt, bkg (float32, float32 ... int32)."""
    h, w = cv.shape
    s = cv.split
    rn2 = np.empty((1, w), np.float32)
    rn2[0, :s] = amps["RDNOISEB"] ** 2
    rn2[0, s:] = amps["RDNOISEA"] ** 2
    var = np.maximum(cv.sig, 0.0)
    var += rn2
    np.sqrt(var, out=var)
    sci = rng.standard_normal(cv.shape, dtype=np.float32)
    sci *= var
    sci += cv.sig
    del var
    for item in cv.post:
        if item[0] == "add":
            _, rr, cc, amp = item
            np.add.at(sci, (rr, cc), amp)
        else:
            item[1](sci)
    if edge_width > 0:
        e = edge_width
        cv.msk[:e, :] |= M["EDGE"]
        cv.msk[-e:, :] |= M["EDGE"]
        cv.msk[:, :e] |= M["EDGE"]
        cv.msk[:, -e:] |= M["EDGE"]
    for a, b, c0, c1 in tape_bump_regions(cv.shape):
        cv.msk[max(a, 0) : b, c0:c1] |= M["TAPEBUMP"]
    wgt = np.maximum(cv.bkg, 1.0)
    wgt += rn2
    np.reciprocal(wgt, out=wgt)
    wgt[(cv.msk & (M["BPM"] | M["SATURATE"])) != 0] = 0.0
    return sci, cv.msk, wgt.astype(np.float32, copy=False), cv.bkg
