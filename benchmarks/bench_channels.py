"""Cost of the sharpness channels (max_sn, spread_sn, noise_sigma) on one full-size CCD.

  .venv/bin/python benchmarks/bench_channels.py [--rounds 15]

One script run, one synthetic 4096 x 2048 float32 CCD (sky + Gaussian noise, stars, cosmic rays,
a masked bad column, zero-weight pixels; SCI/MSK/WGT/bkg as the executors get them from the
reader), on one core. Timed, interleaved round by round so that load on the machine hits every
variant alike (min and median over the rounds):

  before     preprocess_planes as it was before the channels (its old body, verbatim, calling
             the same library functions: valid_pixels, checks, subtract, block_mean, stretch)
  after      preprocess_planes as it is now (the above + noise_sigma + bin_sharpness)
  channels   noise_sigma + bin_sharpness alone
  sigma      noise_sigma alone
  and two spread estimators that were not chosen, each with the per-bin max, for comparison:
  alt_std    max + plain per-bin standard deviation (masked; sums and sums of squares, float64)
  alt_mad    max + per-bin scaled MAD (a second sort of |x - median| per bin)

Prints one JSON line at the end: seconds per CCD, extra = after - before, ratio = after / before.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from artifactspark.config import PipelineConfig  # noqa: E402
from artifactspark.features.image import (  # noqa: E402
    arcsinh_stretch,
    bin_sharpness,
    block_mean,
    noise_sigma,
    preprocess_planes,
    valid_pixels,
)


def make_ccd(shape=(4096, 2048), sky=1000.0, noise=6.0, seed=7):
    rng = np.random.default_rng(seed)
    bkg = (sky + 0.002 * np.arange(shape[0], dtype=np.float32)[:, None] + np.zeros(shape, np.float32)).astype(
        np.float32
    )
    sci = bkg + rng.normal(0, noise, shape).astype(np.float32)
    yy, xx = np.mgrid[-6:7, -6:7]
    psf = np.exp(-(yy**2 + xx**2) / (2 * 1.8**2)).astype(np.float32)
    for r, c, f in zip(
        rng.integers(10, shape[0] - 10, 400), rng.integers(10, shape[1] - 10, 400), rng.uniform(50, 5000, 400)
    ):
        sci[r - 6 : r + 7, c - 6 : c + 7] += f * psf
    sci[rng.integers(0, shape[0], 3000), rng.integers(0, shape[1], 3000)] += rng.uniform(50, 2000, 3000)
    msk = np.zeros(shape, np.int32)
    msk[:, 1234] = 1  # BPM column
    msk[:, :15] |= 512  # EDGE
    msk[:, -15:] |= 512
    wgt = np.full(shape, 1 / noise**2, np.float32)
    wgt[2000:2010, 300:700] = 0  # zero weight
    return sci, msk, bkg, wgt


def before(sci, msk, bkg, wgt, cfg):
    """preprocess_planes as it was before the channels (its body at FEATURE_VERSION 1, for a CCD
    with a bkg file), calling the same library functions."""
    valid = valid_pixels(sci, msk, cfg.mask.bitmask, wgt, cfg.mask.zero_weight)
    if not np.isfinite(sci).any():
        raise AssertionError("all_nan")
    if not valid.any():
        raise AssertionError("all_masked")
    if not np.isfinite(bkg[valid]).all():
        raise AssertionError("bad_background")
    sub = sci - bkg
    mean, frac = block_mean(sub, valid, cfg.downsample.factor, cfg.downsample.edge)
    has_data = frac < 1.0
    y, m, M = arcsinh_stretch(mean, has_data, cfg.stretch.softening, cfg.stretch.percentiles)
    if not np.isfinite(y).all():
        raise AssertionError("non_finite")
    return {
        "image": y,
        "mask_frac": frac,
        "stretch_min": m,
        "stretch_max": M,
        "masked_fraction": float(1.0 - valid.mean()),
        "bkg_source": "file",
    }


def _bins(sub, valid, f):
    H, W = sub.shape[0] // f, sub.shape[1] // f
    x = sub[: H * f, : W * f].reshape(H, f, W, f).transpose(0, 2, 1, 3).reshape(H * W, f * f)
    v = valid[: H * f, : W * f].reshape(H, f, W, f).transpose(0, 2, 1, 3).reshape(H * W, f * f)
    return x, v, H, W


def alt_std(sub, valid, f, sigma):
    """Per-bin max and plain (masked) standard deviation from sums and sums of squares in float64
    over contiguous per-bin rows (of the forms tried, the cheapest: the same sums over the
    strided (H, f, W, f) view took ~1.4x longer)."""
    x, v, H, W = _bins(np.where(valid, sub, 0.0), valid, f)
    n = np.count_nonzero(v, axis=1)
    s1 = x.sum(axis=1, dtype=np.float64)
    s2 = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    m = s1 / np.maximum(n, 1)
    std = np.sqrt(np.maximum(s2 / np.maximum(n, 1) - m * m, 0.0))
    mx = np.where(n > 0, np.where(v, x, -np.inf).max(axis=1), 0.0)
    return (mx / sigma).reshape(H, W), (std / sigma).reshape(H, W)


def alt_mad(sub, valid, f, sigma):
    """Per-bin max and 1.4826 x MAD: the median from one sort, the MAD from a second one."""
    x, v, H, W = _bins(sub, valid, f)
    xs = np.where(v, x, np.inf)
    xs.sort(axis=1)
    n = v.sum(axis=1)
    last = np.maximum(n, 1) - 1
    rows = np.arange(H * W)
    med = 0.5 * (xs[rows, last // 2] + xs[rows, (last + 1) // 2])
    dev = np.where(v, np.abs(x - med[:, None]), np.inf)
    dev.sort(axis=1)
    mad = 0.5 * (dev[rows, last // 2] + dev[rows, (last + 1) // 2])
    has = n > 0
    mx = np.where(has, xs[rows, last], 0.0)
    return (mx / sigma).reshape(H, W), (np.where(has, 1.4826 * mad, 0.0) / sigma).reshape(H, W)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    cfg = PipelineConfig()
    sci, msk, bkg, wgt = make_ccd(tuple(cfg.input.ccd_shape))
    valid = valid_pixels(sci, msk, cfg.mask.bitmask, wgt, cfg.mask.zero_weight)
    sub = sci - bkg
    f = cfg.downsample.factor
    sigma = noise_sigma(sub, valid)

    variants = {
        "before": lambda: before(sci, msk, bkg, wgt, cfg),
        "after": lambda: preprocess_planes(sci, msk, bkg, wgt, cfg),
        "channels": lambda: bin_sharpness(sub, valid, f, noise_sigma(sub, valid), cfg.downsample.edge),
        "sigma": lambda: noise_sigma(sub, valid),
        "alt_std": lambda: alt_std(sub, valid, f, sigma),
        "alt_mad": lambda: alt_mad(sub, valid, f, sigma),
    }
    times = {k: [] for k in variants}
    for fn in variants.values():  # warm-up: page faults, first allocations
        fn()
    for _ in range(args.rounds):
        for k, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)

    res = {"ccd_shape": list(sci.shape), "rounds": args.rounds, "noise_sigma": round(sigma, 3)}
    for k, ts in times.items():
        res[f"{k}_s_min"] = round(min(ts), 4)
        res[f"{k}_s_median"] = round(float(np.median(ts)), 4)
    for stat in ("min", "median"):
        b, a = res[f"before_s_{stat}"], res[f"after_s_{stat}"]
        res[f"extra_s_{stat}"] = round(a - b, 4)
        res[f"ratio_after_to_before_{stat}"] = round(a / b, 3)
    # the chosen outputs, for the record: pure sky gives spread_sn ~ 1
    out = preprocess_planes(sci, msk, bkg, wgt, cfg)
    res["median_spread_sn"] = round(float(np.median(out["spread_sn"])), 3)
    res["max_max_sn"] = round(float(out["max_sn"].max()), 1)
    # what each channel adds to a stored row (float16, CompressedNdarrayCodec, as in the store)
    from artifactspark.features.store import feature_schema

    schema = feature_schema(out["image"].shape, len(cfg.taxonomy.classes), "float16")
    res["encoded_kib_float16"] = {
        c: round(len(schema.fields[c].codec.encode(schema.fields[c], out[c].astype(np.float16))) / 1024, 1)
        for c in ("image", "mask_frac", "max_sn", "spread_sn")
    }
    # and what encoding them costs (outside preprocess_planes: the row's Petastorm encoding)
    enc = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        for c in ("max_sn", "spread_sn"):
            schema.fields[c].codec.encode(schema.fields[c], out[c].astype(np.float16))
        enc.append(time.perf_counter() - t)
    res["encode_new_channels_s_min"] = round(min(enc), 4)
    res["encode_new_channels_s_median"] = round(float(np.median(enc)), 4)
    for k in variants:
        print(f"{k:9s} min {res[f'{k}_s_min'] * 1e3:7.1f} ms   median {res[f'{k}_s_median'] * 1e3:7.1f} ms", flush=True)
    print(
        f"extra per CCD (after - before): {res['extra_s_min'] * 1e3:.1f} ms (min), "
        f"{res['extra_s_median'] * 1e3:.1f} ms (median); ratio after/before {res['ratio_after_to_before_min']} "
        f"(min), {res['ratio_after_to_before_median']} (median)",
        flush=True,
    )
    print(
        f"encoded float16 KiB per CCD: {res['encoded_kib_float16']}; encoding max_sn + spread_sn: "
        f"{res['encode_new_channels_s_median'] * 1e3:.1f} ms (median)",
        flush=True,
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
