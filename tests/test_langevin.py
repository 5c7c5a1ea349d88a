"""Langevin dynamics, gradient clipping and the replay buffer."""
import dataclasses
import math

import pytest
import torch

from nae.config import ChainConfig
from nae.langevin import ReplayBuffer, clip_grad, langevin_chain


def quadratic(mu):
    return lambda x: 0.5 * ((x - mu) ** 2).sum(1)


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_langevin_reaches_gaussian_mean_and_variance(T):
    # E(x) = |x - mu|^2 / 2 and p ~ exp(-E/T): N(mu, T I).  Unadjusted Langevin with
    # step s has stationary variance T / (1 - s/2); s = 0.02 -> 1% bias.
    mu = torch.tensor([1.0, -2.0])
    g = torch.Generator().manual_seed(0)
    chain = ChainConfig(n_steps=1500, step_size=0.02, noise_std=math.sqrt(0.04))
    x = langevin_chain(quadratic(mu), torch.zeros(4000, 2), chain, temperature=T, generator=g).x
    assert torch.allclose(x.mean(0), mu, atol=0.1 * math.sqrt(T))
    assert torch.allclose(x.var(0), torch.full((2,), T / (1 - 0.01)), rtol=0.07)


def test_mh_correction_removes_discretisation_bias():
    # a big step (s = 0.5) inflates the variance of unadjusted Langevin to 1/(1-0.25) = 1.33;
    # with per-sample Metropolis-Hastings the chain targets N(0, 1) exactly.
    mu = torch.zeros(2)
    g = torch.Generator().manual_seed(1)
    ula = ChainConfig(n_steps=400, step_size=0.5, noise_std=1.0)
    mala = ChainConfig(n_steps=400, step_size=0.5, noise_std=1.0, mh=True)
    x_ula = langevin_chain(quadratic(mu), torch.zeros(4000, 2), ula, generator=g).x
    res = langevin_chain(quadratic(mu), torch.zeros(4000, 2), mala, generator=g)
    assert x_ula.var(0).mean() == pytest.approx(4 / 3, rel=0.07)
    assert res.x.var(0).mean() == pytest.approx(1.0, rel=0.07)
    assert 0.3 < float(res.accept_rate) < 1.0


@pytest.mark.parametrize("s, sigma", [(0.5, 0.5), (0.1, 1.0)])
def test_mh_is_exact_when_sigma_squared_is_not_2s(s, sigma):
    # E(x) = x^2/2, T = 1: the target is N(0, 1).  Without MH, y = (1 - s) x + sigma xi has
    # stationary variance sigma^2 / (1 - (1 - s)^2): 0.33 for (0.5, 0.5) and 5.3 for
    # (0.1, 1.0).  MH with the proposal's own sigma (not 4s) targets variance 1; the
    # original's 4s denominator gave 0.30 and 4.2 here.
    g = torch.Generator().manual_seed(0)
    ula = ChainConfig(n_steps=500, step_size=s, noise_std=sigma)
    mala = ChainConfig(n_steps=500, step_size=s, noise_std=sigma, mh=True)
    x_ula = langevin_chain(quadratic(torch.zeros(1)), torch.zeros(4000, 1), ula, generator=g).x
    x_mala = langevin_chain(quadratic(torch.zeros(1)), torch.zeros(4000, 1), mala, generator=g).x
    assert x_ula.var().item() == pytest.approx(sigma ** 2 / (1 - (1 - s) ** 2), rel=0.1)
    assert x_mala.var().item() == pytest.approx(1.0, rel=0.08)
    assert x_mala.mean().item() == pytest.approx(0.0, abs=0.06)


def test_mh_without_noise_is_refused():
    chain = ChainConfig(n_steps=3, step_size=0.1, noise_std=0.0, mh=True)
    with pytest.raises(ValueError, match="Metropolis-Hastings needs noise"):
        langevin_chain(quadratic(torch.zeros(1)), torch.zeros(5, 1), chain)


def test_bounds_and_sphere():
    g = torch.Generator().manual_seed(0)
    box = ChainConfig(n_steps=20, step_size=1.0, noise_std=1.0, bound=[0.0, 1.0])
    x = langevin_chain(quadratic(torch.full((3,), 5.0)), torch.rand(100, 3), box, generator=g).x
    assert x.min() >= 0 and x.max() <= 1
    assert torch.allclose(x, torch.ones_like(x), atol=1e-6)  # pushed to the upper bound
    sph = ChainConfig(n_steps=5, step_size=0.1, noise_std=0.1, bound="spherical")
    z = langevin_chain(quadratic(torch.zeros(4)), torch.randn(50, 4), sph, generator=g).x
    assert torch.allclose(z.norm(dim=1), torch.ones(50), atol=1e-5)


def test_reject_boundary_keeps_previous_point():
    g = torch.Generator().manual_seed(0)
    chain = ChainConfig(n_steps=10, step_size=0.0, noise_std=10.0, bound=[-1.0, 1.0], reject_boundary=True)
    x0 = torch.zeros(200, 2)
    x = langevin_chain(quadratic(torch.zeros(2)), x0, chain, generator=g).x
    assert x.abs().max() <= 1.0
    assert (x == 0).all(1).float().mean() > 0.5  # most proposals (std 10) leave the box


def test_noise_annealing_schedule():
    # with zero energy the chain is a random walk whose variance is sum_k sigma_k^2,
    # sigma_k = sigma0 / max(1, k): 1 + 1 + 1/4 + 1/9 for 4 steps and sigma0 = 1
    g = torch.Generator().manual_seed(0)
    chain = ChainConfig(n_steps=4, step_size=0.1, noise_std=1.0, noise_anneal=True)
    x = langevin_chain(lambda x: (0 * x).sum(1), torch.zeros(20000, 1), chain, generator=g).x
    assert x.var().item() == pytest.approx(1 + 1 + 1 / 4 + 1 / 9, rel=0.05)


def test_clip_grad_row_and_element():
    g = torch.randn(4, 3, 5, 7) * 10
    c = clip_grad(g, 0.01, "row")
    assert (c.norm(dim=-1) <= 0.01 + 1e-7).all()
    small = torch.full((2, 3), 1e-4)
    assert torch.equal(clip_grad(small, 0.01, "row"), small)
    e = clip_grad(g, 0.01, "element")
    assert e.abs().max() <= 0.01
    assert torch.equal(clip_grad(g, None), g)


def test_replay_buffer_fifo_and_sampling():
    buf = ReplayBuffer(5)
    buf.push(torch.arange(3.0).view(3, 1))
    assert len(buf) == 3
    buf.push(torch.arange(3.0, 7.0).view(4, 1))
    assert len(buf) == 5                                     # oldest two dropped
    assert buf.latest(5).view(-1).tolist() == [2, 3, 4, 5, 6]
    g = torch.Generator().manual_seed(0)
    drawn = buf.draw(1000, g).view(-1)
    assert set(drawn.tolist()) == {2.0, 3.0, 4.0, 5.0, 6.0}
    fresh = torch.full((1000, 1), -1.0)
    assert torch.equal(buf.mix(fresh, 0.0, g), fresh)
    assert (buf.mix(fresh, 1.0, g) >= 2).all()
    frac = (buf.mix(fresh, 0.95, g) >= 0).float().mean().item()
    assert 0.92 < frac < 0.98
    # round trip
    b2 = ReplayBuffer(1)
    b2.load_state_dict(buf.state_dict())
    assert torch.equal(b2.latest(5), buf.latest(5))
    b2.push(torch.tensor([[7.0]]))
    assert b2.latest(5).view(-1).tolist() == [3, 4, 5, 6, 7]


def test_empty_buffer_gives_fresh_samples():
    buf = ReplayBuffer(10)
    fresh = torch.randn(4, 2)
    assert torch.equal(buf.mix(fresh, 0.95), fresh)
    with pytest.raises(ValueError):
        buf.draw(1)


@pytest.mark.parametrize("mh", [False, True])
def test_trace_sees_every_state_of_the_chain(mh):
    """``trace(k, x)`` gets the start and each step's state; tracing changes nothing."""
    chain = ChainConfig(n_steps=5, step_size=0.01, noise_std=0.1, bound=[-1.0, 1.0], mh=mh)
    x0 = torch.rand(30, 2) * 4 - 2
    seen = []
    res = langevin_chain(quadratic(torch.zeros(2)), x0, chain, generator=torch.Generator().manual_seed(1),
                         trace=lambda k, x: seen.append((k, x.clone())))
    plain = langevin_chain(quadratic(torch.zeros(2)), x0, chain, generator=torch.Generator().manual_seed(1))
    assert [k for k, _ in seen] == list(range(6))
    assert torch.equal(seen[0][1], x0.clamp(-1, 1)) and torch.equal(seen[-1][1], res.x)
    assert torch.equal(res.x, plain.x)
    seen.clear()
    langevin_chain(quadratic(torch.zeros(2)), x0, dataclasses.replace(chain, n_steps=0),
                   trace=lambda k, x: seen.append(k))
    assert seen == [0]
