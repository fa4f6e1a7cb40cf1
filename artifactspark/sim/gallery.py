"""One PNG per class of a simulated archive: the downsampled, stretched CCD with its reports marked."""

from __future__ import annotations

import json
import os

from ..features.image import arcsinh_stretch, block_mean, valid_pixels
from ..features.labels import report_to_pixel
from .config import sim_config


def _pick(truth, cls):
    """The reported feature of ``cls`` with the highest S/N (else any feature of it)."""
    rows = [t for t in truth if t["cls"] == cls]
    rep = [t for t in rows if t["reported"]] or rows
    return max(rep, key=lambda t: t["snr"] if t["snr"] == t["snr"] else 0.0) if rep else None


def make_gallery(archive: str, out_dir: str, cfg, factor: int = 8) -> dict:
    """One PNG per class of a simulated archive (a CCD showing it, binned and stretched, the reports
    on it marked); the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq

    from ..io.desfits import read_ccd

    lab = os.path.join(archive, "labels")
    if not os.path.exists(os.path.join(lab, "truth.parquet")):
        raise FileNotFoundError(f"{archive}: no labels/truth.parquet (is this a simulated archive?)")
    sim_config(cfg)  # a bad [simulate] section fails here, before any file is read
    truth = pq.read_table(os.path.join(lab, "truth.parquet")).to_pylist()
    with open(os.path.join(lab, "checker_export.json")) as f:
        reports = json.load(f)
    ccds = {(r["expnum"], r["ccd"]): r for r in pq.read_table(os.path.join(lab, "ccds.parquet")).to_pylist()}
    shape = tuple(cfg.input.ccd_shape)
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for cls in sorted({t["cls"] for t in truth}):
        t = _pick(truth, cls)
        info = ccds[(t["expnum"], t["ccd"])]
        img = read_ccd(os.path.join(archive, info["image"]), os.path.join(archive, info["bkg"]))
        valid = valid_pixels(img.sci, img.msk, cfg.mask.bitmask, img.wgt, cfg.mask.zero_weight)
        mean, frac = block_mean(img.sci - img.bkg, valid, factor)
        y, _, _ = arcsinh_stretch(mean, frac < 1, softening=0.1, percentiles=(1.0, 99.5))
        # the viewer showed CCDs turned by 90 degrees: the long (row) axis horizontal
        fig, ax = plt.subplots(figsize=(10, 5.6), dpi=100)
        ax.imshow(y.T, origin="lower", cmap="gray", interpolation="nearest")
        for rep in reports:
            if rep["ccd"] != t["ccd"] or int(rep["expname"][6:]) != t["expnum"] or rep["x"] is None:
                continue
            r, c = report_to_pixel(rep["x"], rep["y"], cfg.labels, shape)
            color = "red" if rep["problem"] == cls else ("orange" if rep["false_positive"] else "cyan")
            ax.plot(r / factor, c / factor, "o", mfc="none", mec=color, ms=14, mew=2)
            ax.annotate(
                rep["problem"] + (" (FP)" if rep["false_positive"] else ""),
                (r / factor, c / factor),
                color=color,
                fontsize=8,
                xytext=(8, 8),
                textcoords="offset points",
            )
        snr = t["snr"]
        ax.set_title(
            f"{cls}: D{t['expnum']:08d} c{t['ccd']:02d} {t['band']}  S/N/pix "
            f"{'n/a' if snr != snr else f'{snr:.2f}'}  ({'reported' if t['reported'] else 'not reported'})",
            fontsize=10,
        )
        ax.set_xlabel("row (numpy axis 0) / 8")
        ax.set_ylabel("col / 8")
        fname = os.path.join(out_dir, cls.replace("/", "").replace(" ", "_").replace("-", "_").lower() + ".png")
        fig.tight_layout()
        fig.savefig(fname)
        plt.close(fig)
        written[cls] = fname
    return {"job": "gallery", "archive": archive, "out": out_dir, "classes": len(written), "files": written}
