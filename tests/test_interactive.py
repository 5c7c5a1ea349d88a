"""The plain functions behind the interactive notebook."""
import dataclasses

import numpy as np
import pytest
import torch

from nae.config import ChainConfig, load_config
from nae.tutorial.interactive import (SamplerSettings, chain_animation, compare_reconstructions, latent_circle, presets,
                             sample_with_trace, trace_chain)
from nae.langevin import langevin_chain
from nae.models import build_model


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    return build_model(load_config("toy2d", budget="smoke"))


@pytest.fixture(scope="module")
def mnist():
    torch.manual_seed(0)
    return build_model(load_config("mnist_ood", budget="full")).eval()


@pytest.mark.parametrize("anneal", [False, True])
def test_trace_equals_the_plain_chain(toy, anneal):
    chain = ChainConfig(n_steps=6, step_size=0.01, noise_std=0.1, bound=[-5.0, 5.0], clip_grad=0.5,
                        noise_anneal=anneal)
    x0 = torch.randn(20, 2)
    ref = langevin_chain(toy.energy, x0, chain, 1.0, torch.Generator().manual_seed(3)).x
    x, frames, e = trace_chain(toy.energy, x0, chain, 1.0, torch.Generator().manual_seed(3))
    assert torch.allclose(x, ref, atol=1e-6)
    assert len(frames) == 7 and e.shape == (7, 20)
    assert torch.equal(frames[-1], x)


def test_sample_with_trace(toy):
    s = SamplerSettings.from_model(toy, z_steps=3, x_steps=4, seed=1)
    text = str(dataclasses.replace(s, z_step_size=0.1 ** 2 / 2))
    assert "step size 0.005," in text and "seed 1" in text and all(len(x) <= 76 for x in text.splitlines())
    out = sample_with_trace(toy, 16, s)
    assert out["x"].shape == (16, 2) and len(out["x_frames"]) == 5 and len(out["z_frames"]) == 4
    assert torch.allclose(out["z"].norm(dim=1), torch.ones(16), atol=1e-5)  # on the circle
    again = sample_with_trace(toy, 16, s)
    assert torch.equal(out["x"], again["x"])  # seeded
    other = sample_with_trace(toy, 16, SamplerSettings.from_model(toy, z_steps=3, x_steps=4, seed=2))
    assert not torch.equal(out["x"], other["x"])


def test_sample_with_trace_is_the_models_sampler(toy):
    """The traced sampling is the library's on-manifold sampler with a trace callback: the
    same samples for the same seed, and a replayed draw leaves the replay buffer alone."""
    toy.sampler.buffer.push(torch.randn(40, 2))
    before = toy.sampler.buffer.state_dict()
    s = SamplerSettings.from_model(toy, z_steps=3, x_steps=4, seed=5, replay=True, temperature=0.8)
    out = sample_with_trace(toy, 12, s)
    after = toy.sampler.buffer.state_dict()
    assert before["size"] == after["size"] and torch.equal(before["data"], after["data"])
    zc = dataclasses.replace(toy.sampler.cfg.z_chain, n_steps=3, step_size=s.z_step_size, noise_std=s.z_noise)
    xc = dataclasses.replace(toy.sampler.cfg.x_chain, n_steps=4, step_size=s.x_step_size, noise_std=s.x_noise)
    ref = toy.sampler.sample(toy, 12, torch.Generator().manual_seed(5), replay=True, z_chain=zc, x_chain=xc,
                             temperature=0.8, push=False)
    assert torch.equal(out["x"], ref["x"]) and torch.equal(out["z"], ref["z"])
    assert torch.equal(out["z_frames"][-1], out["z"]) and torch.equal(out["x_frames"][0], out["x0"])
    assert out["x_energies"].shape == (5, 12)


def test_latent_circle(mnist):
    theta, z, x, e = latent_circle(mnist, 8)
    assert z.shape == (8, 32, 1, 1) and x.shape == (8, 1, 28, 28) and e.shape == (8,)
    assert torch.allclose(z.flatten(1).norm(dim=1), torch.ones(8), atol=1e-5)


def test_presets_and_reconstructions(mnist):
    p = presets(with_data=False)
    assert {"blank", "constant grey", "dots", "minus sign"} <= set(p)
    assert all(v.shape == (28, 28) and v.min() >= 0 and v.max() <= 1 for v in p.values())
    assert p["minus sign"].sum() == 4 * 16
    res = compare_reconstructions({"a": mnist, "b": mnist}, p["dots"])
    rec, e = res["a"]
    assert rec.shape == (28, 28) and e == pytest.approx(float(((rec - p["dots"]) ** 2).mean()), rel=1e-4)


def test_presets_with_data():
    p = presets()
    if "MNIST digit" not in p:
        pytest.skip("MNIST not found")
    assert p["MNIST digit"].shape == (28, 28) and p["MNIST digit"].max() > 0.5


def test_chain_animation_html(toy):
    frames = [torch.randn(10, 2) for _ in range(3)]
    anim = chain_animation(frames, kind="points")
    html = anim.to_jshtml()
    assert "<img" in html or "animation" in html.lower()
    imgs = [torch.rand(4, 1, 28, 28) for _ in range(2)]
    assert chain_animation(imgs, energies=torch.rand(2, 4)).to_jshtml()


def test_image_animation_is_large_enough():
    # 16 MNIST-sized images, 8 per row: about 80 px per image in the static book
    imgs = [torch.rand(16, 1, 28, 28) for _ in range(2)]
    anim = chain_animation(imgs, nrow=8)
    w, h = anim._fig.get_size_inches() * anim._fig.dpi
    assert w >= 8 * 75 and h >= 2 * 75


def test_sampler_panel_and_playground_widgets(toy, mnist):
    pytest.importorskip("ipywidgets")
    import ipywidgets as W

    from nae.tutorial.interactive import drawing_playground, sampler_panel

    panel = sampler_panel({"toy": toy})
    controls, out = panel.children
    sliders = [c for c in controls.children if isinstance(c, (W.IntSlider, W.FloatLogSlider))]
    assert len(sliders) == 7 and all(s.readout for s in sliders)
    assert all(s.style.description_width == "9.5em" for s in sliders)  # labels are not cut off
    assert len(out.outputs) == 1  # the first draw is shown
    pytest.importorskip("ipycanvas")
    seen = []
    drawing_playground(lambda image, label: seen.append((image.shape, label)), {"blank": np.zeros((28, 28))})
    assert seen == [((28, 28), "your drawing")]
