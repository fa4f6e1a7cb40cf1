"""Reading and writing DES single-epoch FITS products (``*_immasked`` and ``*_bkg``).

Reading uses fitsio (cfitsio): tile-compressed ``.fits.fz``, plain ``.fits`` and whole-file
gzipped ``.fits.gz`` all read the same way. HDUs are found by EXTNAME (SCI, MSK, WGT), not by
position. Paths may be local, ``file://`` or any URI pyarrow.fs understands (s3://, s3a://,
hdfs://, gs://): remote files are copied to a local temporary file first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from ..errors import InputRejected
from .des import HEADER_KEYS

#: Quantisation used when writing float HDUs, as fpack does for DESDM (RICE_1, q=16, dithered).
RICE_QLEVEL = 16.0


def is_local(uri: str) -> bool:
    """Is ``uri`` a local path (no scheme, or ``file://``)?"""
    return urlparse(uri).scheme in ("", "file")


def local_path(uri: str) -> str:
    """The local path of a local ``uri``; ValueError for a remote one."""
    p = urlparse(uri)
    if p.scheme == "file":
        return p.path
    if p.scheme == "":
        return uri
    raise ValueError(f"{uri!r} is not a local path")


@contextlib.contextmanager
def local_copy(uri: str):
    """Yield a local file path for ``uri``, copying a remote object to a temporary file."""
    if is_local(uri):
        yield local_path(uri)
        return
    import pyarrow.fs as pafs

    norm = uri.replace("s3a://", "s3://", 1).replace("s3n://", "s3://", 1)
    fs, path = pafs.FileSystem.from_uri(norm)
    suffix = "".join(os.path.basename(path).partition(".fits")[1:])
    fd, tmp = tempfile.mkstemp(suffix=suffix or ".fits")
    try:
        try:
            with os.fdopen(fd, "wb") as out, fs.open_input_stream(path) as src:
                shutil.copyfileobj(src, out, 8 << 20)
        except OSError as e:  # network or storage trouble: retried by the next run
            raise InputRejected("read_error", f"{uri}: cannot fetch: {e}") from None
        yield tmp
    finally:
        os.unlink(tmp)


@dataclass
class CCDImage:
    """One CCD's pixel planes as numpy arrays (rows = NAXIS2, cols = NAXIS1) and its header."""

    sci: np.ndarray
    msk: np.ndarray
    wgt: np.ndarray | None
    bkg: np.ndarray | None
    header: dict


def _header_dict(*headers) -> dict:
    """Merge fitsio headers (later wins) into {KEY: value} for the keys we store, plus SKYSUB."""
    out = {}
    for h in headers:
        if h is None:
            continue
        for key in list(HEADER_KEYS) + ["SKYSUB"]:
            if key in h:
                v = h[key]
                if isinstance(v, str):
                    v = v.strip()
                out[key] = v
    return out


def _first_line(e: Exception) -> str:
    """cfitsio's message without its error stack: the stack is per process and still holds
    messages of earlier files read by the same worker, so the detail would not be reproducible."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _read_hdu(fits, extname: str, path: str, required: bool = True):
    try:
        hdu = fits[extname]
    except (KeyError, ValueError, OSError):
        if required:
            raise InputRejected("missing_hdu", f"{path}: no {extname} HDU") from None
        return None, None
    try:
        data = hdu.read()
        hdr = hdu.read_header()
    except Exception as e:  # cfitsio reports corrupt tiles and short files as OSError/IOError
        raise InputRejected("corrupt_fits", f"{path}: cannot read {extname}: {_first_line(e)}") from None
    if data is None:
        raise InputRejected("missing_hdu", f"{path}: {extname} HDU holds no data")
    return data, hdr


def _open(path: str):
    import fitsio

    try:
        return fitsio.FITS(path)
    except Exception as e:
        raise InputRejected("not_fits", f"{path}: not a readable FITS file: {_first_line(e)}") from None


@contextlib.contextmanager
def _corrupt_if_unreadable(uri: str):
    """cfitsio errors outside one HDU's read (walking a damaged HDU list: fitsio raises OSError,
    or UnicodeDecodeError on an error text holding the file's garbage) mean a corrupt file."""
    try:
        yield
    except InputRejected:
        raise
    except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise InputRejected("corrupt_fits", f"{uri}: cannot walk its HDUs: {_first_line(e)}") from None


def read_ccd(uri: str, bkg_uri: str | None = None, read_wgt: bool = True) -> CCDImage:
    """Read SCI, MSK, (WGT) and the background model of one CCD.

    Raises :class:`InputRejected` (reason codes: not_fits, corrupt_fits, missing_hdu,
    bad_shape) for anything that is not a usable DES product.
    """
    with local_copy(uri) as path, _corrupt_if_unreadable(uri):
        with _open(path) as f:
            primary_hdr = f[0].read_header() if len(f) else None
            sci, sci_hdr = _read_hdu(f, "SCI", uri)
            msk, _ = _read_hdu(f, "MSK", uri)
            wgt = _read_hdu(f, "WGT", uri)[0] if read_wgt else None
    header = _header_dict(primary_hdr, sci_hdr)
    bkg = None
    if bkg_uri is not None:
        with local_copy(bkg_uri) as bpath, _corrupt_if_unreadable(bkg_uri):
            with _open(bpath) as bf:
                bkg, _ = _read_hdu(bf, "SCI", bkg_uri)
    _check_shapes(uri, sci=sci, msk=msk, wgt=wgt, bkg=bkg)
    return CCDImage(
        sci=np.asarray(sci, dtype=np.float32),
        msk=np.asarray(msk, dtype=np.int32),
        wgt=None if wgt is None else np.asarray(wgt, dtype=np.float32),
        bkg=None if bkg is None else np.asarray(bkg, dtype=np.float32),
        header=header,
    )


def _check_shapes(uri: str, **planes) -> None:
    sci = planes["sci"]
    if sci.ndim != 2:
        raise InputRejected("bad_shape", f"{uri}: SCI is {sci.ndim}-D, expected a 2-D image")
    for name, arr in planes.items():
        if arr is not None and arr.shape != sci.shape:
            raise InputRejected("bad_shape", f"{uri}: {name.upper()} shape {arr.shape} differs from SCI {sci.shape}")


# ------------------------------------------------------------------------------------- writing
def _hdr_records(header: dict) -> list[dict]:
    return [{"name": k, "value": v} for k, v in header.items()]


def write_ccd(
    immasked_path: str,
    bkg_path: str | None,
    sci,
    msk,
    wgt,
    bkg,
    header: dict,
    compression: str = ".fz",
    dither_seed: int = 1,
    quantize_steps: dict | None = None,
) -> None:
    """Write a DESDM-like ``*_immasked`` (SCI/MSK/WGT) and ``*_bkg`` (SCI) pair with fitsio.

    compression: ".fz" (RICE_1 tiles, float planes quantised at q=16 with a fixed dither seed
    so that the same input gives the same bytes), "" (plain FITS) or ".gz" (whole file gzipped).
    ``header`` keys go to the primary HDU and to SCI, as DESDM products carry them.
    ``quantize_steps`` ({"SCI": s, "WGT": s, "BKG": s}, optional) gives absolute quantisation
    steps for float planes instead of q=16 relative to each tile's estimated noise: about 3x
    faster (cfitsio skips its per-tile noise estimate) and the right choice for noise-free
    planes such as the background model. Every quantised plane is dithered.
    """
    import fitsio

    steps = quantize_steps or {}

    def write(path, planes, step_names):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        target = path[:-3] if compression == ".gz" else path
        if os.path.exists(target):
            os.unlink(target)
        with fitsio.FITS(target, "rw", clobber=True) as f:
            f.write(None, header=_hdr_records(header))
            for extname, arr in planes:
                kw = {}
                if compression == ".fz":
                    kw = dict(compress="RICE", tile_dims=[1, arr.shape[1]])
                    if arr.dtype.kind == "f":
                        step = steps.get(step_names[extname])
                        if step:  # cfitsio: a negative level is an absolute step
                            # dithered for every plane, as fpack does: a smooth plane (the background
                            # model) quantised without dither turns into terraces of +-step/2 that
                            # are coherent over large areas: contour rings in SCI - BKG after binning
                            kw.update(qlevel=-float(step), dither_seed=dither_seed, qmethod="SUBTRACTIVE_DITHER_1")
                        else:
                            kw.update(qlevel=RICE_QLEVEL, qmethod="SUBTRACTIVE_DITHER_2", dither_seed=dither_seed)
                f.write(arr, extname=extname, header=_hdr_records(header) if extname == "SCI" else None, **kw)
        if compression == ".gz":
            import gzip

            with open(target, "rb") as src, gzip.GzipFile(path, "wb", mtime=0) as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
            os.unlink(target)

    write(
        immasked_path,
        [
            ("SCI", np.asarray(sci, np.float32)),
            ("MSK", np.asarray(msk, np.int32)),
            ("WGT", np.asarray(wgt, np.float32)),
        ],
        {"SCI": "SCI", "MSK": "MSK", "WGT": "WGT"},
    )
    if bkg_path is not None:
        write(bkg_path, [("SCI", np.asarray(bkg, np.float32))], {"SCI": "BKG"})
