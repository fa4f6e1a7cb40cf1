"""Small DES-format archives for tests, written with astropy (independently of the library's
fitsio writer), including the corrupt kinds the preprocess job must quarantine."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
from astropy.io import fits

E1, E2, E3 = 300001, 300002, 300003
SMALL_SHAPE = (256, 128)  # rows, cols; tests run with [input] ccd_shape = [256, 128]

SMALL_CONF = """
[input]
ccd_shape = [256, 128]
[store]
rowgroup_size_mb = 1
ccds_per_task = 2
"""


def name(expnum, band, ccd, att=1, kind="immasked", comp=".fz", reqnum=2357):
    return f"D{expnum:08d}_{band}_c{ccd:02d}_r{reqnum}p{att:02d}_{kind}.fits{comp}"


def make_planes(seed, shape=SMALL_SHAPE, sky=1000.0, noise=10.0):
    rng = np.random.default_rng(seed)
    bkg = (sky + 0.01 * np.arange(shape[0])[:, None] + np.zeros(shape)).astype(np.float32)
    sci = (bkg + rng.normal(0, noise, shape)).astype(np.float32)
    r, c = shape[0] // 3, shape[1] // 3
    sci[r - 2 : r + 3, c - 2 : c + 3] += 500.0  # a "star"
    msk = np.zeros(shape, np.int32)
    msk[:, 5] = 1  # a bad column (BPM)
    msk[-4:, :] |= 512  # an edge (EDGE)
    wgt = np.full(shape, 1.0 / noise**2, np.float32)
    return sci, msk, wgt, bkg


def header(expnum, ccd, band="r", nite="20131115"):
    return {
        "EXPNUM": expnum,
        "CCDNUM": ccd,
        "BAND": band,
        "FILTER": f"{band} DECam SDSS c0002",
        "NITE": nite,
        "DATE-OBS": "2013-11-16T03:12:00",
        "MJD-OBS": 56612.13,
        "EXPTIME": 90.0,
        "AIRMASS": 1.2,
        "FWHM": 4.1,
        "SKYBRITE": 1000.0,
        "SKYSIGMA": 10.0,
        "GAINA": 4.0,
        "GAINB": 4.1,
        "SATURATA": 40000.0,
        "SATURATB": 41000.0,
        "OBJECT": "DES survey",
    }


def write_pair(
    root,
    expnum,
    ccd,
    band="r",
    nite="20131115",
    comp=".fz",
    att=1,
    seed=None,
    with_bkg=True,
    planes=None,
    hdr=None,
    sci_only_hdus=False,
):
    """Write <root>/<nite>/D<exp>/p<att>/red/immask/<...>_immasked and red/bkg/<...>_bkg."""
    seed = expnum * 100 + ccd if seed is None else seed
    sci, msk, wgt, bkg = planes if planes is not None else make_planes(seed)
    h = fits.Header()
    for k, v in (hdr if hdr is not None else header(expnum, ccd, band, nite)).items():
        h[k] = v
    base = os.path.join(root, nite, f"D{expnum:08d}", f"p{att:02d}", "red")
    img_path = os.path.join(base, "immask", name(expnum, band, ccd, att, "immasked", comp))
    bkg_path = os.path.join(base, "bkg", name(expnum, band, ccd, att, "bkg", comp))
    hdus = [fits.PrimaryHDU(header=h)]
    planes_out = [("SCI", sci)] if sci_only_hdus else [("SCI", sci), ("MSK", msk), ("WGT", wgt)]
    for ext, arr in planes_out:
        if comp == ".fz":
            hdus.append(
                fits.CompImageHDU(
                    arr,
                    header=h if ext == "SCI" else None,
                    name=ext,
                    compression_type="RICE_1",
                    quantize_level=16,
                    dither_seed=1,
                )
            )
        else:
            hdus.append(fits.ImageHDU(arr, header=h if ext == "SCI" else None, name=ext))
    _write(fits.HDUList(hdus), img_path, comp)
    if with_bkg:
        b = (
            fits.CompImageHDU(bkg, name="SCI", compression_type="RICE_1", quantize_level=16, dither_seed=1)
            if comp == ".fz"
            else fits.ImageHDU(bkg, name="SCI")
        )
        _write(fits.HDUList([fits.PrimaryHDU(), b]), bkg_path, comp)
    return img_path, (bkg_path if with_bkg else None)


def _write(hdul, path, comp):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if comp == ".gz":
        tmp = path[:-3]
        hdul.writeto(tmp, overwrite=True)
        with open(tmp, "rb") as s, gzip.open(path, "wb") as d:
            shutil.copyfileobj(s, d)
        os.unlink(tmp)
    else:
        hdul.writeto(path, overwrite=True)


def write_reports(path, reports):
    with open(path, "w") as f:
        json.dump(reports, f)


def report(qa_id, expnum, ccd, problem, x=None, y=None, fp=False, band="r"):
    return {
        "qa_id": qa_id,
        "expname": f"DECam_{expnum:08d}",
        "ccd": ccd,
        "band": band,
        "problem": problem,
        "x": x,
        "y": y,
        "detail": None,
        "false_positive": fp,
        "release": "TEST",
    }


def build_archive(root):
    """Returns {path: expected status or quarantine reason}."""
    exp = {}
    for ccd, comp in ((1, ".fz"), (2, ""), (3, ".gz")):
        exp[write_pair(root, E1, ccd, comp=comp)[0]] = "stored"
    exp[write_pair(root, E1, 4, att=1)[0]] = "superseded"
    exp[write_pair(root, E1, 4, att=2)[0]] = "stored"
    exp[write_pair(root, E1, 5, comp=".fz")[0]] = "duplicate_ccd"
    exp[write_pair(root, E1, 5, comp="")[0]] = "duplicate_ccd"
    for ccd in (1, 2):
        exp[write_pair(root, E2, ccd)[0]] = "stored"
    exp[write_pair(root, E3, 1, band="g", nite="20131116", with_bkg=False)[0]] = "stored"
    # truncated
    p, _ = write_pair(root, E2, 3)
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    exp[p] = "corrupt"
    # not FITS
    p, _ = write_pair(root, E2, 4)
    open(p, "w").write("this is not a FITS file")
    exp[p] = "not_fits"
    exp[write_pair(root, E2, 5, sci_only_hdus=True)[0]] = "missing_hdu"
    exp[write_pair(root, E2, 6, planes=make_planes(1, shape=(128, 128)))[0]] = "bad_shape"
    sci, msk, wgt, bkg = make_planes(2)
    exp[write_pair(root, E2, 7, planes=(np.full_like(sci, np.nan), msk, wgt, bkg), comp="")[0]] = "all_nan"
    exp[write_pair(root, E2, 8, planes=(sci, np.full_like(msk, 16), wgt, bkg))[0]] = "all_masked"
    exp[write_pair(root, E2, 11, hdr=header(E2, 12))[0]] = "header_mismatch"
    _, orphan = write_pair(root, E2, 10)
    os.unlink(orphan.replace("bkg", "immask").replace("_immask.", "_immasked."))
    exp[orphan] = "orphan_bkg"
    bad = os.path.join(root, "misc", "D300002_r_c09_immasked.fits.fz")
    os.makedirs(os.path.dirname(bad))
    shutil.copy(write_pair(root + "_tmp", E2, 9)[0], bad)
    exp[bad] = "bad_name"
    open(os.path.join(root, "misc", "README.txt"), "w").write("not an input: ignored")
    return exp


def write_segfault_gz(root, expnum, ccd, **kw):
    """A ``.fits.gz`` CCD that kills cfitsio (4.6, fitsio 1.4) with SIGSEGV when read: its MSK
    extension's PCOUNT is -2147483648 (found by the input fuzzer; cfitsio's memory driver, which
    reads whole-file-gzipped FITS, segfaults on it). Returns (immasked path, bkg path)."""
    img, bkg = write_pair(root, expnum, ccd, comp=".gz", **kw)
    with gzip.open(img, "rb") as f:
        raw = bytearray(f.read())
    cards = [o for o in range(0, len(raw), 80) if raw[o : o + 8] == b"PCOUNT  "]
    o = cards[1]  # primary has none: 0 = SCI, 1 = MSK
    raw[o + 10 : o + 30] = b"-2147483648".rjust(20)
    with gzip.open(img, "wb") as f:
        f.write(bytes(raw))
    return img, bkg


def write_sigfpe_fz(root, expnum, ccd, **kw):
    """A ``.fits.fz`` CCD that kills cfitsio with SIGFPE (an integer division by zero) when read:
    its SCI extension's ZNAXIS2 holds an empty string (found by fuzzing the header cards)."""
    img, bkg = write_pair(root, expnum, ccd, comp=".fz", **kw)
    with open(img, "rb") as f:
        raw = bytearray(f.read())
    o = next(o for o in range(0, len(raw), 80) if raw[o : o + 8] == b"ZNAXIS2 ")
    raw[o + 10 : o + 80] = b"''".ljust(70)
    with open(img, "wb") as f:
        f.write(bytes(raw))
    return img, bkg
