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


def _ae_log(path, vals, ended, steps=100):
    with open(path / "metrics.jsonl", "w") as f:
        for s in range(10, steps + 1, 10):
            f.write(json.dumps({"event": "step", "phase": "ae", "step": s, "epoch": s // 40,
                                "loss": 1.0 / s, "recon": 1.0 / s}) + "\n")
        for s, v in vals:
            f.write(json.dumps({"event": "validation", "phase": "ae", "step": s, "val_energy": v}) + "\n")
        if ended:
            f.write(json.dumps({"event": "phase_end", "phase": "ae"}) + "\n")


def test_ae_phase_reads_the_best_validation_and_how_the_phase_ended(tmp_path):
    from nae.diagnostics import ae_curves_figure, ae_phase

    _ae_log(tmp_path, [(20, 0.05), (40, 0.03), (60, 0.031), (80, 0.032), (100, 0.033)], ended=True)
    info = ae_phase(tmp_path, patience=3)
    assert (info["steps"], info["epochs"], info["best_step"], info["best_val"]) == (100, 3, 40, 0.03)
    assert info["ended"] and info["early_stopped"] is True
    assert info["last_gain"] == pytest.approx((0.032 - 0.033) / 0.032)  # negative: it got worse
    assert ae_phase(tmp_path, patience=4)["early_stopped"] is False  # three bad validations are not four
    fig = ae_curves_figure(tmp_path, title="t")
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 4  # batches, running mean, validation, best


def test_ae_phase_still_running(tmp_path):
    from nae.diagnostics import ae_phase

    _ae_log(tmp_path, [(20, 0.05), (40, 0.03)], ended=False, steps=50)
    info = ae_phase(tmp_path, patience=1)
    assert not info["ended"] and info["early_stopped"] is False and info["best_step"] == 40
    assert info["last_gain"] == pytest.approx(0.4)


def test_the_summaries_that_read_the_diagnostics_out(tmp_path):
    from nae.diagnostics import ae_phase, ae_phase_summary, equilibrium_line, equilibrium_summary

    _log(tmp_path, 50, 0.03, lambda s: 0.01, [(50, 0.8)])
    with open(tmp_path / "metrics.jsonl", "a") as f:  # steps are logged every 10: the phase's end says 54
        f.write(json.dumps({"event": "phase_end", "phase": "nae", "step": 54}) + "\n")
    assert equilibrium_summary(equilibrium(tmp_path)).splitlines() == [
        "54 NAE iterations", "E(x-)/E(x+), last tenth: 0.33, below the 0.9 of near equilibrium",
        "validation AUROC flat: too few validations to tell"]  # one validation: not "None"
    assert "0.33, near equilibrium (>= 0.3)" in equilibrium_summary(equilibrium(tmp_path, target=0.3))
    # a ratio below the target that two decimals would round up to it gets a third decimal
    eq = {"iterations": 618, "ratio": 0.8968, "target": 0.9, "near_equilibrium": False, "auroc_flat": True}
    assert "0.897, below the 0.9 of near equilibrium" in equilibrium_summary(eq)   # not "0.90, below the 0.9"
    assert "0.92, near" in equilibrium_summary({**eq, "ratio": 0.9212, "near_equilibrium": True})
    line = "54 NAE iterations; E(x-)/E(x+) over the last tenth 0.33; last validation AUROC: Noise 0.800"
    assert equilibrium_line(equilibrium(tmp_path)) == line  # one line per run
    from nae.diagnostics import equilibrium_markdown

    assert equilibrium_markdown({"a run": tmp_path}).splitlines() == [
        "| run | NAE iterations | E(x-)/E(x+), last tenth | last validation AUROC, Noise |",
        "|---|---:|---:|---:|", "| a run | 54 | 0.33 | 0.800 |"]
    _ae_log(tmp_path, [(20, 0.05), (40, 0.03), (60, 0.031), (80, 0.032), (100, 0.033)], ended=True)
    assert ae_phase_summary(ae_phase(tmp_path, patience=3), epochs=30).splitlines() == [
        "AE phase: 100 iterations, ended by early stopping",
        "best validation energy 0.03000 at iteration 40 (kept)",
        "the last validation rose 3.1 % above the one before"]
    assert "ended by the epoch cap (30 epochs)" in ae_phase_summary(ae_phase(tmp_path, patience=5), epochs=30)
    _ae_log(tmp_path, [], ended=False)
    assert ae_phase_summary(ae_phase(tmp_path)) == "AE phase: 100 iterations, not ended yet"


def test_the_ae_phase_in_a_few_words(tmp_path):
    from nae.diagnostics import ae_phase, ae_phase_short

    (tmp_path / "metrics.jsonl").write_text("")
    assert ae_phase_short(tmp_path, patience=3) == "AE log not kept"
    _ae_log(tmp_path, [(20, 0.05), (40, 0.03), (60, 0.031), (80, 0.032), (100, 0.033)], ended=True)
    assert ae_phase(tmp_path)["epochs"] == 3  # steps 10-100 of 40 per epoch: epochs 0, 1, 2
    assert ae_phase_short(tmp_path, patience=3) == "AE 3 epochs, early stopping"
    assert ae_phase_short(tmp_path, patience=5) == "AE 3 epochs, epoch cap"


def test_run_hardware_reads_the_start_events(tmp_path):
    from nae.diagnostics import run_hardware

    amx = "precision bf16 on Intel Xeon (x86_64): avx2, avx512_f, avx512_bf16, amx_bf16; torch kernels: AVX512"
    starts = [{"event": "start", "phase": "nae", "step": 0, "precision": "bf16", "hardware": amx},
              {"event": "start", "phase": "nae", "step": 300, "precision": "bf16", "hardware": amx, "threads": 1}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in starts))
    assert run_hardware(tmp_path) == "Intel Xeon with AMX, 1 thread, bf16"
    (tmp_path / "metrics.jsonl").write_text(json.dumps(starts[0]) + "\n")  # an older log: no thread count
    assert run_hardware(tmp_path) == "Intel Xeon with AMX, bf16"
    assert run_hardware(tmp_path, threads=1) == "Intel Xeon with AMX, 1 thread, bf16"
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"event": "step", "phase": "nae", "step": 1}) + "\n")
    with pytest.raises(CheckpointError, match="no start event"):
        run_hardware(tmp_path)


def test_flat_text():
    from nae.diagnostics import flat_text

    assert [flat_text({"auroc_flat": v}) for v in (True, False, None)] == ["yes", "no", "n/a"]
    assert flat_text({"auroc_flat": None}, "too few validations to tell") == "too few validations to tell"
