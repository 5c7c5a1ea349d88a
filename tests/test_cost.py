"""nae.cost: timing a config's steps and multiplying out a schedule."""
from nae.config import load_config
from nae.cost import compute_markdown, measure, nae_step_s, schedule_hours


def test_measure_and_schedule_hours_add_up():
    cfg = load_config("mnist_ood", budget="smoke", overrides=["sampler.n_negatives=8"])
    t = measure(cfg, "fp32", reps=1)
    assert t["n_neg"] == 8 and t["batch"] == cfg.data.batch_size
    assert all(t[k] > 0 for k in ("ae_step_s", "z_pass_s", "x_pass_s", "loss_step_s"))
    h = schedule_hours(cfg, t, n_train=320, ae_epochs=2, nae_iters=10)
    assert h["ae_steps"] == 2 * 10  # 320 images at batch 32
    expected = 5 * t["z_pass_s"] + 10 * t["x_pass_s"] + t["loss_step_s"]  # the smoke chains: 5 + 10 steps
    assert abs(nae_step_s(cfg, t) - expected) < 1e-12
    assert abs(h["hours"] - (20 * t["ae_step_s"] + 10 * expected) / 3600) < 1e-12
    md = compute_markdown({"smoke, fp32": {**t, **h}})
    assert md.splitlines()[2].startswith("| smoke, fp32 |") and "20 steps" in md


def test_measure_only_times_the_parts_asked_for():
    import pytest

    cfg = load_config("mnist_ood", budget="smoke")
    t = measure(cfg, "fp32", reps=1, n_neg=4, only=("x_pass_s",))
    assert t["x_pass_s"] > 0 and "ae_step_s" not in t and t["n_neg"] == 4
    with pytest.raises(ValueError, match="unknown parts"):
        measure(cfg, "fp32", reps=1, only=("gpu_s",))
