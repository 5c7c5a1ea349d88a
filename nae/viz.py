"""Small plotting helpers shared by the command line and the notebooks."""
from __future__ import annotations

import numpy as np
import torch


def image_grid(x: torch.Tensor, nrow: int = 8, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """(N,C,H,W) images in [0,1] -> one (H', W', C) float array (C = 1 or 3)."""
    x = x.detach().float().cpu().clamp(0, 1)
    if x.dim() != 4:
        raise ValueError(f"image_grid needs (N,C,H,W) images, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = (n + ncol - 1) // ncol
    out = torch.full((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), pad_value)
    for i in range(n):
        r, q = divmod(i, ncol)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    return out.permute(1, 2, 0).numpy()


def upscale_factor(h: int, w: int, min_cell: int) -> int:
    """The smallest whole factor that makes an h x w image at least ``min_cell`` pixels
    on its longer side (1 for images that are already that large)."""
    return max(1, -(-min_cell // max(h, w)))


def save_image_grid(x: torch.Tensor, path, nrow: int = 8, min_cell: int = 64, pad: int = 2) -> None:
    """Write (N,C,H,W) images in [0,1] as one PNG grid a person can look at.

    ``nrow`` images per row, ``pad`` pixels of white between them; the whole grid is then
    enlarged by a whole factor with nearest-neighbour pixels (no blur), so that every image
    is at least ``min_cell`` pixels wide: a 28x28 MNIST digit becomes 84x84.
    """
    from PIL import Image

    if nrow < 1:
        raise ValueError(f"nrow must be at least 1, got {nrow}")
    g = image_grid(x, nrow, pad=pad)
    k = upscale_factor(x.shape[-2], x.shape[-1], min_cell)
    arr = (g * 255).round().astype(np.uint8).repeat(k, axis=0).repeat(k, axis=1)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


def show_images(ax, x: torch.Tensor, nrow: int = 8, title: str | None = None):
    """Draws images (N, C, H, W) in [0, 1] as one grid on the matplotlib axes ``ax``, without ticks; returns ``ax``."""
    g = image_grid(x, nrow)
    ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def save_scatter(x: torch.Tensor, path, lim: float = 4.0) -> None:
    """Saves a scatter plot of 2-D points (N, 2) to ``path``, axes limited to [-lim, lim]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    p = x.detach().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=4)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
