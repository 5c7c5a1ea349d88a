"""Outlier-detection metrics.  The score is the energy: higher means more anomalous.

Inliers get label 0 and outliers label 1, as in the original ``evaluate_ood.py``.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _labels_scores(score_in, score_out):
    s_in = np.asarray(score_in, dtype=np.float64).ravel()
    s_out = np.asarray(score_out, dtype=np.float64).ravel()
    if len(s_in) == 0 or len(s_out) == 0:
        raise ValueError("need at least one inlier and one outlier score")
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    return y, np.r_[s_in, s_out]


def auroc(score_in, score_out) -> float:
    """Area under the ROC curve of telling outliers (positive) from inliers."""
    y, s = _labels_scores(score_in, score_out)
    return float(roc_auc_score(y, s))


def aupr_out(score_in, score_out) -> float:
    """Average precision with the outliers as the positive class."""
    y, s = _labels_scores(score_in, score_out)
    return float(average_precision_score(y, s))


def aupr_in(score_in, score_out) -> float:
    """Average precision with the inliers as the positive class (score negated)."""
    y, s = _labels_scores(score_in, score_out)
    return float(average_precision_score(1 - y, -s))


def fpr_at_tpr(score_in, score_out, tpr: float = 0.95) -> float:
    """False-positive rate (inliers flagged) at the threshold catching ``tpr`` of outliers."""
    y, s = _labels_scores(score_in, score_out)
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr_curve, tpr, side="left")])


def ood_metrics(score_in, score_out) -> dict:
    """AUROC, AUPR-in, AUPR-out and FPR@95 of inlier scores against outlier scores."""
    return {
        "auroc": auroc(score_in, score_out),
        "aupr_in": aupr_in(score_in, score_out),
        "aupr_out": aupr_out(score_in, score_out),
        "fpr95": fpr_at_tpr(score_in, score_out, 0.95),
    }
