"""One input CCD -> its feature row: read, checked against its name, background-subtracted,
masked, binned and stretched (:mod:`artifactspark.features.image`), labelled. Runs on the
executors; what the single-process baseline benchmark calls."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np

from ..config import PipelineConfig
from ..errors import InputRejected
from ..io.des import parse_name
from ..io.desfits import read_ccd
from .image import preprocess_planes
from .labels import CCDLabel, unlabelled
from .store import HEADER_COLUMNS

log = logging.getLogger(__name__)


def _nite_from_header(hdr: dict) -> int:
    nite = hdr.get("NITE")
    if nite not in (None, ""):
        try:
            return int(str(nite).strip())
        except ValueError:
            raise InputRejected("bad_header", f"NITE = {nite!r} is not YYYYMMDD") from None
    date_obs = hdr.get("DATE-OBS")
    if date_obs:
        try:  # DES nights are named by the local (Chile) evening date: UTC minus ~14 h lands on it
            t = dt.datetime.fromisoformat(str(date_obs).strip().rstrip("Z"))
            return int((t - dt.timedelta(hours=14)).strftime("%Y%m%d"))
        except ValueError:
            pass
    raise InputRejected("missing_header", "neither NITE nor a parsable DATE-OBS in the header")


def _header_value(hdr: dict, key: str, typ):
    v = hdr.get(key)
    if v is None or v == "":
        return None
    try:
        return typ(v)
    except (TypeError, ValueError):
        return None


def compute_features(unit: dict, cfg: PipelineConfig, label: CCDLabel | None) -> dict:
    """Read one CCD and return its feature row as a dict of Python / numpy values.

    Raises InputRejected for anything that must be quarantined.
    """
    from ..io.des import HEADER_KEYS

    name = parse_name(unit["path"])
    ccd = read_ccd(unit["path"], unit.get("bkg_path"), read_wgt=True)
    if ccd.sci.shape != tuple(cfg.input.ccd_shape):
        raise InputRejected(
            "bad_shape", f"image shape {ccd.sci.shape} is not the configured CCD shape {tuple(cfg.input.ccd_shape)}"
        )
    hdr = ccd.header
    for key, expect in (("EXPNUM", name.expnum), ("CCDNUM", name.ccdnum)):
        if key in hdr and _header_value(hdr, key, int) != expect:
            raise InputRejected("header_mismatch", f"header {key} = {hdr[key]!r} but the file name says {expect}")
    if hdr.get("BAND") not in (None, "") and str(hdr["BAND"]).strip() != name.band:
        raise InputRejected("header_mismatch", f"header BAND = {hdr['BAND']!r} but the file name says {name.band!r}")
    nite = _nite_from_header(hdr)
    mode = cfg.background.already_subtracted
    presub = mode == "yes" or (mode == "auto" and "SKYSUB" in hdr)
    planes = preprocess_planes(ccd.sci, ccd.msk, ccd.bkg, ccd.wgt, cfg, bkg_already_subtracted=presub)
    dtype = np.float16 if cfg.store.image_dtype == "float16" else np.float32
    lab = label or unlabelled(name.expnum, name.ccdnum, len(cfg.taxonomy.classes))
    row = {
        "expnum": np.int64(name.expnum),
        "ccdnum": np.int16(name.ccdnum),
        "band": name.band,
        "nite": np.int32(nite),
        "reqnum": np.int32(name.reqnum),
        "attnum": np.int32(name.attnum),
        "image": planes["image"].astype(dtype),
        "mask_frac": planes["mask_frac"].astype(dtype),
        "max_sn": planes["max_sn"].astype(dtype),
        "spread_sn": planes["spread_sn"].astype(dtype),
        "sharp_sn": planes["sharp_sn"].astype(dtype),
        "noise_sigma": np.float32(planes["noise_sigma"]),
        "stretch_min": np.float32(planes["stretch_min"]),
        "stretch_max": np.float32(planes["stretch_max"]),
        "masked_fraction": np.float32(planes["masked_fraction"]),
        "bkg_source": planes["bkg_source"],
        "path": unit["path"],
        "bkg_path": unit.get("bkg_path"),
        "config_hash": cfg.config_hash,
        "inspected": bool(lab.inspected),
        "label": np.int8(lab.label),
        "multi_hot": np.asarray(lab.multi_hot, np.int8),
        "primary_class": np.int16(lab.primary_class),
        "has_false_positive": bool(lab.has_false_positive),
        "n_reports": np.int16(lab.n_reports),
    }
    for col, t in (
        ("report_class", np.int16),
        ("report_fp", np.bool_),
        ("report_x", np.int32),
        ("report_y", np.int32),
        ("report_row", np.int32),
        ("report_col", np.int32),
        ("report_brow", np.int32),
        ("report_bcol", np.int32),
    ):
        row[col] = np.asarray(getattr(lab, col), dtype=t)
    for key, (col, typ) in HEADER_KEYS.items():
        if col in HEADER_COLUMNS:
            v = _header_value(hdr, key, typ)
            row[col] = None if v is None else (HEADER_COLUMNS[col](v) if HEADER_COLUMNS[col] is not np.str_ else str(v))
    if row["detpos"] is None:
        from ..io.des import detpos_for_ccdnum

        row["detpos"] = detpos_for_ccdnum(name.ccdnum) if 1 <= name.ccdnum <= 62 else None
    return row


def process_unit(unit: dict, cfg: PipelineConfig, label: CCDLabel | None):
    """One input -> ``(row_or_None, status, reason, detail)``; never raises for bad input."""
    if unit.get("static_reason"):
        return None, "quarantined", unit["static_reason"], unit.get("static_detail") or ""
    try:
        return compute_features(unit, cfg, label), "stored", None, None
    except InputRejected as e:
        return None, "quarantined", e.reason, e.detail
    except MemoryError:
        raise
    except Exception as e:  # a reader bug must not kill a full-archive run: quarantine, loudly
        log.exception("unexpected error on %s", unit.get("path"))
        return None, "quarantined", "unexpected_error", f"{type(e).__name__}: {e}"[:2000]
