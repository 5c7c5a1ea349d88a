"""train.nae.ema: a moving average of the NAE weights, validated alongside and saved as ema.pt."""
import json

import pytest
import torch

from nae.checkpoint import load_checkpoint
from nae.config import load_config
from nae.errors import CheckpointError, ConfigError
from nae.run import load_run
from nae.trainer import Trainer

TOY = ["train.nae.max_iters=6", "train.nae.val_every=3", "train.ckpt_every=1000", "data.n_train=400",
       "data.batch_size=100"]


def toy_cfg(*extra):
    return load_config("toy2d", budget="smoke", overrides=[*TOY, *extra])


class WeightsAfterEachStep:
    def __init__(self):
        self.weights = []

    def on_event(self, event, trainer, metrics):
        if event == "step" and trainer.state["phase"] == "nae":
            self.weights.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()
                                 if v.is_floating_point()})


def test_ema_is_the_moving_average_of_the_weights_after_each_nae_step(tmp_path):
    rec = WeightsAfterEachStep()
    Trainer(toy_cfg("train.nae.ema=0.8"), tmp_path, callbacks=[rec], progress=False).fit()
    assert len(rec.weights) == 6
    want = dict(rec.weights[0])
    for w in rec.weights[1:]:
        want = {k: 0.8 * want[k] + 0.2 * w[k] for k in want}
    got = load_checkpoint(tmp_path / "ema.pt")["model"]
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6), k
    final = load_checkpoint(tmp_path / "model.pt")["model"]
    assert any(not torch.equal(final[k], got[k]) for k in want)  # model.pt stays the trained weights
    vals = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v["event"] == "validation" and v["phase"] == "nae"]
    assert vals and all("ema_val_energy" in v and v["ema_from_step"] == 1 for v in vals)
    assert load_run(tmp_path, which="ema").energy(torch.zeros(2, 2)).shape == (2,)


def test_a_resumed_run_continues_the_same_average(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    Trainer(toy_cfg("train.nae.ema=0.8"), whole, progress=False).fit()
    assert Trainer(toy_cfg("train.nae.ema=0.8"), parts, progress=False).fit(stop_after=4) == "paused"
    Trainer.resume(parts, progress=False).fit()
    a, b = load_checkpoint(whole / "ema.pt")["model"], load_checkpoint(parts / "ema.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_average_can_start_on_resume_and_the_change_is_recorded(tmp_path):
    Trainer(toy_cfg(), tmp_path, progress=False).fit(stop_after=4)
    with pytest.raises(CheckpointError, match="train.nae.ema"):
        load_run(tmp_path, which="ema")
    t = Trainer.resume(tmp_path, progress=False, extend=["train.nae.ema=0.5"])
    assert (t.state["phase"], t.state["step"]) == ("nae", 4)
    t.fit()
    assert (tmp_path / "ema.pt").is_file()
    events = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any(e["event"] == "changed" and e["key"] == "train.nae.ema" and e["new"] == 0.5 for e in events)
    assert t.state["ema_from_step"] == 5  # the average starts with the weights after the first step it sees


def test_a_decay_outside_0_1_is_refused():
    with pytest.raises(ConfigError, match="train.nae.ema"):
        toy_cfg("train.nae.ema=1.0")


def test_publishing_the_average_makes_it_the_model(tmp_path):
    from nae.pretrained import publish, read_manifest

    run, root = tmp_path / "run", tmp_path / "published"
    Trainer(toy_cfg("train.nae.ema=0.8"), run, progress=False).fit()
    publish(run, "toy", {"budget": "test"}, root=root, weights="ema")
    entry = read_manifest(root)["toy"]
    assert entry["weights"] == "ema" and "ema.pt" not in entry["files"]
    got, want = load_checkpoint(root / "toy" / "model.pt")["model"], load_checkpoint(run / "ema.pt")["model"]
    assert all(torch.equal(got[k], want[k].half()) for k in want if want[k].is_floating_point())
    plain = tmp_path / "plain"
    Trainer(toy_cfg(), plain, progress=False).fit()
    with pytest.raises(CheckpointError, match="no ema.pt"):
        publish(plain, "toy2", {"budget": "test"}, root=root, weights="ema")


def test_loading_weights_a_run_does_not_have_says_why(tmp_path):
    from nae.run import load_run

    plain = tmp_path / "plain"
    Trainer(toy_cfg(), plain, progress=False).fit()
    with pytest.raises(CheckpointError, match=r"looked for ema\.pt \(only a finished run trained with train\.nae\.ema"):
        load_run(plain, which="ema")
    with pytest.raises(ValueError, match="'final', 'ae', 'ema', not 'best'"):
        load_run(plain, which="best")
    early = tmp_path / "early"
    Trainer(toy_cfg("train.ae.epochs=1", "train.ae.max_iters=5"), early, progress=False).fit(stop_after=1)  # still in its AE phase
    with pytest.raises(CheckpointError, match=r"looked for ae\.pt \(the AE phase has not finished\)"):
        load_run(early, which="ae")
    assert load_run(early).weights_file.name == "checkpoint.pt"  # an unfinished run loads its checkpoint
