"""Training: NAE steps push negative energy up, checkpoints, exact resume, divergence."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from nae.checkpoint import load_checkpoint
from nae.config import load_config, load_saved_config
from nae.errors import CheckpointError, DivergenceError
from nae.run import load_run
from nae.trainer import Trainer

TOY = ["train.nae.max_iters=8", "train.ckpt_every=1000", "data.n_train=800", "data.batch_size=100"]


def toy_cfg(*extra):
    return load_config("toy2d", budget="smoke", overrides=[*TOY, *extra])


def test_nae_steps_raise_negative_energy_relative_to_data(tmp_path):
    cfg = toy_cfg("train.nae.lr=1e-3", "train.nae.max_iters=40")
    t = Trainer(cfg, tmp_path / "run", progress=False)
    data = t.data[0].as_float()[:500]
    negatives = t.model.sample(500, generator=torch.Generator().manual_seed(5))  # the untrained model's samples

    def gap():
        with torch.no_grad():
            return float(t.model.energy(negatives).mean() - t.model.energy(data).mean())

    before = gap()
    t.fit()
    after = gap()
    e_neg = [v for _, v in t.history.series("e_neg")]
    e_pos = [v for _, v in t.history.series("e_pos")]
    print(f"E(negatives) - E(data): before {before:.4f}, after {after:.4f}")
    assert len(e_neg) == 40
    assert after > before + 1.0
    # during training: the negatives' energy rises relative to the data's
    first = sum(n - p for n, p in zip(e_neg[:5], e_pos[:5])) / 5
    last = sum(n - p for n, p in zip(e_neg[-5:], e_pos[-5:])) / 5
    assert last > first + 0.5


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_checkpoint_round_trip_and_resume_is_exact(tmp_path):
    full = Trainer(toy_cfg(), tmp_path / "a", progress=False)
    assert full.fit() == "done"
    part = Trainer(toy_cfg(), tmp_path / "b", progress=False)
    assert part.fit(stop_after=3) == "paused"
    obj = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert obj["state"]["step"] == 3 and obj["state"]["phase"] == "nae"
    assert obj["sampler"]["buffer"]["size"] > 0
    resumed = Trainer.resume(tmp_path / "b", progress=False)
    assert resumed.state["step"] == 3
    assert len(resumed.model.sampler.buffer) == len(part.model.sampler.buffer)
    assert resumed.fit() == "done"
    a, b = _params(full.model), _params(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(full.model.sampler.buffer.latest(50), resumed.model.sampler.buffer.latest(50))


def test_kill_then_resume_matches_uninterrupted_run(tmp_path):
    """A real SIGKILL in the middle of a run (checkpoint every iteration), then --resume."""
    over = ["train.nae.max_iters=30", "train.ckpt_every=1", "data.n_train=800", "data.batch_size=100"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "nae", "train", "toy2d", "--budget", "smoke", "--quiet"]
    subprocess.run([*cmd, "--out", str(tmp_path / "ref"), *over], check=True, env=env, timeout=300)
    run = tmp_path / "killed"
    p = subprocess.Popen([*cmd, "--out", str(run), *over], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            st = load_checkpoint(run / "checkpoint.pt")["state"]
            if st["phase"] == "nae" and st["step"] >= 3:
                break
        except CheckpointError:
            pass
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    state = load_checkpoint(run / "checkpoint.pt")["state"]
    assert not state["done"], "the run finished before it was killed; the test proves nothing"
    subprocess.run([*cmd, "--out", str(run), "--resume", *over], check=True, env=env, timeout=300)  # the same command
    a = load_checkpoint(tmp_path / "ref" / "model.pt")["model"]
    b = load_checkpoint(run / "model.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _Poison:
    def on_event(self, event, trainer, metrics):
        if event == "step" and trainer.state["phase"] == "nae" and trainer.state["step"] == 3:
            with torch.no_grad():
                next(trainer.model.decoder.parameters()).fill_(float("nan"))


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = toy_cfg("train.ckpt_every=2")
    t = Trainer(cfg, tmp_path / "run", callbacks=[_Poison()], progress=False)
    with pytest.raises(DivergenceError) as e:
        t.fit()
    assert "NaN or inf" in str(e.value) and "iteration 3" in str(e.value)
    obj = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert obj["state"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in obj["model"].values() if v.is_floating_point())


def test_load_run_and_errors(tmp_path):
    t = Trainer(toy_cfg("train.nae.max_iters=2"), tmp_path / "run", progress=False)
    t.fit()
    m = load_run(tmp_path / "run")
    assert m.kind == "nae" and m.energy(torch.zeros(3, 2)).shape == (3,)
    ae = load_run(tmp_path / "run", which="ae")
    assert ae.kind == "ae"
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.yml is missing"):
        load_run(tmp_path / "empty")
    (tmp_path / "run" / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_run(tmp_path / "run")


def test_wrong_checkpoint_for_config(tmp_path):
    t = Trainer(toy_cfg("train.nae.max_iters=1"), tmp_path / "run", progress=False)
    t.fit()
    cfg_text = (tmp_path / "run" / "config.yml").read_text().replace("z_dim: 2", "z_dim: 3")
    (tmp_path / "run" / "config.yml").write_text(cfg_text)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_run(tmp_path / "run")


def test_refuses_to_overwrite_a_run(tmp_path):
    from nae.trainer import train

    train(toy_cfg("train.nae.max_iters=1"), tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="--resume"):
        train(toy_cfg("train.nae.max_iters=1"), tmp_path / "run", progress=False)


def test_max_minutes_pauses_at_a_checkpoint_and_resume_finishes(tmp_path):
    t = Trainer(toy_cfg(), tmp_path / "run", progress=False)
    assert t.fit(max_minutes=1e-6) == "paused"  # stops after its first iteration
    obj = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert obj["state"]["step"] == 1 and not obj["state"]["done"]
    assert not (tmp_path / "run" / "model.pt").exists()
    r = Trainer.resume(tmp_path / "run", progress=False)
    assert r.fit() == "done" and r.state["done"]
    assert (tmp_path / "run" / "model.pt").exists()


def test_resume_can_extend_a_finished_run(tmp_path):
    """`--resume` with a larger max_iters reopens the last phase where it stopped; other keys are refused."""
    from nae.config import ConfigError

    t = Trainer(toy_cfg(), tmp_path / "r", progress=False)
    assert t.fit() == "done"
    before = _params(t.model)
    assert t.state["ended"] == {"phase": "nae", "step": 8, "epoch": 0, "iter_in_epoch": 8}
    # the same budget: nothing to do
    same = Trainer.resume(tmp_path / "r", progress=False, extend=["train.nae.max_iters=8"])
    assert same.fit() == "done" and same.state["phase"] == "finished"
    # a larger budget: 8 -> 13 iterations, continuing from the finished weights and optimiser
    more = Trainer.resume(tmp_path / "r", progress=False, extend=["train.nae.max_iters=13"])
    assert more.state["phase"] == "nae" and more.state["step"] == 8
    opt_steps = more.optimizer.state_dict()["state"][0]["step"]
    assert int(opt_steps) == 8  # the NAE optimiser's moments were kept
    assert more.fit() == "done"
    assert len(more.history.series("e_neg")) == 5
    assert load_saved_config(tmp_path / "r" / "config.yml").train.nae.max_iters == 13  # the new schedule is recorded
    assert any(not torch.equal(before[k], v) for k, v in _params(more.model).items())
    with pytest.raises(ConfigError, match="cannot change when a run is resumed"):
        Trainer.resume(tmp_path / "r", progress=False, extend=["train.nae.gamma=2.0"])


def test_a_reopened_run_keeps_its_old_final_weights_aside(tmp_path):
    """While a finished run continues, its old model.pt/ema.pt are not taken for the run's
    weights (load_run reads the checkpoint); they are kept as model.step8.pt/ema.step8.pt."""
    run = tmp_path / "r"
    assert Trainer(toy_cfg("train.nae.ema=0.9"), run, progress=False).fit() == "done"
    old = {n: (run / f"{n}.pt").read_bytes() for n in ("model", "ema")}
    more = Trainer.resume(run, progress=False, extend=["train.nae.max_iters=13"])
    assert more.fit(stop_after=2) == "paused"
    assert not (run / "model.pt").exists() and not (run / "ema.pt").exists()
    assert {n: (run / f"{n}.step8.pt").read_bytes() for n in ("model", "ema")} == old
    reopened = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                if '"reopened"' in line]
    assert reopened[-1]["kept"] == "model.step8.pt, ema.step8.pt"
    now = load_run(run, verify=False).state_dict()  # the checkpoint at step 10, not the weights of step 8
    assert all(torch.equal(v, now[k]) for k, v in more.model.state_dict().items())
    step8 = load_checkpoint(run / "model.step8.pt")["model"]
    assert any(not torch.equal(v.float(), now[k]) for k, v in step8.items())
    assert Trainer.resume(run, progress=False).fit() == "done"
    assert (run / "model.pt").is_file() and (run / "ema.pt").is_file()


def test_extend_works_on_checkpoints_without_the_ended_record(tmp_path):
    """Runs finished before the "ended" record existed are reopened at their old budget."""
    import nae.checkpoint as ckpt

    t = Trainer(toy_cfg(), tmp_path / "r", progress=False)
    t.fit()
    obj = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    del obj["state"]["ended"]
    ckpt.atomic_save(obj, tmp_path / "r" / "checkpoint.pt")
    more = Trainer.resume(tmp_path / "r", progress=False, extend=["train.nae.max_iters=10"])
    assert (more.state["phase"], more.state["step"], more.state["epoch"], more.state["iter_in_epoch"]) == ("nae", 8, 1, 0)
    assert more.fit() == "done"
    assert len(more.history.series("e_neg")) == 2
