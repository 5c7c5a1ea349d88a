"""Configs: the shipped files load in both budgets; mistakes are clear errors."""
from pathlib import Path

import pytest

from nae.config import CONFIG_DIR, load_config
from nae.errors import ConfigError

CONFIGS = ["toy2d", "mnist_ood", "mnist_holdout", "fmnist_ood", "cifar10_ood", "celeba64_ood"]


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("budget", ["smoke", "full"])
def test_shipped_configs_load(name, budget):
    assert (CONFIG_DIR / f"{name}.yml").is_file()
    cfg = load_config(name, budget=budget)
    assert cfg.budget == budget


def test_original_hyperparameters():
    c = load_config("mnist_ood", budget="full")
    assert (c.sampler.z_chain.n_steps, c.sampler.x_chain.n_steps) == (10, 50)
    assert c.train.ae.lr == 1e-4 and c.train.nae.lr == 1e-5 and c.train.nae.l2_enc == 1e-4
    c = load_config("cifar10_ood", budget="full")
    assert (c.sampler.z_chain.n_steps, c.sampler.x_chain.n_steps) == (20, 40)
    assert c.train.ae.epochs == 180 and c.train.nae.epochs == 10
    assert c.data.hflip and c.data.dequantize


def test_budget_from_environment(monkeypatch):
    monkeypatch.setenv("NAE_BUDGET", "smoke")
    assert load_config("mnist_ood").budget == "smoke"
    monkeypatch.setenv("NAE_BUDGET", "huge")
    with pytest.raises(ConfigError, match="unknown budget 'huge'"):
        load_config("mnist_ood")


def test_overrides():
    cfg = load_config("mnist_ood", budget="full", overrides=["train.nae.lr=3e-5", "sampler.x_chain.n_steps=7"])
    assert cfg.train.nae.lr == 3e-5 and cfg.sampler.x_chain.n_steps == 7


def _write(tmp_path, text):
    p = Path(tmp_path) / "c.yml"
    p.write_text(text)
    return p


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, "name: x\nsed: 3\n"), budget="full")
    msg = str(e.value)
    assert "'sed'" in msg and "Did you mean 'seed'" in msg and "data" in msg and "model" in msg


def test_unknown_nested_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, "sampler:\n  x_chain:\n    n_step: 3\n"), budget="full")
    msg = str(e.value)
    assert "sampler.x_chain.n_step" in msg and "n_steps" in msg and "noise_std" in msg


def test_unknown_override_and_budget_key():
    with pytest.raises(ConfigError, match="train.nae.lrr"):
        load_config("mnist_ood", budget="full", overrides=["train.nae.lrr=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config("mnist_ood", budget="full", overrides=["train.nae.lr"])


def test_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="must be an integer"):
        load_config(_write(tmp_path, "seed: abc\n"), budget="full")
    with pytest.raises(ConfigError, match="model.kind"):
        load_config(_write(tmp_path, "model: {kind: gan}\n"), budget="full")
    with pytest.raises(ConfigError, match="unknown budget 'medium'"):
        load_config(_write(tmp_path, "budgets: {medium: {}}\n"), budget="full")
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_config", budget="full")


def test_schedule_changes_lists_only_schedule_keys_that_differ():
    from nae.config import extend_schedule, load_config, schedule_changes

    a = load_config("toy2d", budget="smoke")
    b = load_config("toy2d", budget="smoke", overrides=["train.nae.max_iters=50", "train.nae.lr=0.5"])
    assert schedule_changes(a, b) == [("train.nae.max_iters", 50)]  # lr is not a schedule key
    assert schedule_changes(a, a) == []
    assert extend_schedule(a, schedule_changes(a, b)).train.nae.max_iters == 50


def test_loss_names_and_their_deprecated_aliases(tmp_path):
    """``train.nae.loss`` says what it computes; the old names v1 / v2 (config.yml of earlier
    runs and published models) still load, as the new names."""
    from nae.config import load_saved_config, save_config

    assert load_config("toy2d").train.nae.loss == "energy_difference"
    assert load_config("mnist_holdout").train.nae.loss == "energy_difference_over_T"
    for old, new in (("v1", "energy_difference"), ("v2", "energy_difference_over_T")):
        cfg = load_config("toy2d", overrides=[f"train.nae.loss={old}"])
        assert cfg.train.nae.loss == new
        save_config(cfg, tmp_path / "config.yml")
        text = (tmp_path / "config.yml").read_text().replace(f"loss: {new}", f"loss: {old}")
        (tmp_path / "config.yml").write_text(text)
        assert load_saved_config(tmp_path / "config.yml").train.nae.loss == new
    with pytest.raises(ConfigError, match="energy_difference_over_T"):
        load_config("toy2d", overrides=["train.nae.loss=v3"])


def test_a_runs_overrides_are_read_back_from_its_saved_config(tmp_path):
    from nae.config import config_diff, load_saved_config, overrides_from, save_config

    given = ["data.holdout=[8]", "train.nae.lr=2e-05", "sampler.n_negatives=32", "train.init_ae=mnist_holdout_8",
             "train.precision=bf16", "seed=3"]
    cfg = load_config("mnist_holdout", budget="full", overrides=given)
    save_config(cfg, tmp_path / "config.yml")
    saved = load_saved_config(tmp_path / "config.yml")
    over = overrides_from(saved)
    assert sorted(k.split("=")[0] for k in over) == sorted(k.split("=")[0] for k in given)
    assert config_diff(load_config("mnist_holdout", budget="full", overrides=over), saved) == []  # same run again
    assert overrides_from(load_config("mnist_ood", budget="smoke")) == []  # the file as it is: nothing to say
