"""DES single-epoch product conventions: file names, CCD geometry, mask bits, header keys.

Everything here follows ``../shared/reference/des-data.md``; nothing in the project
hard-codes these facts anywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: FITS NAXIS1 x NAXIS2 of a trimmed DECam CCD; numpy arrays are (rows, cols) = (4096, 2048).
CCD_NAXIS1 = 2048
CCD_NAXIS2 = 4096
CCD_SHAPE = (CCD_NAXIS2, CCD_NAXIS1)
#: Amp B reads columns 1..1024 (FITS, 1-based), amp A 1025..2048: numpy columns [0, 1024) and [1024, 2048).
AMP_SPLIT_COLUMN = 1024
BANDS = ("g", "r", "i", "z", "Y")

#: DESDM MSK bit values (des-data.md, "DESDM mask bits").
MASK_BITS = {
    "BPM": 1,
    "SATURATE": 2,
    "INTERP": 4,
    "BADAMP": 8,
    "CRAY": 16,
    "STAR": 32,
    "TRAIL": 64,
    "EDGEBLEED": 128,
    "SSXTALK": 256,
    "EDGE": 512,
    "STREAK": 1024,
    "SUSPECT": 2048,
    "FIXED": 4096,
    "NEAREDGE": 8192,
    "TAPEBUMP": 16384,
}

#: Header keys copied into the feature store (looked up on SCI, then on the primary HDU).
#: name -> (column name, python type)
HEADER_KEYS = {
    "EXPNUM": ("expnum_hdr", int),
    "CCDNUM": ("ccdnum_hdr", int),
    "DETPOS": ("detpos", str),
    "BAND": ("band_hdr", str),
    "FILTER": ("filter", str),
    "NITE": ("nite_hdr", str),
    "DATE-OBS": ("date_obs", str),
    "MJD-OBS": ("mjd_obs", float),
    "EXPTIME": ("exptime", float),
    "AIRMASS": ("airmass", float),
    "FWHM": ("fwhm", float),
    "SKYBRITE": ("skybrite", float),
    "SKYSIGMA": ("skysigma", float),
    "GAINA": ("gaina", float),
    "GAINB": ("gainb", float),
    "SATURATA": ("saturata", float),
    "SATURATB": ("saturatb", float),
    "OBJECT": ("object", str),
}

# D00232123_r_c12_r2357p01_immasked.fits.fz
_NAME_RE = re.compile(
    r"^D(?P<expnum>\d{8})_(?P<band>[A-Za-z]+)_c(?P<ccdnum>\d{2})_r(?P<reqnum>\d+)p(?P<attnum>\d+)"
    r"_(?P<kind>immasked|bkg)\.fits(?P<comp>\.fz|\.gz)?$"
)
#: Spark-SQL-compatible (Java) version of the same pattern, applied to the file's base name.
NAME_REGEX_JAVA = _NAME_RE.pattern


class NameError_(ValueError):
    """A file name that does not follow the DESDM single-epoch naming convention."""


@dataclass(frozen=True)
class DESName:
    """The parts of a DESDM single-epoch file name."""

    expnum: int
    band: str
    ccdnum: int
    reqnum: int
    attnum: int
    kind: str  # "immasked" | "bkg"
    compression: str  # "" | ".fz" | ".gz"

    @property
    def stem(self) -> str:
        """Name shared by an exposure's immasked and bkg files of one CCD and attempt."""
        return f"D{self.expnum:08d}_{self.band}_c{self.ccdnum:02d}_r{self.reqnum}p{self.attnum:02d}"

    def filename(self, kind: str | None = None, compression: str | None = None) -> str:
        """The file name, optionally of another kind (``immasked`` / ``bkg``) or compression."""
        kind = kind or self.kind
        comp = self.compression if compression is None else compression
        return f"{self.stem}_{kind}.fits{comp}"


def parse_name(path: str) -> DESName:
    """Parse a DESDM single-epoch file name (a bare name, a path or a URI).

    >>> parse_name("/a/D00232123_r_c12_r2357p01_immasked.fits.fz").ccdnum
    12
    """
    base = path.rstrip("/").rsplit("/", 1)[-1]
    m = _NAME_RE.match(base)
    if not m:
        raise NameError_(
            f"{base!r} is not a DESDM single-epoch name "
            "(expected D<8-digit EXPNUM>_<band>_c<2-digit CCDNUM>_r<reqnum>p<attnum>_immasked|bkg.fits[.fz|.gz])"
        )
    d = m.groupdict()
    return DESName(
        expnum=int(d["expnum"]),
        band=d["band"],
        ccdnum=int(d["ccdnum"]),
        reqnum=int(d["reqnum"]),
        attnum=int(d["attnum"]),
        kind=d["kind"],
        compression=d["comp"] or "",
    )


def detpos_for_ccdnum(ccdnum: int) -> str:
    """DECam DETPOS for a science CCDNUM (1..62): S1..S31 are 1..31, N1..N31 are 32..62."""
    if not 1 <= ccdnum <= 62:
        raise ValueError(f"CCDNUM {ccdnum} is not a DECam science CCD (1..62)")
    return f"S{ccdnum}" if ccdnum <= 31 else f"N{ccdnum - 31}"


def expname_to_expnum(expname: str) -> int:
    """Exposure-checker ``expname`` ("DECam_00232123") -> EXPNUM (232123)."""
    m = re.fullmatch(r"DECam_(\d{8})", str(expname).strip())
    if not m:
        raise ValueError(f"expname {expname!r} is not of the form DECam_<8 digits>")
    return int(m.group(1))


def expnum_to_expname(expnum: int) -> str:
    """EXPNUM -> the exposure checker's name (``DECam_00232123``)."""
    return f"DECam_{int(expnum):08d}"


def archive_relpath(name: DESName, nite: str) -> str:
    """Where DESDM nests a product under an archive root: <NITE>/D<EXPNUM>/p<att>/red/{immask,bkg}/<file>."""
    sub = "immask" if name.kind == "immasked" else "bkg"
    return f"{nite}/D{name.expnum:08d}/p{name.attnum:02d}/red/{sub}/{name.filename()}"


def parse_ccd_list(text: str) -> list[int]:
    """ "1-10,31" -> [1, ..., 10, 31]; every CCDNUM must be a DECam science CCD (1..62)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"CCD list {text!r}: {part!r} is not a number or a range like 1-10") from None
    bad = [c for c in out if not 1 <= c <= 62]
    if bad or not out:
        raise ValueError(f"CCD list {text!r}: CCDNUMs must be within 1..62")
    return out
