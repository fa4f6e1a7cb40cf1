"""Evaluation numbers for the artifact classifiers, in one import (numpy; pandas / pyarrow to read
files and join tables). The numbers live by topic:

- :mod:`.scores`: binary scores (threshold for an FNR, FPR/FNR curve, metrics, ROC AUC), and the
  conventions every number follows (flagging, zero division, averages over no class);
- :mod:`.classes`: many-class and multi-label scores, and the class a model names;
- :mod:`.strength`: recall against artifact strength (simulated data);
- :mod:`.truthtables` and :mod:`.truth`: the simulator's truth tables, and every figure against
  that truth beside its volunteer-label ceiling (simulated archives only);
- :mod:`.summary`: one model directory, :func:`summarize_model`, the one source of the numbers of
  the report and of the training jobs' ``metrics.json``.
"""

from .classes import (
    NO_ARTIFACT,
    binary_by_true_class,
    confusion_matrix,
    macro_f1,
    macro_from_rows,
    manyclass_prediction,
    manyclass_scores,
    multilabel_prf,
    per_class_prf,
    volunteer_class_names,
)
from .scores import (
    best_recall_at_fpr,
    binary_metrics,
    fpr_fnr_curve,
    jsonable,
    per_class_auc,
    roc_auc,
    threshold_for_fnr,
    wilson_interval,
)
from .strength import STRENGTH_COLUMNS, recall_vs_strength, strength_floor
from .summary import (
    PRED_COLUMNS,
    PROBLEMS,
    ModelDirError,
    accuracy_rule,
    load_predictions,
    read_model_json,
    summarize_model,
    summarize_predictions,
)
from .truth import truth_ccd_frame, truth_correctness, truth_evaluation
from .truthtables import (
    CATEGORIES,
    CCD_TRUTH_COLUMNS,
    ERASED_BY_BINNING,
    TRUTH_FLOOR_COLUMNS,
    TRUTH_FLOOR_USED,
    TruthTableError,
    load_truth,
    prepare_truth,
    resolve_truth_paths,
)

__all__ = [
    "NO_ARTIFACT",
    "confusion_matrix",
    "per_class_prf",
    "macro_from_rows",
    "macro_f1",
    "binary_by_true_class",
    "multilabel_prf",
    "manyclass_prediction",
    "manyclass_scores",
    "volunteer_class_names",
    "wilson_interval",
    "jsonable",
    "threshold_for_fnr",
    "fpr_fnr_curve",
    "binary_metrics",
    "best_recall_at_fpr",
    "roc_auc",
    "per_class_auc",
    "STRENGTH_COLUMNS",
    "strength_floor",
    "recall_vs_strength",
    "PROBLEMS",
    "PRED_COLUMNS",
    "ModelDirError",
    "read_model_json",
    "load_predictions",
    "accuracy_rule",
    "summarize_predictions",
    "summarize_model",
    "truth_ccd_frame",
    "truth_evaluation",
    "truth_correctness",
    "TRUTH_FLOOR_COLUMNS",
    "TRUTH_FLOOR_USED",
    "CCD_TRUTH_COLUMNS",
    "ERASED_BY_BINNING",
    "CATEGORIES",
    "TruthTableError",
    "resolve_truth_paths",
    "load_truth",
    "prepare_truth",
]
