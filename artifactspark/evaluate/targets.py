"""The report's targets table: the targets against the simulator's truth, then the same figures
against the volunteer labels beside their ceilings; and the paired CNN-vs-SVM comparison (exact
McNemar test) one of the targets rests on."""

from __future__ import annotations

import math

import numpy as np

from .document import _f, _size
from .targetdefs import (
    INFO,
    NO_TRUTH,
    TARGET_CLASS_RECALL,
    TARGET_FPR,
    TARGET_MACRO_F1,
    TARGET_MCNEMAR_P,
    TARGET_MEAN_AUC,
    TARGET_MIN_SUPPORT,
    TARGET_RECALL,
    V_BINARY,
    V_CLASS,
    V_CVS,
    V_MANY,
    V_ML,
    _capped,
    _cl,
    _is_cnn,
    _join,
    _row,
    _status,
)
from .truth import truth_correctness
from .truthtargets import _targets_truth


def _mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar (binomial) p-value for b vs c discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    return min(1.0, 2.0 * sum(math.exp(v) for v in logs))


def _headline(s):
    """(metric name, value) used for CNN vs SVM against the volunteer labels: binary -> accuracy, else macro-F1."""
    if s["problem"] == "binary":
        return "accuracy", s["accuracy"]
    return f"macro-F1 (classes with >= {s['min_support']} test examples)", s["macro_f1"]


def _truth_headline(s):
    """(metric name, value) for CNN vs SVM against the truth."""
    t = s.get("truth") or {}
    if s["problem"] == "binary":
        return (
            "accuracy vs truth (detectable vs clean CCDs, at the model's threshold)",
            (t.get("binary") or {}).get("accuracy"),
        )
    return (
        f"macro-F1 vs the truth's primary class (classes with >= {s['min_support']} test CCDs)",
        (t.get("manyclass") or {}).get("macro_f1"),
    )


def _correct(s, pred):
    """Per test CCD (expnum, ccdnum) -> was the model right under its accuracy rule (volunteer labels)."""
    keep = np.isin(pred["label"], (0, 1))
    if s["problem"] == "multilabel":
        ok = (pred["p_artifact"] >= 0.5) == (pred["label"] == 1)
    else:
        ok = pred["probs"].argmax(axis=1) == pred["y_true"]
    return {(int(e), int(c)): bool(o) for e, c, o, k in zip(pred["expnum"], pred["ccdnum"], ok, keep) if k}


def _paired(ca: dict, cb: dict) -> dict:
    """Exact McNemar test of two models' per-CCD correctness on their common CCDs."""
    common = ca.keys() & cb.keys()
    b = sum(1 for key in common if ca[key] and not cb[key])
    c = sum(1 for key in common if cb[key] and not ca[key])
    p = _mcnemar_p(b, c)
    return {
        "common_test_ccds": len(common),
        "cnn_right_svm_wrong": b,
        "svm_right_cnn_wrong": c,
        "mcnemar_p": p,
        "significant": bool(b > c and p < TARGET_MCNEMAR_P),
    }


def _compare(models, preds, frames=None):
    """CNN (or a derived view of one) vs SVM for every (split id, problem) holding both kinds.

    Against the volunteer labels (each model's accuracy rule) and, with the truth (``frames``:
    per model :func:`~artifactspark.evaluate.metrics.truth_ccd_frame` or None), against the truth under
    "truth". ``significant``: the CNN is right on more of the discordant CCDs and the exact
    McNemar p < TARGET_MCNEMAR_P.
    """
    frames = frames or [None] * len(models)
    out = []
    for i, a in enumerate(models):
        for j, b in enumerate(models):
            if (
                not _is_cnn(a)
                or b["kind"] != "svm"
                or a["problem"] != b["problem"]
                or a["split"]["id"] != b["split"]["id"]
            ):
                continue
            metric, va = _headline(a)
            _, vb = _headline(b)
            row = {
                "split_id": a["split"]["id"],
                "problem": a["problem"],
                "cnn": a["name"],
                "svm": b["name"],
                "metric": metric,
                "cnn_value": va,
                "svm_value": vb,
                "cnn_beats_svm": None if va is None or vb is None else bool(va > vb),
            }
            row.update(_paired(_correct(a, preds[i]), _correct(b, preds[j])))
            row["truth"] = None
            if frames[i] is not None and frames[j] is not None:
                tm, ta = _truth_headline(a)
                _, tb = _truth_headline(b)
                tr = {
                    "metric": tm,
                    "cnn_value": ta,
                    "svm_value": tb,
                    "cnn_beats_svm": None if ta is None or tb is None else bool(ta > tb),
                }
                tr.update(
                    _paired(truth_correctness(frames[i], a["problem"]), truth_correctness(frames[j], b["problem"]))
                )
                row["truth"] = tr
            out.append(row)
    return out


def _targets_volunteer(models, comparisons) -> list:
    """The same figures against the volunteer labels, each beside its ceiling (informational rows)."""
    rows = []
    for s in [m for m in models if m["problem"] == "binary"]:
        t, sid = s.get("truth"), s["split"]["id"]
        vb = t["volunteer"]["binary"] if t else s["binary"]
        cb = t["ceiling"]["binary"] if t else None
        st_r, goal_r, why_r = _capped(vb["recall"], cb["recall"] if cb else None, TARGET_RECALL)
        st_f, goal_f, why_f = _capped(vb["fpr"], cb["fpr"] if cb else None, TARGET_FPR, higher=False)
        measured = (
            f"recall {vb['recall']:.4f}{_cl(t, cb['recall'] if cb else None)}, FPR {vb['fpr']:.4f}"
            f"{_cl(t, cb['fpr'] if cb else None)}"
        )
        status = (
            "NOT ASSESSED" if not (vb["positives"] and vb["negatives"]) else _status(st_r == "MET" and st_f == "MET")
        )
        rows.append(
            _row(
                "binary_volunteers",
                V_BINARY,
                "volunteers",
                s["name"],
                sid,
                measured,
                f"{vb['n']} labelled test CCDs ({vb['positives']} artifact, {vb['negatives']} clean)",
                vb["n"],
                status,
                _join([f"recall: {why_r}", f"FPR: {why_f}"]),
                INFO,
                ceiling={"recall": cb["recall"] if cb else None, "fpr": cb["fpr"] if cb else None},
            )
        )
        # per volunteer class: flagged share
        bbt = t["volunteer"]["binary_by_true_class"] if t else s["binary_by_true_class"]
        cbt = t["ceiling"]["binary_by_true_class"] if t else None
        q = []
        for i, name in enumerate(bbt["rows"][:-1]):
            n = int(sum(bbt["counts"][i]))
            if n >= TARGET_MIN_SUPPORT:
                share = bbt["counts"][i][1] / n
                cn = int(sum(cbt["counts"][i])) if cbt else 0
                csh = cbt["counts"][i][1] / cn if cbt and cn else None
                st, goal, _ = _capped(share, csh, TARGET_CLASS_RECALL)
                q.append((name, n, share, csh, st))
        if not q:
            rows.append(
                _row(
                    "class_recall_volunteers",
                    V_CLASS,
                    "volunteers",
                    s["name"],
                    sid,
                    f"no volunteer class has >= {TARGET_MIN_SUPPORT} test CCDs",
                    f"{vb['positives']} artifact CCDs",
                    0,
                    "NOT ASSESSED",
                    "the test set is too small",
                    INFO,
                )
            )
        else:
            worst = min(q, key=lambda r: r[2])
            fail = [r for r in q if r[4] != "MET"]
            rows.append(
                _row(
                    "class_recall_volunteers",
                    V_CLASS,
                    "volunteers",
                    s["name"],
                    sid,
                    f"lowest flagged share {worst[2]:.4f} ({worst[0]}, {worst[1]} CCDs){_cl(t, worst[3])} "
                    f"over {len(q)} classes",
                    f"{len(q)} volunteer classes with >= {TARGET_MIN_SUPPORT} test CCDs",
                    sum(r[1] for r in q),
                    _status(not fail),
                    _join(
                        [
                            ("short of the goal: " + ", ".join(f"{r[0]} {r[2]:.3f}{_cl(t, r[3])}" for r in fail))
                            if fail
                            else f"every class reaches min({TARGET_CLASS_RECALL}, its ceiling)",
                            "" if cbt else f"no ceiling ({NO_TRUTH}): against the plain target",
                        ]
                    ),
                    INFO,
                )
            )
    for s in [m for m in models if m["problem"] in ("multiclass", "multilabel")]:
        t, sid = s.get("truth"), s["split"]["id"]
        mv = t["volunteer"]["manyclass"] if t else s["manyclass_view"]
        cv = t["ceiling"]["manyclass"]["macro_f1"] if t else None
        st, goal, why = _capped(mv["macro_f1"], cv, TARGET_MACRO_F1)
        rows.append(
            _row(
                "manyclass_volunteers",
                V_MANY,
                "volunteers",
                s["name"],
                sid,
                f"macro-F1 {_f(mv['macro_f1'], 4)}{_cl(t, cv)} over {len(mv['macro_f1_classes'])} "
                f"classes with >= {s['min_support']} test CCDs",
                f"{mv['n']} labelled test CCDs with a volunteer class",
                mv["n"],
                st,
                why
                if mv["macro_f1"] is not None
                else f"no artifact class has >= {s['min_support']} volunteer-labelled test CCDs",
                INFO,
                ceiling=cv,
            )
        )
    for s in [m for m in models if m["problem"] == "multilabel"]:
        t, sid = s.get("truth"), s["split"]["id"]
        v = t["volunteer"]["multilabel"]["mean_auc"] if t else s.get("mean_auc")
        n_cls = len(t["volunteer"]["multilabel"]["mean_auc_classes"] if t else s.get("mean_auc_classes") or [])
        cv = t["ceiling"]["multilabel"]["mean_auc"] if t else None
        st, goal, why = _capped(v, cv, TARGET_MEAN_AUC)
        rows.append(
            _row(
                "multilabel_auc_volunteers",
                V_ML,
                "volunteers",
                s["name"],
                sid,
                f"mean ROC AUC {_f(v, 4)}{_cl(t, cv)} over {n_cls} classes with >= {s['min_support']} "
                "volunteer positives",
                _size(s),
                s["n"],
                st,
                why if v is not None else f"no class has >= {s['min_support']} volunteer positives",
                INFO,
                ceiling=cv,
            )
        )
    for c in comparisons:
        b, cc, p = c["cnn_right_svm_wrong"], c["svm_right_cnn_wrong"], c["mcnemar_p"]
        rows.append(
            _row(
                "cnn_vs_svm_volunteers",
                V_CVS,
                "volunteers",
                f"{c['cnn']} vs {c['svm']}",
                c["split_id"],
                (
                    f"{c['problem']} {c['metric']}: CNN {_f(c['cnn_value'], 4)} vs SVM {_f(c['svm_value'], 4)}; "
                    f"CNN right & SVM wrong on {b} CCDs, the reverse on {cc}; exact McNemar p = {p:.3g}"
                ),
                f"{c['common_test_ccds']} common labelled test CCDs",
                c["common_test_ccds"],
                _status(c["significant"]),
                "a paired test has no ceiling: both models face the same label errors",
                INFO,
                problem=c["problem"],
            )
        )
    return rows


def _targets(models, comparisons) -> list:
    """Every target row: against the truth (issue 9), then against the volunteer labels (informational)."""
    return _targets_truth(models, comparisons) + _targets_volunteer(models, comparisons)
