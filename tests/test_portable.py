"""nae.portable: a paused run kept small (float16 weights, no optimiser state) and continued elsewhere."""
import json

import pytest
import torch

from nae import portable
from nae.checkpoint import load_checkpoint
from nae.config import load_config
from nae.errors import CheckpointError
from nae.trainer import Trainer

TOY = ["train.nae.max_iters=6", "train.nae.val_every=3", "train.ckpt_every=1000", "data.n_train=400",
       "data.batch_size=100", "train.nae.ema=0.8"]


def toy_cfg(*extra):
    return load_config("toy2d", budget="smoke", overrides=[*TOY, *extra])


def events(run, name):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == name]


def paused_in_nae(run, *extra):
    t = Trainer(toy_cfg(*extra), run, progress=False)
    while True:  # up to the middle of the NAE phase
        assert t.fit(stop_after=2) == "paused"
        t = Trainer.resume(run, progress=False)
        if t.state["phase"] == "nae" and t.state["step"] >= 2:
            return t.state["step"]


def test_a_kept_run_continues_elsewhere_with_a_fresh_optimiser(tmp_path):
    run, kept, there = tmp_path / "run", tmp_path / "kept", tmp_path / "there"
    step = paused_in_nae(run)
    portable.keep(run, kept)
    obj = load_checkpoint(kept / "checkpoint.pt")
    assert obj["optimizer"] is None and obj["stored_dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in obj["model"].values() if v.is_floating_point())
    ema = load_checkpoint(kept / "ema.pt")["model"]  # in a file of its own
    assert "ema" not in obj and ema and all(v.dtype == torch.float16 for v in ema.values())
    assert obj["best_ae"] is None or all(v.dtype == torch.float16 for v in obj["best_ae"].values() if v.is_floating_point())
    assert (kept / "ae.pt").is_file() and json.loads((kept / "kept.json").read_text())["step"] == step
    orig = load_checkpoint(run / "checkpoint.pt")

    portable.restore(kept, there)
    back = load_checkpoint(there / "checkpoint.pt")
    for k, v in orig["model"].items():   # the weights come back as float32, rounded through float16
        if v.is_floating_point():
            assert back["model"][k].dtype == torch.float32 and torch.equal(back["model"][k], v.half().float())
    assert back["state"] == orig["state"] and back["sampler"] is not None
    assert all(torch.equal(back["ema"][k], v.half().float()) for k, v in orig["ema"].items())
    t = Trainer.resume(there, progress=False)
    assert t.state["step"] == step
    assert t.fit() == "done"
    assert (there / "model.pt").is_file() and (there / "ema.pt").is_file()
    reset = events(there, "optimizer_reset")
    assert len(reset) == 1 and reset[0]["step"] == step and reset[0]["kept_copy"] == str(kept)
    vals = [r["step"] for r in events(there, "validation") if r["phase"] == "nae"]
    assert vals == [3, 6]  # the log goes on from the kept one, to the end

    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        portable.restore(kept, run)
    with pytest.raises(CheckpointError, match="no checkpoint.pt"):
        portable.keep(tmp_path / "nowhere", tmp_path / "k2")


def test_a_kept_run_that_started_from_an_ae_file_asks_for_that_file(tmp_path):
    base = tmp_path / "base"
    Trainer(toy_cfg(), base, progress=False).fit()
    run, kept = tmp_path / "run", tmp_path / "kept"
    paused_in_nae(run, f"train.init_ae={base / 'ae.pt'}")
    portable.keep(run, kept)
    info = json.loads((kept / "kept.json").read_text())
    assert not (kept / "ae.pt").exists() and info["ae"]["sha256"]
    with pytest.raises(CheckpointError, match="--ae FILE"):
        portable.restore(kept, tmp_path / "a")
    with pytest.raises(CheckpointError, match="not the AE this run started from"):
        portable.restore(kept, tmp_path / "b", ae=str(base / "model.pt"))
    there = portable.restore(kept, tmp_path / "c", ae=str(base / "ae.pt"))
    a, b = load_checkpoint(run / "ae.pt")["model"], load_checkpoint(there / "ae.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert Trainer.resume(there, progress=False).fit() == "done"


def test_keeping_a_folder_that_is_no_paused_run_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint.pt"):
        portable.keep(tmp_path, tmp_path / "kept")
    with pytest.raises(CheckpointError, match="not a kept run"):
        portable.restore(tmp_path, tmp_path / "run")


def test_the_script_keeps_and_restores_and_says_what_is_wrong(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import keep_run

    run = tmp_path / "run"
    paused_in_nae(run)
    assert keep_run.main(["keep", str(run), str(tmp_path / "kept")]) == 0
    assert "kept" in capsys.readouterr().out
    assert keep_run.main(["restore", str(tmp_path / "kept"), str(tmp_path / "there")]) == 0
    assert "--resume --out" in capsys.readouterr().out
    assert keep_run.main(["restore", str(tmp_path / "kept"), str(tmp_path / "there")]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
