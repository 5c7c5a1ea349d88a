"""OOD metrics against values computed by hand."""
import numpy as np
import pytest

from nae.metrics import aupr_in, aupr_out, auroc, fpr_at_95_tpr, ood_metrics


def test_auroc_by_hand():
    # pairs (in, out) with out > in: (1,2),(1,4),(3,4); (3,2) is wrong -> 3/4
    assert auroc([1, 3], [2, 4]) == pytest.approx(0.75)
    assert auroc([0, 0], [1, 1]) == 1.0
    assert auroc([1, 1], [0, 0]) == 0.0
    assert auroc([1], [1]) == pytest.approx(0.5)  # ties count one half


def test_aupr_by_hand():
    # scores: in 1, 3; out 2, 4.  Ranking (desc): 4(out) 3(in) 2(out) 1(in)
    # AP(out) = (1/1 + 2/3) / 2
    assert aupr_out([1, 3], [2, 4]) == pytest.approx((1 + 2 / 3) / 2)
    # inliers positive with negated scores: ranking 1(in) 2(out) 3(in) 4(out): AP = (1 + 2/3)/2
    assert aupr_in([1, 3], [2, 4]) == pytest.approx((1 + 2 / 3) / 2)


def test_fpr95_by_hand():
    """FPR@95 is the share of the outliers accepted when 95% of the inliers are kept."""
    s_in = np.arange(1, 21)  # energies 1..20: keeping 95% (19 of 20) accepts energies <= 19
    s_out = np.array([5, 10, 15, 19, 19.5, 21, 22, 23, 24, 25])
    # accepted: 5, 10, 15 and 19 (at the threshold counts as accepted): 4 of 10
    assert fpr_at_95_tpr(s_in, s_out) == pytest.approx(0.4)
    # the other convention (outliers positive: inliers flagged at the threshold catching 95% of the
    # outliers, here all ten: energies >= 5) gives 16 of 20 = 0.8: what fpr95 used to be
    assert fpr_at_95_tpr(s_in, s_out) != pytest.approx(0.8)
    # the order of the scores does not matter
    assert fpr_at_95_tpr(s_in[::-1], s_out[::-1]) == pytest.approx(0.4)
    # the threshold keeps at least 95%: of 30 inliers, 29 (96.7%, energies <= 29), not 28 (93.3%,
    # np.quantile's 28.55 would accept 28.5 only: 0.25)
    s_in = np.arange(1, 31)
    assert fpr_at_95_tpr(s_in, [28.5, 29, 29.5, 30.5]) == pytest.approx(0.5)


def test_fpr95_ties_with_the_threshold():
    # inliers 1..18 and two at 19: keeping 19 of 20 inliers takes energy 19, and so keeps both;
    # outliers tied with them are accepted too
    s_in = np.r_[np.arange(1, 19), 19, 19]
    assert fpr_at_95_tpr(s_in, [19, 19, 20, 21]) == pytest.approx(0.5)
    # outliers that all have one energy (constant images) are all accepted or all rejected
    assert fpr_at_95_tpr(np.arange(100), np.full(50, 94.0)) == 1.0
    assert fpr_at_95_tpr(np.arange(100), np.full(50, 94.5)) == 0.0


def test_fpr95_symmetric_example():
    s_in = np.arange(100)            # 0..99
    s_out = np.arange(100) + 50      # 50..149
    # keeping 95 inliers (energies 0..94) accepts outliers 50..94: 45 of 100
    assert fpr_at_95_tpr(s_in, s_out) == pytest.approx(0.45)


def test_fpr95_perfect_and_inverted():
    assert fpr_at_95_tpr([0, 1], [5, 6]) == 0.0          # every outlier above every inlier
    assert fpr_at_95_tpr(np.arange(20), np.arange(20) + 100) == 0.0
    assert fpr_at_95_tpr([5, 6], [0, 1]) == 1.0          # every outlier below every inlier
    assert fpr_at_95_tpr(np.arange(20) + 100, np.arange(10)) == 1.0


def test_ood_metrics_uses_the_standard_fpr95():
    s_in, s_out = np.arange(1, 21), np.array([5, 10, 15, 19, 19.5, 21, 22, 23, 24, 25])
    m = ood_metrics(s_in, s_out)
    assert m["fpr95"] == fpr_at_95_tpr(s_in, s_out) == pytest.approx(0.4)
    assert ood_metrics([5, 6], [0, 1])["fpr95"] == 1.0


def test_ood_metrics_keys_and_errors():
    m = ood_metrics([0.1, 0.2], [0.3, 0.5])
    assert set(m) == {"auroc", "aupr_in", "aupr_out", "fpr95"}
    assert m["auroc"] == 1.0
    with pytest.raises(ValueError):
        auroc([], [1.0])
