"""OOD metrics against values computed by hand."""
import numpy as np
import pytest

from nae.metrics import aupr_in, aupr_out, auroc, fpr_at_tpr, ood_metrics


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
    s_in = np.arange(100)            # 0..99
    s_out = np.arange(100) + 50      # 50..149
    # flagging scores >= 55 catches outliers 55..149 (95 of 100) and inliers 55..99: 45%
    assert fpr_at_tpr(s_in, s_out) == pytest.approx(0.45)
    assert fpr_at_tpr([0, 1], [5, 6]) == 0.0


def test_ood_metrics_keys_and_errors():
    m = ood_metrics([0.1, 0.2], [0.3, 0.5])
    assert set(m) == {"auroc", "aupr_in", "aupr_out", "fpr95"}
    assert m["auroc"] == 1.0
    with pytest.raises(ValueError):
        auroc([], [1.0])
