"""The issue's targets (issue 9) as rows of the report: each MET / NOT MET / NOT ASSESSED with the
figure, the test-set size and why; against the simulator's truth, then against the volunteer
labels beside their ceilings. Includes the paired CNN-vs-SVM comparison (exact McNemar test)
one of the targets rests on."""
from __future__ import annotations

import math

import numpy as np

from .classes import NO_ARTIFACT
from .document import _ci, _f, _size
from .truth import truth_correctness

# The targets (issue 9), measured against the simulator's truth.
TARGET_RECALL = 0.98         # binary: recall on CCDs with a detectable artifact ...
TARGET_FPR = 0.05            # ... at this FPR on clean CCDs
TARGET_CLASS_RECALL = 0.90   # every class above its floor with >= TARGET_MIN_SUPPORT test CCDs
TARGET_MACRO_F1 = 0.85       # many-class macro-F1 vs the truth's primary class
TARGET_MEAN_AUC = 0.95       # multi-label mean per-class ROC AUC
TARGET_MCNEMAR_P = 0.05      # CNN beats SVM: exact McNemar test in the CNN's favour
TARGET_MIN_SUPPORT = 20
NO_TRUTH = "no truth table (real data)"


def _mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar (binomial) p-value for b vs c discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    return min(1.0, 2.0 * sum(math.exp(v) for v in logs))


def _is_cnn(s) -> bool:
    """A CNN, or a derived (binary / multiclass) view of one (model.json ``derived_from``)."""
    return s["kind"] == "cnn" or (bool(s.get("derived_from")) and s["kind"] != "svm")


def _headline(s):
    """(metric name, value) used for CNN vs SVM against the volunteer labels: binary -> accuracy, else macro-F1."""
    if s["problem"] == "binary":
        return "accuracy", s["accuracy"]
    return f"macro-F1 (classes with >= {s['min_support']} test examples)", s["macro_f1"]


def _truth_headline(s):
    """(metric name, value) for CNN vs SVM against the truth."""
    t = s.get("truth") or {}
    if s["problem"] == "binary":
        return ("accuracy vs truth (detectable vs clean CCDs, at the model's threshold)",
                (t.get("binary") or {}).get("accuracy"))
    return (f"macro-F1 vs the truth's primary class (classes with >= {s['min_support']} test CCDs)",
            (t.get("manyclass") or {}).get("macro_f1"))


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
    return {"common_test_ccds": len(common), "cnn_right_svm_wrong": b, "svm_right_cnn_wrong": c, "mcnemar_p": p,
            "significant": bool(b > c and p < TARGET_MCNEMAR_P)}


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
            if not _is_cnn(a) or b["kind"] != "svm" or a["problem"] != b["problem"] \
                    or a["split"]["id"] != b["split"]["id"]:
                continue
            metric, va = _headline(a)
            _, vb = _headline(b)
            row = {"split_id": a["split"]["id"], "problem": a["problem"], "cnn": a["name"], "svm": b["name"],
                   "metric": metric, "cnn_value": va, "svm_value": vb,
                   "cnn_beats_svm": None if va is None or vb is None else bool(va > vb)}
            row.update(_paired(_correct(a, preds[i]), _correct(b, preds[j])))
            row["truth"] = None
            if frames[i] is not None and frames[j] is not None:
                tm, ta = _truth_headline(a)
                _, tb = _truth_headline(b)
                tr = {"metric": tm, "cnn_value": ta, "svm_value": tb,
                      "cnn_beats_svm": None if ta is None or tb is None else bool(ta > tb)}
                tr.update(_paired(truth_correctness(frames[i], a["problem"]),
                                  truth_correctness(frames[j], b["problem"])))
                row["truth"] = tr
            out.append(row)
    return out


def _truth_size(s):
    tc = s["truth"]["test_ccds"]
    return (f"{tc['detectable']} detectable-artifact and {tc['clean']} clean test CCDs ({tc['below_floor']} with only "
            f"below-floor artifacts left out" + (f", {tc['unmatched']} without truth" if tc["unmatched"] else "")
            + f"; {s['n_exposures']} exposures)")


def _status(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _role(s, problem: str) -> str:
    if s["kind"] == "svm":
        return "informational (SVM; the target is the CNN's)"
    if s["problem"] != problem:
        return f"informational (the {s['problem']} model's view)"
    return "target"


def _row(target_id, target, basis, model, split_id, measured, test_set, n_test, status, reason, role="target",
         **extra) -> dict:
    r = {"id": target_id, "target": target, "basis": basis, "role": role, "model": model, "split_id": split_id,
         "measured": measured, "test_set": test_set, "n_test": int(n_test or 0), "status": status,
         "reason": reason or "-"}
    r.update(extra)
    return r


def _ms_note(s) -> str:
    return ("" if s["min_support"] == TARGET_MIN_SUPPORT else
            f"computed with min_support {s['min_support']}, not the target's {TARGET_MIN_SUPPORT}")


def _join(parts) -> str:
    return "; ".join(p for p in parts if p)


T_BINARY = (f"binary vs truth: recall >= {TARGET_RECALL} on CCDs with a detectable artifact at FPR <= {TARGET_FPR} "
            "on clean CCDs")
T_CLASS = (f"every class above its floor with >= {TARGET_MIN_SUPPORT} test CCDs has recall >= {TARGET_CLASS_RECALL} "
           "(vs truth)")
T_MANY = (f"many-class macro-F1 >= {TARGET_MACRO_F1} vs the truth's primary class (classes with >= "
          f"{TARGET_MIN_SUPPORT} test CCDs)")
T_ML = f"multi-label mean per-class ROC AUC >= {TARGET_MEAN_AUC} vs truth (classes with >= {TARGET_MIN_SUPPORT} positives)"
T_CVS = f"CNN beats SVM vs truth (exact McNemar p < {TARGET_MCNEMAR_P})"
V_BINARY = f"volunteer labels: binary recall >= {TARGET_RECALL} at FPR <= {TARGET_FPR} (capped by the ceiling)"
V_CLASS = (f"volunteer labels: every class with >= {TARGET_MIN_SUPPORT} test CCDs flagged >= {TARGET_CLASS_RECALL} "
           "(capped by the ceiling)")
V_MANY = f"volunteer labels: many-class macro-F1 >= {TARGET_MACRO_F1} (capped by the ceiling)"
V_ML = f"volunteer labels: multi-label mean per-class ROC AUC >= {TARGET_MEAN_AUC} (capped by the ceiling)"
V_CVS = f"volunteer labels: CNN beats SVM (exact McNemar p < {TARGET_MCNEMAR_P})"
INFO = "informational (volunteer labels)"


def _targets_truth(models, comparisons) -> list:
    """The issue-9 target rows, against the simulator's truth."""
    rows = []
    # ---- binary
    bin_models = [s for s in models if s["problem"] == "binary"]
    for s in bin_models:
        role, sid, t = _role(s, "binary"), s["split"]["id"], s.get("truth")
        if t is None:
            rows.append(_row("binary_truth", T_BINARY, "truth", s["name"], sid, "-", _size(s), s["n"],
                             "NOT ASSESSED", NO_TRUTH, role))
            continue
        b = t["binary"]
        nd, nc = b["n_detectable"], b["n_clean"]
        measured = (f"recall {b['recall']:.4f} {_ci(b['recall_ci95'])} ({b['detected']}/{nd}), FPR {b['fpr']:.4f} "
                    f"{_ci(b['fpr_ci95'])} ({b['false_positives']}/{nc}) at threshold {s['threshold']:.4g}; "
                    f"ROC AUC {_f(b['roc_auc'], 4)}")
        reason = []
        if nd == 0 or nc == 0:
            status = "NOT ASSESSED"
            reason.append("the test set has no CCD with a detectable artifact" if nd == 0 else
                          "the test set has no clean CCD")
        else:
            ok_r, ok_f = b["recall"] >= TARGET_RECALL, b["fpr"] <= TARGET_FPR
            status = _status(ok_r and ok_f)
            if not ok_r:
                reason.append(f"recall {TARGET_RECALL - b['recall']:.4f} short of {TARGET_RECALL}")
            if not ok_f:
                reason.append(f"FPR {b['fpr'] - TARGET_FPR:.4f} above {TARGET_FPR}")
            if ok_r and ok_f:
                reason.append("both point estimates meet the target")
            if b["recall_ci95"][0] < TARGET_RECALL <= b["recall_ci95"][1]:
                reason.append(f"recall's 95% interval straddles {TARGET_RECALL}: {nd} detectable test CCDs do not "
                              f"resolve the target (one miss = {1 / nd:.4f} recall)")
            if b["fpr_ci95"][0] <= TARGET_FPR < b["fpr_ci95"][1]:
                reason.append(f"FPR's 95% interval straddles {TARGET_FPR} ({nc} clean test CCDs)")
        bf = b["below_floor"]
        if bf["n"]:
            reason.append(f"{bf['n']} test CCDs with only below-floor artifacts are not counted (flagged "
                          f"{bf['flagged']}, share {bf['flagged_share']:.3f})")
        reason.append(f"threshold {s['threshold_source']}")
        rows.append(_row("binary_truth", T_BINARY, "truth", s["name"], sid, measured, _truth_size(s), nd + nc,
                         status, _join(reason), role))
    if not any(_is_cnn(s) for s in bin_models):
        rows.append(_row("binary_truth", T_BINARY, "truth", "-", None,
                         "no binary CNN (nor a binary view of the multilabel CNN) among the models", "-", 0,
                         "NOT ASSESSED", "no binary CNN model given"))
    # ---- per class
    for s in bin_models:
        role, sid, t = _role(s, "binary"), s["split"]["id"], s.get("truth")
        if t is None:
            rows.append(_row("class_recall_truth", T_CLASS, "truth", s["name"], sid, "-", _size(s), s["n"],
                             "NOT ASSESSED", NO_TRUTH, role))
            continue
        pc = t["per_class"]
        q = [r for r in pc if r["n"] >= TARGET_MIN_SUPPORT]
        few = [r for r in pc if 0 < r["n"] < TARGET_MIN_SUPPORT]
        erased = t["floor"]["erased_by_binning"]
        extra = [(f"not covered (< {TARGET_MIN_SUPPORT} detectable test CCDs): "
                  + ", ".join(f"{r['cls']} ({r['n']})" for r in few)) if few else "",
                 (f"never above the floor (erased by the 8x8 binning): {', '.join(erased)}") if erased else ""]
        test_set = (f"{len(q)} classes with >= {TARGET_MIN_SUPPORT} of the {t['test_ccds']['detectable']} "
                    "detectable-artifact test CCDs")
        if not q:
            big = max(pc, key=lambda r: r["n"]) if pc else None
            rows.append(_row("class_recall_truth", T_CLASS, "truth", s["name"], sid,
                             f"no class is detectable on >= {TARGET_MIN_SUPPORT} test CCDs", test_set, 0,
                             "NOT ASSESSED",
                             _join([f"the test set is too small (largest: {big['cls']}, {big['n']} CCDs)" if big else
                                    "no detectable artifact on the test CCDs"] + extra), role))
            continue
        worst = min(q, key=lambda r: r["recall"])
        failing = [r for r in q if r["recall"] < TARGET_CLASS_RECALL]
        measured = (f"lowest recall {worst['recall']:.4f} {_ci(worst['recall_ci95'])} ({worst['cls']}, "
                    f"{worst['detected']}/{worst['n']}) over {len(q)} classes")
        reason = [(f"below {TARGET_CLASS_RECALL}: " + ", ".join(f"{r['cls']} {r['recall']:.3f} ({r['n']})" for r in failing))
                  if failing else f"all {len(q)} classes reach {TARGET_CLASS_RECALL}"] + extra
        rows.append(_row("class_recall_truth", T_CLASS, "truth", s["name"], sid, measured, test_set,
                         sum(r["n"] for r in q), _status(not failing), _join(reason), role))
    if not any(_is_cnn(s) for s in bin_models):
        rows.append(_row("class_recall_truth", T_CLASS, "truth", "-", None, "no binary CNN among the models", "-", 0,
                         "NOT ASSESSED", "no binary CNN model given"))
    # ---- many-class
    for s in [m for m in models if m["problem"] in ("multiclass", "multilabel")]:
        role, sid, t = _role(s, "multiclass"), s["split"]["id"], s.get("truth")
        if t is None:
            rows.append(_row("manyclass_truth", T_MANY, "truth", s["name"], sid, "-", _size(s), s["n"],
                             "NOT ASSESSED", NO_TRUTH, role))
            continue
        mc = t["manyclass"]
        v, used = mc["macro_f1"], mc["macro_f1_classes"]
        art = [r for r in mc["per_class"] if r["name"] != NO_ARTIFACT and r["support"]]
        measured = (f"macro-F1 {_f(v, 4)} over {len(used)} artifact classes with >= {s['min_support']} test CCDs "
                    f"(accuracy {mc['accuracy']:.4f}; class = {mc['rule']})")
        test_set = (f"{mc['n']} test CCDs (detectable with a primary class, or clean; {mc['excluded_below_floor']} "
                    "below-floor-only CCDs left out)")
        if v is None:
            big = max(art, key=lambda r: r["support"]) if art else None
            reason = [f"no artifact class is the truth's primary class of >= {s['min_support']} test CCDs: the test "
                      "set is too small" + (f" (largest: {big['name']}, {big['support']})" if big else ""), _ms_note(s)]
            status = "NOT ASSESSED"
        else:
            urows = [r for r in art if r["name"] in used]
            weak = min(urows, key=lambda r: r["f1"])
            reason = [f"weakest class {weak['name']} F1 {weak['f1']:.3f} ({weak['support']} CCDs)",
                      (f"{len(art) - len(used)} artifact classes with fewer test CCDs are not in the average"
                       if len(art) > len(used) else ""), _ms_note(s)]
            status = _status(v >= TARGET_MACRO_F1)
        rows.append(_row("manyclass_truth", T_MANY, "truth", s["name"], sid, measured, test_set, mc["n"], status,
                         _join(reason), role))
    if not any(_is_cnn(s) and s["problem"] == "multiclass" for s in models):
        rows.append(_row("manyclass_truth", T_MANY, "truth", "-", None,
                         "no multiclass CNN (nor a multiclass view of the multilabel CNN) among the models", "-", 0,
                         "NOT ASSESSED", "no multiclass CNN model given"))
    # ---- multi-label
    ml_models = [s for s in models if s["problem"] == "multilabel"]
    for s in ml_models:
        role, sid, t = _role(s, "multilabel"), s["split"]["id"], s.get("truth")
        if t is None:
            rows.append(_row("multilabel_auc_truth", T_ML, "truth", s["name"], sid, "-", _size(s), s["n"],
                             "NOT ASSESSED", NO_TRUTH, role))
            continue
        ml = t["multilabel"]
        v = ml["mean_auc"]
        measured = (f"mean ROC AUC {_f(v, 4)} over {len(ml['mean_auc_classes'])} classes with >= {s['min_support']} "
                    f"positive test CCDs (over every class with a positive and a negative: {_f(ml['mean_auc_all'], 4)}, "
                    f"{len(ml['mean_auc_all_classes'])} classes)")
        test_set = f"{ml['n']} test CCDs (detectable or clean; {ml['excluded_below_floor']} below-floor-only left out)"
        used = [r for r in ml["per_class"] if r["name"] in ml["mean_auc_classes"]]
        if v is None:
            status, reason = "NOT ASSESSED", [f"no class is detectable on >= {s['min_support']} test CCDs: the test "
                                              "set is too small", _ms_note(s)]
        else:
            weak = min(used, key=lambda r: r["auc"])
            status = _status(v >= TARGET_MEAN_AUC)
            reason = [f"weakest class {weak['name']} AUC {weak['auc']:.3f} ({weak['positives']} positives)", _ms_note(s)]
        rows.append(_row("multilabel_auc_truth", T_ML, "truth", s["name"], sid, measured, test_set, ml["n"], status,
                         _join(reason), role))
    if not ml_models:
        rows.append(_row("multilabel_auc_truth", T_ML, "truth", "-", None, "no multilabel model among the models", "-",
                         0, "NOT ASSESSED", "no multilabel CNN model given"))
    # ---- CNN vs SVM
    for c in comparisons:
        tr = c["truth"]
        who = f"{c['cnn']} vs {c['svm']}"
        if tr is None:
            rows.append(_row("cnn_vs_svm_truth", T_CVS, "truth", who, c["split_id"], "-", "-", 0, "NOT ASSESSED",
                             NO_TRUTH, problem=c["problem"]))
            continue
        b, cc, p = tr["cnn_right_svm_wrong"], tr["svm_right_cnn_wrong"], tr["mcnemar_p"]
        measured = (f"{c['problem']} {tr['metric']}: CNN {_f(tr['cnn_value'], 4)} vs SVM {_f(tr['svm_value'], 4)}; "
                    f"CNN right & SVM wrong on {b} CCDs, the reverse on {cc}; exact McNemar p = {p:.3g}")
        if tr["significant"]:
            reason = "the CNN is right on significantly more of the CCDs where the two disagree"
        elif b <= cc:
            reason = "the CCDs where the two disagree do not favour the CNN"
        else:
            reason = f"p = {p:.3g} >= {TARGET_MCNEMAR_P}: {b + cc} discordant CCDs do not resolve the difference"
        rows.append(_row("cnn_vs_svm_truth", T_CVS, "truth", who, c["split_id"], measured,
                         f"{tr['common_test_ccds']} common test CCDs (detectable or clean)", tr["common_test_ccds"],
                         _status(tr["significant"]), reason, problem=c["problem"]))
    if not comparisons:
        rows.append(_row("cnn_vs_svm_truth", T_CVS, "truth", "-", None,
                         "no CNN and SVM of the same problem on the same split", "-", 0, "NOT ASSESSED",
                         "no CNN/SVM pair given"))
    return rows


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
        why = (f"goal {'>=' if higher else '<='} {goal:.4f} = the target {target} capped by the ceiling "
               f"{ceiling:.4f}{share}")
    ok = value >= goal if higher else value <= goal
    return _status(ok), goal, why


def _cl(t, value) -> str:
    """The suffix ' (ceiling x)' when the truth is known (``t``), else an empty string."""
    return f" (ceiling {_f(value, 4)})" if t else ""


def _targets_volunteer(models, comparisons) -> list:
    """The same figures against the volunteer labels, each beside its ceiling (informational rows)."""
    rows = []
    for s in [m for m in models if m["problem"] == "binary"]:
        t, sid = s.get("truth"), s["split"]["id"]
        vb = t["volunteer"]["binary"] if t else s["binary"]
        cb = t["ceiling"]["binary"] if t else None
        st_r, goal_r, why_r = _capped(vb["recall"], cb["recall"] if cb else None, TARGET_RECALL)
        st_f, goal_f, why_f = _capped(vb["fpr"], cb["fpr"] if cb else None, TARGET_FPR, higher=False)
        measured = (f"recall {vb['recall']:.4f}{_cl(t, cb['recall'] if cb else None)}, FPR {vb['fpr']:.4f}"
                    f"{_cl(t, cb['fpr'] if cb else None)}")
        status = ("NOT ASSESSED" if not (vb["positives"] and vb["negatives"]) else
                  _status(st_r == "MET" and st_f == "MET"))
        rows.append(_row("binary_volunteers", V_BINARY, "volunteers", s["name"], sid, measured,
                         f"{vb['n']} labelled test CCDs ({vb['positives']} artifact, {vb['negatives']} clean)", vb["n"],
                         status, _join([f"recall: {why_r}", f"FPR: {why_f}"]), INFO,
                         ceiling={"recall": cb["recall"] if cb else None, "fpr": cb["fpr"] if cb else None}))
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
            rows.append(_row("class_recall_volunteers", V_CLASS, "volunteers", s["name"], sid,
                             f"no volunteer class has >= {TARGET_MIN_SUPPORT} test CCDs", f"{vb['positives']} artifact CCDs",
                             0, "NOT ASSESSED", "the test set is too small", INFO))
        else:
            worst = min(q, key=lambda r: r[2])
            fail = [r for r in q if r[4] != "MET"]
            rows.append(_row("class_recall_volunteers", V_CLASS, "volunteers", s["name"], sid,
                             f"lowest flagged share {worst[2]:.4f} ({worst[0]}, {worst[1]} CCDs){_cl(t, worst[3])} "
                             f"over {len(q)} classes",
                             f"{len(q)} volunteer classes with >= {TARGET_MIN_SUPPORT} test CCDs", sum(r[1] for r in q),
                             _status(not fail),
                             _join([("short of the goal: " + ", ".join(f"{r[0]} {r[2]:.3f}{_cl(t, r[3])}"
                                                                       for r in fail)) if fail else
                                    f"every class reaches min({TARGET_CLASS_RECALL}, its ceiling)",
                                    "" if cbt else f"no ceiling ({NO_TRUTH}): against the plain target"]), INFO))
    for s in [m for m in models if m["problem"] in ("multiclass", "multilabel")]:
        t, sid = s.get("truth"), s["split"]["id"]
        mv = t["volunteer"]["manyclass"] if t else s["manyclass_view"]
        cv = t["ceiling"]["manyclass"]["macro_f1"] if t else None
        st, goal, why = _capped(mv["macro_f1"], cv, TARGET_MACRO_F1)
        rows.append(_row("manyclass_volunteers", V_MANY, "volunteers", s["name"], sid,
                         f"macro-F1 {_f(mv['macro_f1'], 4)}{_cl(t, cv)} over {len(mv['macro_f1_classes'])} "
                         f"classes with >= {s['min_support']} test CCDs",
                         f"{mv['n']} labelled test CCDs with a volunteer class", mv["n"], st,
                         why if mv["macro_f1"] is not None else
                         f"no artifact class has >= {s['min_support']} volunteer-labelled test CCDs", INFO,
                         ceiling=cv))
    for s in [m for m in models if m["problem"] == "multilabel"]:
        t, sid = s.get("truth"), s["split"]["id"]
        v = t["volunteer"]["multilabel"]["mean_auc"] if t else s.get("mean_auc")
        n_cls = len(t["volunteer"]["multilabel"]["mean_auc_classes"] if t else s.get("mean_auc_classes") or [])
        cv = t["ceiling"]["multilabel"]["mean_auc"] if t else None
        st, goal, why = _capped(v, cv, TARGET_MEAN_AUC)
        rows.append(_row("multilabel_auc_volunteers", V_ML, "volunteers", s["name"], sid,
                         f"mean ROC AUC {_f(v, 4)}{_cl(t, cv)} over {n_cls} classes with >= {s['min_support']} "
                         "volunteer positives", _size(s), s["n"], st,
                         why if v is not None else f"no class has >= {s['min_support']} volunteer positives", INFO,
                         ceiling=cv))
    for c in comparisons:
        b, cc, p = c["cnn_right_svm_wrong"], c["svm_right_cnn_wrong"], c["mcnemar_p"]
        rows.append(_row("cnn_vs_svm_volunteers", V_CVS, "volunteers", f"{c['cnn']} vs {c['svm']}", c["split_id"],
                         (f"{c['problem']} {c['metric']}: CNN {_f(c['cnn_value'], 4)} vs SVM {_f(c['svm_value'], 4)}; "
                          f"CNN right & SVM wrong on {b} CCDs, the reverse on {cc}; exact McNemar p = {p:.3g}"),
                         f"{c['common_test_ccds']} common labelled test CCDs", c["common_test_ccds"],
                         _status(c["significant"]),
                         "a paired test has no ceiling: both models face the same label errors", INFO,
                         problem=c["problem"]))
    return rows


def _targets(models, comparisons) -> list:
    """Every target row: against the truth (issue 9), then against the volunteer labels (informational)."""
    return _targets_truth(models, comparisons) + _targets_volunteer(models, comparisons)
