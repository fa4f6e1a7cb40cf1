"""Pipeline configuration: typed dataclasses with defaults, loaded from TOML, validated.

``load_config(path)`` reads ``conf/pipeline.toml`` (or any file of the same shape). Unknown
sections or keys and values of the wrong type or range raise :class:`ConfigError` naming the
key, so that a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .io.des import MASK_BITS

#: Bump when the feature computation changes in a way that must invalidate stored rows.
#: 2: sharpness channels max_sn / spread_sn and the scalar noise_sigma added to every row.
#: 3: the Laplacian sharpness channel sharp_sn.
FEATURE_VERSION = 3

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "conf" / "pipeline.toml"

#: The exposure checker's menu (des-data.md), in its grouping order. Index = class id.
DEFAULT_CLASSES = [
    "Column mask",
    "Cosmic ray",
    "Cross-talk",
    "Edge-bleed",
    "Excessive mask",
    "Dark rim",
    "Dark halo",
    "Quilted sky",
    "Wavy sky",
    "Anti-bleed",
    "A/B jump",
    "Fringing",
    "Tape bump",
    "Tree rings",
    "Vertical jump",
    "Ghost",
    "Bright spray",
    "Brush strokes",
    "Bright arc",
    "Satellite",
    "Airplane",
    "Guiding",
    "Shutter",
    "Readout",
    "Haze",
    "Vertical stripes",
]


@dataclass(frozen=True)
class InputConfig:
    """``[input]``: which files are inputs, and the CCD shape they must have."""

    #: fnmatch patterns on the file's base name.
    image_patterns: tuple[str, ...] = ("*_immasked.fits", "*_immasked.fits.fz", "*_immasked.fits.gz")
    bkg_patterns: tuple[str, ...] = ("*_bkg.fits", "*_bkg.fits.fz", "*_bkg.fits.gz")
    #: Expected (rows, cols) of every CCD image; other shapes are quarantined (bad_shape).
    #: DECam: 4096 x 2048. Tests use smaller CCDs to run fast.
    ccd_shape: tuple[int, int] = (4096, 2048)


@dataclass(frozen=True)
class MaskConfig:
    """``[mask]``: which pixels are left out of the bins."""

    #: MSK bits whose pixels are left out of the bin means (names from des.MASK_BITS).
    bits: tuple[str, ...] = (
        "BPM",
        "SATURATE",
        "BADAMP",
        "CRAY",
        "STAR",
        "TRAIL",
        "EDGEBLEED",
        "SSXTALK",
        "EDGE",
        "STREAK",
    )
    #: Pixels with WGT <= 0 carry no information: treat them as masked too.
    zero_weight: bool = True

    @property
    def bitmask(self) -> int:
        """The ``bits`` as one integer mask (OR of their DESDM values)."""
        v = 0
        for b in self.bits:
            v |= MASK_BITS[b]
        return v


@dataclass(frozen=True)
class BackgroundConfig:
    """``[background]``: the sky to subtract, and what to do without a background file."""

    #: What to do when a CCD has no *_bkg file: "estimate" (sep, SExtractor-style) or "quarantine".
    missing: str = "estimate"
    #: Is the SCI image already sky-subtracted? "auto" looks for the SKYSUB header key.
    already_subtracted: str = "auto"
    #: sep.Background box and filter sizes used when estimating.
    estimate_box: int = 256
    estimate_filter: int = 3


@dataclass(frozen=True)
class DownsampleConfig:
    """``[downsample]``: the block-mean factor and the edge rule."""

    #: Block-mean factor: 8 turns 4096x2048 into 512x256.
    factor: int = 8
    #: Shapes the factor does not divide: "crop" drops the trailing rows/columns,
    #: "pad" keeps them in partial edge bins (the padding counts as masked).
    edge: str = "crop"


@dataclass(frozen=True)
class StretchConfig:
    """``[stretch]``: the arcsinh stretch of the binned image."""

    #: y = arcsinh(((I - m) / (M - m)) / softening); softening = 1 is the paper's transform.
    softening: float = 1.0
    #: m and M are these percentiles of the valid bins; (0, 100) = min and max, as in the paper.
    percentiles: tuple[float, float] = (0.0, 100.0)


@dataclass(frozen=True)
class StoreConfig:
    """``[store]``: how the feature store is written."""

    #: dtype of the image channels in the store ("float16" halves the size; see README).
    image_dtype: str = "float16"
    #: Parquet row-group size for the petastorm dataset, in MB.
    rowgroup_size_mb: int = 32
    #: Hive partition columns of the feature and predictions tables.
    partition_by: tuple[str, ...] = ("band", "nite")
    #: CCDs per Spark task when processing (small = better balance, large = less overhead).
    ccds_per_task: int = 4
    #: Read and process each input in a forked child of the Python worker, so that a file that
    #: crashes the reader (segfault, abort, OOM kill) is quarantined as worker_crash instead of
    #: failing its task and the job (artifactspark/features/isolation.py).
    isolate_inputs: bool = True
    #: Address-space headroom of that child in MB (RLIMIT_AS above the worker's size at fork);
    #: 0 = no limit. A full-size CCD needs ~1 GB.
    unit_memory_mb: int = 0
    #: Store versions kept (the current one included); older ones are removed by the vacuum
    #: step after each commit and by jobs/vacuum.py (see README "Reliability").
    keep_versions: int = 5


@dataclass(frozen=True)
class LabelConfig:
    """``[labels]``: how exposure-checker reports become labels."""

    #: Which FITS axis the checker's x runs along ("naxis2" = the 4096-pixel axis, see des-data.md).
    x_axis: str = "naxis2"
    flip_x: bool = False
    flip_y: bool = False
    #: Rule for the one primary class of a CCD with several: "most_reports" (ties by taxonomy
    #: order), "priority" (first in taxonomy order), "first_report" (lowest qa_id).
    primary_rule: str = "most_reports"
    ok_names: tuple[str, ...] = ("OK",)
    not_artifact_names: tuple[str, ...] = ("Other...", "Awesome!")
    #: Largest label export read, in MB: a bigger file stops the job (exit 2) before it is
    #: loaded into the driver's memory (a JSON list takes ~5-10x its size as Python objects).
    max_export_mb: int = 256


@dataclass(frozen=True)
class TaxonomyConfig:
    """``[taxonomy]``: the artifact classes (index = class id) and their other spellings."""

    classes: tuple[str, ...] = tuple(DEFAULT_CLASSES)
    #: Other spellings seen in exports -> canonical class name.
    aliases: dict = field(
        default_factory=lambda: {
            "Cosmic Ray": "Cosmic ray",
            "Crosstalk": "Cross-talk",
            "Edge bleed": "Edge-bleed",
            "AB jump": "A/B jump",
            "A-B jump": "A/B jump",
            "Tree Rings": "Tree rings",
        }
    )


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline config: one frozen dataclass per section; other known sections in ``extra``."""

    input: InputConfig = field(default_factory=InputConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    downsample: DownsampleConfig = field(default_factory=DownsampleConfig)
    stretch: StretchConfig = field(default_factory=StretchConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    taxonomy: TaxonomyConfig = field(default_factory=TaxonomyConfig)
    #: Free-form sections owned by other jobs (simulate, train, ...), validated by them.
    extra: dict = field(default_factory=dict)

    # -- derived -----------------------------------------------------------------------------
    def as_dict(self) -> dict:
        """Everything but ``extra``, in the shape :func:`config_from_dict` reads back."""
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d

    def feature_dict(self) -> dict:
        """The parts of the configuration that determine a feature row's pixels and labels."""
        d = dataclasses.asdict(self)
        d.pop("extra")
        d["store"] = {"image_dtype": self.store.image_dtype}  # layout knobs do not change rows
        d["labels"].pop("max_export_mb")  # a guard on reading, not a labelling rule
        d["feature_version"] = FEATURE_VERSION
        return d

    @property
    def config_hash(self) -> str:
        """A 16-hex-digit hash of everything that changes the stored features (:meth:`feature_dict`)."""
        blob = json.dumps(self.feature_dict(), sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def binned_shape(self, shape: tuple[int, int] | None = None) -> tuple[int, int]:
        """(rows, cols) of the binned planes for ``shape`` (default: the configured CCD shape)."""
        shape = shape or self.input.ccd_shape
        f = self.downsample.factor
        if self.downsample.edge == "crop":
            return shape[0] // f, shape[1] // f
        return -(-shape[0] // f), -(-shape[1] // f)


_CHOICES = {
    ("background", "missing"): {"estimate", "quarantine"},
    ("background", "already_subtracted"): {"auto", "yes", "no"},
    ("downsample", "edge"): {"crop", "pad"},
    ("store", "image_dtype"): {"float16", "float32"},
    ("labels", "x_axis"): {"naxis1", "naxis2"},
    ("labels", "primary_rule"): {"most_reports", "priority", "first_report"},
}


def _coerce(value, typ, where: str):
    origin = typing.get_origin(typ)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r}: must be true or false")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r}: must be an integer")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r}: must be a number")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r}: must be a string")
        return value
    if typ is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be a table")
        return dict(value)
    if origin is tuple:
        args = typing.get_args(typ)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r}: must be a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} = {value!r}: must be a list of {len(args)} values")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    raise TypeError(f"unsupported config type {typ} at {where}")  # programming error


def _build(cls, data: dict, section: str, source: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in [{section}]; known keys: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{source}: [{section}] {k}") for k, v in data.items()}
    return cls(**kwargs)


def _validate(cfg: PipelineConfig, source: str) -> None:
    for (sec, key), allowed in _CHOICES.items():
        v = getattr(getattr(cfg, sec), key)
        if v not in allowed:
            raise ConfigError(f"{source}: [{sec}] {key} = {v!r}: must be one of {sorted(allowed)}")
    bad_bits = [b for b in cfg.mask.bits if b not in MASK_BITS]
    if bad_bits:
        raise ConfigError(f"{source}: [mask] bits: unknown bit name(s) {bad_bits}; known: {list(MASK_BITS)}")
    if cfg.downsample.factor < 1:
        raise ConfigError(f"{source}: [downsample] factor = {cfg.downsample.factor}: must be >= 1")
    if not cfg.stretch.softening > 0:
        raise ConfigError(f"{source}: [stretch] softening = {cfg.stretch.softening}: must be > 0")
    lo, hi = cfg.stretch.percentiles
    if not 0 <= lo < hi <= 100:
        raise ConfigError(f"{source}: [stretch] percentiles = {[lo, hi]}: need 0 <= low < high <= 100")
    if cfg.store.rowgroup_size_mb < 1:
        raise ConfigError(f"{source}: [store] rowgroup_size_mb must be >= 1")
    if cfg.store.ccds_per_task < 1:
        raise ConfigError(f"{source}: [store] ccds_per_task must be >= 1")
    if cfg.store.unit_memory_mb < 0 or cfg.labels.max_export_mb < 1:
        raise ConfigError(f"{source}: [store] unit_memory_mb must be >= 0 and [labels] max_export_mb >= 1")
    if cfg.store.keep_versions < 1:
        raise ConfigError(f"{source}: [store] keep_versions must be >= 1 (the current version is always kept)")
    if min(cfg.input.ccd_shape) < cfg.downsample.factor:
        raise ConfigError(f"{source}: [input] ccd_shape {list(cfg.input.ccd_shape)} is smaller than one bin")
    if not cfg.store.partition_by or not cfg.input.image_patterns:
        raise ConfigError(f"{source}: [store] partition_by and [input] image_patterns must not be empty")
    bad_part = [p for p in cfg.store.partition_by if p not in ("band", "nite")]
    if bad_part:
        raise ConfigError(f"{source}: [store] partition_by: {bad_part} not supported (use band, nite)")
    if cfg.background.estimate_box < 8 or cfg.background.estimate_filter < 1:
        raise ConfigError(f"{source}: [background] estimate_box must be >= 8 and estimate_filter >= 1")
    classes = cfg.taxonomy.classes
    if len(set(classes)) != len(classes) or not classes:
        raise ConfigError(f"{source}: [taxonomy] classes must be a non-empty list without repeats")
    reserved = set(cfg.labels.ok_names) | set(cfg.labels.not_artifact_names)
    clash = sorted(reserved & set(classes))
    if clash:
        raise ConfigError(f"{source}: [taxonomy] classes {clash} are also in [labels] ok_names/not_artifact_names")
    bad_alias = {a: c for a, c in cfg.taxonomy.aliases.items() if c not in classes}
    if bad_alias:
        raise ConfigError(f"{source}: [taxonomy.aliases] point to unknown classes: {bad_alias}")


_SECTIONS = {f.name: f.type for f in dataclasses.fields(PipelineConfig) if f.name != "extra"}
#: Sections other jobs own; kept as plain dicts in ``PipelineConfig.extra``.
EXTRA_SECTIONS = {"simulate", "train", "infer", "report"}


def config_from_dict(data: dict, source: str = "<dict>") -> PipelineConfig:
    """A validated :class:`PipelineConfig` from a TOML-shaped dict; ``source`` names it in errors."""
    hints = typing.get_type_hints(PipelineConfig)
    kwargs, extra = {}, {}
    for sec, body in data.items():
        if sec in EXTRA_SECTIONS:
            if not isinstance(body, dict):
                raise ConfigError(f"{source}: [{sec}] must be a table")
            extra[sec] = dict(body)
            continue
        if sec not in _SECTIONS:
            raise ConfigError(f"{source}: unknown section [{sec}]; known: {sorted(set(_SECTIONS) | EXTRA_SECTIONS)}")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{sec}] must be a table")
        kwargs[sec] = _build(hints[sec], body, sec, source)
    cfg = PipelineConfig(**kwargs, extra=extra)
    _validate(cfg, source)
    return cfg


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Load and validate a pipeline config; ``None`` means the shipped ``conf/pipeline.toml``
    (or the built-in defaults when the package is used without its conf/ folder)."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return PipelineConfig()
        path = DEFAULT_CONFIG_PATH
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"config file {str(p)!r} does not exist (pass --config with a TOML file like conf/pipeline.toml)"
        )
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    return config_from_dict(data, str(p))
