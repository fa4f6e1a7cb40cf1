"""Train / validation / test splits by exposure.

All CCDs of one exposure land on the same side: exposure-wide artifacts (ghosts, scattered
light, satellite tracks crossing several CCDs, fringing, guiding) make neighbouring CCDs of one
exposure near-copies of each other's label, so a CCD-level split would leak the test set into
training. The split is a pure function of the sorted exposure numbers, the fractions and the
seed, so the same store gives the same split in every job (CNN and SVM compare on one test
set); it is saved with every model (``model.json``) and can be passed back with ``--split``.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ..errors import ConfigError

SIDES = ("train", "val", "test")


class SplitError(ConfigError):
    """A split that cannot be made or does not fit the data (exit code 2, like a bad config)."""


def split_exposures(expnums, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> dict:
    """Assign every exposure to train/val/test; returns the split record (JSON-able).

    Exposures are shuffled with ``numpy.random.default_rng(seed)`` and cut at the cumulative
    fractions (rounded; val and test get at least one exposure each when there are >= 3).
    """
    exps = sorted({int(e) for e in expnums})
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6:
        raise SplitError(f"split fractions {fractions} must be three non-negative numbers summing to 1")
    if len(exps) < 3:
        raise SplitError(
            f"only {len(exps)} labelled exposure(s) in the store: a split by exposure needs at "
            "least 3 (train, validation, test); preprocess more exposures with labels"
        )
    order = np.random.default_rng(seed).permutation(len(exps))
    n = len(exps)
    n_val = max(1, int(round(fr[1] * n))) if fr[1] > 0 else 0
    n_test = max(1, int(round(fr[2] * n))) if fr[2] > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise SplitError(f"{n} exposures leave none for training with fractions {fr}")
    shuffled = [exps[i] for i in order]
    sides = {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }
    rec = {"seed": int(seed), "fractions": fr, **sides}
    rec["id"] = split_id(rec)
    return rec


def split_id(rec: dict) -> str:
    """The id of a split: a hash of its exposures per side."""
    blob = json.dumps({s: rec[s] for s in SIDES}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def side_of(rec: dict) -> dict:
    """expnum -> side name."""
    return {e: s for s in SIDES for e in rec[s]}


def check_split(rec: dict, expnums) -> None:
    """A split loaded from a file must be disjoint and cover every labelled exposure."""
    seen = {}
    for s in SIDES:
        if s not in rec:
            raise SplitError(f"split has no {s!r} list")
        for e in rec[s]:
            if e in seen:
                raise SplitError(f"exposure {e} is on both the {seen[e]} and the {s} side of the split")
            seen[e] = s
    missing = sorted({int(e) for e in expnums} - set(seen))
    if missing:
        raise SplitError(
            f"{len(missing)} labelled exposure(s) are in no side of the split "
            f"(e.g. {missing[:5]}): the store changed since the split was made; "
            "make a new split (drop --split) or add them explicitly"
        )
    if rec.get("id") and rec["id"] != split_id(rec):
        raise SplitError("split id does not match its exposure lists (edited by hand?)")


def load_split(path: str) -> dict:
    """A split from a split JSON file or from a model's model.json (its ``split``)."""
    with open(path) as f:
        rec = json.load(f)
    rec = rec.get("split", rec)  # a model.json works too
    rec.setdefault("id", split_id(rec))
    return rec
