"""2-D helpers (nae.tutorial.plots2d) and the 8-Gaussians recipes (nae.tutorial.recipes.toy2d)."""
import math

import numpy as np
import pytest
import torch

from nae.tutorial import plots2d as P
from nae.tutorial.notebook import recipe_config
from nae.tutorial.recipes import RECIPES
from nae.tutorial.recipes.toy2d import RECIPES as TOY_RECIPES
from nae.toy2d import eight_gaussian_centres, grid, sample_toy

NAMES = ["toy2d_ae", "toy2d_vae", "toy2d_nae_omi", "toy2d_nae_cd", "toy2d_nae_pcd"]


# ---------------------------------------------------------------------------------
# recipes


def test_recipes_registered():
    assert sorted(TOY_RECIPES) == sorted(NAMES)
    for name in NAMES:
        assert RECIPES[name] is TOY_RECIPES[name]


@pytest.mark.parametrize("budget", ["smoke", "full"])
@pytest.mark.parametrize("name", NAMES)
def test_recipes_load(name, budget):
    cfg = recipe_config(name, budget)
    assert cfg.budget == budget
    assert cfg.model.x_shape == [2] and cfg.data.indist == "8gaussians"
    assert cfg.model.encoder == {"name": "fcnet", "hidden": [200, 200, 200]} == cfg.model.decoder
    kind = name.split("_")[1]
    assert cfg.model.kind == kind
    if kind in ("ae", "vae"):
        assert cfg.train.ae.epochs > 0
    else:
        assert cfg.train.ae.epochs == 0 and cfg.model.learn_temperature
        assert cfg.sampler.kind == {"omi": "on_manifold", "cd": "cd", "pcd": "pcd"}[name.split("_")[-1]]
    if name == "toy2d_ae":
        assert cfg.model.spherical and cfg.model.z_dim == 2
    if name in ("toy2d_nae_cd", "toy2d_nae_pcd"):
        assert cfg.model.z_dim == 3 and not cfg.model.spherical and cfg.model.temperature == 0.1
        assert cfg.train.nae.z_norm_reg == 0.01 and cfg.sampler.x_chain.mh
    if budget == "smoke" and kind == "nae":
        assert cfg.train.nae.max_iters <= 10


def test_smoke_obtain(monkeypatch, tmp_path):
    import json

    import nae.tutorial.notebook as nb

    monkeypatch.setattr(nb, "RUNS", tmp_path)
    model = nb.obtain("toy2d_nae_cd", "smoke", progress=False)
    assert model.kind == "nae" and model.provenance["budget"] == "smoke"
    steps = [json.loads(line) for line in (tmp_path / "smoke" / "toy2d_nae_cd" / "metrics.jsonl").open()]
    assert max(r["step"] for r in steps if r["phase"] == "nae") == model.config.train.nae.max_iters <= 10
    assert "smoke" in nb.describe(model)
    model.provenance["hardware"] = "a CPU whose description is long, " * 4   # wrapped for the book's code boxes
    lines = nb.describe(model).splitlines()
    assert len(lines) > 1 and all(len(x) <= 76 for x in lines) and lines[1].startswith("    ")
    assert "\n" not in nb.describe(model, width=0)
    names = "trained with: " + ", ".join(f"train.nae.some_long-key_{i}=1e-5" for i in range(6))
    wrapped = nb.wrap(names).splitlines()    # the helper describe uses, for the notebooks' own long prints
    assert all(len(x) <= 76 for x in wrapped) and " ".join(x.strip() for x in wrapped) == names
    assert nb.wrap(names, width=0) == names
    p = P.model_density(model)
    assert p.shape == (100, 100) and abs(p.sum() - 1) < 1e-6


# ---------------------------------------------------------------------------------
# densities and measures


def test_true_density_and_mass_near_modes():
    p = P.true_density()
    assert p.shape == (100, 100) and abs(p.sum() - 1) < 1e-9
    # rows are y: the mode at (0, 2.83) is in the upper middle of the grid
    assert p[85, 50] > 100 * p[50, 50]
    # a 2-D Gaussian holds 1 - exp(-k^2/2) of its mass within k std (grid error aside)
    assert P.mass_near_modes(p, k=3.0) == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    uniform = np.full((100, 100), 1e-4)
    assert P.mass_near_modes(uniform) == pytest.approx(P.near_modes_mask().mean())
    # ... which for a uniform density is the area share of the 8 discs of radius 3 sigma
    area = 8 * math.pi * (3 * P.SIGMA) ** 2 / 64
    assert P.mass_near_modes(uniform) == pytest.approx(area, abs=0.01)


class _Quadratic(torch.nn.Module):
    """E(x) = |x - c|^2 with a given kind and temperature: a stand-in model."""

    def __init__(self, kind="nae", T=1.0, centre=(0.0, 0.0)):
        super().__init__()
        self.kind, self.x_shape = kind, (2,)
        self.register_buffer("c", torch.tensor(centre))
        self.register_buffer("log_t", torch.tensor(math.log(T)))

    @property
    def T(self):
        return self.log_t.exp()

    def energy(self, x):
        return ((x - self.c) ** 2).sum(1)


def test_model_density_uses_the_right_temperature():
    _, _, pts = grid()
    for kind, T, t_eff in [("nae", 0.5, 0.5), ("ae", 1.0, 1.0), ("vae", 1.0, 0.5)]:
        m = _Quadratic(kind, T)
        assert P.density_temperature(m) == pytest.approx(t_eff)
        p = P.model_density(m)
        want = torch.exp(-(pts ** 2).sum(1) / t_eff).reshape(100, 100).double().numpy()
        np.testing.assert_allclose(p, want / want.sum(), rtol=1e-4, atol=1e-12)


def test_mode_coverage():
    c = eight_gaussian_centres().numpy()
    on = np.repeat(c, 10, axis=0)  # 10 samples on each mode
    off = np.zeros((20, 2))        # 20 at the origin, far from every mode
    res = P.mode_coverage(np.concatenate([on, off]))
    assert res["on_modes"] == pytest.approx(80 / 100)
    assert res["counts"] == [10] * 8 and res["modes_hit"] == 8
    assert P.mode_coverage(c[:2])["modes_hit"] == 2
    d = P.nearest_mode_distance(np.array([[0.0, 0.0], c[3]]))
    np.testing.assert_allclose(d, [2 * math.sqrt(2), 0.0], atol=1e-3)


def test_far_but_well_reconstructed():
    # a perfect reconstructor of everything: every far point counts
    m = _Quadratic("ae")
    m.energy = lambda x: torch.zeros(len(x))
    data = sample_toy("8gaussians", 500, seed=0)
    res = P.far_but_well_reconstructed(m, data)
    far = ~P.near_modes_mask()
    assert res["share"] == 1.0 and len(res["points"]) == far.sum()
    assert (P.nearest_mode_distance(res["points"]) > 3 * P.SIGMA).all()
    # error = squared distance to the nearest mode: nothing far is as good as the data
    m.energy = lambda x: torch.as_tensor(P.nearest_mode_distance(x)) ** 2
    res = P.far_but_well_reconstructed(m, data)
    assert res["share"] == 0.0 and len(res["points"]) == 0
    assert res["threshold"] < (3 * P.SIGMA) ** 2 and res["error"].shape == (100, 100)


# ---------------------------------------------------------------------------------
# recording and sampling


def test_train_recording_and_long_run(tmp_path):
    model, rec, wall = P.train_recording("toy2d_nae_omi", "smoke", iters=4, at=[1, 3, 99], run_dir=tmp_path / "r")
    assert [s["step"] for s in rec.snapshots] == [1, 3]
    for s in rec.snapshots:
        assert s["negatives"].shape == (200, 2) and s["energy"].shape == (100, 100) and s["T"] > 0
    assert wall > 0 and model.kind == "nae"
    curve = P.decoder_curve(model, n=40)
    assert curve.shape == (41, 2)
    np.testing.assert_allclose(curve[0], curve[-1], atol=1e-5)  # a closed curve
    x = P.long_run_samples(model, n=50, steps=5, seed=1)
    assert x.shape == (50, 2) and np.abs(x).max() <= 4.0
    np.testing.assert_array_equal(x, P.long_run_samples(model, n=50, steps=5, seed=1))


def test_plot_helpers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = P.true_density()
    fig = P.density_row({"a": p, "b": p}, suptitle="t")
    assert len(fig.axes) == 4  # two maps, two colour bars
    ax = fig.axes[0]
    assert ax.get_xlim() == (-4, 4) and ax.get_ylim() == (-4, 4) and ax.get_title() == "a"
    P.show_points(ax, np.zeros((3, 2)))
    fig2, ax2 = plt.subplots()
    P.show_field(ax2, p, "log", log=True)
    plt.close("all")


def test_describe_leaves_out_the_last_jobs_wall_time_of_a_model_trained_in_phases():
    from types import SimpleNamespace

    import nae.tutorial.notebook as nb

    phased = SimpleNamespace(provenance={"source": "pretrained/x", "budget": "full", "wall_time_s": 5653.6,
                                         "hardware": "AE phase: CPU A (1,200 steps, 10.9 h); NAE phase: CPU B "
                                                     "(80 iterations, 1.6 h)"})
    text = nb.describe(phased, width=0)
    assert "10.9 h" in text and "1.6 h" in text and "wall time" not in text   # not 94.2 min under the AE
    one_job = SimpleNamespace(provenance={**phased.provenance, "hardware": "CPU A, 1 thread"})
    assert nb.describe(one_job, width=0).endswith("CPU A, 1 thread, wall time 94.2 min")


def test_the_ae_of_a_continued_model_states_its_own_phase_not_the_continuations_time():
    from types import SimpleNamespace

    import nae.tutorial.notebook as nb

    hw = "AE phase: CPU A, fp32 (1,200 steps, 10.9 h); NAE phase: CPU B (80 iterations, 1.6 h); round 1: CPU C"
    assert nb.ae_phase_text(hw) == "CPU A, fp32 (1,200 steps, 10.9 h)"
    assert nb.ae_phase_text("NAE phase: CPU B") == "" and nb.ae_phase_text("CPU A, 1 thread") == ""
    ae = SimpleNamespace(provenance={"source": "pretrained/x", "budget": "full", "wall_time_s": None,
                                     "time_in_hardware": True, "hardware": f"its AE phase: {nb.ae_phase_text(hw)}"})
    text = nb.describe(ae, width=0)
    assert text.endswith("(1,200 steps, 10.9 h)") and "n/a" not in text and "CPU B" not in text
