"""The issue's targets (issue 9): their thresholds, their wording, and the rows of the report's
targets table (MET / NOT MET / NOT ASSESSED, the figure, the test-set size, why)."""

from __future__ import annotations

from .document import _f

# The targets (issue 9), measured against the simulator's truth.
TARGET_RECALL = 0.98  # binary: recall on CCDs with a detectable artifact ...
TARGET_FPR = 0.05  # ... at this FPR on clean CCDs
TARGET_CLASS_RECALL = 0.90  # every class above its floor with >= TARGET_MIN_SUPPORT test CCDs
TARGET_MACRO_F1 = 0.85  # many-class macro-F1 vs the truth's primary class
TARGET_MEAN_AUC = 0.95  # multi-label mean per-class ROC AUC
TARGET_MCNEMAR_P = 0.05  # CNN beats SVM: exact McNemar test in the CNN's favour
TARGET_MIN_SUPPORT = 20
THIN_CLASSES = 3  # a many-class average over fewer classes is thin evidence (met: NOT ASSESSED)
THIN_BROAD_SUPPORT = 10  # ... and the report gives the macro-F1 over classes with this many test CCDs beside it
NO_TRUTH = "no truth table (real data)"
T_BINARY = (
    f"binary vs truth: recall >= {TARGET_RECALL} on CCDs with a detectable artifact at FPR <= {TARGET_FPR} "
    "on clean CCDs"
)
T_CLASS = (
    f"every class above its floor with >= {TARGET_MIN_SUPPORT} test CCDs has recall >= {TARGET_CLASS_RECALL} (vs truth)"
)
T_MANY = (
    f"many-class macro-F1 >= {TARGET_MACRO_F1} vs the truth's primary class (classes with >= "
    f"{TARGET_MIN_SUPPORT} test CCDs)"
)
T_ML = (
    f"multi-label mean per-class ROC AUC >= {TARGET_MEAN_AUC} vs truth (classes with >= {TARGET_MIN_SUPPORT} positives)"
)
T_CVS = f"CNN beats SVM vs truth (exact McNemar p < {TARGET_MCNEMAR_P})"
V_BINARY = f"volunteer labels: binary recall >= {TARGET_RECALL} at FPR <= {TARGET_FPR} (capped by the ceiling)"
V_CLASS = (
    f"volunteer labels: every class with >= {TARGET_MIN_SUPPORT} test CCDs flagged >= {TARGET_CLASS_RECALL} "
    "(capped by the ceiling)"
)
V_MANY = f"volunteer labels: many-class macro-F1 >= {TARGET_MACRO_F1} (capped by the ceiling)"
V_ML = f"volunteer labels: multi-label mean per-class ROC AUC >= {TARGET_MEAN_AUC} (capped by the ceiling)"
V_CVS = f"volunteer labels: CNN beats SVM (exact McNemar p < {TARGET_MCNEMAR_P})"
INFO = "informational (volunteer labels)"


def _is_cnn(s) -> bool:
    """A CNN, or a derived (binary / multiclass) view of one (model.json ``derived_from``)."""
    return s["kind"] == "cnn" or (bool(s.get("derived_from")) and s["kind"] != "svm")


def _truth_size(s):
    tc = s["truth"]["test_ccds"]
    return (
        f"{tc['detectable']} detectable-artifact and {tc['clean']} clean test CCDs ({tc['below_floor']} with only "
        f"below-floor artifacts left out"
        + (f", {tc['unmatched']} without truth" if tc["unmatched"] else "")
        + f"; {s['n_exposures']} exposures)"
    )


def _status(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _role(s, problem: str) -> str:
    if s["kind"] == "svm":
        return "informational (SVM; the target is the CNN's)"
    if s["problem"] != problem:
        return f"informational (the {s['problem']} model's view)"
    return "target"


def _row(
    target_id, target, basis, model, split_id, measured, test_set, n_test, status, reason, role="target", **extra
) -> dict:
    r = {
        "id": target_id,
        "target": target,
        "basis": basis,
        "role": role,
        "model": model,
        "split_id": split_id,
        "measured": measured,
        "test_set": test_set,
        "n_test": int(n_test or 0),
        "status": status,
        "reason": reason or "-",
    }
    r.update(extra)
    return r


def _ms_note(s) -> str:
    return (
        ""
        if s["min_support"] == TARGET_MIN_SUPPORT
        else f"computed with min_support {s['min_support']}, not the target's {TARGET_MIN_SUPPORT}"
    )


def _join(parts) -> str:
    return "; ".join(p for p in parts if p)


def _capped(value, ceiling, target, higher=True):
    """(status, goal, reason) of a volunteer-label figure whose goal is the target capped by the ceiling."""
    if value is None:
        return "NOT ASSESSED", None, "the figure is undefined on this test set"
    if ceiling is None:
        goal = target
        why = f"no ceiling ({NO_TRUTH}): against the plain target {target}"
    else:
        goal = min(target, ceiling) if higher else max(target, ceiling)
        share = f"; the model reaches {value / ceiling:.1%} of the ceiling" if higher and ceiling else ""
        why = (
            f"goal {'>=' if higher else '<='} {goal:.4f} = the target {target} capped by the ceiling "
            f"{ceiling:.4f}{share}"
        )
    ok = value >= goal if higher else value <= goal
    return _status(ok), goal, why


def _cl(t, value) -> str:
    """The suffix ' (ceiling x)' when the truth is known (``t``), else an empty string."""
    return f" (ceiling {_f(value, 4)})" if t else ""
