"""Plotting and analysis helpers for 2-D models (the 8-Gaussians notebooks).

Everything works on a square grid over ``[-lim, lim]^2`` (default ``[-4, 4]^2``, 100 x 100,
as the original plots) and on any model with ``energy(x)`` (NAE, AE, VAE):

* :func:`model_density`: the density a model implies, normalised on the grid
  (NAE: exp(-E/T); AE: exp(-E), the AE's "density" if one reads its error as an energy;
  VAE: exp(ELBO) = exp(-D * E), since its E is the negative ELBO per dimension);
* :func:`expected_energy`: the mean energy under the model's own density (exact on the grid);
* :func:`true_density`, :func:`mass_near_modes`, :func:`mode_coverage`: the 8-Gaussians
  reference and two numbers to compare models by;
* :func:`far_but_well_reconstructed`: grid points far from every mode that a model
  nevertheless reconstructs as well as typical data (the AE failure mode);
* :class:`NegativeRecorder`: a trainer callback that keeps NAE negative samples (and
  the energy landscape) at chosen iterations; :func:`train_recording` runs a recipe with it;
* :func:`decoder_curve`, :func:`curve_error`: the decoder's image of the latent circle
  (spherical z=2) and how well it is reconstructed;
* :func:`long_run_samples`: long Langevin chains from uniform noise (to reveal modes
  the training sampler never visited);
* :func:`show_field`, :func:`show_points`, :func:`density_row`: consistent heat maps
  (equal aspect, fixed limits, colour bars).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

from ..toy2d import (SCALE, STD, density_on_grid, eight_gaussian_centres, eight_gaussians_density, grid,
                    normalised_density, values_on_grid)

LIM = 4.0
N_GRID = 100
#: per-axis standard deviation of one of the 8 Gaussians (0.5 / 1.414)
SIGMA = STD / SCALE


# ---------------------------------------------------------------------------------
# densities and fields on the grid


def true_density(lim: float = LIM, n: int = N_GRID) -> np.ndarray:
    """The 8-Gaussians density on the grid, normalised to sum to one."""
    _, _, pts = grid(lim, n)
    p = eight_gaussians_density(pts).double().numpy().reshape(n, n)
    return p / p.sum()


def density_temperature(model) -> float:
    """The temperature T with which exp(-E/T) is the model's density (see module doc)."""
    if model.kind == "vae":
        return 1.0 / math.prod(model.x_shape)
    return _float(model.T)


def _float(t) -> float:
    return float(t.detach()) if torch.is_tensor(t) else float(t)


def energy_grid(model, lim: float = LIM, n: int = N_GRID) -> np.ndarray:
    """E(x) of a model on the grid (n x n, rows are y)."""
    model.eval()
    return values_on_grid(model.energy, lim, n)


def model_density(model, lim: float = LIM, n: int = N_GRID) -> np.ndarray:
    """exp(-E/T) on the grid normalised to sum to one, T from :func:`density_temperature`."""
    model.eval()
    return density_on_grid(model.energy, density_temperature(model), lim, n)


def expected_energy(model, lim: float = 5.0, n: int = 200) -> float:
    """E under the model's own density, sum_x p(x) E(x) with p = exp(-E/T) normalised on an
    n x n grid over [-lim, lim]^2 (default: the samplers' box [-5, 5]^2).  In 2-D this is
    exact up to the grid; it is what the mean energy of true samples of p converges to."""
    e = energy_grid(model, lim, n).astype(np.float64)
    p = normalised_density(e, density_temperature(model))
    return float((p * e).sum())


def nearest_mode_distance(points) -> np.ndarray:
    """Distance of each point (N, 2) to the nearest of the 8 centres."""
    p = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    return torch.cdist(p, eight_gaussian_centres()).min(1).values.numpy()


def near_modes_mask(lim: float = LIM, n: int = N_GRID, k: float = 3.0) -> np.ndarray:
    """Grid mask: within ``k`` standard deviations of some centre."""
    _, _, pts = grid(lim, n)
    return (nearest_mode_distance(pts) <= k * SIGMA).reshape(n, n)


def mass_near_modes(p: np.ndarray, lim: float = LIM, k: float = 3.0) -> float:
    """The share of a grid density ``p`` lying within ``k`` std of a mode.

    For the true density and k=3 it is 1 - exp(-9/2) ~ 0.99 (a 2-D Gaussian)."""
    mask = near_modes_mask(lim, p.shape[0], k)
    return float(p[mask].sum() / p.sum())


def mode_coverage(samples, k: float = 3.0) -> dict:
    """How samples (N, 2) spread over the 8 modes.

    ``on_modes``: the share within ``k`` std of a centre; ``counts``: samples per mode
    (among those on a mode); ``modes_hit``: modes with at least 1 % of the samples."""
    s = np.asarray(samples, dtype=np.float32)
    p = torch.as_tensor(s)
    d = torch.cdist(p, eight_gaussian_centres())
    dist, idx = d.min(1)
    near = (dist <= k * SIGMA).numpy()
    counts = np.bincount(idx.numpy()[near], minlength=8)
    return {"on_modes": float(near.mean()) if len(s) else 0.0, "counts": counts.tolist(),
            "modes_hit": int((counts >= 0.01 * max(len(s), 1)).sum())}


@torch.no_grad()
def far_but_well_reconstructed(model, data, lim: float = LIM, n: int = N_GRID, k: float = 3.0,
                               quantile: float = 0.95):
    """Grid points farther than ``k`` std from every mode whose reconstruction error is at
    most the ``quantile`` of the error on ``data`` (N, 2).

    An outlier detector that scores by reconstruction error calls these points inliers.
    Returns a dict: ``points`` (M, 2), ``threshold``, ``share`` (of the far-from-data
    grid points that are reconstructed this well), and ``error`` (the grid, n x n)."""
    model.eval()
    err_data = model.energy(torch.as_tensor(data, dtype=torch.float32)).numpy()
    thr = float(np.quantile(err_data, quantile))
    err = values_on_grid(model.energy, lim, n)
    _, _, pts = grid(lim, n)
    far = ~near_modes_mask(lim, n, k).reshape(-1)
    good = far & (err.reshape(-1) <= thr)
    return {"points": pts.numpy()[good], "threshold": thr, "share": float(good.sum() / far.sum()), "error": err}


# ---------------------------------------------------------------------------------
# negative samples during training


class NegativeRecorder:
    """Trainer callback: at the NAE iterations in ``at`` keep the negative samples
    (``trainer.last_negatives``), the energy on the grid and the temperature.

    ``snapshots`` is a list of dicts with keys step, negatives (N, 2), energy (n x n), T."""

    def __init__(self, at: Iterable[int], lim: float = LIM, n: int = N_GRID):
        self.at = sorted(set(int(a) for a in at))
        self.lim, self.n = lim, n
        self.snapshots: list[dict] = []

    def on_event(self, event, trainer, metrics):
        """On a ``"step"`` event of the ``nae`` phase at a step in ``at``, appends a snapshot (the
        negatives, the grid energy in eval mode, T); ignores every other event."""
        if event != "step" or trainer.state["phase"] != "nae" or trainer.state["step"] not in self.at:
            return
        m = trainer.model
        was = m.training
        m.eval()
        energy = values_on_grid(m.energy, self.lim, self.n)
        m.train(was)
        self.snapshots.append({"step": trainer.state["step"], "negatives": trainer.last_negatives.detach().cpu().numpy(),
                               "energy": energy, "T": _float(m.T)})


def train_recording(recipe: str, budget_name: str, iters: int, at: Iterable[int], run_dir,
                    extra_overrides=(), progress: bool = False):
    """Trains recipe ``recipe`` for ``iters`` NAE iterations with a :class:`NegativeRecorder`.

    Returns (model, recorder, wall seconds).  The run directory is replaced."""
    import shutil

    from ..config import load_config
    from .recipes import get_recipe
    from ..run import load_run
    from ..trainer import Trainer

    r = get_recipe(recipe)
    over = list(r.overrides) + (list(r.full) if budget_name == "full" else [])
    over += [f"train.nae.max_iters={int(iters)}", *extra_overrides]
    cfg = load_config(r.config, budget=budget_name, overrides=over)
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    rec = NegativeRecorder([a for a in at if a <= iters])
    t0 = time.time()
    trainer = Trainer(cfg, run_dir, callbacks=[rec], progress=progress)
    trainer.fit()
    wall = time.time() - t0
    return load_run(run_dir), rec, wall


# ---------------------------------------------------------------------------------
# sampling


def long_run_samples(model, n: int = 500, steps: int = 500, noise_std: float = 0.05,
                     bound=(-4.0, 4.0), seed: int = 0) -> np.ndarray:
    """Langevin chains (with Metropolis-Hastings) of ``steps`` steps on E(x)/T, started
    uniformly in ``bound``^2: where the model's own dynamics end up, far longer than
    any chain used in training."""
    from ..config import ChainConfig
    from ..langevin import frozen, langevin_chain

    g = torch.Generator().manual_seed(seed)
    lo, hi = bound
    x0 = lo + (hi - lo) * torch.rand((n, 2), generator=g)
    chain = ChainConfig(n_steps=steps, noise_std=noise_std, bound=list(bound), mh=True)
    model.eval()
    with frozen(model):
        res = langevin_chain(model.energy, x0, chain, _float(model.T), g)
    return res.x.numpy()


@torch.no_grad()
def decoder_curve(model, n: int = 400) -> np.ndarray:
    """dec(z) for z on the unit circle (models with a spherical z=2 latent): the closed
    curve on which every reconstruction lies.  A point g(z) of the curve is reconstructed
    exactly only where the encoder maps it back to z, f(g(z)) = z, which training does not
    guarantee: :func:`curve_error` measures how close the curve comes."""
    if not (getattr(model, "spherical", False) and model.z_dim == 2):
        raise ValueError("decoder_curve needs a model with a spherical 2-D latent")
    t = torch.linspace(0, 2 * math.pi, n + 1)
    z = torch.stack([torch.cos(t), torch.sin(t)], 1)
    model.eval()
    return model.decode(z).numpy()


@torch.no_grad()
def curve_error(model, n: int = 400) -> dict:
    """Along the decoder curve x = g(z), z = (cos t, sin t): the reconstruction error E(x)
    (``error``, n + 1 values) and how far the encoder's code of x is from z
    (``latent_gap`` = |f(g(z)) - z|).  The error is zero exactly where the gap is zero."""
    t = torch.linspace(0, 2 * math.pi, n + 1)
    z = torch.stack([torch.cos(t), torch.sin(t)], 1)
    model.eval()
    x = model.decode(z)
    return {"error": model.energy(x).numpy(), "latent_gap": (model.encode(x) - z).norm(dim=1).numpy()}


# ---------------------------------------------------------------------------------
# drawing


def show_field(ax, field: np.ndarray, title: str = "", lim: float = LIM, cmap: str = "viridis",
               colorbar: bool = True, label: Optional[str] = None, log: bool = False, **kw):
    """A grid field (n x n, rows are y) as a heat map over [-lim, lim]^2 with a colour bar."""
    import matplotlib.colors as mcolors

    norm = None
    if log:  # vmin / vmax (for a scale shared by several panels) go into the LogNorm
        pos = field[field > 0]
        vmax = kw.pop("vmax", None) or float(pos.max())
        vmin = kw.pop("vmin", None) or max(float(pos.min()), vmax * 1e-6)
        norm = mcolors.LogNorm(vmin=vmin, vmax=vmax)
    im = ax.imshow(field, origin="lower", extent=(-lim, lim, -lim, lim), cmap=cmap, norm=norm,
                   interpolation="nearest", **kw)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([-4, -2, 0, 2, 4] if lim == 4 else ax.get_xticks())
    ax.set_yticks([-4, -2, 0, 2, 4] if lim == 4 else ax.get_yticks())
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.ax.tick_params(labelsize=7)
        if label:
            cb.set_label(label, fontsize=8)
    return im


def show_points(ax, points, lim: float = LIM, s: float = 2.0, color: str = "w", **kw):
    """A scatter of (N, 2) points clipped to the plotting window."""
    p = np.asarray(points)
    ax.scatter(p[:, 0], p[:, 1], s=s, c=color, linewidths=0, **kw)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")


def density_row(fields: dict, lim: float = LIM, size: float = 2.9, suptitle: str = "", **kw):
    """One row of density heat maps, ``fields`` = {title: grid}; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fields), figsize=(size * len(fields), size * 0.95), constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, (title, f) in zip(axes, fields.items()):
        show_field(ax, f, title, lim, label="p (grid-normalised)", **kw)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig
