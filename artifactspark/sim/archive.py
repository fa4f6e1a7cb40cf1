"""One CCD end to end (draw, inject, label, write) and the Spark job over (exposure, CCD) items.

Layout under the output ROOT (des-data.md):
  ROOT/<NITE>/D<EXPNUM>/p<att>/red/immask/D<EXPNUM>_<band>_c<CCD>_r<reqnum>p<att>_immasked.fits.fz
  ROOT/<NITE>/D<EXPNUM>/p<att>/red/bkg/D<EXPNUM>_<band>_c<CCD>_r<reqnum>p<att>_bkg.fits.fz
  ROOT/labels/checker_export.json   exposure-checker export (one record per report)
  ROOT/labels/truth.parquet         every injected feature (and truth.csv, the same as text)
  ROOT/labels/ccds.parquet          one row per simulated CCD (band, inspected, classes, files)
"""

from __future__ import annotations

import json
import logging
import math
import os
import time

import numpy as np

from ..config import MaskConfig
from ..features.labels import make_report, pixel_to_report
from ..io.des import AMP_SPLIT_COLUMN, MASK_BITS, DESName, archive_relpath, detpos_for_ccdnum
from ..progress import Progress
from . import focalplane
from .artifacts import inject
from .config import CCD_CLASS_WEIGHTS, SimConfig, sim_config
from .detect import Recorder
from .exposure import exposure_plan, loguniform, rng_for
from .sky import add_cosmic_rays, bad_columns, base_canvas, finish

log = logging.getLogger(__name__)

FILTERS = {
    "g": "g DECam SDSS c0001 4720.0 1520.0",
    "r": "r DECam SDSS c0002 6415.0 1480.0",
    "i": "i DECam SDSS c0003 7835.0 1470.0",
    "z": "z DECam SDSS c0004 9260.0 1520.0",
    "Y": "Y DECam c0005 10095.0 1130.0",
}


def draw_amps(sc: SimConfig, rng) -> dict:
    """Gain, read noise and saturation of the two amplifiers, as header keys."""
    out = {}
    for a in ("A", "B"):
        out[f"GAIN{a}"] = round(float(rng.uniform(*sc.gain_range)), 4)
        out[f"RDNOISE{a}"] = round(float(rng.uniform(*sc.read_noise_range)), 3)
        out[f"SATURAT{a}"] = round(float(rng.uniform(*sc.saturation_range)), 1)
    return out


def choose_ccd_classes(sc: SimConfig, plan, ccdnum: int, rng) -> list[str]:
    """CCD-level classes of one CCD (empty for a clean one)."""
    if rng.random() >= plan.ccd_artifact_prob:
        return []
    names = list(CCD_CLASS_WEIGHTS)
    w = np.array([sc.weight(c) for c in names], float)
    if ccdnum == 31:
        w[names.index("A/B jump")] *= sc.ccd31_ab_boost
    if plan.band == "z":
        w[names.index("Tree rings")] *= 2.0
    if w.sum() <= 0:
        return []
    k = min(1 + int(rng.poisson(sc.extra_classes_per_ccd)), int((w > 0).sum()))
    return [names[i] for i in rng.choice(len(names), size=k, replace=False, p=w / w.sum())]


def header_for(plan, ccdnum: int, amps: dict, shape, sky_sigma: float, sc: SimConfig) -> dict:
    """The FITS header keys of one simulated CCD."""
    h, w = shape
    s = w // 2 if w != 2 * AMP_SPLIT_COLUMN else AMP_SPLIT_COLUMN
    return {
        "EXPNUM": plan.expnum,
        "CCDNUM": ccdnum,
        "DETPOS": detpos_for_ccdnum(ccdnum),
        "BAND": plan.band,
        "FILTER": FILTERS[plan.band],
        "NITE": plan.nite,
        "DATE-OBS": plan.date_obs,
        "MJD-OBS": plan.mjd,
        "EXPTIME": plan.exptime,
        "AIRMASS": plan.airmass,
        "FWHM": round(plan.fwhm_pix, 3),
        "SKYBRITE": round(plan.sky, 2),
        "SKYSIGMA": round(sky_sigma, 3),
        **amps,
        "OBJECT": plan.object,
        "CCDSECA": f"[{s + 1}:{w},1:{h}]",
        "CCDSECB": f"[1:{s},1:{h}]",
        "REQNUM": sc.reqnum,
        "ATTNUM": sc.attnum,
        "ORIGIN": "artifactspark.sim",
    }


def simulate_ccd(
    sc: SimConfig,
    seed: int,
    index: int,
    ccdnum: int,
    shape,
    ccds,
    root: str | None,
    label_cfg,
    classes: tuple,
    write: bool = True,
) -> dict:
    """Build (and write) one CCD; return its truth rows, reports and summary row.

    Deterministic in (sc, seed, index, ccdnum, shape, ccds)."""
    shape = tuple(shape)
    plan = exposure_plan(sc, seed, index, shape, tuple(ccds))
    rng_amp = rng_for(seed, index, ccdnum, 3)
    amps = draw_amps(sc, rng_amp)
    rng = rng_for(seed, index, ccdnum, 1)
    feats = [f for f in plan.features if ccdnum in plan.touched.get(f["fid"], ())]
    guiding = next((f for f in feats if f["cls"] == "Guiding"), None)
    cv = base_canvas(plan, sc, ccdnum, shape, rng, focalplane.layout(shape)[ccdnum], amps, guiding, seed)
    bad_columns(cv, ccdnum, seed)
    area = shape[0] * shape[1] / (4096 * 2048)
    add_cosmic_rays(cv, int(rng.poisson(sc.cosmic_rays_per_ccd * area)), rng)
    todo = [(f["cls"], f["fid"], f["snr"], f) for f in feats]
    for k, cls in enumerate(choose_ccd_classes(sc, plan, ccdnum, rng)):
        lo, hi = sc.snr(cls)
        todo.append((cls, f"c{index}-{ccdnum}-{k}", loguniform(rng, lo, hi), None))
    truth = []
    bitmask = MaskConfig().bitmask
    for cls, fid, snr, f in todo:
        amp = 0.0 if not math.isfinite(snr) else snr * cv.sigma
        with Recorder(cv, bitmask, sc.bkg_error) as rec:
            out = inject(cls, cv, amp, f)
        truth.append(
            {
                "cls": cls,
                "fid": fid,
                "scope": "exposure" if f is not None else "ccd",
                "snr": float(snr),
                "amplitude": float(f["g"] if cls == "Guiding" else amp),
                "geometry": json.dumps(out["geometry"], default=float),
                "points": out["points"],
                **rec.result(cls),
            }
        )
    # the pipeline sometimes draws a streak mask where there is no streak
    spurious = None
    if rng.random() < sc.spurious_mask_rate:
        h, w = shape
        r0, c0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        ang = rng.uniform(0, math.pi)
        t = np.arange(-max(h, w), max(h, w))
        rr, cc = (r0 + t * math.sin(ang)).astype(int), (c0 + t * math.cos(ang)).astype(int)
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        rr, cc = rr[ok], cc[ok]
        for d in range(-3, 4):
            cv.msk[rr, np.clip(cc + d, 0, w - 1)] |= MASK_BITS["STREAK"]
        spurious = np.stack([rr, cc], 1)
    sci, msk, wgt, bkg = finish(cv, amps, rng, sc.edge_width)
    hdr = header_for(plan, ccdnum, amps, shape, cv.sigma, sc)
    name = DESName(plan.expnum, plan.band, ccdnum, sc.reqnum, sc.attnum, "immasked", sc.compression)
    rel_img = archive_relpath(name, plan.nite)
    rel_bkg = archive_relpath(
        DESName(plan.expnum, plan.band, ccdnum, sc.reqnum, sc.attnum, "bkg", sc.compression), plan.nite
    )
    if write and root is not None:
        from ..io.desfits import write_ccd

        wpos = wgt[wgt > 0]
        steps = {
            "SCI": cv.sigma / sc.quantize_level,
            "BKG": cv.sigma / sc.quantize_level,
            "WGT": (float(np.median(wpos[::97])) / 1000.0) if wpos.size else None,
        }
        write_ccd(
            os.path.join(root, rel_img),
            os.path.join(root, rel_bkg),
            sci,
            msk,
            wgt,
            bkg,
            hdr,
            compression=sc.compression,
            dither_seed=1 + (plan.expnum * 64 + ccdnum) % 10000,
            quantize_steps=steps,
        )
    points = [t["points"] for t in truth]  # make_labels drops them; kept for an in-memory rebuild
    reports, truth = make_labels(sc, seed, plan, ccdnum, truth, spurious, shape, label_cfg, classes)
    det = [t for t in truth if t["detectable"]]
    ccd_row = {
        "expnum": plan.expnum,
        "ccd": ccdnum,
        "band": plan.band,
        "nite": plan.nite,
        "classes": sorted({t["cls"] for t in truth}),
        "detectable_classes": sorted({t["cls"] for t in det}),
        "truth_clean": not truth,
        "truth_detectable": bool(det),
        "primary_class_truth": max(det, key=lambda t: t["sn_binned"])["cls"] if det else None,
        "inspected": bool(reports),
        "n_reports": len(reports),
        "image": rel_img,
        "bkg": rel_bkg,
        "seeing": plan.seeing,
        "sky": plan.sky,
        "spurious_streak_mask": spurious is not None,
    }
    return {
        "truth": truth,
        "reports": reports,
        "ccd": ccd_row,
        "planes": None if write else (sci, msk, wgt, bkg, hdr),
        # (row, col) full-resolution points of each truth row's footprint, in memory only
        "points": None if write else points,
    }


def report_pixels(xs, ys, label_cfg, shape=(4096, 2048)) -> list[tuple[int, int]]:
    """The truth table's clicked (report_x, report_y) back to numpy (row, col): the inverse of
    what :func:`make_labels` wrote, through the one orientation setting (for ``evaluate``)."""
    from ..features.labels import report_to_pixel

    return [report_to_pixel(x, y, label_cfg, shape) for x, y in zip(xs, ys)]


def make_labels(sc: SimConfig, seed: int, plan, ccdnum: int, truth: list, spurious, shape, label_cfg, classes: tuple):
    """Checker reports for one CCD, with the configured label noise; annotates the truth rows."""
    rng = rng_for(seed, plan.index, ccdnum, 2)
    inspected = rng.random() < sc.inspected_share
    reports = []
    base_id = (plan.index * 100 + ccdnum) * 100
    for t in truth:
        pts = t.pop("points")
        t.update(
            expnum=plan.expnum,
            ccd=ccdnum,
            band=plan.band,
            nite=plan.nite,
            visible_points=int(len(pts)),
            reported=False,
            reported_class=None,
            report_x=None,
            report_y=None,
        )
        if not inspected or len(pts) == 0:
            continue
        p_miss = sc.miss_rate if t["detectable"] else sc.faint_miss_rate
        if rng.random() < p_miss:
            continue
        row, col = pts[int(rng.integers(0, len(pts)))]
        x, y = pixel_to_report(int(row), int(col), label_cfg, shape)
        cls = t["cls"]
        if rng.random() < sc.wrong_class_rate:
            others = [c for c in classes if c != cls]
            cls = others[int(rng.integers(0, len(others)))]
        reports.append(
            make_report(base_id + len(reports), plan.expnum, ccdnum, plan.band, cls, x, y, release=sc.release)
        )
        t.update(reported=True, reported_class=cls, report_x=x, report_y=y)
    if inspected and spurious is not None and len(spurious) and rng.random() < sc.false_positive_rate:
        row, col = spurious[int(rng.integers(0, len(spurious)))]
        x, y = pixel_to_report(int(row), int(col), label_cfg, shape)
        reports.append(
            make_report(
                base_id + len(reports),
                plan.expnum,
                ccdnum,
                plan.band,
                "Satellite",
                x,
                y,
                false_positive=True,
                release=sc.release,
            )
        )
    if inspected and not reports and rng.random() < sc.ok_share:
        reports.append(make_report(base_id, plan.expnum, ccdnum, plan.band, "OK", release=sc.release))
    return reports, truth


# ----------------------------------------------------------------------------- the Spark job
def _work(items, sc, seed, shape, ccds, root, label_cfg, classes):
    for index, ccd in items:
        t0 = time.time()
        out = simulate_ccd(sc, seed, index, ccd, shape, ccds, root, label_cfg, classes)
        out["seconds"] = time.time() - t0
        out.pop("planes")
        out.pop("points")
        yield out


TRUTH_COLUMNS = [
    "expnum",
    "ccd",
    "band",
    "nite",
    "cls",
    "fid",
    "scope",
    "snr",
    "amplitude",
    "geometry",
    "visible_points",
    "reported",
    "reported_class",
    "report_x",
    "report_y",
    "sn_binned",
    "contrast",
    "n_sharp",
    "mask_frac_added",
    "floor_rule",
    "detectable",
]


def write_outputs(root: str, results: list) -> dict:
    """Write the labels, truth and CCD tables of an archive under ``root/labels``; their summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..features.labels import write_reports

    lab_dir = os.path.join(root, "labels")
    os.makedirs(lab_dir, exist_ok=True)
    results = sorted(results, key=lambda r: (r["ccd"]["expnum"], r["ccd"]["ccd"]))
    reports = [rep for r in results for rep in r["reports"]]
    write_reports(reports, os.path.join(lab_dir, "checker_export.json"))
    truth = [t for r in results for t in r["truth"]]
    table = pa.table(
        {c: [t.get(c) for t in truth] for c in TRUTH_COLUMNS},
        schema=pa.schema(
            [
                ("expnum", pa.int64()),
                ("ccd", pa.int32()),
                ("band", pa.string()),
                ("nite", pa.string()),
                ("cls", pa.string()),
                ("fid", pa.string()),
                ("scope", pa.string()),
                ("snr", pa.float64()),
                ("amplitude", pa.float64()),
                ("geometry", pa.string()),
                ("visible_points", pa.int32()),
                ("reported", pa.bool_()),
                ("reported_class", pa.string()),
                ("report_x", pa.int32()),
                ("report_y", pa.int32()),
                ("sn_binned", pa.float64()),
                ("contrast", pa.float64()),
                ("n_sharp", pa.int64()),
                ("mask_frac_added", pa.float64()),
                ("floor_rule", pa.string()),
                ("detectable", pa.bool_()),
            ]
        ),
    )
    pq.write_table(table, os.path.join(lab_dir, "truth.parquet"))
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, os.path.join(lab_dir, "truth.csv"))
    ccds = [r["ccd"] for r in results]
    ccd_table = pa.table({k: [c[k] for c in ccds] for k in ccds[0]}) if ccds else pa.table({})
    pq.write_table(ccd_table, os.path.join(lab_dir, "ccds.parquet"))
    n_art = sum(1 for c in ccds if c["classes"])
    n_det = sum(1 for c in ccds if c["truth_detectable"])
    by_class, below = {}, {}
    for t in truth:
        by_class[t["cls"]] = by_class.get(t["cls"], 0) + 1
        below[t["cls"]] = below.get(t["cls"], 0) + (not t["detectable"])
    return {
        "ccds": len(ccds),
        "artifact_ccds": n_art,
        "artifact_share": round(n_art / max(len(ccds), 1), 3),
        "detectable_artifact_ccds": n_det,
        "artifact_ccds_below_floor_share": round(1 - n_det / n_art, 3) if n_art else None,
        "features_below_floor_by_class": {c: round(below[c] / by_class[c], 3) for c in sorted(by_class)},
        "features": len(truth),
        "reports": len(reports),
        "ok_reports": sum(1 for r in reports if r["problem"] == "OK"),
        "false_positive_reports": sum(1 for r in reports if r["false_positive"]),
        "inspected_ccds": sum(1 for c in ccds if c["inspected"]),
        "features_by_class": by_class,
        "labels": os.path.join(lab_dir, "checker_export.json"),
        "truth": os.path.join(lab_dir, "truth.parquet"),
    }


def run_simulation(spark, root: str, n_exposures: int, cfg, ccds=None, seed: int = 0) -> dict:
    """Simulate ``n_exposures`` exposures x ``ccds`` under ``root`` with Spark; write labels and truth."""
    sc = sim_config(cfg)
    ccds = tuple(ccds) if ccds else sc.ccds
    bad = [c for c in ccds if not 1 <= c <= 62]
    if bad:
        from ..errors import ConfigError

        raise ConfigError(f"--ccds: {bad} are not DECam CCDNUMs (1..62)")
    shape = tuple(cfg.input.ccd_shape)
    root = os.path.abspath(root)
    items = [(i, c) for i in range(n_exposures) for c in ccds]
    t0 = time.time()
    label_cfg, classes = cfg.labels, tuple(cfg.taxonomy.classes)
    rdd = spark.sparkContext.parallelize(items, numSlices=max(1, len(items)))
    done = spark.sparkContext.accumulator(0)  # one CCD per task: a progress line every 30 s

    def work(it):
        for out in _work(list(it), sc, seed, shape, ccds, root, label_cfg, classes):
            done.add(1)
            yield out

    with Progress(done, len(items), what="simulate"):
        results = rdd.mapPartitions(work).collect()
    wall = time.time() - t0
    summary = write_outputs(root, results)
    secs = [r["seconds"] for r in results]
    summary.update(
        job="simulate",
        output=root,
        exposures=n_exposures,
        seed=seed,
        shape=list(shape),
        task_seconds_mean=round(float(np.mean(secs)), 3) if secs else None,
        ccds_per_second=round(len(results) / wall, 3) if wall > 0 else None,
    )
    return summary
