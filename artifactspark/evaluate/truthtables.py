"""The simulator's truth tables (``truth.parquet``, ``ccds.parquet``): found, read and normalised
once for :mod:`artifactspark.evaluate.truth` (pandas / pyarrow)."""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import ArtifactSparkError
from .scores import _bool

#: Columns the simulator adds for the detectability floor; older archives lack them.
TRUTH_FLOOR_COLUMNS = ("sn_binned", "contrast", "n_sharp", "floor_rule", "detectable")
#: The ones this module reads (contrast and n_sharp only explain the floor).
TRUTH_FLOOR_USED = ("sn_binned", "floor_rule", "detectable")
CCD_TRUTH_COLUMNS = ("detectable_classes", "truth_clean", "truth_detectable", "primary_class_truth")
ERASED_BY_BINNING = "erased_by_binning"
#: Per test CCD: "detectable" (>= 1 feature above its floor), "clean" (nothing injected),
#: "below_floor" (only features below their floor), "unmatched" (not in the truth's CCD table).
CATEGORIES = ("detectable", "clean", "below_floor", "unmatched")


class TruthTableError(ArtifactSparkError):
    """The simulator's truth tables are missing or unreadable."""


def resolve_truth_paths(path: str) -> tuple[str, str | None]:
    """``(truth.parquet, ccds.parquet or None)`` for a labels directory, an archive root (with
    ``labels/``) or the path of ``truth.parquet`` itself; ccds.parquet is looked for beside it."""
    path = str(path)
    if os.path.isdir(path):
        for d in (path, os.path.join(path, "labels")):
            if os.path.isfile(os.path.join(d, "truth.parquet")):
                path = os.path.join(d, "truth.parquet")
                break
        else:
            raise TruthTableError(
                f"{path}: no truth.parquet in this directory (nor in its labels/); pass the "
                "simulator's ROOT/labels directory or its truth.parquet"
            )
    elif not os.path.isfile(path):
        raise TruthTableError(
            f"{path}: no such truth table; pass the simulator's ROOT/labels directory (or "
            "ROOT/labels/truth.parquet), or leave the truth out (real data)"
        )
    ccds = os.path.join(os.path.dirname(os.path.abspath(path)), "ccds.parquet")
    return path, (ccds if os.path.isfile(ccds) else None)


def load_truth(path: str):
    """Read the simulator's truth: ``(truth_df, ccds_df or None, {"truth": path, "ccds": path or None})``.

    ``path``: see :func:`resolve_truth_paths`. Raises :class:`TruthTableError` for a missing or
    unreadable table or one without expnum, ccd and cls; missing floor columns are not an error
    (:func:`prepare_truth` falls back and warns).
    """
    import pyarrow.parquet as pq

    tpath, cpath = resolve_truth_paths(path)
    frames = []
    for p in (tpath, cpath):
        if p is None:
            frames.append(None)
            continue
        try:
            frames.append(pq.read_table(p).to_pandas())
        except Exception as e:  # noqa: BLE001 - any reader failure means a broken file
            raise TruthTableError(f"{p}: not a readable Parquet file ({type(e).__name__}: {e})") from e
    truth_df, ccds_df = frames
    cols = set(truth_df.columns)
    if not {"expnum", "cls"} <= cols or not ({"ccd", "ccdnum"} & cols):
        raise TruthTableError(f"{tpath}: a truth table needs expnum, ccd and cls columns; has {sorted(cols)}")
    if ccds_df is not None and (
        not {"expnum"} <= set(ccds_df.columns) or not ({"ccd", "ccdnum"} & set(ccds_df.columns))
    ):
        raise TruthTableError(f"{cpath}: the CCD table needs expnum and ccd columns; has {list(ccds_df.columns)}")
    return truth_df, ccds_df, {"truth": tpath, "ccds": cpath}


def _classes_tuple(v) -> tuple:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ()
    return tuple(sorted({str(x) for x in v}))


def _opt_str(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def _keys_int64(df):
    if "ccdnum" not in df.columns:
        df = df.rename(columns={"ccd": "ccdnum"})
    df["expnum"] = df["expnum"].astype(np.int64)
    df["ccdnum"] = df["ccdnum"].astype(np.int64)
    return df


def _ccds_from_features(f):
    """Per-CCD truth derived from the feature rows (every CCD here has at least one feature)."""
    import pandas as pd

    keys = ["expnum", "ccdnum"]
    if not len(f):
        return pd.DataFrame(
            {
                "expnum": np.zeros(0, np.int64),
                "ccdnum": np.zeros(0, np.int64),
                "classes": [],
                "detectable_classes": [],
                "truth_clean": np.zeros(0, bool),
                "truth_detectable": np.zeros(0, bool),
                "primary_class_truth": [],
            }
        )
    classes = f.groupby(keys, sort=True)["cls"].agg(lambda c: tuple(sorted(set(c))))
    d = f[f["detectable"]]
    det_cls = d.groupby(keys)["cls"].agg(lambda c: tuple(sorted(set(c))))
    ranked = d.assign(_r=d["_rank"].fillna(-np.inf)).sort_values(
        keys + ["_r", "cls"], ascending=[True, True, False, True], kind="mergesort"
    )
    primary = ranked.groupby(keys)["cls"].first()
    out = pd.DataFrame({"classes": classes})
    out["detectable_classes"] = [det_cls.get(k, ()) for k in out.index]
    out["truth_clean"] = False
    out["truth_detectable"] = [len(v) > 0 for v in out["detectable_classes"]]
    out["primary_class_truth"] = [primary.get(k) for k in out.index]
    return out.reset_index()


def prepare_truth(truth_df, ccds_df=None) -> dict:
    """The truth tables normalised for :func:`truth_evaluation` (computed once, shared by models).

    Returns ``{"features": DataFrame (one row per injected feature: expnum, ccdnum, cls,
    detectable, floor_rule, the strength columns, ...), "ccds": DataFrame (one row per CCD:
    expnum, ccdnum, classes, detectable_classes (tuples), truth_clean, truth_detectable,
    primary_class_truth), "has_ccds_table", "fallback", "missing_columns", "warnings"}``.

    Older archives: without ``detectable`` every injected feature counts as detectable; without
    the per-CCD columns they are derived from the features (a CCD of ccds.parquet without a
    feature is clean; without ccds.parquet at all, a test CCD absent from truth.parquet is
    clean). Each fallback adds a warning.
    """
    import pandas as pd

    warnings = []
    f = _keys_int64(pd.DataFrame(truth_df).copy())
    if "cls" not in f.columns:
        raise TruthTableError(f"the truth table has no cls column; columns: {list(f.columns)}")
    f["cls"] = f["cls"].astype(str)
    missing = [c for c in TRUTH_FLOOR_USED if c not in f.columns]
    if "detectable" in f.columns:
        f["detectable"] = _bool(f["detectable"])
    else:
        f["detectable"] = True
    if "floor_rule" not in f.columns:
        f["floor_rule"] = None
    if missing:
        warnings.append(
            f"truth.parquet lacks {missing} (an archive simulated before the detectability floor): "
            + (
                "every injected feature counts as detectable, so nothing is below the floor and the "
                "floor figures are empty"
                if "detectable" in missing
                else "the figures use the columns present"
            )
        )
    rank_col = next((c for c in ("sn_binned", "snr") if c in f.columns), None)
    f["_rank"] = f[rank_col].astype(np.float64) if rank_col else np.nan
    derived = _ccds_from_features(f)
    missing_c = []
    if ccds_df is None:
        warnings.append(
            "no ccds.parquet beside truth.parquet: the per-CCD truth is derived from truth.parquet, "
            "and a test CCD without a truth row counts as clean"
        )
        c = derived
    else:
        c = _keys_int64(pd.DataFrame(ccds_df).copy())
        if c.duplicated(["expnum", "ccdnum"]).any():
            warnings.append(
                f"ccds.parquet holds {int(c.duplicated(['expnum', 'ccdnum']).sum())} duplicate CCD rows; "
                "the first of each is used"
            )
            c = c.drop_duplicates(["expnum", "ccdnum"])
        missing_c = [x for x in CCD_TRUTH_COLUMNS if x not in c.columns]
        orphans = derived[["expnum", "ccdnum"]].merge(c[["expnum", "ccdnum"]], how="left", indicator=True)
        n_orphan = int((orphans["_merge"] == "left_only").sum())
        if n_orphan:
            warnings.append(
                f"{n_orphan} CCDs have truth rows but no ccds.parquet row (tables of different runs?); "
                "they are left out"
            )
        if missing_c:
            warnings.append(
                f"ccds.parquet lacks {missing_c} (an older archive): the per-CCD truth is derived from "
                "truth.parquet (a CCD without a truth row is clean)"
            )
            c = c[["expnum", "ccdnum"]].merge(derived, how="left", on=["expnum", "ccdnum"])
            c["classes"] = [v if isinstance(v, tuple) else () for v in c["classes"]]
            c["detectable_classes"] = [v if isinstance(v, tuple) else () for v in c["detectable_classes"]]
            c["truth_clean"] = [len(v) == 0 for v in c["classes"]]
            c["truth_detectable"] = [len(v) > 0 for v in c["detectable_classes"]]
            c["primary_class_truth"] = [_opt_str(v) for v in c["primary_class_truth"]]
        else:
            c["detectable_classes"] = [_classes_tuple(v) for v in c["detectable_classes"]]
            c["truth_clean"] = _bool(c["truth_clean"])
            c["truth_detectable"] = _bool(c["truth_detectable"])
            c["primary_class_truth"] = [_opt_str(v) for v in c["primary_class_truth"]]
            if "classes" in c.columns:
                c["classes"] = [_classes_tuple(v) for v in c["classes"]]
            else:
                d = c[["expnum", "ccdnum"]].merge(derived[["expnum", "ccdnum", "classes"]], how="left")
                c["classes"] = [v if isinstance(v, tuple) else () for v in d["classes"]]
            if "detectable" not in missing:  # cross-check the two tables
                chk = c[["expnum", "ccdnum", "truth_detectable", "truth_clean"]].merge(
                    derived[["expnum", "ccdnum", "truth_detectable"]],
                    how="left",
                    on=["expnum", "ccdnum"],
                    suffixes=("", "_f"),
                    indicator=True,
                )
                has_f = chk["_merge"] == "both"
                bad = int(
                    (
                        (chk["truth_detectable"].to_numpy(dtype=bool) != _bool(chk["truth_detectable_f"]))
                        | (chk["truth_clean"].to_numpy(dtype=bool) == has_f.to_numpy())
                    ).sum()
                )
                if bad:
                    warnings.append(
                        f"ccds.parquet and truth.parquet disagree on {bad} CCDs (truth_clean / "
                        "truth_detectable vs the feature rows); ccds.parquet is used"
                    )
    cols = [
        "expnum",
        "ccdnum",
        "classes",
        "detectable_classes",
        "truth_clean",
        "truth_detectable",
        "primary_class_truth",
    ]
    c = c[cols].reset_index(drop=True)
    return {
        "features": f,
        "ccds": c,
        "has_ccds_table": ccds_df is not None,
        "fallback": bool(missing or missing_c or ccds_df is None),
        "missing_columns": {"truth.parquet": missing, "ccds.parquet": missing_c if ccds_df is not None else None},
        "strength_rank": rank_col,
        "warnings": warnings,
    }
