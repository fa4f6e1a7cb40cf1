"""Fuzzed DES inputs (issue 11, item 5), shared by tests/test_fuzz_inputs.py and
benchmarks/fuzz_inputs.py: valid ``.fits.fz``, ``.fits`` and ``.fits.gz`` products written with
astropy (tests/desarchive.py), then damaged from a seed in one of three ways:

- ``flip``: 1-40 random bits flipped anywhere in the file (for ``.gz``: in the compressed bytes,
  or, half of the time, in the FITS inside and gzipped again, so the damage gets past gzip's CRC);
- ``truncate``: the file cut at a random length;
- ``reheader``: 1-3 header cards of the structural keywords (NAXISn, BITPIX, PCOUNT, ZNAXISn,
  ZTILEn, ZCMPTYPE, TFORMn, ...) and of the DES keywords (EXPNUM, CCDNUM, BAND, NITE) given
  another value from a list of edge values (0, -1, -2**31, 2**31-1, huge, wrong type, ...).

Each variant is its own CCD (its own expnum and ccd number), so that variants never compete
for one CCD; its background file is left intact.
"""

from __future__ import annotations

import gzip
import os
import random

from desarchive import write_pair
from storelayout import current_features, current_table

KINDS = ("flip", "truncate", "reheader")
COMPS = (".fz", "", ".gz")
FIRST_EXPNUM = 310000

STRUCT_KEYS = [
    b"NAXIS",
    b"NAXIS1",
    b"NAXIS2",
    b"BITPIX",
    b"PCOUNT",
    b"GCOUNT",
    b"EXTEND",
    b"XTENSION",
    b"BSCALE",
    b"BZERO",
    b"EXTNAME",
    b"ZIMAGE",
    b"ZNAXIS",
    b"ZNAXIS1",
    b"ZNAXIS2",
    b"ZTILE1",
    b"ZTILE2",
    b"ZBITPIX",
    b"ZCMPTYPE",
    b"ZNAME1",
    b"ZVAL1",
    b"ZNAME2",
    b"ZVAL2",
    b"ZQUANTIZ",
    b"ZDITHER0",
    b"TFIELDS",
    b"TFORM1",
    b"TFORM2",
    b"TTYPE1",
    b"THEAP",
    b"EXPNUM",
    b"CCDNUM",
    b"BAND",
    b"NITE",
    b"DATE-OBS",
]
VALUES = [
    b"0",
    b"1",
    b"-1",
    b"2",
    b"3",
    b"8",
    b"-32",
    b"-64",
    b"16",
    b"999",
    b"65536",
    b"2147483647",
    b"-2147483648",
    b"4294967296",
    b"99999999999999",
    b"1E300",
    b"-1E300",
    b"'1PB(0)'",
    b"'1QB(999999)'",
    b"'1PB(99999999)'",
    b"'1PJ(5)'",
    b"'RICE_1'",
    b"'GZIP_1'",
    b"'PLIO_1'",
    b"'HCOMPRESS_1'",
    b"'NOCOMPRESS'",
    b"'BINTABLE'",
    b"'IMAGE'",
    b"'MSK'",
    b"'SCI'",
    b"T",
    b"F",
    b"''",
    b"'(9999,9999)'",
    b"'NO_DITHER'",
    b"'SUBTRACTIVE_DITHER_2'",
    b"'20131315'",
    b"'garbage'",
]


def _cards(raw: bytes, keys) -> list[int]:
    """Offsets of the value-bearing header cards whose keyword is in ``keys``."""
    out = []
    for o in range(0, len(raw) - 80, 80):
        if raw[o + 8 : o + 10] == b"= " and raw[o : o + 8].rstrip() in keys:
            out.append(o)
    return out


def mutate(raw: bytes, comp: str, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """One damaged copy of the file bytes ``raw`` and a short description of the damage."""
    inner = comp == ".gz" and (kind != "flip" or rng.random() < 0.5)
    data = bytearray(gzip.decompress(raw) if inner else raw)
    if kind == "flip":
        n = rng.randint(1, 40)
        for _ in range(n):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        what = f"{n} bit(s) flipped{' inside the gzip' if inner else ''}"
    elif kind == "truncate":
        cut = rng.randrange(1, len(data))
        data = data[:cut]
        what = f"cut at {cut} of {len(raw) if not inner else len(gzip.decompress(raw))} bytes"
    else:
        offsets = _cards(bytes(data), STRUCT_KEYS)
        edits = []
        for _ in range(rng.randint(1, 3)):
            o = rng.choice(offsets)
            v = rng.choice(VALUES)
            data[o + 10 : o + 80] = v.ljust(70)
            edits.append(f"{bytes(data[o : o + 8]).decode().strip()}={v.decode()}@{o}")
        what = "header " + ", ".join(edits)
    out = bytes(data)
    if inner:
        out = gzip.compress(out, mtime=0)
    return out, what


def write_variants(root: str, n: int, seed: int) -> dict:
    """Write ``n`` fuzzed CCDs under ``root``; returns {immasked path: (comp, kind, description)}.
    Kinds and compressions cycle so that every (kind, compression) pair gets n/9 variants."""
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        comp = COMPS[i % 3]
        kind = KINDS[(i // 3) % 3]
        expnum, ccd = FIRST_EXPNUM + i // 60, 1 + i % 60
        img, _ = write_pair(root, expnum, ccd, comp=comp, seed=seed * 100003 + i)
        with open(img, "rb") as f:
            raw = f.read()
        data, what = mutate(raw, comp, kind, rng)
        with open(img, "wb") as f:
            f.write(data)
        out[img] = (comp or ".fits", kind, what)
    return out


def write_good(root: str, n: int = 6) -> list[str]:
    """``n`` intact CCDs (the three compressions in turn) that must all be stored."""
    return [write_pair(root, FIRST_EXPNUM - 1, 1 + i, comp=COMPS[i % 3])[0] for i in range(n)]


def check_run(summary: dict, store: str, variants: dict, good: list[str]) -> dict:
    """The fuzz run's invariants; returns {outcome: count} over the variants (``stored`` or the
    quarantine reason). Raises AssertionError naming the variant that breaks one."""

    uri = {p: "file:" + os.path.abspath(p) for p in [*variants, *good]}
    assert summary["inputs"] == len(variants) + len(good), summary
    assert summary["stored"] + summary["quarantined"] + summary["skipped"] == summary["inputs"], summary
    man = {r["path"]: r for r in current_table(store, "manifest")}
    feats = current_features(store, ["path", "stretch_min", "stretch_max", "noise_sigma"])
    stored = {r["path"]: r for r in feats}
    for p in good:
        assert uri[p] in stored, f"a good CCD was lost: {p} ({man.get(uri[p])})"
    outcomes = {}
    for p, (comp, kind, what) in variants.items():
        m = man.get(uri[p])
        assert m is not None, f"variant not in the manifest: {p} ({comp} {kind}: {what})"
        if m["status"] == "stored":
            r = stored.get(uri[p])
            assert r is not None, f"manifest says stored, no row: {p}"
            for k in ("stretch_min", "stretch_max", "noise_sigma"):
                assert r[k] is not None and abs(r[k]) < float("inf"), (p, k, r[k])
            key = "stored"
        else:
            assert m["status"] == "quarantined" and m["reason"] and m["detail"], (p, m)
            assert uri[p] not in stored, f"quarantined variant has a row: {p}"
            key = m["reason"]
        outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes
