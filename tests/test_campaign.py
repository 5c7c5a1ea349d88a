"""scripts/mnist_campaign.py: which command each model gets, and the deadline."""
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import mnist_campaign as mc  # noqa: E402


def test_a_new_run_gets_the_rule_and_a_stopped_one_is_resumed(tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "RUNS", tmp_path)
    monkeypatch.setattr(mc, "MILESTONES", tmp_path / "kept")  # not the repository's (digit 3's AE is kept there)
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


def test_a_copy_kept_during_the_ae_phase_gives_way_to_the_milestone(tmp_path, monkeypatch):
    import json

    import torch

    from nae import checkpoint as ckpt

    monkeypatch.setattr(mc, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mc, "MILESTONES", tmp_path / "kept")
    run, dest = tmp_path / "runs" / "h3es", tmp_path / "kept" / "h3es"
    run.mkdir(parents=True)
    (dest / mc.KEPT).mkdir(parents=True)  # kept on an earlier machine while the AE still trained
    (dest / mc.KEPT / "kept.json").write_text(json.dumps({"phase": "ae", "step": 4943}))
    (dest / mc.KEPT / "checkpoint.pt").write_bytes(b"")
    (run / "config.yml").write_text("name: mnist_holdout\n")
    ckpt.atomic_save({"format": ckpt.FORMAT, "kind": "ae", "model": {"w": torch.ones(2)}}, run / "ae.pt")
    log = [{"event": "phase_end", "phase": "ae", "step": 15136}, {"event": "step", "phase": "nae", "step": 1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    assert mc.save_milestone("holdout3") == dest
    assert not (dest / mc.KEPT).exists() and (dest / "ae.pt").is_file()
    (dest / mc.KEPT).mkdir()  # a copy of the NAE phase stays
    (dest / mc.KEPT / "kept.json").write_text(json.dumps({"phase": "nae", "step": 7}))
    mc.save_milestone("holdout3")
    assert (dest / mc.KEPT / "kept.json").is_file()


def _decision(run, published):
    import json

    rec = {"name": "mnist_holdout_3", "published": published, "better": published, "weights": "ema"}
    (run / mc.DECISION).write_text(json.dumps(rec))


def test_a_compared_run_is_done_on_every_machine_and_keeps_what_the_published_model_lacks(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(mc, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mc, "MILESTONES", tmp_path / "kept")
    run, kept = tmp_path / "runs" / "h3es", tmp_path / "kept" / "h3es"
    run.mkdir(parents=True)
    kept.mkdir(parents=True)
    for f in ("ae.pt", "config.yml", "metrics_ae.jsonl"):
        (kept / f).write_text("x")
    (run / "model.pt").write_text("x")
    import torch

    from nae import checkpoint as ckpt

    ckpt.atomic_save({"format": ckpt.FORMAT, "kind": "nae", "model": {"w": torch.ones(2)}}, run / "ema.pt")
    (run / "metrics.jsonl").write_text('{"event": "step", "phase": "nae", "step": 1}\n')
    assert mc.state(run) == "finished"
    _decision(run, published=False)  # not better: the run's log, AE and candidate stay in the repository
    mc.keep_record("holdout3")
    assert {f.name for f in kept.iterdir()} == {"ae.pt", "config.yml", "metrics_ae.jsonl", "metrics.jsonl", "ema.pt",
                                                 mc.DECISION}
    assert ckpt.load_checkpoint(kept / "ema.pt")["model"]["w"].dtype == torch.float16
    assert mc.state(run).startswith("compared: not better")
    for f in kept.iterdir():
        f.unlink()
    for f in ("ae.pt", "config.yml", "metrics_ae.jsonl"):
        (kept / f).write_text("x")
    _decision(run, published=True)  # published: the published model holds AE, config and log
    mc.keep_record("holdout3")
    assert [f.name for f in kept.iterdir()] == [mc.DECISION]
    assert json.loads((kept / mc.DECISION).read_text())["published"] is True
    for f in run.iterdir():  # a new machine
        f.unlink()
    assert mc.state(run) == "compared: published as mnist_holdout_3"
    assert mc.main(["--until", "23:59", "holdout3"]) == 0  # skipped, nothing trained
    (run / "ae.pt").write_text("x")  # the same machine: the run's AE is still there
    (run / "metrics.jsonl").write_text('{"event": "phase_end", "phase": "ae", "step": 10}\n')
    assert mc.save_milestone("holdout3") is None and [f.name for f in kept.iterdir()] == [mc.DECISION]


def test_only_a_finished_run_is_compared(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mc, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mc, "MILESTONES", tmp_path / "kept")
    with pytest.raises(SystemExit):
        mc.main(["--compare", "holdout3"])
    assert "not started" in capsys.readouterr().err


def test_the_manifest_texts_come_from_the_runs_log(tmp_path, monkeypatch):
    """The manifest texts of a campaign run come from its log: digit 3's run, whose whole log is kept
    in the repository (it was not published), gives back its AE epochs and NAE iterations.  (Not a
    published model's files: a later continuation replaces them, as it did digit 6's.)"""
    import shutil

    kept = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "mnist_campaign" / "h3es"
    monkeypatch.setattr(mc, "RUNS", tmp_path)
    (tmp_path / "h3es").mkdir()
    for f in ("metrics.jsonl", "config.yml"):
        shutil.copy(kept / f, tmp_path / "h3es" / f)
    texts = mc.describe("holdout3")
    assert "69 epochs" in texts["description"] and "2,500 NAE iterations" in texts["note"]
    assert "digit 3" in texts["description"] and "held-out 3s" in texts["description"]


def test_a_run_started_from_a_kept_ae_gets_its_ae_log_before_it_is_published(tmp_path, monkeypatch):
    """On a new machine the NAE phase starts from the kept AE and logs no AE phase: the kept log is
    joined in front, so the published model says how its AE was trained."""
    import json

    from nae.diagnostics import ae_phase

    monkeypatch.setattr(mc, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mc, "MILESTONES", tmp_path / "kept")
    run, kept = tmp_path / "runs" / "h3es", tmp_path / "kept" / "h3es"
    run.mkdir(parents=True)
    kept.mkdir(parents=True)
    ae = [{"event": "step", "phase": "ae", "step": 10, "epoch": 4}, {"event": "validation", "phase": "ae", "step": 10,
          "val_energy": 0.01}, {"event": "phase_end", "phase": "ae", "step": 10}]
    nae = [{"event": "start", "phase": "nae", "step": 0}, {"event": "step", "phase": "nae", "step": 1, "e_pos": 1.0}]
    (kept / "metrics_ae.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ae))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in nae))
    assert ae_phase(run)["epochs"] == 0
    assert mc.join_ae_log("holdout3") is True
    assert ae_phase(run)["epochs"] == 5 and ae_phase(run)["ended"]
    assert [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()] == ae + nae
    assert mc.join_ae_log("holdout3") is False   # once only
    assert not list(run.glob("*.tmp"))


def test_a_paused_run_is_kept_and_a_new_machine_continues_it(tmp_path, monkeypatch):
    import json

    import torch

    from nae import checkpoint as ckpt
    from nae.pretrained import sha256

    monkeypatch.setattr(mc, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mc, "MILESTONES", tmp_path / "kept")
    run, milestone = tmp_path / "runs" / "h3es", tmp_path / "kept" / "h3es"
    run.mkdir(parents=True)
    milestone.mkdir(parents=True)
    ae = milestone / "ae.pt"  # the NAE phase started from the kept AE (train.init_ae)
    ckpt.atomic_save({"format": ckpt.FORMAT, "kind": "ae", "model": {"encoder.w": torch.ones(2)}}, ae)
    (run / "config.yml").write_text("name: mnist_holdout\n")
    log = [{"event": "init_ae", "phase": "nae", "step": 0, "path": str(ae), "sha256": sha256(ae)},
           {"event": "checkpoint", "phase": "nae", "step": 7}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    ckpt.atomic_save({"format": ckpt.FORMAT, "config": {}, "model": {"encoder.w": torch.full((2,), 0.1)},
                      "ema": {"encoder.w": torch.full((2,), 0.2)}, "optimizer": {"state": {}},
                      "state": {"phase": "nae", "step": 7}, "sampler": None}, run / "checkpoint.pt")
    assert mc.main(["--keep"]) == 0
    assert (milestone / mc.KEPT / "checkpoint.pt").is_file()
    for f in run.iterdir():  # the machine is lost
        f.unlink()
    run.rmdir()
    assert "paused at step 7 is kept" in mc.state(run)
    cmd = mc.command("holdout3", 30)
    assert "--resume" in cmd and cmd[cmd.index("--out") + 1] == str(run)
    back = ckpt.load_checkpoint(run / "checkpoint.pt")
    assert back["optimizer"] is None and back["state"]["step"] == 7
    assert torch.equal(back["ema"]["encoder.w"], torch.full((2,), 0.2).half().float())
    assert (run / "ae.pt").is_file() and (run / "metrics.jsonl").read_text().count("\n") == 2
    assert mc.command("holdout3", 30) == cmd  # restored once: the run directory is used from then on
    (run / mc.DECISION).write_text(json.dumps({"name": "mnist_holdout_3", "published": True}))
    mc.keep_record("holdout3")
    assert not (milestone / mc.KEPT).exists()  # compared: the copy goes
