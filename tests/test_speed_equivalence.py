"""Our (optimised) networks and chains compute what the original code computes.

The reference is ``benchmarks/eager_reference.py``, a plain transcription of the original
ops (ConvTranspose2d, bilinear F.interpolate, MaxPool2d, n + 1 passes per chain, the V1
clip with its +1e-6 factor), loaded with the same weights as our model.
"""
import functools
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nae.config import load_config
from nae.langevin import langevin_chain
from nae.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from eager_reference import EagerNAE, sample_langevin_v2  # noqa: E402

CONFIGS = ["mnist_ood", "cifar10_ood"]


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests compare values on tiny batches: one thread avoids OpenMP barrier waits,
    which make small ops crawl when other processes compete for the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@functools.lru_cache(maxsize=None)
def _pair(name, seed=0):
    """(cfg, our model, eager reference with the same weights); the tests never change them."""
    torch.manual_seed(seed)
    cfg = load_config(name, budget="full")
    model = build_model(cfg)
    ref = EagerNAE.from_model(cfg, model)
    return cfg, model, ref


def _x(model, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *model.x_shape), generator=g)


def _energy_grad(energy, x):
    x = x.detach().requires_grad_(True)
    e = energy(x)
    (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), g


@pytest.mark.parametrize("name", CONFIGS)
def test_state_dicts_shared(name):
    cfg, model, ref = _pair(name)
    assert set(ref.state_dict()) == set(model.state_dict())


@pytest.mark.parametrize("name", CONFIGS)
def test_energy_and_input_gradient_match_reference(name):
    cfg, model, ref = _pair(name)
    x = _x(model, 3)
    e_ref, g_ref = _energy_grad(ref.energy, x)
    e, g = _energy_grad(model.energy, x)
    assert torch.allclose(e, e_ref, rtol=1e-4, atol=1e-6)
    assert torch.allclose(g, g_ref, rtol=1e-3, atol=1e-3 * g_ref.abs().max().item())
    with torch.no_grad():
        assert torch.allclose(model.energy(x), e_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_latent_energy_gradient_matches_reference(name):
    cfg, model, ref = _pair(name)
    z = torch.randn(2, *model.z_shape, generator=torch.Generator().manual_seed(2))
    z = z / z.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    e_ref, g_ref = _energy_grad(ref.energy_with_z, z)
    e, g = _energy_grad(model.latent_energy, z)
    assert torch.allclose(e, e_ref, rtol=1e-4, atol=1e-6)
    assert torch.allclose(g, g_ref, rtol=1e-3, atol=1e-3 * g_ref.abs().max().item())


@pytest.mark.parametrize("name", CONFIGS)
def test_chains_match_reference_with_same_noise(name):
    cfg, model, ref = _pair(name)
    n, steps = (2, 3) if name == "mnist_ood" else (1, 2)
    xc = replace(cfg.sampler.x_chain, n_steps=steps)
    zc = replace(cfg.sampler.z_chain, n_steps=steps)
    # input chain (clamp, row clip, noise annealing)
    x0 = _x(model, n, seed=3)
    ours = langevin_chain(model.energy, x0, xc, 1.0, torch.Generator().manual_seed(7)).x
    theirs = sample_langevin_v2(x0, ref.energy, stepsize=xc.step_size, n_steps=steps, noise_scale=xc.noise_std,
                                clip_x=tuple(xc.bound), clip_grad=xc.clip_grad, noise_anneal=True,
                                generator=torch.Generator().manual_seed(7))["sample"]
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    # latent chain (sphere projection, gradient through dec -> enc -> dec)
    z0 = torch.randn(n, *model.z_shape, generator=torch.Generator().manual_seed(4))
    z0 = z0 / z0.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    ours = langevin_chain(model.latent_energy, z0, zc, 1.0, torch.Generator().manual_seed(8)).x
    theirs = sample_langevin_v2(z0, ref.energy_with_z, stepsize=zc.step_size, n_steps=steps,
                                noise_scale=zc.noise_std, spherical=True,
                                generator=torch.Generator().manual_seed(8))["sample"]
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_reference_chain_costs_n_plus_one_passes():
    cfg, model, ref = _pair("mnist_ood")
    calls = []

    def energy(x):
        calls.append(1)
        return ref.energy(x)

    sample_langevin_v2(_x(model, 2), energy, stepsize=10.0, n_steps=2, noise_scale=0.05, clip_x=(0.0, 1.0),
                       clip_grad=0.01, noise_anneal=True)
    assert len(calls) == 3


@pytest.mark.parametrize("name", CONFIGS)
def test_bf16_energy_close_to_fp32(name):
    cfg, model, ref = _pair(name)
    x = _x(model, 2 if name == "mnist_ood" else 1)
    with torch.no_grad():
        e32 = model.energy(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            e16 = model.energy(x).float()
    assert torch.allclose(e16, e32, rtol=0.1, atol=2e-3), (e16, e32)


# (layer class, its parent, constructor args, input shape): the fast cases of nae.speed and
# one that takes the parent's path; the shapes are those of our networks
_FAST_LAYERS = [
    ("Conv2d", (128, 1024, 4), (3, 128, 4, 4)),  # MNIST encoder: full window -> F.linear
    ("Conv2d", (1024, 32, 1), (3, 1024, 1, 1)),  # 1x1 conv of a 1x1 map
    ("Conv2d", (64, 40, 5, 2), (2, 64, 5, 5)),  # CelebA's last stride-2 5x5 conv of a 5x5 map
    ("Conv2d", (8, 16, 3), (2, 8, 10, 10)),  # an ordinary conv: the parent's path
    ("ConvTranspose2d", (32, 128, 4), (3, 32, 1, 1)),  # MNIST decoder: 1x1 latent -> F.linear
    ("ConvTranspose2d", (32, 1, 3), (3, 32, 26, 26)),  # one output channel -> matmul + fold
    ("ConvTranspose2d", (16, 8, 4, 2, 1), (2, 16, 8, 8)),  # stride 2: the parent's path
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("cls_name,args,shape", _FAST_LAYERS)
def test_fast_conv_layers_match_torch(cls_name, args, shape, channels_last):
    """nae.speed.Conv2d / ConvTranspose2d: same outputs, input and weight gradients as torch's."""
    from nae import speed

    torch.manual_seed(0)
    fast = getattr(speed, cls_name)(*args)
    plain = getattr(torch.nn, cls_name)(*args)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    outs = []
    for layer in (fast, plain):
        layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        (y * torch.linspace(0.5, 1.5, y.numel()).view_as(y)).sum().backward()
        outs.append((y.detach(), xi.grad, layer.weight.grad, layer.bias.grad))
    for a, b in zip(*outs):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())
