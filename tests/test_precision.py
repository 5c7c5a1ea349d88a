"""Precision: ``auto`` picks bf16 only where it is fast, bf16 chains keep fp32 state,
and a run records the precision it resolved to.  Also the campaign levers that change
what a step costs: fewer negatives per step, and an NAE phase started from a trained AE."""
import json

import pytest
import torch
import yaml

import nae.speed as P
from nae.checkpoint import load_checkpoint
from nae.config import load_config
from nae.errors import CheckpointError, ConfigError
from nae.langevin import langevin_chain
from nae.models import build_model
from nae.trainer import Trainer

MNIST_TINY = ["data.n_train=64", "data.n_val=32", "data.batch_size=16", "train.ae.max_iters=2",
              "train.nae.max_iters=1", "train.nae.val_every=100", "train.ae.val_every=100",
              "sampler.z_chain.n_steps=1", "sampler.x_chain.n_steps=2", "data.ood_val=null", "data.ood_target=null"]


@pytest.mark.parametrize("fast, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_resolves_to_bf16_only_where_it_is_fast(monkeypatch, fast, expected):
    monkeypatch.setattr(P, "cpu_bf16_fast", lambda: fast)
    assert P.resolve_precision("auto", "cpu") == expected
    assert P.resolve_precision("fp32", "cpu") == "fp32"
    assert P.resolve_precision("bf16", "cpu") == "bf16"


def test_avx512_bf16_without_amx_is_decided_by_the_probe(monkeypatch):
    monkeypatch.delenv("NAE_CPU_BF16", raising=False)
    monkeypatch.setattr(P, "cpu_bf16_native", lambda: True)
    monkeypatch.setattr(P, "cpu_features", lambda: {"avx512_bf16": True, "amx_bf16": False})
    monkeypatch.setattr(P, "bf16_probe_speedup", lambda: 0.8)  # the Intel Xeon we measured
    assert not P.cpu_bf16_fast()
    assert P.resolve_precision("auto", "cpu") == "fp32"
    with pytest.warns(UserWarning, match="0.80x as fast"):
        P.warn_if_slow("bf16", "cpu")
    monkeypatch.setattr(P, "bf16_probe_speedup", lambda: 1.8)  # the AMD EPYC Zen 5 we measured
    assert P.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(P, "cpu_features", lambda: {"avx512_bf16": True, "amx_bf16": True})
    monkeypatch.setattr(P, "bf16_probe_speedup", lambda: pytest.fail("AMX needs no probe"))
    assert P.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(P, "cpu_features", lambda: {"avx2": True})
    monkeypatch.setattr(P, "cpu_bf16_native", lambda: False)
    assert P.resolve_precision("auto", "cpu") == "fp32"  # emulated bf16: no probe either


def test_the_probe_can_be_overridden_and_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setattr(P, "bf16_probe_speedup", lambda: pytest.fail("the variable decides"))
    monkeypatch.setenv("NAE_CPU_BF16", "fast")
    assert P.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setenv("NAE_CPU_BF16", "slow")
    assert P.resolve_precision("auto", "cpu") == "fp32"
    with pytest.warns(UserWarning, match="NAE_CPU_BF16=slow"):
        P.warn_if_slow("bf16", "cpu")
    monkeypatch.setenv("NAE_CPU_BF16", "quick")
    with pytest.raises(ConfigError, match="NAE_CPU_BF16='quick'.*'fast', 'slow'"):
        P.resolve_precision("auto", "cpu")


def test_the_probe_measures_once_per_machine_and_returns_a_ratio(tmp_path, monkeypatch):
    monkeypatch.setenv("NAE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(P, "_probe_cache", {})
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    with torch.inference_mode():  # as in evaluation, where auto is resolved under no_grad
        r = P.bf16_probe_speedup(reps=1)
    assert torch.equal(torch.rand(3), expected)  # the global random stream did not move
    assert r > 0 and P.bf16_probe_speedup() == r
    assert "bf16 probe" in P.isa_line()
    # another process on the machine (an empty memory cache) reads the figure instead of measuring
    monkeypatch.setattr(P, "_probe_cache", {})
    assert json.loads((tmp_path / "bf16_probe.json").read_text()) == {P._probe_key(): r}
    assert P.bf16_probe_speedup() == r
    (tmp_path / "bf16_probe.json").write_text("not json")  # a damaged file is measured anew
    monkeypatch.setattr(P, "_probe_cache", {})
    assert P.bf16_probe_speedup(reps=1) > 0


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision 'fp16'"):
        P.resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="train.precision"):
        load_config("mnist_ood", budget="smoke", overrides=["train.precision=fp16"])


def test_every_config_defaults_to_auto():
    for name in ("toy2d", "mnist_ood", "mnist_holdout", "fmnist_ood", "cifar10_ood", "celeba64_ood"):
        assert load_config(name, budget="smoke").train.precision == "auto"


def test_a_bf16_chain_keeps_fp32_state():
    cfg = load_config("mnist_ood", budget="smoke")
    model = build_model(cfg).eval()
    x0 = torch.rand(4, 1, 28, 28)
    with P.autocast("cpu", "bf16"):
        e = model.energy(x0)
        res = langevin_chain(model.energy, x0, cfg.sampler.x_chain, 1.0, torch.Generator().manual_seed(0))
        out = model.sampler.sample(model, 4, generator=torch.Generator().manual_seed(1))
    assert e.dtype == torch.float32  # the energy (a reduction of (x - x_hat)^2) is fp32
    assert res.x.dtype == torch.float32
    assert out["x"].dtype == torch.float32 and out["z"].dtype == torch.float32
    assert model.sampler.buffer.data.dtype == torch.float32
    assert not torch.equal(res.x, x0)


@pytest.mark.parametrize("requested", ["auto", "bf16"])
def test_a_run_records_the_precision_it_resolved_to(tmp_path, requested):
    cfg = load_config("mnist_ood", budget="smoke", overrides=[*MNIST_TINY, f"train.precision={requested}"])
    with pytest.warns(UserWarning, match="slower") if (requested == "bf16" and not P.cpu_bf16_fast()) else _nothing():
        Trainer(cfg, tmp_path / "run", progress=False).fit()
    saved = yaml.safe_load((tmp_path / "run" / "config.yml").read_text())
    expected = P.resolve_precision(requested, "cpu")
    assert saved["train"]["precision"] == expected
    starts = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"start"' in line]
    assert starts and f'"precision": "{expected}"' in starts[0]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_n_negatives_sets_the_negatives_per_step(tmp_path):
    cfg = load_config("mnist_ood", budget="smoke", overrides=[*MNIST_TINY, "sampler.n_negatives=4"])
    t = Trainer(cfg, tmp_path / "run", progress=False)
    t.fit()
    assert t.last_negatives.shape[0] == 4
    with pytest.raises(ConfigError, match="n_negatives must be positive"):
        load_config("mnist_ood", budget="smoke", overrides=["sampler.n_negatives=0"])


def test_an_nae_phase_can_start_from_another_runs_autoencoder(tmp_path):
    a = Trainer(load_config("mnist_ood", budget="smoke", overrides=MNIST_TINY), tmp_path / "a", progress=False)
    a.fit()
    cfg = load_config("mnist_ood", budget="smoke",
                      overrides=[*MNIST_TINY, f"train.init_ae={tmp_path / 'a'}", "train.nae.max_iters=2"])
    b = Trainer(cfg, tmp_path / "b", progress=False)
    assert b.state["phase"] == "nae"
    b.fit()
    ae_a, ae_b = load_checkpoint(tmp_path / "a" / "ae.pt"), load_checkpoint(tmp_path / "b" / "ae.pt")
    assert ae_a["model"].keys() == ae_b["model"].keys()
    assert all(torch.equal(ae_a["model"][k], ae_b["model"][k]) for k in ae_a["model"])
    assert not [r for r in b.history.records if r["phase"] == "ae"]  # no AE step was taken
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["state"]["init_ae"]["path"].endswith("ae.pt")
    # a model of another shape is refused with the reason
    bad = load_config("mnist_ood", budget="smoke", overrides=[*MNIST_TINY, "model.z_dim=16",
                                                             f"train.init_ae={tmp_path / 'a' / 'ae.pt'}"])
    with pytest.raises(CheckpointError, match="does not fit|does not hold"):
        Trainer(bad, tmp_path / "c", progress=False).fit()
    with pytest.raises(CheckpointError, match="neither a file named ae.pt"):
        Trainer(load_config("mnist_ood", budget="smoke", overrides=[*MNIST_TINY, "train.init_ae=/nope/ae.pt"]),
                tmp_path / "d", progress=False).fit()


def test_an_nae_can_be_continued_from_its_weights_with_a_fresh_optimiser(tmp_path):
    a = Trainer(load_config("mnist_ood", budget="smoke", overrides=MNIST_TINY), tmp_path / "a", progress=False)
    a.fit()
    cfg = load_config("mnist_ood", budget="smoke", overrides=[
        *MNIST_TINY, f"train.init_ae={tmp_path / 'a'}", f"train.init_nae={tmp_path / 'a'}", "train.nae.max_iters=1"])
    b = Trainer(cfg, tmp_path / "b", progress=False)
    starts = {}

    class Grab:  # the weights right after init_nae, before the first NAE step
        def on_event(self, event, trainer, metrics):
            if event == "init_nae":
                starts.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    b.callbacks.append(Grab())
    b.fit()
    nae_a, ae_a = load_checkpoint(tmp_path / "a" / "model.pt")["model"], load_checkpoint(tmp_path / "a" / "ae.pt")["model"]
    assert starts and all(torch.equal(starts[k], nae_a[k].float()) for k in nae_a)  # began at a's NAE weights
    ae_b = load_checkpoint(tmp_path / "b" / "ae.pt")["model"]
    assert all(torch.equal(ae_a[k], ae_b[k]) for k in ae_a)  # the baseline is still a's AE
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["state"]["init_nae"]["path"].endswith("model.pt")
    with pytest.raises(ConfigError, match="init_nae needs train.init_ae"):
        load_config("mnist_ood", budget="smoke", overrides=[f"train.init_nae={tmp_path / 'a'}"])


def test_flush_denormal_is_an_option_that_a_resume_may_switch_on(tmp_path):
    from nae.config import RESUMABLE_KEYS

    assert load_config("mnist_ood", budget="smoke").train.flush_denormal is False
    cfg = load_config("mnist_ood", budget="smoke", overrides=[*MNIST_TINY, "train.flush_denormal=true"])
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert torch.tensor(1e-40).item() != 0.0  # fit() gives the process its IEEE denormals back
    assert "train.flush_denormal" in RESUMABLE_KEYS


def test_the_ae_phase_logs_the_ae_auroc_of_the_watched_sets(tmp_path):
    """The AE's validations carry the AUROC of each watched outlier set (the baseline's curve);
    curves of the NAE phase still read only the NAE's validations."""
    from nae.diagnostics import read_metrics, series

    over = [*MNIST_TINY[:-2], "data.ood_val=Constant", "data.ood_target=null", "train.ae.val_every=2",
            "train.precision=fp32"]
    cfg = load_config("mnist_ood", budget="smoke", overrides=over)
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    rec = read_metrics(tmp_path / "run")
    ae_vals = [r for r in rec if r.get("event") == "validation" and r.get("phase") == "ae"]
    assert ae_vals and all(0.0 <= r["auroc_Constant"] <= 1.0 for r in ae_vals)
    xs, _ = series(rec, "auroc_Constant", event="validation")  # the NAE phase's only
    assert len(xs) == len([r for r in rec if r.get("event") == "validation" and r.get("phase") == "nae"])
