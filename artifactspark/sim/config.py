"""The ``[simulate]`` section of the pipeline config, typed and validated.

Every key is optional; unknown keys, wrong types and out-of-range values raise
:class:`~artifactspark.errors.ConfigError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import DEFAULT_CLASSES, PipelineConfig, _build
from ..errors import ConfigError
from ..io.des import BANDS

#: Classes drawn once per exposure (their geometry lives in focal-plane coordinates and every CCD
#: they touch shows them coherently). Value: default probability per exposure.
EXPOSURE_CLASS_RATES = {
    "Satellite": 0.20,
    "Airplane": 0.04,
    "Wavy sky": 0.04,
    "Fringing": 0.25,
    "Ghost": 0.10,
    "Haze": 0.03,
    "Guiding": 0.03,
    "Shutter": 0.01,
    "Bright spray": 0.05,
}
#: Classes drawn per CCD. Value: default relative weight when an artifact CCD picks its classes.
CCD_CLASS_WEIGHTS = {
    "Column mask": 1.0,
    "Cosmic ray": 1.0,
    "Cross-talk": 0.6,
    "Edge-bleed": 0.6,
    "Excessive mask": 0.5,
    "Dark rim": 0.5,
    "Dark halo": 0.8,
    "Quilted sky": 0.3,
    "Anti-bleed": 0.3,
    "A/B jump": 0.8,
    "Tape bump": 0.4,
    "Tree rings": 0.6,
    "Vertical jump": 0.4,
    "Brush strokes": 0.4,
    "Bright arc": 0.4,
    "Readout": 0.3,
    "Vertical stripes": 0.3,
}
#: Per-pixel signal-to-noise range (amplitude / sky sigma) from which each class's strength is
#: drawn log-uniformly. The low ends are set against the detectability floors (sim/detect.py)
#: with benchmarks/calibrate_floors.py so that about 10 % or less of each class falls below its
#: floor (a realistic faint tail, counted and reported, not a majority of invisible labels):
#: smooth classes are limited by the background model's error (0.15 sigma), so they start near
#: 0.25-0.3 sigma; compact ones by the binned S/N or by sharp pixels.
DEFAULT_SNR_RANGE = {
    "Satellite": (0.5, 30.0),
    "Airplane": (3.0, 100.0),
    "Cosmic ray": (5.0, 200.0),
    "Column mask": (1.0, 50.0),
    "Cross-talk": (1.0, 30.0),
    "Edge-bleed": (5.0, 200.0),
    "Excessive mask": (1.0, 1.0),
    "Dark rim": (0.3, 3.0),
    "Dark halo": (0.25, 5.0),
    "Quilted sky": (0.3, 1.5),
    "Wavy sky": (0.8, 3.0),
    "Anti-bleed": (0.5, 10.0),
    "A/B jump": (0.25, 3.0),
    "Fringing": (0.25, 1.5),
    "Tape bump": (0.3, 2.0),
    "Tree rings": (0.3, 1.5),
    "Vertical jump": (0.25, 2.0),
    "Ghost": (0.3, 5.0),
    "Bright spray": (0.25, 10.0),
    "Brush strokes": (0.25, 3.0),
    "Bright arc": (0.5, 10.0),
    "Guiding": (0.15, 0.5),
    "Shutter": (0.2, 5.0),
    "Readout": (0.3, 5.0),
    "Haze": (0.1, 2.0),
    "Vertical stripes": (0.3, 2.0),
}
#: Exposure-wide classes that reach every CCD of the exposure (the rest reach some CCDs).
WHOLE_EXPOSURE_CLASSES = ("Wavy sky", "Fringing", "Haze", "Guiding", "Shutter")
SIMULATED_CLASSES = tuple(c for c in DEFAULT_CLASSES if c in EXPOSURE_CLASS_RATES or c in CCD_CLASS_WEIGHTS)


@dataclass(frozen=True)
class SimConfig:
    """``[simulate]``: the simulated archive's size, sky, instrument and artifact rates."""

    #: Exposure numbers are first_expnum, first_expnum + 1, ...
    first_expnum: int = 229000
    #: Exposures per night; NITE starts at first_nite and advances every exposures_per_night.
    exposures_per_night: int = 120
    first_nite: str = "20130901"
    reqnum: int = 2357
    attnum: int = 1
    release: str = "SIMY1"
    #: CCDNUMs simulated by default (CCD 61 is dead for most of the survey, so it has no products).
    ccds: tuple[int, ...] = tuple(c for c in range(1, 63) if c != 61)
    bands: tuple[str, ...] = ("g", "r", "i", "z", "Y")
    band_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.5)
    exptime: float = 90.0
    #: Seeing FWHM range in arcsec (drawn per exposure).
    seeing_range: tuple[float, float] = (0.75, 1.6)
    #: Sky level in e-/pixel per band for a 90 s exposure at airmass 1; scaled per exposure by
    #: a factor drawn from sky_factor_range.
    sky_per_band: tuple[float, ...] = (800.0, 1800.0, 4000.0, 7500.0, 9000.0)
    sky_factor_range: tuple[float, float] = (0.7, 2.0)
    #: Magnitude zero point (e- for the whole exposure) and source density per CCD.
    zeropoint: float = 32.0
    galaxies_per_ccd: int = 2500
    stars_per_ccd: int = 250
    bright_stars_per_ccd: float = 1.5
    cosmic_rays_per_ccd: float = 150.0
    #: Saturation level (e-), gain (e-/ADU, header only) and read noise (e-) ranges, per amplifier.
    saturation_range: tuple[float, float] = (130000.0, 170000.0)
    gain_range: tuple[float, float] = (3.6, 4.6)
    read_noise_range: tuple[float, float] = (5.0, 7.5)
    #: Masked border (EDGE bit) width in pixels.
    edge_width: int = 15
    #: Relative error of the background model (fraction of sky sigma, smooth).
    bkg_error: float = 0.15
    # --- class balance ------------------------------------------------------------------------
    #: Target share of CCDs carrying at least one artifact (the paper's training set: half).
    artifact_share: float = 0.5
    #: Mean number of extra CCD-level classes on an artifact CCD (Poisson).
    extra_classes_per_ccd: float = 0.5
    #: Probability per exposure of each exposure-wide class; missing classes take the defaults.
    exposure_rates: dict = field(default_factory=dict)
    #: Relative weight of each CCD-level class; missing classes take the defaults; 0 disables.
    class_weights: dict = field(default_factory=dict)
    #: Per-class [low, high] per-pixel S/N ranges; missing classes take the defaults.
    snr_range: dict = field(default_factory=dict)
    #: Multiplier on the A/B jump weight for CCD 31 (its non-linear amplifier).
    ccd31_ab_boost: float = 5.0
    # --- labels -------------------------------------------------------------------------------
    #: Share of CCDs some volunteer inspected (the rest carry no report at all).
    inspected_share: float = 0.8
    #: Share of inspected clean CCDs that got an explicit "OK" report.
    ok_share: float = 0.7
    #: Volunteer noise (a documented choice; DES's own volunteer statistics are not public):
    #: a volunteer misses a feature above its detectability floor (sim/detect.py) with
    #: probability miss_rate, one below the floor with probability faint_miss_rate.
    miss_rate: float = 0.05
    faint_miss_rate: float = 0.5
    #: Probability that a report carries a wrong class.
    wrong_class_rate: float = 0.03
    #: Probability per CCD that the pipeline drew a spurious STREAK mask (no streak) ...
    spurious_mask_rate: float = 0.03
    #: ... and probability that a volunteer flagged such a mask with a false_positive report.
    false_positive_rate: float = 0.7
    #: Output of FITS products: ".fz" (tile compressed as DESDM), "" or ".gz".
    compression: str = ".fz"
    #: Quantisation step of float planes, as a fraction of the plane's noise (q = 1/step: 16 as fpack).
    quantize_level: float = 16.0

    # -- derived ----------------------------------------------------------------------------
    def rate(self, cls: str) -> float:
        """The per-exposure rate of an exposure-wide class."""
        return float(self.exposure_rates.get(cls, EXPOSURE_CLASS_RATES.get(cls, 0.0)))

    def weight(self, cls: str) -> float:
        """The relative weight of a per-CCD class among the injected ones."""
        return float(self.class_weights.get(cls, CCD_CLASS_WEIGHTS.get(cls, 0.0)))

    def snr(self, cls: str) -> tuple[float, float]:
        """The (low, high) signal-to-noise range drawn for ``cls``."""
        lo, hi = self.snr_range.get(cls, DEFAULT_SNR_RANGE[cls])
        return float(lo), float(hi)

    def whole_exposure_probability(self) -> float:
        """Chance that an exposure carries an effect reaching all its CCDs (fringing: z and Y only)."""
        w = dict(zip(self.bands, self.band_weights))
        red = sum(v for b, v in w.items() if b in ("z", "Y")) / sum(w.values())
        p_none = 1.0
        for cls in WHOLE_EXPOSURE_CLASSES:
            p_none *= 1.0 - self.rate(cls) * (red if cls == "Fringing" else 1.0)
        return 1.0 - p_none

    def sky_for_band(self, band: str) -> float:
        """The mean sky level of ``band``."""
        return float(self.sky_per_band[BANDS.index(band)])


def _check(ok: bool, key: str, msg: str, source: str):
    if not ok:
        raise ConfigError(f"{source}: [simulate] {key}: {msg}")


def sim_config(cfg: PipelineConfig | dict | None, source: str = "config") -> SimConfig:
    """The validated :class:`SimConfig` of a pipeline config (``cfg.extra['simulate']``) or a dict."""
    if cfg is None:
        data = {}
    elif isinstance(cfg, dict):
        data = cfg
    else:
        data = cfg.extra.get("simulate", {})
    sc = _build(SimConfig, dict(data), "simulate", source)
    _check(sc.first_expnum >= 1 and sc.first_expnum + 10**6 < 10**8, "first_expnum", "must be in 1..99000000", source)
    _check(sc.exposures_per_night >= 1, "exposures_per_night", "must be >= 1", source)
    _check(
        len(sc.first_nite) == 8 and sc.first_nite.isdigit(), "first_nite", f"{sc.first_nite!r} is not YYYYMMDD", source
    )
    _check(sc.reqnum >= 1 and 1 <= sc.attnum <= 99, "reqnum/attnum", "reqnum >= 1 and attnum in 1..99", source)
    _check(len(sc.ccds) > 0 and all(1 <= c <= 62 for c in sc.ccds), "ccds", "CCDNUMs must be in 1..62", source)
    _check(len(set(sc.ccds)) == len(sc.ccds), "ccds", "repeated CCDNUMs", source)
    _check(
        len(sc.bands) > 0 and all(b in BANDS for b in sc.bands),
        "bands",
        f"must be a non-empty subset of {list(BANDS)}",
        source,
    )
    _check(
        len(sc.band_weights) == len(sc.bands) and all(w >= 0 for w in sc.band_weights) and sum(sc.band_weights) > 0,
        "band_weights",
        "one non-negative weight per band, not all zero",
        source,
    )
    _check(
        len(sc.sky_per_band) == len(BANDS) and all(s > 0 for s in sc.sky_per_band),
        "sky_per_band",
        f"five positive values, one per band {list(BANDS)}",
        source,
    )
    for key in ("seeing_range", "sky_factor_range", "saturation_range", "gain_range", "read_noise_range"):
        lo, hi = getattr(sc, key)
        _check(0 < lo <= hi, key, f"[{lo}, {hi}] needs 0 < low <= high", source)
    _check(sc.exptime > 0, "exptime", "must be > 0", source)
    for key in ("galaxies_per_ccd", "stars_per_ccd", "edge_width"):
        _check(getattr(sc, key) >= 0, key, "must be >= 0", source)
    for key in ("bright_stars_per_ccd", "cosmic_rays_per_ccd", "bkg_error", "extra_classes_per_ccd", "ccd31_ab_boost"):
        _check(getattr(sc, key) >= 0, key, "must be >= 0", source)
    for key in (
        "artifact_share",
        "inspected_share",
        "ok_share",
        "miss_rate",
        "faint_miss_rate",
        "wrong_class_rate",
        "spurious_mask_rate",
        "false_positive_rate",
    ):
        v = getattr(sc, key)
        _check(0.0 <= v <= 1.0, key, f"{v} must be within [0, 1]", source)
    for cls, v in sc.exposure_rates.items():
        _check(
            cls in EXPOSURE_CLASS_RATES,
            f"exposure_rates.{cls}",
            f"not an exposure-wide class; known: {sorted(EXPOSURE_CLASS_RATES)}",
            source,
        )
        _check(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
            f"exposure_rates.{cls}",
            f"{v!r} must be a probability in [0, 1]",
            source,
        )
    for cls, v in sc.class_weights.items():
        _check(
            cls in CCD_CLASS_WEIGHTS,
            f"class_weights.{cls}",
            f"not a CCD-level class; known: {sorted(CCD_CLASS_WEIGHTS)}",
            source,
        )
        _check(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
            f"class_weights.{cls}",
            f"{v!r} must be a number >= 0",
            source,
        )
    for cls, v in sc.snr_range.items():
        _check(
            cls in DEFAULT_SNR_RANGE, f"snr_range.{cls}", f"unknown class; known: {sorted(DEFAULT_SNR_RANGE)}", source
        )
        _check(
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(isinstance(x, (int, float)) for x in v)
            and 0 < v[0] <= v[1],
            f"snr_range.{cls}",
            f"{v!r} must be [low, high] with 0 < low <= high",
            source,
        )
    _check(
        sc.compression in ("", ".fz", ".gz"),
        "compression",
        f"{sc.compression!r} must be one of '', '.fz', '.gz'",
        source,
    )
    _check(sc.quantize_level > 0, "quantize_level", "must be > 0", source)
    return sc
