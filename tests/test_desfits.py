"""Reading DES products written by astropy: three compressions alike, and every bad kind rejected."""

import os

import fitsio
import numpy as np
import pytest
from astropy.io import fits
from desarchive import make_planes, write_pair

from artifactspark.errors import InputRejected
from artifactspark.io.desfits import read_ccd, write_ccd


@pytest.mark.parametrize("comp", [".fz", "", ".gz"])
def test_three_compressions_read_the_same(tmp_path, comp):
    sci, msk, wgt, bkg = make_planes(3)
    img, bk = write_pair(str(tmp_path), 232123, 7, comp=comp, planes=(sci, msk, wgt, bkg))
    c = read_ccd(img, bk)
    # RICE q=16 quantisation: error well below the noise (sigma 10)
    tol = 2.0 if comp == ".fz" else 0.0
    np.testing.assert_allclose(c.sci, sci, atol=tol)
    np.testing.assert_array_equal(c.msk, msk)
    np.testing.assert_allclose(c.bkg, bkg, atol=tol)
    assert c.header["EXPNUM"] == 232123 and c.header["CCDNUM"] == 7 and c.header["BAND"] == "r"
    assert c.header["NITE"] == "20131115" and c.header["MJD-OBS"] == pytest.approx(56612.13)


def test_file_uri_and_library_writer_round_trip(tmp_path):
    sci, msk, wgt, bkg = make_planes(4)
    p, b = str(tmp_path / "D00000001_g_c01_r1p01_immasked.fits.fz"), str(tmp_path / "D00000001_g_c01_r1p01_bkg.fits.fz")
    write_ccd(p, b, sci, msk, wgt, bkg, {"EXPNUM": 1, "CCDNUM": 1, "BAND": "g"}, dither_seed=5)
    c = read_ccd("file://" + p, "file://" + b)
    np.testing.assert_allclose(c.sci, sci, atol=2.0)
    np.testing.assert_array_equal(c.msk, msk)
    # astropy reads what the library writes, too
    with fits.open(p) as h:
        assert [x.name for x in h] == ["PRIMARY", "SCI", "MSK", "WGT"]
        np.testing.assert_array_equal(h["MSK"].data, msk)


def test_bad_inputs_are_rejected_with_reasons(tmp_path):
    root = str(tmp_path)
    img, bk = write_pair(root, 5, 1)
    # truncated
    trunc = img.replace("c01", "c02")
    with open(img, "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(InputRejected) as e:
        read_ccd(trunc, bk)
    assert e.value.reason in ("corrupt_fits", "not_fits", "missing_hdu")
    # not FITS at all
    txt = str(tmp_path / "x_immasked.fits")
    open(txt, "w").write("hello")
    with pytest.raises(InputRejected) as e:
        read_ccd(txt)
    assert e.value.reason == "not_fits"
    # missing HDU (only SCI)
    only_sci, _ = write_pair(root, 6, 1, sci_only_hdus=True)
    with pytest.raises(InputRejected) as e:
        read_ccd(only_sci)
    assert e.value.reason == "missing_hdu" and "MSK" in str(e.value)
    # background of another shape
    small_bkg = str(tmp_path / "b.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((10, 10), np.float32), name="SCI")]).writeto(small_bkg)
    with pytest.raises(InputRejected) as e:
        read_ccd(img, small_bkg)
    assert e.value.reason == "bad_shape"
    assert os.path.exists(img)


def test_quantised_smooth_background_has_no_terraces(tmp_path):
    """A smooth background model written with an absolute quantisation step must come back
    without terraces: binned 8x8, its error stays far below the step (dithered quantisation
    averages out). Undithered, the error is coherent over large areas, up to step / 2 per bin."""
    from artifactspark.io.desfits import write_ccd

    h, w = 256, 128
    r = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    c = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    bkg = (1000.0 + 37.3 * r + 11.1 * c * c).astype(np.float32)
    sci = bkg + np.random.default_rng(0).normal(0, 30, (h, w)).astype(np.float32)
    step = 30.0 / 16
    img, bk = (
        str(tmp_path / "D00000001_r_c01_r1p01_immasked.fits.fz"),
        str(tmp_path / "D00000001_r_c01_r1p01_bkg.fits.fz"),
    )
    write_ccd(
        img,
        bk,
        sci,
        np.zeros((h, w), np.int32),
        np.ones((h, w), np.float32),
        bkg,
        {"EXPNUM": 1},
        quantize_steps={"SCI": step, "BKG": step, "WGT": 0.001},
    )
    got = fitsio.read(bk, ext="SCI")
    err = (got.astype(np.float64) - bkg).reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))
    assert np.abs(got - bkg).max() <= step  # quantised, within one step per pixel
    assert np.abs(err).max() < step / 8, np.abs(err).max()
