"""scripts/mnist_campaign.py: which command each model gets, and the deadline."""
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import mnist_campaign as mc  # noqa: E402


def test_a_new_run_gets_the_rule_and_a_stopped_one_is_resumed(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "RUNS", tmp_path)
    cmd = mc.command("holdout3", 30)
    assert cmd[cmd.index("--out") + 1] == str(tmp_path / "h3es")
    assert {"data.holdout=[3]", "sampler.n_negatives=32", "train.nae.ema=0.99",
            f"train.nae.max_iters={mc.NAE_ITERS}"} <= set(cmd) and "--resume" not in cmd
    assert mc.state(tmp_path / "h3es") == "not started"
    (tmp_path / "h3es").mkdir()
    (tmp_path / "h3es" / "checkpoint.pt").write_bytes(b"")
    cmd = mc.command("holdout3", 30)
    assert "--resume" in cmd and "data.holdout=[3]" not in cmd  # the run's own config is kept
    (tmp_path / "h3es" / "model.pt").write_bytes(b"")
    assert mc.state(tmp_path / "h3es") == "finished"


def test_the_deadline_is_the_nearest_such_time():
    now = datetime(2026, 12, 2, 16, 0, tzinfo=timezone.utc)
    assert mc.deadline("18:05", now) == datetime(2026, 12, 2, 18, 5, tzinfo=timezone.utc)
    assert mc.deadline("15:59", now) == datetime(2026, 12, 2, 15, 59, tzinfo=timezone.utc)  # passed: stop at once
    assert mc.deadline("01:00", now) == datetime(2026, 12, 3, 1, 0, tzinfo=timezone.utc)  # tonight
    late = datetime(2026, 12, 2, 23, 30, tzinfo=timezone.utc)
    assert mc.deadline("00:30", late) == datetime(2026, 12, 3, 0, 30, tzinfo=timezone.utc)


def test_unknown_models_are_refused(capsys):
    with pytest.raises(SystemExit):
        mc.main(["--until", "18:00", "holdout11"])
    assert "unknown" in capsys.readouterr().err


def test_an_ended_ae_phase_is_kept_and_a_new_machine_starts_the_nae_from_it(tmp_path, monkeypatch):
    import json

    import torch

    from nae import checkpoint as ckpt

    monkeypatch.setattr(mc, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mc, "MILESTONES", tmp_path / "kept")
    run = tmp_path / "runs" / "h3es"
    run.mkdir(parents=True)
    (run / "config.yml").write_text("name: mnist_holdout\n")
    ckpt.atomic_save({"format": ckpt.FORMAT, "kind": "ae", "model": {"w": torch.ones(2)}}, run / "ae.pt")
    log = [{"event": "step", "phase": "ae", "step": 10}, {"event": "step", "phase": "nae", "step": 1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    assert mc.save_milestone("holdout3") is None  # the AE phase has not ended: nothing kept
    log.insert(1, {"event": "phase_end", "phase": "ae", "step": 10})
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    dest = mc.save_milestone("holdout3")
    assert dest == tmp_path / "kept" / "h3es"
    assert ckpt.load_checkpoint(dest / "ae.pt")["model"]["w"].dtype == torch.float16
    assert [json.loads(x)["phase"] for x in (dest / "metrics_ae.jsonl").read_text().splitlines()] == ["ae", "ae"]
    for f in run.iterdir():  # the machine is lost
        f.unlink()
    run.rmdir()
    assert "its AE is kept" in mc.state(run)
    assert f"train.init_ae={dest / 'ae.pt'}" in mc.command("holdout3", 30)
