"""Exposure-checker labels: load API exports, map names through the taxonomy, aggregate per CCD.

A report is one volunteer click: ``{"qa_id", "expname", "ccd", "band", "problem", "x", "y",
"detail", "false_positive", "release"}`` (des-data.md). Per CCD we derive:

- ``inspected``: somebody looked at it (any report, "OK" included);
- ``label``: 1 = artifact, 0 = inspected and clean, -1 = no usable label (never inspected,
  or inspected with only reports whose class is unknown to the taxonomy);
- ``multi_hot``: one entry per taxonomy class (reports with ``false_positive`` excluded);
- ``primary_class``: one class index for the many-class problem, by a configurable rule
  (the paper drew one at random; we are deterministic), -1 when there is none;
- ``has_false_positive``: at least one ``false_positive`` report (kept apart, never a positive);
- the report positions in full-resolution array coordinates (row, col) and binned ones.

Checker (x, y) <-> numpy (row, col) goes through :func:`report_to_pixel` /
:func:`pixel_to_report` only, so that the loader and every label writer agree.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
from dataclasses import dataclass, field

from ..config import LabelConfig, PipelineConfig
from ..errors import LabelError
from ..io.des import CCD_SHAPE, expname_to_expnum, expnum_to_expname

REQUIRED_KEYS = ("expname", "ccd", "problem")


def report_to_pixel(x: float, y: float, lc: LabelConfig, shape=CCD_SHAPE) -> tuple[int, int]:
    """Checker (x, y) -> numpy (row, col) of the full-resolution CCD array."""
    nrow, ncol = shape
    if lc.x_axis == "naxis2":  # x along the 4096-pixel axis (rows), y along columns
        row, col, nx, ny = int(x), int(y), nrow, ncol
        if lc.flip_x:
            row = nx - 1 - row
        if lc.flip_y:
            col = ny - 1 - col
    else:
        col, row, nx, ny = int(x), int(y), ncol, nrow
        if lc.flip_x:
            col = nx - 1 - col
        if lc.flip_y:
            row = ny - 1 - row
    return row, col


def pixel_to_report(row: int, col: int, lc: LabelConfig, shape=CCD_SHAPE) -> tuple[int, int]:
    """numpy (row, col) -> checker (x, y); the inverse of :func:`report_to_pixel`."""
    nrow, ncol = shape
    if lc.x_axis == "naxis2":
        x = nrow - 1 - row if lc.flip_x else row
        y = ncol - 1 - col if lc.flip_y else col
    else:
        x = ncol - 1 - col if lc.flip_x else col
        y = nrow - 1 - row if lc.flip_y else row
    return int(x), int(y)


def make_report(
    qa_id: int,
    expnum: int,
    ccd: int,
    band: str,
    problem: str,
    x=None,
    y=None,
    false_positive: bool = False,
    detail=None,
    release: str = "SIM",
) -> dict:
    """A report record in the checker's export format (used by writers of labels)."""
    return {
        "qa_id": int(qa_id),
        "expname": expnum_to_expname(expnum),
        "ccd": int(ccd),
        "band": band,
        "problem": problem,
        "x": None if x is None else int(x),
        "y": None if y is None else int(y),
        "detail": detail,
        "false_positive": bool(false_positive),
        "release": release,
    }


def write_reports(reports: list[dict], path: str) -> None:
    """Write checker-format report records as a JSON list (the simulator's export)."""
    with open(path, "w") as f:
        json.dump(reports, f, indent=0)


@dataclass
class CCDLabel:
    """The labels of one CCD, aggregated from its reports (what the store keeps per CCD)."""

    expnum: int
    ccdnum: int
    band: str | None = None
    inspected: bool = True
    label: int = 0
    multi_hot: list = field(default_factory=list)
    primary_class: int = -1
    has_false_positive: bool = False
    n_reports: int = 0
    report_class: list = field(default_factory=list)  # class index; -1 for non-artifact reports
    report_fp: list = field(default_factory=list)
    report_x: list = field(default_factory=list)  # checker coordinates, as exported
    report_y: list = field(default_factory=list)
    report_row: list = field(default_factory=list)  # numpy row/col at full resolution
    report_col: list = field(default_factory=list)
    report_brow: list = field(default_factory=list)  # the same in binned (downsampled) pixels
    report_bcol: list = field(default_factory=list)

    def digest(self) -> str:
        """A hash of every field: a change of a CCD's labels changes its manifest fingerprint."""
        blob = json.dumps(self.__dict__, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class LabelSet:
    """The labels of every reported CCD, with counts of what could not be used."""

    by_ccd: dict  # (expnum, ccdnum) -> CCDLabel
    n_records: int = 0
    unknown_classes: dict = field(default_factory=dict)  # name -> count
    rejected: dict = field(default_factory=dict)  # reason -> count
    counts: dict = field(default_factory=dict)  # class -> number of (non-FP) reports

    def summary(self) -> dict:
        """Counts for the job summary: records, CCDs, unknown class names, rejected records."""
        return {
            "records": self.n_records,
            "ccds": len(self.by_ccd),
            "unknown_classes": dict(self.unknown_classes),
            "rejected_records": dict(self.rejected),
        }


#: Default of ``[labels] max_export_mb``: the largest export read into the driver's memory.
DEFAULT_MAX_EXPORT_MB = 256


def _size(uri: str) -> int | None:
    """The size of a local or remote file in bytes; None if it does not exist."""
    from ..io.desfits import is_local, local_path

    if is_local(uri):
        try:
            return os.stat(local_path(uri)).st_size
        except FileNotFoundError:
            return None
    import pyarrow.fs as pafs

    norm = uri.replace("s3a://", "s3://", 1).replace("s3n://", "s3://", 1)
    fs, path = pafs.FileSystem.from_uri(norm)
    info = fs.get_file_info(path)
    return None if info.type == pafs.FileType.NotFound else info.size


def _read_json(uri: str, max_mb: int = DEFAULT_MAX_EXPORT_MB):
    from ..io.desfits import local_copy

    size = _size(uri)
    if size is None:
        raise LabelError(f"label file {uri!r} does not exist")
    if size > max_mb * 1024 * 1024:
        raise LabelError(
            f"label file {uri!r} is {size / 2**20:.0f} MB, over the [labels] max_export_mb = {max_mb} MB limit "
            "on what is read into memory: split the export, or raise the limit in the config"
        )
    try:
        with local_copy(uri) as p, open(p, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise LabelError(f"label file {uri!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LabelError(f"label file {uri!r} is not valid JSON: {first}") from None
    except RecursionError:
        raise LabelError(f"label file {uri!r} is nested too deeply to be an exposure-checker export") from None


def read_records(uris, max_mb: int = DEFAULT_MAX_EXPORT_MB, counts: dict | None = None) -> list:
    """The report records of one or more exports, concatenated; records repeated verbatim (the
    same ``qa_id`` with the same content, e.g. overlapping exports) are kept once.

    Raises :class:`LabelError` (exit 2) for a file that is missing, over ``max_mb``, not JSON, not
    a list of records, or whose records all lack the keys of a report, and for one ``qa_id`` with
    two different contents (which one is right cannot be told; the message names both files).
    ``counts`` (a dict), if given, gets ``duplicate_record``: the repeated records left out.
    """
    records, seen = [], {}
    for uri in [uris] if isinstance(uris, str) else list(uris):
        data = _read_json(uri, max_mb)
        if isinstance(data, dict) and "results" in data:  # some API wrappers nest the list
            data = data["results"]
        if not isinstance(data, list):
            raise LabelError(
                f"label file {uri!r}: expected a JSON list of report records, found a JSON {_json_type(data)}"
            )
        if data and not any(isinstance(r, dict) and all(k in r for k in REQUIRED_KEYS) for r in data):
            raise LabelError(
                f"label file {uri!r}: none of its {len(data)} records has the keys {list(REQUIRED_KEYS)} "
                "of an exposure-checker report"
            )
        for rec in data:
            qa = rec.get("qa_id") if isinstance(rec, dict) else None
            if qa is not None and not isinstance(qa, (dict, list)):
                key = json.dumps(qa)
                text = json.dumps(rec, sort_keys=True, default=str)
                if key in seen:
                    if seen[key][0] != text:
                        raise LabelError(
                            f"qa_id {qa} appears twice with different content ({seen[key][1]!r} and {uri!r}): "
                            "fix the export (or pass only one of the exports that disagree)"
                        )
                    if counts is not None:  # the same report twice: kept once
                        counts["duplicate_record"] = counts.get("duplicate_record", 0) + 1
                    continue
                seen[key] = (text, uri)
            records.append(rec)
    return records


def _json_type(v) -> str:
    return {dict: "object", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(v), "null")


def load_labels(uris, cfg: PipelineConfig) -> LabelSet:
    """Load one or more exposure-checker exports into per-CCD labels.

    Bad records (missing keys, unparsable expname or CCD) are counted in ``rejected``; bad or
    off-CCD positions are counted there too but the report keeps its class; names outside the
    taxonomy are counted in ``unknown_classes``; nothing is dropped silently.
    """
    return aggregate_reports(read_records(uris, cfg.labels.max_export_mb), cfg)


def aggregate_reports(records: list, cfg: PipelineConfig) -> LabelSet:
    """Checker report records -> per-CCD labels (see README, 'The preprocess job', step 7)."""
    tax, lc = cfg.taxonomy, cfg.labels
    index = {c: i for i, c in enumerate(tax.classes)}
    aliases = dict(tax.aliases)
    ok, not_art = set(lc.ok_names), set(lc.not_artifact_names)
    f = cfg.downsample.factor
    shape = tuple(cfg.input.ccd_shape)
    bh, bw = cfg.binned_shape()
    unknown, rejected, counts = collections.Counter(), collections.Counter(), collections.Counter()
    groups: dict = collections.defaultdict(list)
    for rec in records:
        if not isinstance(rec, dict) or any(k not in rec for k in REQUIRED_KEYS):
            rejected["missing_keys"] += 1
            continue
        try:
            expnum = expname_to_expnum(rec["expname"])
            ccd = int(rec["ccd"])
        except (ValueError, TypeError):
            rejected["bad_expname_or_ccd"] += 1
            continue
        if not 1 <= ccd <= 62:
            rejected["bad_expname_or_ccd"] += 1
            continue
        groups[(expnum, ccd)].append(rec)

    by_ccd = {}
    for (expnum, ccd), recs in groups.items():
        recs.sort(key=lambda r: (r.get("qa_id") is None, r.get("qa_id") or 0))
        lab = CCDLabel(expnum=expnum, ccdnum=ccd, band=recs[0].get("band"), multi_hot=[0] * len(tax.classes))
        per_class = collections.Counter()
        first_seen = {}
        unusable = 0
        for rec in recs:
            name = str(rec["problem"]).strip()
            name = aliases.get(name, name)
            if name in ok:
                continue  # an inspected-and-clean click; no position
            fp = bool(rec.get("false_positive") or False)
            if name in index:
                cls = index[name]
            elif name in not_art:
                cls = -1
            else:
                unknown[name] += 1
                unusable += 1
                continue
            # A bad or off-CCD position loses the position, never the class (row = col = -1).
            x, y = _coord(rec.get("x")), _coord(rec.get("y"))
            row = col = -1
            if x is None or y is None:
                if rec.get("x") is not None or rec.get("y") is not None:
                    rejected["bad_position"] += 1
            else:
                r, c = report_to_pixel(x, y, lc, shape)
                if 0 <= r < shape[0] and 0 <= c < shape[1]:
                    row, col = r, c
                else:
                    rejected["position_off_ccd"] += 1
            lab.report_class.append(cls)
            lab.report_fp.append(fp)
            lab.report_x.append(-1 if x is None else int(x))
            lab.report_y.append(-1 if y is None else int(y))
            lab.report_row.append(row)
            lab.report_col.append(col)
            lab.report_brow.append(row // f if 0 <= row and row // f < bh else -1)
            lab.report_bcol.append(col // f if 0 <= col and col // f < bw else -1)
            if fp:
                lab.has_false_positive = True
            elif cls >= 0:
                lab.multi_hot[cls] = 1
                per_class[cls] += 1
                counts[tax.classes[cls]] += 1
                first_seen.setdefault(cls, len(first_seen))
        lab.n_reports = len(lab.report_class)
        # Only unusable reports (unknown class names) and no artifact: we cannot call it clean.
        lab.label = 1 if per_class else (-1 if unusable else 0)
        if per_class:
            lab.primary_class = _primary(per_class, first_seen, lc.primary_rule)
        by_ccd[(expnum, ccd)] = lab
    return LabelSet(
        by_ccd=by_ccd,
        n_records=len(records),
        unknown_classes=dict(unknown),
        rejected=dict(rejected),
        counts=dict(counts),
    )


def _coord(v) -> float | None:
    """A checker coordinate as a finite float, or None when absent or unusable."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _primary(per_class: collections.Counter, first_seen: dict, rule: str) -> int:
    if rule == "priority":
        return min(per_class)
    if rule == "first_report":
        return min(per_class, key=lambda c: first_seen[c])
    # most_reports: most clicks wins, ties go to the class earlier in the taxonomy
    return min(per_class, key=lambda c: (-per_class[c], c))


def unlabelled(expnum: int, ccdnum: int, n_classes: int) -> CCDLabel:
    """The label of a CCD no volunteer inspected (``label`` -1, all classes 0)."""
    return CCDLabel(expnum=expnum, ccdnum=ccdnum, inspected=False, label=-1, multi_hot=[0] * n_classes)
