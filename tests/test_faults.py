"""Fault injection (issue 16): every bad input refused up front, every interruption survivable.

One test (or a parametrised family) per item of the issue, in its order: the run-directory
lock; resume changes that config.yml would claim but the weights did not get; values no run
can use; divergence; signals, time-based checkpoints, stale temporary files, a full disk and
duplicate events; published models.  Everything runs on the toy 2-D smoke budget in
seconds; the signal tests send real signals to a training subprocess.
"""
import errno
import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import traceback

import numpy as np
import pytest
import torch

import nae
from nae import checkpoint as ckpt
from nae.checkpoint import load_checkpoint
from nae.cli import main
from nae.config import load_config, load_saved_config
from nae.errors import CheckpointError, ConfigError, DataError, DivergenceError
from nae.rundir import RunLock
from nae.run import load_run
from nae.trainer import Trainer

TOY = ["train.nae.max_iters=8", "train.ckpt_every=1000", "data.n_train=800", "data.batch_size=100"]
CLI = [sys.executable, "-m", "nae", "train", "toy2d", "--budget", "smoke", "--quiet"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def toy_cfg(*extra):
    return load_config("toy2d", budget="smoke", overrides=[*TOY, *extra])


def cli(argv, capsys):
    """``python -m nae ARGV`` in this process: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def events(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def same_weights(a, b):
    a, b = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- 1. the run-directory lock ----------------------------------------------------------


HOLD = "import sys, time; from nae.rundir import RunLock; lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)"


def _holder(run):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_writer_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    p = _holder(run)
    try:
        with pytest.raises(CheckpointError, match=f"in use by another training \\(PID {p.pid} "):
            Trainer(toy_cfg(), run, progress=False).fit()
        assert not (run / "config.yml").exists()  # refused before writing anything
    finally:
        p.kill()
        p.wait()
    t = Trainer(toy_cfg("train.nae.max_iters=2"), run, progress=False)  # the holder was killed: stale lock
    assert t.fit() == "done"
    taken = [e for e in events(run) if e["event"] == "lock_taken_over"]
    assert taken and taken[0]["stale_holder"].startswith(f"{p.pid} ")
    assert (run / ".lock").read_text() == ""  # released cleanly at the end
    assert RunLock(run).acquire().stale_holder is None


def test_resume_of_a_run_in_use_is_refused_before_writing(tmp_path):
    run = tmp_path / "run"
    Trainer(toy_cfg(), run, progress=False).fit(stop_after=2)
    before = {f: (run / f).read_bytes() for f in ("config.yml", "metrics.jsonl", "checkpoint.pt")}
    p = _holder(run)
    try:
        with pytest.raises(CheckpointError, match=f"PID {p.pid} "):
            Trainer.resume(run, progress=False, extend=["train.nae.lr=1e-6"]).fit()
    finally:
        p.kill()
        p.wait()
    assert before == {f: (run / f).read_bytes() for f in before}


# --- 2. resume changes the weights would not get; CONFIG/--budget must match -------------


@pytest.mark.parametrize("change", ["train.ae.epochs=3", "train.nae.max_iters=5", "train.ae.lr=1e-3"])
def test_resume_refuses_a_schedule_the_weights_did_not_get(tmp_path, change):
    run = tmp_path / "run"
    assert Trainer(toy_cfg(), run, progress=False).fit() == "done"
    before = (run / "config.yml").read_bytes()
    with pytest.raises(ConfigError, match="cannot be applied on resume"):
        Trainer.resume(run, progress=False, extend=[change]).fit()
    assert (run / "config.yml").read_bytes() == before


def test_resume_refuses_a_budget_below_the_current_step(tmp_path):
    run = tmp_path / "run"
    assert Trainer(toy_cfg(), run, progress=False).fit(stop_after=6) == "paused"
    with pytest.raises(ConfigError, match="already at iteration 6"):
        Trainer.resume(run, progress=False, extend=["train.nae.max_iters=4"])


def test_resume_config_and_budget_must_match_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(toy_cfg(), run, progress=False).fit(stop_after=2)
    before = (run / "config.yml").read_bytes()
    rc, _, err = cli(["train", "toy2d", "--budget", "smoke", "--resume", "--out", run, "--quiet"], capsys)
    assert rc == 2 and "does not match the run" in err and "data.batch_size" in err
    rc, _, err = cli(["train", "--budget", "full", "--resume", "--out", run, "--quiet"], capsys)
    assert rc == 2 and "--budget full does not match" in err
    assert (run / "config.yml").read_bytes() == before
    rc, out, _ = cli(["train", "toy2d", "--budget", "smoke", "--resume", "--out", run, "--quiet", *TOY], capsys)
    assert rc == 0 and f"resumed from {run / 'checkpoint.pt'} at phase nae, step 2" in out


# --- 3. values no run can use -------------------------------------------------------------


@pytest.mark.parametrize("override,key", [
    ("train.nae.lr=0", "train.nae.lr"), ("train.nae.lr=-1e-4", "train.nae.lr"), ("train.ae.lr=1e38", "train.ae.lr"),
    ("train.nae.max_iters=0", "train.nae.max_iters"), ("train.nae.max_iters=-2", "train.nae.max_iters"),
    ("train.nae.epochs=0", "train.nae.epochs"), ("train.nae.val_every=0", "train.nae.val_every"),
    ("train.ckpt_every=0", "train.ckpt_every"), ("train.ckpt_minutes=0", "train.ckpt_minutes"),
    ("model.z_dim=0", "model.z_dim"), ("model.temperature=0", "model.temperature"),
    ("data.eval_batch_size=0", "data.eval_batch_size"), ("sampler.x_chain.step_size=-1", "sampler.x_chain.step_size"),
    ("sampler.z_chain.step_size=-0.1", "sampler.z_chain.step_size"),
])
def test_unusable_values_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        toy_cfg(override)


def test_misspelt_ood_names_and_an_empty_config_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.ood_val.*unknown data set 'Constnat'.*Did you mean 'Constant'"):
        load_config("mnist_ood", budget="smoke", overrides=["data.ood_val=Constnat"])
    with pytest.raises(ConfigError, match=r"data\.ood_target"):
        load_config("mnist_ood", budget="smoke", overrides=["data.ood_target=Nosie"])
    assert load_config("mnist_ood", budget="smoke", overrides=["data.ood_val=SVHN"])  # registered: fine, even if absent
    (tmp_path / "empty.yml").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_config(tmp_path / "empty.yml")


@pytest.mark.parametrize("argv,needle", [
    (["train", "toy2d", "--max-minutes", "0"], "--max-minutes must be positive"),
    (["train", "toy2d", "--max-minutes", "-1"], "--max-minutes must be positive"),
    (["evaluate", "RUN", "--ood", ""], "names no outlier set"),
    (["evaluate", "RUN", "--ood", "Constant,NoSuchSet"], "unknown data set 'NoSuchSet'"),
    (["sample", "RUN", "--n", "0", "--out", "s.png"], "--n must be positive"),
    (["sample", "RUN", "--n", "-3", "--out", "s.png"], "--n must be positive"),
    (["sample", "RUN", "--z-steps", "-1", "--out", "s.png"], "--z-steps must be >= 0"),
    (["sample", "RUN", "--out", "no/such/dir/s.png"], "does not exist"),
])
def test_unusable_options_are_refused_before_any_work(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli([str(tmp_path / "nothing") if a == "RUN" else a for a in argv], capsys)
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert "nothing" not in err  # refused before the (missing) run directory was even looked at


def test_user_data_with_no_images_is_refused(tmp_path):
    np.savez(tmp_path / "none.npz", x=np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(DataError, match="0 images"):
        nae.data.load_dataset(f"npz:{tmp_path / 'none.npz'}", "train")


# --- 4. divergence --------------------------------------------------------------------------


class _Blowup:
    """Finite but absurd weights after iteration 3: the energies they give overflow."""

    def on_event(self, event, trainer, metrics):
        if event == "step" and trainer.state["phase"] == "nae" and trainer.state["step"] == 3:
            with torch.no_grad():
                for p in trainer.model.decoder.parameters():
                    p.fill_(1e30)


def test_the_kept_checkpoint_has_finite_weights_and_energies(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DivergenceError) as e:
        Trainer(toy_cfg("train.ckpt_every=1"), run, callbacks=[_Blowup()], progress=False).fit()
    assert "after iteration 3" in str(e.value)
    assert f"python -m nae train --resume --out {run} train.nae.lr=1e-06" in str(e.value)  # advice that works
    obj = load_checkpoint(run / "checkpoint.pt")
    assert obj["state"]["step"] == 2
    assert all(v.abs().max() < 1e3 for v in obj["model"].values() if v.is_floating_point())


def test_learning_rate_can_change_on_resume_and_is_recorded(tmp_path):
    run = tmp_path / "run"
    assert Trainer(toy_cfg(), run, progress=False).fit(stop_after=3) == "paused"
    t = Trainer.resume(run, progress=False, extend=["train.nae.lr=1e-6"])
    assert [g["lr"] for g in t.optimizer.param_groups][0] == 1e-6
    assert t.fit() == "done"
    entry = {"phase": "nae", "step": 3, "key": "train.nae.lr", "old": 1e-5, "new": 1e-6}
    hist = load_checkpoint(run / "checkpoint.pt")["history"]
    assert [{k: h[k] for k in entry} for h in hist] == [entry]
    assert load_saved_config(run / "config.yml").train.nae.lr == 1e-6
    assert "nae 3: train.nae.lr: 1e-05 -> 1e-06" in (run / "config.yml").read_text()
    assert any(e["event"] == "changed" and e["key"] == "train.nae.lr" for e in events(run))
    # the history survives a second resume
    again = Trainer.resume(run, progress=False, extend=["train.nae.max_iters=10"])
    again.fit()
    assert [h["key"] for h in load_checkpoint(run / "checkpoint.pt")["history"]] == ["train.nae.lr", "train.nae.max_iters"]


def test_adam_overflow_is_a_divergence_error(tmp_path):
    cfg = toy_cfg()
    cfg.train.nae.lr = 1e38  # past the config check (an old run, a notebook): no overflow traceback either
    t = Trainer(cfg, tmp_path / "run", progress=False)
    with pytest.raises(DivergenceError, match="learning rate is far too large|NaN or inf"):
        t.fit()


# --- 5. interruptions and storage ---------------------------------------------------------

SIG_OVER = ["train.nae.max_iters=40", "train.ckpt_every=1000", "data.n_train=800", "data.batch_size=100",
            "train.nae.val_every=4"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    ref = tmp_path_factory.mktemp("faults") / "ref"
    subprocess.run([*CLI, "--out", str(ref), *SIG_OVER], check=True, env=ENV, timeout=300)
    return ref


def _wait_for_validation(run, p, step):
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if (run / "metrics.jsonl").is_file() and any(
                e["event"] == "validation" and e["step"] >= step for e in events(run)):
            return
        time.sleep(0.05)
    raise AssertionError("the training did not reach its first validations")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_checkpoints_and_resume_is_bit_identical(tmp_path, reference_run, sig, code):
    run = tmp_path / "run"
    p = subprocess.Popen([*CLI, "--out", str(run), *SIG_OVER], env=ENV, stderr=subprocess.PIPE, text=True)
    _wait_for_validation(run, p, 4)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    state = load_checkpoint(run / "checkpoint.pt")["state"]
    assert not state["done"] and state["step"] >= 4, "the run finished before the signal; the test proves nothing"
    assert f"interrupted by {sig.name} at phase nae, step {state['step']}" in err
    assert f"--resume --out {run}" in err and str(run / "checkpoint.pt") in err
    r = subprocess.run([*CLI, "--out", str(run), "--resume", *SIG_OVER], env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resumed from {run / 'checkpoint.pt'} at phase nae, step {state['step']}" in r.stdout
    assert same_weights(reference_run / "model.pt", run / "model.pt")
    keys = [(e["event"], e["phase"], e["step"]) for e in events(run) if e["event"] in ("step", "validation")]
    assert keys == [(e["event"], e["phase"], e["step"]) for e in events(reference_run)
                    if e["event"] in ("step", "validation")]


class _SignalSelf:
    """Sends this process a signal during one iteration (as Ctrl-C in a notebook would)."""

    def __init__(self, step, sig=signal.SIGINT):
        self.step, self.sig = step, sig

    def on_event(self, event, trainer, metrics):
        if event == "step" and trainer.state["step"] == self.step:
            os.kill(os.getpid(), self.sig)


def test_a_signal_in_the_library_checkpoints_then_stops_the_caller(tmp_path):
    """fit() raises TrainingInterrupted (a KeyboardInterrupt): nothing after it runs on a half-trained model."""
    run = tmp_path / "run"
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(nae.TrainingInterrupted) as e:
        Trainer(toy_cfg(), run, callbacks=[_SignalSelf(3)], progress=False).fit()
    assert isinstance(e.value, KeyboardInterrupt) and e.value.exit_status == 130
    assert load_checkpoint(run / "checkpoint.pt")["state"]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's handler is back
    assert Trainer.resume(run, progress=False).fit() == "done"


class _SignalMidChain:
    """Sends SIGTERM from inside a Langevin chain of NAE iteration ``step`` (at the chains'
    ``call``-th energy evaluation), as a pause during a minutes-long 64x64 iteration would."""

    def __init__(self, step, call=4):
        self.step, self.call, self.calls = step, call, 0  # energy evaluations inside chains

    def on_event(self, event, trainer, metrics):
        if event == "step" and trainer.state["phase"] == "nae" and trainer.state["step"] == self.step - 1:
            model, energy = trainer.model, trainer.model.energy

            def counted(x):
                if any(f.name == "langevin_chain" for f in traceback.extract_stack()):
                    self.calls += 1
                    if self.calls == self.call:
                        os.kill(os.getpid(), signal.SIGTERM)
                return energy(x)

            model.energy = counted  # the sampler reads model.energy at each draw


def test_a_signal_mid_chain_abandons_the_iteration_and_resume_is_exact(tmp_path):
    """The signal is honoured within one Langevin step, not at the iteration's end; the abandoned
    iteration leaves no trace (weights, replay buffer, generator), so the resumed run equals one
    never interrupted."""
    over = ["train.nae.max_iters=6"]
    ref = Trainer(toy_cfg(*over), tmp_path / "ref", progress=False)
    assert ref.fit() == "done"
    run = tmp_path / "run"
    sig = _SignalMidChain(step=4)
    with pytest.raises(nae.TrainingInterrupted) as e:
        Trainer(toy_cfg(*over), run, callbacks=[sig], progress=False).fit()
    assert e.value.signal == "SIGTERM" and "at phase nae, step 3" in str(e.value)
    assert sig.calls == sig.call, "the chain went on after the signal"
    obj = load_checkpoint(run / "checkpoint.pt")
    assert obj["state"]["step"] == 3 and not obj["state"]["done"]
    assert [(ev["phase"], ev["step"]) for ev in events(run) if ev["event"] == "interrupted"] == [("nae", 3)]
    resumed = Trainer.resume(run, progress=False)
    assert resumed.fit() == "done"
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert torch.equal(ref.model.sampler.buffer.latest(50), resumed.model.sampler.buffer.latest(50))


class _Crash:
    """Kills the training (an exception) at one iteration, after checkpoints and validations."""

    def __init__(self, step):
        self.step = step

    def on_event(self, event, trainer, metrics):
        if event == "step" and trainer.state["step"] == self.step:
            raise KeyboardInterrupt


def test_no_duplicate_events_after_a_resume(tmp_path):
    run = tmp_path / "run"
    over = ["train.nae.val_every=1", "train.ckpt_every=5", "train.nae.max_iters=12"]
    with pytest.raises(KeyboardInterrupt):
        Trainer(toy_cfg(*over), run, callbacks=[_Crash(8)], progress=False).fit()
    assert load_checkpoint(run / "checkpoint.pt")["state"]["step"] == 5
    Trainer.resume(run, progress=False).fit()
    vals = [e["step"] for e in events(run) if e["event"] == "validation" and e["phase"] == "nae"]
    assert vals == list(range(1, 13))
    ckpts = [e["step"] for e in events(run) if e["event"] == "checkpoint" and e["phase"] == "nae"]
    assert ckpts == sorted(ckpts) and ckpts.count(5) == 1


def test_checkpoints_on_a_time_interval(tmp_path):
    t = Trainer(toy_cfg("train.ckpt_minutes=1e-9"), tmp_path / "run", progress=False)
    t.fit()
    steps = [r["step"] for r in t.history.records if r["event"] == "checkpoint" and r["phase"] == "nae"]
    assert steps == list(range(0, 8))  # the AE phase's end, then every iteration but the last  # every iteration but the last (then model.pt and the final checkpoint)


def test_stale_temporary_files_are_removed_on_start(tmp_path):
    run = tmp_path / "run"
    Trainer(toy_cfg(), run, progress=False).fit(stop_after=2)
    for name in ("checkpoint.pt.abc123.tmp", "model.pt.x.tmp"):
        (run / name).write_bytes(b"\0" * 1000)
    Trainer.resume(run, progress=False).fit()
    assert not list(run.glob("*.tmp"))


@pytest.mark.parametrize("code,cause", [(errno.ENOSPC, "no space left on device"), (errno.EROFS, "read-only file system")])
def test_full_or_read_only_storage_is_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch, code, cause):
    run = tmp_path / "run"
    t = Trainer(toy_cfg("train.ckpt_every=2"), run, progress=False)
    real_save = torch.save
    calls = []

    def failing_save(obj, f, *a, **kw):
        if "state" in obj:  # a checkpoint.pt (not ae.pt or model.pt)
            calls.append(obj["state"]["step"])
        if len(calls) >= 3:  # after the checkpoints at the AE phase's end and at step 2: the disk is full
            f.write(b"half a checkpoint")
            raise OSError(code, os.strerror(code))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(ckpt.torch, "save", failing_save)
    with pytest.raises(CheckpointError) as e:
        t.fit()
    msg = str(e.value)
    assert msg.startswith(f"{cause} at {run / 'checkpoint.pt'}") and "\n" not in msg
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoint.pt")["state"]["step"] == 2  # the previous one, intact
    assert not list(run.glob("*.tmp"))


# --- 6. published models ------------------------------------------------------------------


@pytest.fixture
def published_copy(tmp_path, repo):
    root = tmp_path / "published"
    root.mkdir()
    manifest = json.loads((repo / "pretrained" / "manifest.json").read_text())
    shutil.copytree(repo / "pretrained" / "toy2d_ae", root / "toy2d_ae")
    (root / "manifest.json").write_text(json.dumps({"toy2d_ae": manifest["toy2d_ae"]}))
    return root


def test_a_copied_published_model_is_hash_checked(published_copy, tmp_path):
    copy = tmp_path / "elsewhere" / "toy2d_ae"
    shutil.copytree(published_copy / "toy2d_ae", copy)
    assert load_run(copy).kind == "ae"  # intact: loads
    m = nae.load_pretrained("toy2d_ae", root=published_copy)  # the top-level wrapper takes root=
    assert m.pretrained_name == "toy2d_ae"
    data = bytearray((copy / "model.pt").read_bytes())
    data[-100] ^= 0xFF
    (copy / "model.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_run(copy)
    from nae.evaluate import evaluate_run

    with pytest.raises(CheckpointError, match="sha256"):
        evaluate_run(copy, ["Noise"])


def test_the_run_a_model_was_published_from_still_loads(tmp_path):
    from nae.pretrained import publish

    run = tmp_path / "run"
    Trainer(toy_cfg(), run, progress=False).fit()
    root = tmp_path / "published"
    root.mkdir()
    publish(run, "toy", {"budget": "test"}, root=root)  # fp16 copies: their sha256 differ from run's files
    shutil.copy(root / "manifest.json", tmp_path / "manifest.json")  # a manifest next to the run, too
    assert load_run(run).kind == load_run(root / "toy").kind  # the source is not taken for a corrupt copy
    copy = tmp_path / "copy"
    shutil.copytree(root / "toy", copy)
    data = bytearray((copy / "model.pt").read_bytes())
    data[-100] ^= 0xFF
    (copy / "model.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):  # a corrupt copy still is
        load_run(copy)


def test_a_broken_manifest_is_a_clear_error(published_copy):
    (published_copy / "manifest.json").write_text('{"toy2d_ae": {"files": ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        nae.load_pretrained("toy2d_ae", root=published_copy)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_run(published_copy / "toy2d_ae")


def _idx(dims, payload: bytes) -> bytes:
    return b"\0\0\x08" + bytes([len(dims)]) + struct.pack(">" + "I" * len(dims), *dims) + payload


@pytest.mark.parametrize("gz", [False, True])
def test_nae_data_reports_a_truncated_idx_file(tmp_path, gz):
    d = tmp_path / "MNIST" / "raw"
    d.mkdir(parents=True)
    files = {"train-images-idx3-ubyte": _idx((100, 28, 28), bytes(100 * 784 - 10)),  # truncated
             "train-labels-idx1-ubyte": _idx((100,), bytes(100)),
             "t10k-images-idx3-ubyte": _idx((10, 28, 28), bytes(10 * 784)),
             "t10k-labels-idx1-ubyte": _idx((10,), bytes(10))}
    for name, raw in files.items():
        if gz:
            (d / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (d / name).write_bytes(raw)
    row = next(r for r in nae.data.list_datasets(tmp_path) if r["name"] == "MNIST")
    assert row["found"] and "truncated" in row.get("error", "") and "train-images" in row["error"]


def test_publishing_a_continuation_keeps_the_earlier_log(tmp_path):
    from nae.diagnostics import read_metrics, segment_starts, series
    from nae.pretrained import HISTORY, publish, read_manifest

    root = tmp_path / "published"
    first = tmp_path / "first"
    Trainer(toy_cfg(), first, progress=False).fit()
    publish(first, "toy", {"budget": "test"}, root=root)
    assert not (root / "toy" / HISTORY).exists()  # a model trained in one run has no history
    first_log = (root / "toy" / "metrics.jsonl").read_text()

    second = tmp_path / "second"  # continues the published weights
    Trainer(toy_cfg("train.nae.max_iters=5", f"train.init_ae={root / 'toy'}", f"train.init_nae={root / 'toy'}"), second, progress=False).fit()
    publish(second, "toy", {"budget": "test"}, root=root)
    publish(second, "toy", {"budget": "test, metrics filled in"}, root=root)  # publishing the same run again
    hist = [json.loads(x) for x in (root / "toy" / HISTORY).read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "segment"} for r in hist] == \
        [json.loads(x) for x in first_log.splitlines()]
    assert {r["segment"] for r in hist} == {0}
    assert HISTORY in read_manifest(root)["toy"]["files"]  # hash-checked like the other files
    nae.load_pretrained("toy", root=root)

    rec = read_metrics(root / "toy", history=True)
    xs, _ = series(rec, "val_energy", event="validation")
    assert segment_starts(rec) == [8] and xs.max() == 8 + 5  # the continuation counts on from 8
    assert series(read_metrics(root / "toy"), "val_energy", event="validation")[0].max() == 5  # its own log

    third = tmp_path / "third"  # continues the continuation: one more segment
    Trainer(toy_cfg("train.nae.max_iters=3", f"train.init_ae={root / 'toy'}", f"train.init_nae={root / 'toy'}"), third, progress=False).fit()
    publish(third, "toy", {"budget": "test"}, root=root)
    rec = read_metrics(root / "toy", history=True)
    assert segment_starts(rec) == [8, 13] and series(rec, "val_energy", event="validation")[0].max() == 16

    fresh = tmp_path / "fresh"  # a new model under the same name: the history goes
    Trainer(toy_cfg(), fresh, progress=False).fit()
    publish(fresh, "toy", {"budget": "test"}, root=root)
    assert not (root / "toy" / HISTORY).exists()
    assert HISTORY not in read_manifest(root)["toy"]["files"]


def test_a_continuation_keeps_the_published_ae_file_byte_for_byte(tmp_path):
    from nae.pretrained import publish, read_manifest, sha256

    root = tmp_path / "published"
    first = tmp_path / "first"
    Trainer(toy_cfg(), first, progress=False).fit()
    publish(first, "toy", {"budget": "test"}, root=root)
    ae_bytes = (root / "toy" / "ae.pt").read_bytes()

    second = tmp_path / "second"  # its AE is the published one (its ae.pt embeds its own config)
    Trainer(toy_cfg("train.nae.max_iters=5", f"train.init_ae={root / 'toy'}", f"train.init_nae={root / 'toy'}"),
            second, progress=False).fit()
    publish(second, "toy", {"budget": "test"}, root=root)
    assert (root / "toy" / "ae.pt").read_bytes() == ae_bytes
    assert read_manifest(root)["toy"]["files"]["ae.pt"] == sha256(root / "toy" / "ae.pt")
    nae.load_pretrained("toy", root=root)  # hash-checked
    nae.load_pretrained("toy", which="ae", root=root)

    fresh = tmp_path / "fresh"  # its own AE (another seed): the file is replaced
    Trainer(toy_cfg("seed=7"), fresh, progress=False).fit()
    publish(fresh, "toy", {"budget": "test"}, root=root)
    assert (root / "toy" / "ae.pt").read_bytes() != ae_bytes
    assert read_manifest(root)["toy"]["files"]["ae.pt"] == sha256(root / "toy" / "ae.pt")


def test_an_nae_phase_published_over_its_ae_milestone_keeps_the_ae_log(tmp_path):
    from nae.diagnostics import read_metrics, segment_starts, series
    from nae.pretrained import HISTORY, publish

    root, ae_run, nae_run = tmp_path / "published", tmp_path / "ae", tmp_path / "nae"
    Trainer(toy_cfg(), ae_run, progress=False).fit()
    log = ae_run / "metrics.jsonl"  # as a run paused where its AE phase ended: the AE's records only
    log.write_text("".join(x + "\n" for x in log.read_text().splitlines() if json.loads(x).get("phase") != "nae"))
    publish(ae_run, "toy", {"budget": "test"}, root=root, stage="ae")
    ae_log = (root / "toy" / "metrics.jsonl").read_text()
    Trainer(toy_cfg("train.nae.max_iters=5", f"train.init_ae={root / 'toy'}"), nae_run, progress=False).fit()
    publish(nae_run, "toy", {"budget": "test"}, root=root)
    hist = [json.loads(x) for x in (root / "toy" / HISTORY).read_text().splitlines()]
    hist = [{k: v for k, v in r.items() if k != "segment"} for r in hist]
    assert hist == [json.loads(x) for x in ae_log.splitlines()]
    rec = read_metrics(root / "toy", history=True)
    assert segment_starts(rec) == []  # the NAE phase began here: no continuation to mark
    assert series(rec, "val_energy", event="validation")[0].max() == 5
    assert [r for r in rec if r.get("phase") == "ae" and r["segment"] == 0]  # the AE phase's log is kept

    again = tmp_path / "again"  # a new NAE phase from the same AE over a published NAE: a new model, no history
    Trainer(toy_cfg("train.nae.max_iters=3", f"train.init_ae={root / 'toy'}"), again, progress=False).fit()
    publish(again, "toy", {"budget": "test"}, root=root)
    assert not (root / "toy" / HISTORY).exists()


def test_a_published_run_resumed_and_published_again_keeps_its_history(tmp_path):
    from nae.pretrained import HISTORY, extends_published, publish

    root, ae_run, nae_run = tmp_path / "published", tmp_path / "ae", tmp_path / "nae"
    Trainer(toy_cfg(), ae_run, progress=False).fit()
    log = ae_run / "metrics.jsonl"  # the AE milestone, then an NAE phase from it published over it
    log.write_text("".join(x + "\n" for x in log.read_text().splitlines() if json.loads(x).get("phase") != "nae"))
    publish(ae_run, "toy", {"budget": "test"}, root=root, stage="ae")
    Trainer(toy_cfg("train.nae.max_iters=3", f"train.init_ae={root / 'toy'}"), nae_run, progress=False).fit()
    publish(nae_run, "toy", {"budget": "test"}, root=root)
    hist = (root / "toy" / HISTORY).read_text()
    assert not extends_published(nae_run, "toy", root=root)  # published as it is: nothing further
    Trainer.resume(nae_run, progress=False, extend=["train.nae.max_iters=5"]).fit()
    assert extends_published(nae_run, "toy", root=root)  # its log holds the published one and goes on
    publish(nae_run, "toy", {"budget": "test"}, root=root)
    assert (root / "toy" / HISTORY).read_text() == hist  # the AE phase's log stays with the model
    cont = tmp_path / "cont"  # a continuation of the published weights counts only its own iterations
    Trainer(toy_cfg("train.nae.max_iters=2", f"train.init_ae={root / 'toy'}", f"train.init_nae={root / 'toy'}"),
            cont, progress=False).fit()
    assert not extends_published(cont, "toy", root=root)


def test_a_failed_publish_leaves_the_published_model_as_it_was(tmp_path):
    from nae.pretrained import publish

    run, root = tmp_path / "run", tmp_path / "published"
    Trainer(toy_cfg(), run, progress=False).fit()
    publish(run, "toy", {"budget": "test"}, root=root)
    before = {f.name: f.read_bytes() for f in (root / "toy").iterdir()}
    unfinished = tmp_path / "unfinished"
    Trainer(toy_cfg(), unfinished, progress=False).fit(stop_after=3)
    with pytest.raises(CheckpointError, match="no model.pt"):
        publish(unfinished, "toy", {"budget": "test"}, root=root)
    assert {f.name: f.read_bytes() for f in (root / "toy").iterdir()} == before
    nae.load_pretrained("toy", root=root)
    assert sorted(p.name for p in root.iterdir()) == [".manifest.lock", "manifest.json", "toy"]


def test_a_finished_ae_phase_is_published_as_a_milestone(tmp_path):
    from nae.pretrained import publish, read_manifest

    run, root = tmp_path / "run", tmp_path / "published"
    Trainer(toy_cfg("train.nae.ema=0.9"), run, progress=False).fit(stop_after=3)  # in its NAE phase
    assert (run / "ae.pt").is_file() and not (run / "model.pt").exists()
    publish(run, "toy_ae", {"budget": "test"}, root=root, stage="ae")
    entry = read_manifest(root)["toy_ae"]
    assert entry["stage"] == "ae" and set(entry["files"]) >= {"ae.pt", "config.yml"}
    assert not {"model.pt", "ema.pt"} & set(entry["files"])
    assert nae.load_pretrained("toy_ae", which="ae", root=root).energy(torch.zeros(3, 2)).shape == (3,)
    with pytest.raises(CheckpointError, match="milestone: only its AE phase is published.*which='ae'"):
        nae.load_pretrained("toy_ae", root=root)  # no final model yet: said plainly, not "no model.pt"
    with pytest.raises(CheckpointError, match="only its AE phase is there.*--which ae"):
        load_run(root / "toy_ae")  # the folder given as a run directory (python -m nae evaluate DIR)


def test_filling_in_metrics_changes_the_manifest_entry_only(tmp_path, monkeypatch):
    from pathlib import Path

    from nae.pretrained import publish, read_manifest, update_entry

    run, root = tmp_path / "run", tmp_path / "published"
    Trainer(toy_cfg(), run, progress=False).fit()
    publish(run, "toy", {"budget": "test", "metrics": None}, root=root)
    files = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in (root / "toy").iterdir()}
    entry = update_entry("toy", {"metrics": {"auroc": {"Noise": 0.5}}}, root=root)
    assert entry == read_manifest(root)["toy"] and entry["metrics"] == {"auroc": {"Noise": 0.5}}
    assert entry["budget"] == "test"  # the rest of the entry stays
    assert {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in (root / "toy").iterdir()} == files
    with pytest.raises(ValueError, match="cannot change"):
        update_entry("toy", {"files": {}}, root=root)
    with pytest.raises(CheckpointError, match="no published model named 'other'.*toy"):
        update_entry("other", {"metrics": {}}, root=root)

    # scripts/make_pretrained.py copies (and converts) the files once, then fills the metrics in
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "scripts"))
    import make_pretrained

    calls = []
    monkeypatch.setattr(make_pretrained, "publish", lambda *a, **k: calls.append(a) or publish(*a, **k))
    assert make_pretrained.publish_run(run, "toy2", {"budget": "test"}, root=root) == {}
    assert len(calls) == 1 and read_manifest(root)["toy2"]["metrics"] == {}


def test_the_ae_phase_trains_on_from_given_weights(tmp_path):
    from nae.diagnostics import read_metrics
    from nae.pretrained import sha256
    from nae.trainer import Trainer as T

    first = tmp_path / "first"
    T(toy_cfg("train.ae.epochs=3"), first, progress=False).fit()
    (tmp_path / "probe").mkdir()
    probe = T(toy_cfg(f"train.ae.init={first}", "seed=5"), tmp_path / "probe", progress=False)
    probe._init_ae_phase()  # the weights it starts from are the given AE's
    sd = probe.model.state_dict()
    assert all(torch.equal(sd[k], v.float()) for k, v in load_checkpoint(first / "ae.pt")["model"].items())

    second = tmp_path / "second"
    T(toy_cfg("train.ae.epochs=1", f"train.ae.init={first}", "seed=5"), second, progress=False).fit()
    rec = read_metrics(second)
    init = [e for e in rec if e["event"] == "ae_init"]
    assert len(init) == 1 and init[0]["sha256"] == sha256(first / "ae.pt")
    val = lambda r: [e["val_energy"] for e in r if e["event"] == "validation" and e["phase"] == "ae"][0]
    assert val(rec) < val(read_metrics(first))  # one epoch more than the first AE's three: it trained on
    with pytest.raises(ConfigError, match="exclude each other"):
        toy_cfg(f"train.ae.init={first}", f"train.init_ae={first}")
    with pytest.raises(CheckpointError, match="train.ae.init"):
        T(toy_cfg(f"train.ae.init={tmp_path / 'nowhere'}"), tmp_path / "third", progress=False).fit()
