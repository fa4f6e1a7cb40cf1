"""The report's sections per model and for the truth: tables of the numbers of
:func:`artifactspark.evaluate.summary.summarize_model` and :mod:`artifactspark.evaluate.truth`."""

from __future__ import annotations

from .classes import NO_ARTIFACT
from .document import _ci, _f, _size, _vc
from .targetdefs import TARGET_FPR


def _doc_truth_overview(doc, models, source, min_support):
    first = models[0]["truth"]
    fl = first["floor"]
    doc.h(2, "The simulator's truth and the detectability floor")
    doc.p(
        f"Truth: {source.get('truth')}; CCD table: {source.get('ccds') or 'none (derived from the truth table)'}. "
        "A test CCD is 'detectable' when at least one injected feature is above its class's floor, 'clean' when "
        "nothing was injected, 'below floor' when every injected feature is below its floor; recall is measured "
        "on detectable CCDs, the FPR on clean ones, and below-floor CCDs are reported apart."
    )
    a = fl["archive"]
    doc.p(
        f"Whole archive: {a['below_floor_ccds']} of {a['artifact_ccds']} artifact CCDs ({_f(a['share_below_floor'])}) "
        f"have only below-floor artifacts" + (f" ({a['ccds']} CCDs in all)." if a["ccds"] is not None else ".")
    )
    seen = set()
    for s in models:
        sid = s["split"]["id"]
        if sid in seen:
            continue
        seen.add(sid)
        tt = s["truth"]["floor"]["test"]
        doc.p(
            f"Test side of split {sid}: {tt['below_floor_ccds']} of {tt['artifact_ccds']} artifact CCDs "
            f"({_f(tt['share_below_floor'])}) have only below-floor artifacts."
        )
    if fl.get("rules"):
        doc.table(["floor rule", "a feature is detectable when"], [[k, v] for k, v in fl["rules"].items()])
    erased = fl["erased_by_binning"]
    doc.p(
        "Classes erased by the 8x8 binning (never above the floor; their CCDs are neither detectable nor clean): "
        + (", ".join(erased) if erased else "none in this truth table")
        + "."
    )
    if fl["never_detectable"] and set(fl["never_detectable"]) - set(erased):
        doc.p("Classes with no feature above the floor in this archive: " + ", ".join(fl["never_detectable"]) + ".")
    doc.table(
        ["class", "features", "below floor", "share below floor", "floor rule", "test features", "test below floor"],
        [
            [
                r["cls"],
                r["features"],
                r["below_floor"],
                _f(r["share_below_floor"]),
                ", ".join(f"{k} ({v})" for k, v in r["floor_rules"].items()) or "-",
                r["test_features"],
                r["test_below_floor"],
            ]
            for r in fl["per_class"]
        ],
    )
    doc.p("Against the truth, per model (figures on the test split):")
    doc.table(
        [
            "model",
            "problem",
            "detectable / clean / below floor",
            "recall",
            "FPR",
            "ROC AUC",
            "below-floor flagged",
            f"many-class macro-F1 (>= {min_support})",
            "multi-label mean AUC",
        ],
        [
            [
                s["name"],
                s["problem"],
                f"{s['truth']['test_ccds']['detectable']} / {s['truth']['test_ccds']['clean']} / "
                f"{s['truth']['test_ccds']['below_floor']}",
                f"{_f(s['truth']['binary']['recall'], 4)} {_ci(s['truth']['binary']['recall_ci95'])}",
                f"{_f(s['truth']['binary']['fpr'], 4)} {_ci(s['truth']['binary']['fpr_ci95'])}",
                _f(s["truth"]["binary"]["roc_auc"], 4),
                _f(s["truth"]["binary"]["below_floor"]["flagged_share"]),
                _f((s["truth"]["manyclass"] or {}).get("macro_f1"), 4),
                _f((s["truth"]["multilabel"] or {}).get("mean_auc"), 4),
            ]
            for s in models
        ],
    )


def _doc_model_truth(doc, s, figs):
    t = s["truth"]
    b, vb, cb = t["binary"], t["volunteer"]["binary"], t["ceiling"]["binary"]
    tc = t["test_ccds"]
    doc.h(3, f"{s['name']} against the simulator's truth")
    doc.p(
        f"Test CCDs: {tc['detectable']} with a detectable artifact, {tc['clean']} clean, {tc['below_floor']} with only "
        f"below-floor artifacts ({b['below_floor']['flagged']} flagged, share {_f(b['below_floor']['flagged_share'])}; "
        f"in no figure below)"
        + (f", {tc['unmatched']} not in the truth's CCD table" if tc["unmatched"] else "")
        + f". Threshold {s['threshold']:.4g}."
    )
    mc, ml = t["manyclass"], t["multilabel"]
    vmc, cmc = t["volunteer"]["manyclass"], t["ceiling"]["manyclass"]
    vml, cml = t["volunteer"]["multilabel"], t["ceiling"]["multilabel"]
    rows = [
        ["recall", f"{_f(b['recall'], 4)} {_ci(b['recall_ci95'])}", _f(vb["recall"], 4), _f(cb["recall"], 4)],
        ["FPR", f"{_f(b['fpr'], 4)} {_ci(b['fpr_ci95'])}", _f(vb["fpr"], 4), _f(cb["fpr"], 4)],
        ["accuracy of the flag", _f(b["accuracy"], 4), _f(vb["accuracy"], 4), _f(cb["accuracy"], 4)],
        ["ROC AUC of p_artifact", _f(b["roc_auc"], 4), _f(vb["roc_auc"], 4), _f(cb["roc_auc"], 4)],
    ]
    if mc is not None:
        rows.append(
            [
                f"many-class macro-F1 (>= {s['min_support']})",
                _f(mc["macro_f1"], 4),
                _f(vmc["macro_f1"] if vmc else None, 4),
                _f(cmc["macro_f1"] if cmc else None, 4),
            ]
        )
    if ml is not None:
        rows.append(
            [
                "multi-label mean ROC AUC",
                _f(ml["mean_auc"], 4),
                _f(vml["mean_auc"] if vml else None, 4),
                _f(cml["mean_auc"] if cml else None, 4),
            ]
        )
    doc.table(["figure", "vs truth", "vs volunteer labels", "ceiling (perfect truth model vs volunteer labels)"], rows)
    doc.p(
        f"Recall per class against the truth (test CCDs where the class is detectable; classes with >= "
        f"{s['min_support']} CCDs enter the target; 'volunteers' is the share the volunteers labelled as artifacts):"
    )
    doc.table(
        [
            "class",
            "CCDs",
            "detected",
            "recall",
            "recall 95%",
            f">= {s['min_support']}",
            "below-floor-only CCDs",
            "volunteers",
        ],
        [
            [
                r["cls"],
                r["n"],
                r["detected"],
                _f(r["recall"]),
                f"{_f(r['recall_ci95'][0])}-{_f(r['recall_ci95'][1])}",
                "yes" if r["meets_min_support"] else "no",
                r["n_below_floor_only"],
                _f(r["volunteer_recall"]) if r["volunteer_labelled"] else "n/a",
            ]
            for r in t["per_class"]
        ],
    )
    if mc is not None:
        doc.p(
            f"Many-class against the truth's primary class (class = {mc['rule']}): accuracy {_f(mc['accuracy'], 4)} on "
            f"{mc['n']} CCDs; macro-F1 {_f(mc['macro_f1'], 4)} over {len(mc['macro_f1_classes'])} classes."
        )
        doc.table(
            ["class", "support", "predicted", "precision", "recall", "F1"],
            [
                [r["name"], r["support"], r["predicted"], _f(r["precision"]), _f(r["recall"]), _f(r["f1"])]
                for r in mc["per_class"]
                if r["support"] or r["predicted"]
            ],
        )
    if ml is not None:
        doc.p(
            f"Multi-label ROC AUC per class against 'the class is detectable on the CCD' ({ml['n']} CCDs): mean "
            f"{_f(ml['mean_auc'], 4)} over {len(ml['mean_auc_classes'])} classes with >= {s['min_support']} positives; "
            f"{_f(ml['mean_auc_all'], 4)} over all {len(ml['mean_auc_all_classes'])} classes with a positive and a "
            "negative."
        )
        doc.table(
            ["class", "positives", "negatives", "ROC AUC"],
            [[r["name"], r["positives"], r["negatives"], _f(r["auc"])] for r in ml["per_class"] if r["positives"]],
        )
    rvs = [r for r in t["recall_vs_strength"] if r["n"]]
    if rvs:
        doc.p(
            "Recall of the injected features on test CCDs per class and strength bin (a feature counts as detected "
            "when its CCD is flagged; 'volunteers' is the share the simulated volunteers reported; 'below floor' "
            "counts the bin's features below their class's floor, and bins where they are the majority are shaded "
            "in the figure; the dashed line is the class's floor on this axis):"
        )
        has_vol = "volunteer_recall" in rvs[0]
        doc.table(
            ["class", "strength", "bin", "n", "below floor", "model recall"] + (["volunteers"] if has_vol else []),
            [
                [
                    r["cls"],
                    r["strength"],
                    f"{r['lo']:.3g}-{r['hi']:.3g}",
                    r["n"],
                    r.get("n_below_floor", "-"),
                    _f(r["recall"]),
                ]
                + ([_f(r.get("volunteer_recall"))] if has_vol else [])
                for r in rvs
            ],
        )
    if "recall_vs_strength" in figs:
        doc.img(figs["recall_vs_strength"], f"{s['name']}: recall vs strength per class, floor marked")


def _doc_model(doc, s):
    b = s["binary"]
    t = s.get("truth")
    doc.h(2, f"Model {s['name']}")
    derived = f" Derived view of {s['derived_from']}." if s.get("derived_from") else ""
    anyh = " p_artifact is the model's 'any artifact' output." if s.get("any_head") else ""
    doc.p(
        f"{s['kind']} / {s['problem']}, version {s.get('version')}, config {s.get('config_hash')}, "
        f"directory {s['model_dir']}. Split {s['split']['id']} (seed {s['split']['seed']}; exposures train "
        f"{s['split']['exposures']['train']}, val {s['split']['exposures']['val']}, test "
        f"{s['split']['exposures']['test']}). Test set: {_size(s)}.{derived}{anyh}"
    )
    doc.p(
        f"Against the volunteer labels{' (ceiling: a perfect truth model against the same labels)' if t else ''}: "
        f"accuracy {_vc(s, s['accuracy'], ['accuracy'])} (rule: {s['accuracy_rule']}). Binary decision p_artifact >= "
        f"{s['threshold']:.4g}, {s['threshold_source']}; target FNR {s.get('target_fnr')}, measured test FNR "
        f"{_vc(s, b['fnr'], ['binary', 'fnr'])}."
    )
    hdr = [
        "",
        "n",
        "artifact",
        "clean",
        "TP",
        "FP",
        "TN",
        "FN",
        "recall",
        "recall 95%",
        "FPR",
        "FPR 95%",
        "FNR",
        "precision",
        "accuracy",
        "F1",
    ]

    def brow(who, x):
        return [
            who,
            x["n"],
            x["positives"],
            x["negatives"],
            x["tp"],
            x["fp"],
            x["tn"],
            x["fn"],
            _f(x["recall"], 4),
            f"{_f(x['recall_ci95'][0])}-{_f(x['recall_ci95'][1])}",
            _f(x["fpr"], 4),
            f"{_f(x['fpr_ci95'][0])}-{_f(x['fpr_ci95'][1])}",
            _f(x["fnr"], 4),
            _f(x["precision"], 4),
            _f(x["accuracy"], 4),
            _f(x["f1"], 4),
        ]

    doc.table(hdr, [brow("model", b)] + ([brow("ceiling", t["ceiling"]["binary"])] if t else []))
    br = s["best_recall_at_fpr_0.05_on_test"]
    ceil_pt = ""
    if t:
        ceil_pt = (
            f" (the ceiling's single operating point: recall {_f(t['ceiling']['binary']['recall'], 4)} at FPR "
            f"{_f(t['ceiling']['binary']['fpr'], 4)})"
        )
    doc.p(
        f"For orientation only (threshold picked on the test set itself, hence optimistic): the best test "
        f"recall with FPR <= {TARGET_FPR} is {_f(br['recall'], 4)} at threshold {_f(br['threshold'], 4)}{ceil_pt}."
    )
    extra = ""
    if s["problem"] == "multiclass":
        extra = (
            f" (artifact classes; with '{NO_ARTIFACT}' as a class: {_f(s['macro_f1_all_classes'], 4)} "
            f"over {len(s['macro_f1_all_classes_used'])} classes)"
        )
    if s["problem"] == "multilabel":
        extra = (
            f"; exact-match (all classes right) accuracy {_vc(s, s['subset_accuracy'], ['subset_accuracy'])}; "
            f"mean per-class ROC AUC {_vc(s, s.get('mean_auc'), ['multilabel', 'mean_auc'])} over "
            f"{len(s.get('mean_auc_classes') or [])} classes with >= {s['min_support']} positives; many-class view "
            f"({s['manyclass_view']['rule']}) macro-F1 "
            f"{_vc(s, s['manyclass_view']['macro_f1'], ['manyclass', 'macro_f1'])}"
        )
    doc.p(
        f"Macro-F1 {_vc(s, s['macro_f1'], ['macro_f1'])} over the {len(s['macro_f1_classes'])} classes with >= "
        f"{s['min_support']} test examples{extra}."
    )
    shown = [r for r in s["per_class"] if r["support"] or r["predicted"]]
    hidden = len(s["per_class"]) - len(shown)
    hdr = ["class", "support", "predicted", "precision", "recall", "F1"]
    if t:
        hdr += ["ceiling precision", "ceiling recall", "ceiling F1"]
    if s["problem"] == "multilabel":
        hdr += ["threshold", "ROC AUC"]
    cpc = {r["name"]: r for r in (t["ceiling"]["per_class"] if t else [])}
    doc.table(
        hdr,
        [
            [r["name"], r["support"], r["predicted"], _f(r["precision"]), _f(r["recall"]), _f(r["f1"])]
            + ([_f(cpc.get(r["name"], {}).get(k)) for k in ("precision", "recall", "f1")] if t else [])
            + ([_f(r["threshold"]), _f(r.get("roc_auc"))] if s["problem"] == "multilabel" else [])
            for r in shown
        ],
    )
    if hidden:
        doc.p(f"{hidden} classes with no test example and never predicted are not listed.")
    bbt = s["binary_by_true_class"]
    cbt = t["ceiling"]["binary_by_true_class"] if t else None
    doc.p("Binary decision by true class (fig. 7; primary class of each artifact CCD per the volunteers):")
    doc.table(
        ["true class", "CCDs", "flagged", "not flagged", "flagged share"] + (["ceiling flagged share"] if t else []),
        [
            [name, int(sum(c)), int(c[1]), int(c[0]), _f(c[1] / sum(c)) if sum(c) else "n/a"]
            + ([_f(cbt["counts"][i][1] / sum(cbt["counts"][i])) if sum(cbt["counts"][i]) else "n/a"] if t else [])
            for i, (name, c) in enumerate(zip(bbt["rows"], bbt["counts"]))
            if sum(c)
        ],
    )
    if sum(bbt["unassigned"]):
        doc.p(
            f"{int(sum(bbt['unassigned']))} artifact CCDs without a class are not in this table "
            f"({int(bbt['unassigned'][1])} flagged)."
        )
    figs = s["figures"]
    for key, alt in (
        ("confusion", "confusion matrix (fig. 6)"),
        ("per_class", "per-class precision/recall/F1"),
        ("binary_by_true_class", "binary decision by true class (fig. 7)"),
        ("fpr_fnr", "FPR vs FNR coloured by threshold (fig. 5)"),
        ("history", "error vs epoch (fig. 4)"),
        ("learning_curve", "learning curve (fig. 2)"),
    ):
        if key in figs:
            doc.img(figs[key], f"{s['name']}: {alt}")
    ceil_err = f" (ceiling: test error {_f(1 - t['ceiling']['accuracy'], 4)})" if t else ""
    if s["history"] and s["history"].get("best_epoch") is not None:
        h = s["history"]
        i = h["epoch"].index(h["best_epoch"]) if h["best_epoch"] in h["epoch"] else None
        if i is not None:
            doc.p(
                f"Best epoch {h['best_epoch']} (chosen on validation): train error {_f(h['train_error'][i], 4)}, "
                f"validation error {_f(h['val_error'][i], 4)}"
                + (f", test error {_f(h['test_error'][i], 4)}{ceil_err}" if h.get("test_error") else "")
                + "."
            )
    if s["learning_curve"]:
        lc = s["learning_curve"]
        doc.table(
            ["training examples", "train error", "test error"],
            [[n, _f(a, 4), _f(e, 4)] for n, a, e in zip(lc["n_train"], lc["train_error"], lc["test_error"])],
        )
        if t:
            doc.p(f"The errors are against the volunteer labels{ceil_err}.")
    if t:
        _doc_model_truth(doc, s, figs)
