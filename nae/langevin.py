"""Langevin samplers: one chain for any energy, the replay buffer, and the negative
samplers used in training (on-manifold, persistent CD, CD).

All randomness comes from an explicit ``torch.Generator`` on the chain's device, and
the step loop never moves a value to the host, so the same code runs on CPU and GPU
without synchronisation.

One chain (original: models/langevin.py, ``sample_langevin_v2``) runs::

    g = clip(grad E(x))
    repeat n times:
        y = x - s * g / T + sigma_k * noise
        y = bound(y)                   # clamp to [lo, hi], or project to the sphere
        (MH: accept or reject y per sample)
        x = y;  g = clip(grad E(y))

Metropolis-Hastings (``mh``) accepts a proposal y with probability
min(1, exp(-(E(y) - E(x))/T) q(x|y) / q(y|x)), where q is the Gaussian proposal
N(x - s grad E(x)/T, sigma^2 I).  It is exact for any step s and noise sigma (not only
sigma^2 = 2s): it removes the bias of a *finite step size*, so that p ~ exp(-E/T) is the
chain's stationary distribution.  It does not remove the bias of a *short chain*: after
n steps the samples are still distributed like the start, moved n steps towards p.
(With a box bound that clamps, or the projection onto the sphere, the proposal is no
longer Gaussian; ``reject_boundary`` keeps the MH test valid on a box.)

The original also evaluates E and its gradient after the *last* step, where nothing
uses them; without MH we skip that pass, so a chain costs n gradient evaluations
instead of n + 1, with identical samples.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .nets import project_sphere

EnergyFn = Callable[[torch.Tensor], torch.Tensor]
#: ``trace(k, x)``: called with the chain state at the start (k = 0) and after each step k
TraceFn = Callable[[int, torch.Tensor], None]

#: the stop request every chain polls before each step (set by :func:`interruptible`)
_STOP_REQUESTED: ContextVar[Optional[Callable[[], bool]]] = ContextVar("nae_chain_stop", default=None)


class ChainInterrupted(Exception):
    """A chain stopped between two of its steps because :func:`interruptible`'s check said so.

    Raised before any sampler state changes (replay buffers are written only once every
    chain of a draw has finished), so the caller may undo the draw by restoring its
    generator and run it again later with identical results."""


@contextmanager
def interruptible(stop_requested: Callable[[], bool]):
    """Inside the block every Langevin chain calls ``stop_requested()`` before each step and
    raises :class:`ChainInterrupted` when it returns True.  The trainer uses it so that a
    SIGTERM during a long NAE iteration (minutes for 64x64 chains on a CPU) is honoured
    within one Langevin step instead of at the iteration's end."""
    token = _STOP_REQUESTED.set(stop_requested)
    try:
        yield
    finally:
        _STOP_REQUESTED.reset(token)


@contextmanager
def frozen(*modules):
    """Temporarily sets ``requires_grad=False`` on every parameter of ``modules``.

    Inside a chain only the gradient with respect to the input is needed; freezing the
    parameters keeps autograd from saving what their gradients would need.
    """
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def clip_grad(g: torch.Tensor, c: Optional[float], kind: str = "row") -> torch.Tensor:
    """Gradient clipping of the original samplers.

    ``row`` (original V1): rescales to L2 norm ``c`` along the *last axis only* (each
    image row of each channel; the whole vector for 2-D data).  The original adds 1e-6
    to the factor and multiplies rows of norm exactly ``c`` by 1e-6; both quirks are
    left out.  ``element`` (original V2): clamps every entry to [-c, c].
    """
    if c is None:
        return g
    if kind == "element":
        return g.clamp(-c, c)
    norm = g.norm(dim=-1, keepdim=True)
    factor = torch.where(norm > c, c / norm.clamp_min(1e-30), torch.ones_like(norm))
    return g * factor


def energy_and_grad(energy: EnergyFn, x: torch.Tensor, need_energy: bool = False):
    """E(x) (detached, or None) and dE/dx, without touching parameter gradients."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = energy(x)
        (g,) = torch.autograd.grad(e.sum(), x)
    return (e.detach() if need_energy else None), g


@dataclass
class ChainResult:
    """The end of a chain, and the mean MH acceptance when MH was used."""
    x: torch.Tensor
    accept_rate: Optional[torch.Tensor] = None  # mean MH acceptance (a tensor: no sync)


def _bound(y: torch.Tensor, bound):
    if bound is None:
        return y
    if isinstance(bound, str):
        if bound == "spherical":
            return project_sphere(y)
        raise ValueError(f"unknown bound {bound!r}")
    lo, hi = bound
    return y.clamp(lo, hi)


def langevin_chain(energy: EnergyFn, x0: torch.Tensor, chain, temperature=1.0,
                   generator: Optional[torch.Generator] = None, trace: Optional[TraceFn] = None) -> ChainResult:
    """Runs one Langevin chain of ``chain.n_steps`` steps from ``x0``.

    ``chain`` is a :class:`nae.config.ChainConfig` (n_steps, step_size, noise_std,
    bound, clip_grad, clip_type, noise_anneal, mh, reject_boundary).  ``temperature`` is
    a float or a 0-d tensor.  ``trace(k, x)``, if given, sees the chain state at the start
    (k = 0, after the bound) and after each step k = 1 .. n_steps (to plot or animate a
    chain; it must not change ``x``).
    """
    s = chain.step_size if chain.step_size is not None else chain.noise_std ** 2 / 2
    sigma0 = chain.noise_std if chain.noise_std is not None else math.sqrt(2 * s)
    T = temperature
    x = x0.detach()
    if x.dtype in (torch.bfloat16, torch.float16):  # the chain state stays fp32 under autocast
        x = x.float()
    if chain.bound is not None and not isinstance(chain.bound, str):
        x = x.clamp(*chain.bound)
    n = chain.n_steps
    if trace is not None:
        trace(0, x)
    if n == 0:
        return ChainResult(x)
    mh = chain.mh
    if mh and not sigma0 > 0:
        raise ValueError(
            f"Metropolis-Hastings needs noise: with noise_std={sigma0} the Langevin proposal is deterministic "
            "and has no reverse density. Use noise_std > 0, or mh=False (gradient descent on the energy).")
    e_x, g = energy_and_grad(energy, x, need_energy=mh)
    g = clip_grad(g, chain.clip_grad, chain.clip_type)
    accepts = []
    stop_requested = _STOP_REQUESTED.get()
    for k in range(n):
        if stop_requested is not None and stop_requested():
            raise ChainInterrupted(f"stopped before step {k + 1} of {n}")
        sigma = sigma0 / max(1, k) if chain.noise_anneal else sigma0
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * sigma
        y = x - s * g / T + noise
        if chain.reject_boundary and chain.bound is not None and not isinstance(chain.bound, str):
            lo, hi = chain.bound
            outside = ((y < lo) | (y > hi)).flatten(1).any(1)
            y = torch.where(outside.view(-1, *([1] * (y.dim() - 1))), x, y)
        else:
            y = _bound(y, chain.bound)
        last = k == n - 1
        if mh:
            e_y, g_y = energy_and_grad(energy, y, need_energy=True)
            g_y = clip_grad(g_y, chain.clip_grad, chain.clip_type)
            # per-sample MH (the original broadcast sample 0's energy difference to all).
            # The proposal is y ~ N(x - s g(x)/T, sigma^2 I), so
            #   log q(y|x) = -|y - x + s g(x)/T|^2 / (2 sigma^2) = -|noise|^2 / (2 sigma^2)
            #   log q(x|y) = -|x - y + s g(y)/T|^2 / (2 sigma^2),
            # with x - y + s g(y)/T = s (g(x) + g(y))/T - noise.  This holds for any (s, sigma);
            # the original divided by 4s, which equals 2 sigma^2 only when sigma^2 = 2s.
            q_rev = (s * (g + g_y) / T - noise).flatten(1).pow(2).sum(1)
            q_fwd = noise.flatten(1).pow(2).sum(1)
            log_q = -(q_rev - q_fwd) / (2 * sigma ** 2)
            log_a = log_q + (e_x - e_y) / T
            u = torch.rand(log_a.shape, generator=generator, device=x.device, dtype=x.dtype)
            acc = torch.log(u) < log_a
            accepts.append(acc.float().mean())
            m = acc.view(-1, *([1] * (x.dim() - 1)))
            x = torch.where(m, y, x)
            g = torch.where(m, g_y, g)
            e_x = torch.where(acc, e_y, e_x)
        else:
            x = y
            if not last:  # the gradient after the last step is never used
                _, g = energy_and_grad(energy, x)
                g = clip_grad(g, chain.clip_grad, chain.clip_type)
        if trace is not None:
            trace(k + 1, x)
    rate = torch.stack(accepts).mean() if accepts else None
    return ChainResult(x.detach(), rate)


class ReplayBuffer:
    """FIFO buffer of past chain end points, kept on the sampling device.

    ``push`` appends (dropping the oldest beyond ``max_size``); ``draw`` takes samples
    uniformly with replacement.  The number of stored samples is a Python int that the
    host tracks itself, so neither call synchronises with a GPU.
    """

    def __init__(self, max_size: int = 10000):
        self.max_size = int(max_size)
        self.data: Optional[torch.Tensor] = None
        self.size = 0      # number of valid entries
        self.head = 0      # next write position

    def __len__(self):
        return self.size

    def push(self, x: torch.Tensor) -> None:
        """Stores the samples of ``x`` (B, ...) at the head, over the oldest once full (only the last
        ``max_size`` if B is larger); a no-op when ``max_size <= 0``."""
        x = x.detach()
        if self.max_size <= 0:
            return
        if self.data is None:
            self.data = torch.empty((self.max_size, *x.shape[1:]), dtype=x.dtype, device=x.device)
        x = x[-self.max_size:]
        n = x.shape[0]
        idx = (torch.arange(n, device=x.device) + self.head) % self.max_size
        self.data[idx] = x.to(self.data.device, self.data.dtype)
        self.head = (self.head + n) % self.max_size
        self.size = min(self.size + n, self.max_size)

    def latest(self, n: int) -> torch.Tensor:
        """The n most recently pushed samples, oldest first."""
        n = min(n, self.size)
        idx = (torch.arange(-n, 0, device=self.data.device) + self.head) % self.max_size
        return self.data[idx]

    def draw(self, n: int, generator=None) -> torch.Tensor:
        """``n`` stored samples drawn uniformly with replacement, on the buffer's device; a
        ValueError if the buffer is empty."""
        if self.size == 0:
            raise ValueError("the replay buffer is empty")
        dev = self.data.device
        idx = torch.randint(0, self.size, (n,), generator=generator, device=dev)
        # entries live at positions [0, size) once full or before wrapping
        return self.data[idx]

    def mix(self, fresh: torch.Tensor, ratio: float, generator=None) -> torch.Tensor:
        """Each sample comes from the buffer with probability ``ratio``, else from ``fresh``."""
        if self.size == 0 or ratio <= 0:
            return fresh
        n = fresh.shape[0]
        replay = self.draw(n, generator).to(fresh.device, fresh.dtype)
        u = torch.rand(n, generator=generator, device=fresh.device)
        m = (u < ratio).view(-1, *([1] * (fresh.dim() - 1)))
        return torch.where(m, replay, fresh)

    def state_dict(self) -> dict:
        """``{"max_size", "data", "size", "head"}``, ``data`` a CPU copy of the stored samples
        (None before the first push)."""
        data = None if self.data is None else self.data[: self.size].cpu().clone() if self.size < self.max_size else self.data.cpu().clone()
        return {"max_size": self.max_size, "data": data, "size": self.size, "head": self.head}

    def load_state_dict(self, state: dict, device=None) -> None:
        """Restores :meth:`state_dict`'s output into a storage of ``max_size`` rows on ``device``
        (default: the CPU)."""
        self.max_size = state["max_size"]
        self.size = state["size"]
        self.head = state["head"]
        data = state["data"]
        if data is None:
            self.data = None
            return
        full = torch.empty((self.max_size, *data.shape[1:]), dtype=data.dtype)
        full[: data.shape[0]] = data
        self.data = full.to(device) if device is not None else full


# ---------------------------------------------------------------------------------
# negative samplers used in training


def _traced(trace, chain: str):
    """``trace(chain, k, x)`` as the ``trace(k, x)`` of :func:`langevin_chain` (or None)."""
    return None if trace is None else (lambda k, x: trace(chain, k, x))


class OnManifoldSampler:
    """NAE's on-manifold initialisation: latent chain, decode, input chain.

    1. z0: each sample replayed from the latent buffer with probability
       ``replay_ratio``, else drawn fresh from N(0, I); projected to the sphere.
    2. Latent chain on E(dec(z)) (projection after each step).
    3. x0 = dec(z), clamped to the data bounds.
    4. Input chain on E(x) from x0.
    5. The latent chain end points go into the buffer.  (The original pushes them before
       step 3; nothing in between reads the buffer, so the samples are the same, and an
       interrupted draw leaves the buffer untouched.)
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.buffer = ReplayBuffer(cfg.buffer_size)

    def initial_latent(self, model, n: int, generator, replay: bool = True) -> torch.Tensor:
        """``n`` starting latents (n, *z_shape): N(0, I) draws, each replaced by a buffer sample with
        probability ``replay_ratio`` when ``replay``, projected to the sphere for a spherical model."""
        z = torch.randn((n, *model.z_shape), generator=generator, device=model.device)
        if replay:
            z = self.buffer.mix(z, self.cfg.replay_ratio, generator)
        return project_sphere(z) if model.spherical else z

    def sample(self, model, n: int, generator=None, replay: bool = True, x_data=None,
               z_chain=None, x_chain=None, temperature=None, trace=None, push: Optional[bool] = None) -> dict:
        """``n`` negative samples of ``model``: ``{"x", "x0", "z", "z0", "accept_rate"}``.

        ``replay``: start latent chains from the buffer (with probability
        ``replay_ratio``) and, unless ``push=False``, add their end points to it.
        ``z_chain``, ``x_chain``, ``temperature``: instead of the config's chains and the
        model's T.  ``trace(chain, k, x)``, with chain ``"z"`` or ``"x"``: see
        :func:`langevin_chain`.
        """
        z_chain = z_chain or self.cfg.z_chain
        x_chain = x_chain or self.cfg.x_chain
        T = model.T if temperature is None else temperature
        with frozen(model):
            z0 = self.initial_latent(model, n, generator, replay)
            zres = langevin_chain(model.latent_energy, z0, z_chain, T, generator, _traced(trace, "z"))
            z = zres.x
            with torch.no_grad():
                x0 = model.decode(z).float()  # under bf16 autocast the decoder's output is bf16
            if model.x_bound is not None:
                x0 = x0.clamp(*model.x_bound)
            xres = langevin_chain(model.energy, x0, x_chain, T, generator, _traced(trace, "x"))
        if replay and push is not False:  # only now: an interrupted draw leaves the buffer as it was
            self.buffer.push(z)
        return {"x": xres.x, "x0": x0, "z": z, "z0": z0, "accept_rate": xres.accept_rate}

    def state_dict(self):
        """``{"buffer": ...}``: the state of the latent replay buffer."""
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state, device=None):
        """Restores the latent replay buffer from :meth:`state_dict`, on ``device``."""
        self.buffer.load_state_dict(state["buffer"], device)


class PersistentSampler:
    """Persistent contrastive divergence in input space (original sampling ``x``).

    Each chain restarts from the buffer of past samples with probability
    ``replay_ratio`` (else from a uniform draw in ``init_bound``).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.buffer = ReplayBuffer(cfg.buffer_size)

    def sample(self, model, n: int, generator=None, replay: bool = True, x_data=None,
               z_chain=None, x_chain=None) -> dict:
        """``n`` negative samples of ``model``: ``{"x", "x0", "accept_rate"}``."""
        x_chain = x_chain or self.cfg.x_chain
        lo, hi = self.cfg.init_bound or model.x_bound or (0.0, 1.0)
        x0 = lo + (hi - lo) * torch.rand((n, *model.x_shape), generator=generator, device=model.device)
        if replay:
            x0 = self.buffer.mix(x0, self.cfg.replay_ratio, generator)
        with frozen(model):
            res = langevin_chain(model.energy, x0, x_chain, model.T, generator)
        if replay:
            self.buffer.push(res.x)
        return {"x": res.x, "x0": x0, "accept_rate": res.accept_rate}

    def state_dict(self):
        """``{"buffer": ...}``: the state of the input-space replay buffer."""
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state, device=None):
        """Restores the input-space replay buffer from :meth:`state_dict`, on ``device``."""
        self.buffer.load_state_dict(state["buffer"], device)


class CDSampler:
    """Contrastive divergence: short input chains started at the data batch."""

    def __init__(self, cfg):
        self.cfg = cfg

    def sample(self, model, n: int, generator=None, replay: bool = True, x_data=None,
               z_chain=None, x_chain=None) -> dict:
        """``n`` negative samples of ``model`` from the data batch ``x_data``: ``{"x", "x0", "accept_rate"}``."""
        if x_data is None:
            raise ValueError("contrastive divergence starts its chains at a data batch: pass x_data")
        x_chain = x_chain or self.cfg.x_chain
        with frozen(model):
            res = langevin_chain(model.energy, x_data[:n], x_chain, model.T, generator)
        return {"x": res.x, "x0": x_data[:n], "accept_rate": res.accept_rate}

    def state_dict(self):
        """``{}``: contrastive divergence keeps no state between calls."""
        return {}

    def load_state_dict(self, state, device=None):
        """Nothing to restore: contrastive divergence keeps no state."""
        pass


SAMPLERS = {"on_manifold": OnManifoldSampler, "pcd": PersistentSampler, "x": PersistentSampler, "cd": CDSampler}


def build_sampler(cfg):
    """The negative sampler of a sampler config (``sampler.kind``)."""
    from .errors import ConfigError

    if cfg.kind not in SAMPLERS:
        raise ConfigError(f"unknown sampler {cfg.kind!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[cfg.kind](cfg)
