"""Equilibrium diagnostics read from metrics.jsonl."""
import json

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from nae.diagnostics import equilibrium, read_metrics, training_curves_figure  # noqa: E402
from nae.errors import CheckpointError  # noqa: E402


def _log(path, steps, e_pos, e_neg, aurocs):
    with open(path / "metrics.jsonl", "w") as f:
        for s in range(1, steps + 1):
            f.write(json.dumps({"event": "step", "phase": "nae", "step": s, "e_pos": e_pos, "e_neg": e_neg(s)}) + "\n")
        for s, a in aurocs:
            f.write(json.dumps({"event": "validation", "phase": "nae", "step": s, "auroc_Noise": a}) + "\n")
        f.write(json.dumps({"event": "step", "phase": "nae", "step": steps, "e_pos": e_pos, "e_neg": e_neg(steps)}) + "\n")


def test_equilibrium_ratio_and_flat_auroc(tmp_path):
    _log(tmp_path, 100, 0.02, lambda s: 0.02 * s / 100, [(50, 0.90), (90, 0.95), (100, 0.955)])
    eq = equilibrium(tmp_path)
    assert eq["iterations"] == 100
    assert eq["ratio"] == pytest.approx(sum(range(91, 101)) / 100 / 10, rel=1e-6)  # the last ten steps, once each
    assert eq["near_equilibrium"] is True
    assert eq["auroc_last"] == {"Noise": 0.955} and eq["auroc_flat"] is True
    assert len([r for r in read_metrics(tmp_path) if r["event"] == "step"]) == 100  # the duplicate is merged


def test_not_converged_and_moving_auroc(tmp_path):
    _log(tmp_path, 50, 0.03, lambda s: 0.01, [(30, 0.6), (40, 0.7), (50, 0.8)])
    eq = equilibrium(tmp_path)
    assert eq["ratio"] == pytest.approx(1 / 3) and eq["near_equilibrium"] is False
    assert eq["auroc_flat"] is False
    fig = training_curves_figure(tmp_path, title="t")
    assert len(fig.axes) == 2


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="metrics.jsonl does not exist"):
        equilibrium(tmp_path)
