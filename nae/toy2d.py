"""2-D toy data (the original's 8 Gaussians) and density grids for plotting.

``eight_gaussians``: 8 centres at radius 4 on the axes and diagonals, plus N(0, 0.5^2)
noise, all divided by 1.414 (as the original ``sample2d('8gaussians')``).  So the centres
lie at radius 2*sqrt(2)/1.0 ~ 2.83 and each blob has per-axis std 0.5/1.414.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .errors import DataError

SCALE = 1.414
RADIUS = 4.0
STD = 0.5


def eight_gaussian_centres() -> torch.Tensor:
    """The eight mode centres (8, 2), on a circle, in the scaled coordinates of :func:`eight_gaussians`."""
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    c = torch.stack([RADIUS * torch.cos(angles), RADIUS * torch.sin(angles)], 1)
    return (c / SCALE).float()


def eight_gaussians(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points (n, 2) of the 8-Gaussians mixture (equal weights), drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    centres = eight_gaussian_centres() * SCALE
    idx = torch.randint(0, 8, (n,), generator=g)
    x = centres[idx] + STD * torch.randn(n, 2, generator=g)
    return x / SCALE


def eight_gaussians_density(points: torch.Tensor) -> torch.Tensor:
    """The true density of :func:`eight_gaussians` at ``points`` (N, 2)."""
    c = eight_gaussian_centres().double()
    s = STD / SCALE
    d2 = ((points.double()[:, None, :] - c[None]) ** 2).sum(-1)
    return (torch.exp(-d2 / (2 * s * s)) / (2 * math.pi * s * s)).mean(1).float()


TOY_SETS = {"8gaussians": (eight_gaussians, eight_gaussians_density)}


def sample_toy(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points of the registered 2-D data set ``name`` (see ``TOY_SETS``), drawn with ``seed``."""
    if name not in TOY_SETS:
        raise DataError(f"unknown 2-D data set {name!r}; choose one of {sorted(TOY_SETS)}")
    return TOY_SETS[name][0](n, seed)


def grid(lim: float = 4.0, n: int = 100):
    """A n x n grid over [-lim, lim]^2: returns (xx, yy, points (n*n, 2))."""
    xs = torch.linspace(-lim, lim, n)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    return xx, yy, torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


@torch.no_grad()
def values_on_grid(fn, lim: float = 4.0, n: int = 100, batch: int = 2500) -> np.ndarray:
    """Any per-point function (for example the reconstruction error) on the grid."""
    _, _, pts = grid(lim, n)
    v = torch.cat([fn(pts[i:i + batch]).float().cpu() for i in range(0, len(pts), batch)])
    return v.reshape(n, n).numpy()


def normalised_density(energies: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """exp(-E/T) of grid energies, normalised to sum to one over the grid, in float64."""
    logp = -np.asarray(energies, dtype=np.float64) / float(temperature)
    p = np.exp(logp - logp.max())
    return p / p.sum()


def density_on_grid(energy_fn, temperature: float = 1.0, lim: float = 4.0, n: int = 100) -> np.ndarray:
    """exp(-E/T) on the grid, normalised to sum to one over the grid (as the original plots),
    in float64 (n x n, rows are y)."""
    return normalised_density(values_on_grid(energy_fn, lim, n), temperature)
