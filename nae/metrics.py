"""Outlier-detection metrics.  The score is the energy: higher means more anomalous.

For AUROC and AUPR-out the outliers are the positive class (label 1, inliers 0), as in the
original ``evaluate_ood.py``; AUPR-in takes the inliers as positive (scores negated).

FPR@95 (:func:`fpr_at_95_tpr`, ``ood_metrics()["fpr95"]``) is the standard one of the OOD
literature (Hendrycks & Gimpel 2017, "FPR at 95% TPR"), with the *inliers* as the positive
class: the share of the outliers accepted as normal (energy at most the threshold) at the
threshold that keeps 95% of the inliers.  Lower is better; 0 means no outlier gets through.
(Earlier versions computed ``fpr95`` the other way round, the share of the inliers flagged at
the threshold that catches 95% of the outliers: a different number.  The manifest entries
measured so are re-measured by ``scripts/rescore_manifest.py``.)
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

#: what ``fpr95`` is, in words: for tables and for the manifest entries that record it
FPR95_DEFINITION = "share of the outliers accepted when 95% of the inliers are kept"


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


def fpr_at_95_tpr(score_in, score_out, tpr: float = 0.95) -> float:
    """FPR@95: the share of the outliers accepted when ``tpr`` (95%) of the inliers are kept.

    The inliers are the positive class and an image is accepted (called normal) when its
    energy is at most a threshold.  The threshold is the lowest one that keeps at least
    ``tpr`` of the inliers, i.e. the energy of the ``ceil(tpr * n_in)``-th lowest inlier; the
    result is the fraction of the outliers whose energy is at most that threshold.  It is read
    off the ROC curve of the inliers against the negated energy (the first point with
    TPR >= ``tpr``), so an outlier with exactly the threshold's energy counts as accepted, as
    do inliers tied with it.  0 when every outlier's energy is above the threshold, 1 when
    none is (lower is better).
    """
    y, s = _labels_scores(score_in, score_out)
    fpr, tpr_curve, _ = roc_curve(1 - y, -s, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr_curve, tpr, side="left")])


def ood_metrics(score_in, score_out) -> dict:
    """AUROC, AUPR-in, AUPR-out and FPR@95 (:func:`fpr_at_95_tpr`: outliers accepted at 95% of
    the inliers kept) of inlier scores against outlier scores."""
    return {
        "auroc": auroc(score_in, score_out),
        "aupr_in": aupr_in(score_in, score_out),
        "aupr_out": aupr_out(score_in, score_out),
        "fpr95": fpr_at_95_tpr(score_in, score_out, 0.95),
    }
