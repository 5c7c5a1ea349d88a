"""``iterate_batches``: float32 batches of an :class:`~nae.data.imageset.ImageSet`, with
the on-the-fly augmentation of the original (horizontal flip, uniform dequantisation).

Batches are made with numpy on the CPU, single-threaded, from one draw of the torch
``generator``: small per-batch torch ops on 2 OpenMP threads collapse (10x) when another
process holds a core, and a training step dwarfs the cost of moving a finished batch to
a GPU.  There is no mean/std normalisation, as in the original.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np
import torch

from nae.errors import DataError

from .imageset import ImageSet


def _numpy_batches(arr, n_batches, batch_size, shuffle, hflip, dequantize, rng) -> Iterator[np.ndarray]:
    n = arr.shape[0]
    order = rng.permutation(n) if shuffle else None
    for b in range(n_batches):
        lo, hi = b * batch_size, min(n, (b + 1) * batch_size)
        x = arr[lo:hi] if order is None else arr[order[lo:hi]]
        if hflip:
            flip = rng.random(x.shape[0]) < 0.5
            if order is None:
                x = x.copy()  # never modify the data set itself
            x[flip] = x[flip, :, :, ::-1]
        if x.dtype == np.uint8:
            if dequantize:
                # (v/255) * 255/256 + u/256 == (v + u) / 256
                out = rng.random(x.shape, dtype=np.float32)
                out += x
                out *= np.float32(1.0 / 256.0)
            else:
                out = x.astype(np.float32)
                out /= np.float32(255.0)
        else:
            out = x.astype(np.float32, copy=True)
            if dequantize:
                out *= np.float32(255.0 / 256.0)
                out += rng.random(x.shape, dtype=np.float32) * np.float32(1.0 / 256.0)
        yield out


def iterate_batches(
    ds: ImageSet,
    batch_size: int,
    *,
    shuffle: bool = False,
    hflip: bool = False,
    dequantize: bool = False,
    generator: Optional[torch.Generator] = None,
    drop_last: bool = False,
    device=None,
) -> Iterator[torch.Tensor]:
    """Yield float32 batches (B, C, H, W) in [0, 1] (dequantised: (v + U) / 256, U ~ U[0, 1)).

    ceil(N / B) batches per epoch (floor with ``drop_last``).  ``hflip``: each image is
    flipped left-right with probability 1/2; ``dequantize``: x <- x * 255/256 + U(0, 1)/256,
    after the flip (the original UniformDequantize).  All randomness (order, flips,
    noise) comes from one draw from ``generator`` (default: torch's global generator),
    which seeds a ``numpy.random.Generator``, so the same generator state gives the same
    batches.  Batches are made on the CPU and moved to ``device`` (default: where
    ``ds.images`` lives).
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    images = ds.images
    n = int(images.shape[0])
    out_dev = torch.device(device) if device is not None else images.device
    n_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    gen_dev = generator.device if generator is not None else "cpu"
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_dev).item())
    batches = _numpy_batches(images.cpu().numpy(), n_batches, batch_size, shuffle, hflip, dequantize,
                             np.random.default_rng(seed))
    if out_dev.type == "cpu":
        return map(torch.from_numpy, batches)
    return (torch.from_numpy(x).to(out_dev, non_blocking=True) for x in batches)
