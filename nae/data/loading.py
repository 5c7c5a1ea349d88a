"""``load_dataset``: one split of a named set (or user data) in memory, at the shape asked for.

Declared conversions: grey -> RGB (the channel repeated, as the original ``Gray2RGB``)
and a bilinear, antialiased resize (the original ``Resize``).  CelebA, Omniglot and the
generated sets are made at the size asked for; other sets are resized from their
in-memory ``uint8`` tensors.  RGB -> grey is not declared (the original never did it)
and raises :class:`~nae.errors.DataError`, except for ``CelebA64Gray`` (grey by
construction) and ``folder:`` data (PIL converts).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from nae.errors import DataError

from .imageset import ImageSet
from .paths import resolve_root
from .registry import DATASETS, USER_PREFIXES, resolve
from .sets import DEFAULT_HOLDOUT
from .spec import Request, check_split
from .user import load_user


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize to ``size`` x ``size``, in chunks; keeps the dtype."""
    out = []
    for i in range(0, images.shape[0], 2048):
        x = images[i:i + 2048].to(torch.float32)
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        if images.dtype == torch.uint8:
            x = x.round_().clamp_(0, 255).to(torch.uint8)
        else:
            x = x.clamp_(0, 1)
        out.append(x)
    if not out:
        return images.new_empty((0, images.shape[1], size, size))
    return torch.cat(out)


def _convert(images: torch.Tensor, name: str, channels: Optional[int], size: Optional[int]) -> torch.Tensor:
    """Apply the declared conversions (grey -> RGB, resize) or raise DataError."""
    c, h, w = images.shape[1:]
    tc = c if channels is None else channels
    if tc != c and not (c == 1 and tc == 3):
        target = f"{tc}x{size or h}x{size or w}"
        raise DataError(
            f"data set {name!r} has native shape {c}x{h}x{w} (CxHxW) and cannot be given as {target}: "
            f"the only declared channel conversion is grey -> RGB (1 -> 3 channels); "
            f"a model for {c}-channel images is needed"
        )
    if size is not None and (h, w) != (size, size):
        images = _resize(images, size)
    if tc != c:
        images = images.expand(-1, tc, -1, -1).contiguous()
    return images


def _check_holdout(holdout) -> tuple:
    if holdout is None:
        return DEFAULT_HOLDOUT
    if isinstance(holdout, (int, np.integer)):
        holdout = (int(holdout),)
    try:
        digits = tuple(sorted({int(d) for d in holdout}))
    except (TypeError, ValueError) as e:
        raise DataError(f"holdout must be a digit or a list of digits, got {holdout!r}") from e
    if not digits or any(d < 0 or d > 9 for d in digits) or len(digits) == 10:
        raise DataError(f"holdout must be between one and nine distinct digits 0-9, got {holdout!r}")
    return digits


def load_dataset(
    name: str,
    split: str = "test",
    *,
    size: Optional[int] = None,
    channels: Optional[int] = None,
    holdout=None,
    outliers: bool = False,
    seed: int = 0,
    n: Optional[int] = None,
    download: bool = False,
    root=None,
) -> ImageSet:
    """Load split ``split`` of data set ``name`` into memory.

    size, channels: the shape wanted (default: the set's native shape); grey -> RGB and
        resizing are the declared conversions, anything else raises DataError.
    holdout, outliers: MNISTHoldout only: the held-out digits (default ``(9,)``); with
        ``outliers=True`` only the held-out digits of the split are returned.
    seed: generated sets only (Constant, ConstantGray, Noise); deterministic per (seed, split).
    n: keep the first ``n`` images (after the fixed split permutation).
    download: let torchvision download a missing MNIST, FashionMNIST, CIFAR10, CIFAR100,
        SVHN or Omniglot into the data root (needs internet; off by default).
    root: data root (default :func:`data_root`).
    """
    split = check_split(split)
    if size is not None and (not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1):
        raise DataError(f"size must be a positive integer, got {size!r}")
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise DataError(f"n must be a positive integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    size = None if size is None else int(size)
    req = Request(name=name, split=split, root=resolve_root(root), size=size, channels=channels, seed=int(seed),
                   n=None if n is None else int(n), download=bool(download))

    display = name
    if isinstance(name, str) and name.startswith(USER_PREFIXES):
        if holdout is not None or outliers:
            raise DataError("holdout/outliers only apply to MNISTHoldout")
        images, labels, source = load_user(req)
    else:
        if isinstance(name, str) and name.lower() == "heldout":
            spec, outliers, display = DATASETS["MNISTHoldout"], True, "heldout"
        else:
            spec = resolve(name)
            display = spec.name
        if spec.name == "MNISTHoldout":
            req.holdout, req.outliers = _check_holdout(holdout), bool(outliers)
        elif holdout is not None or outliers:
            raise DataError(f"holdout/outliers only apply to MNISTHoldout, not {spec.name}")
        images, labels, source = spec.load(req)

    if n is not None and n < len(images):
        images = images[:n].clone()
        labels = None if labels is None else labels[:n].clone()
    images = _convert(images, display, channels, size)
    return ImageSet(name=display, split=split, images=images, labels=labels, source=source)


def native_shape(name: str) -> tuple:
    """(C, H, W) of a set as stored (user data: read from the data)."""
    if isinstance(name, str) and name.startswith(USER_PREFIXES):
        return load_dataset(name, "test", n=1).shape
    if isinstance(name, str) and name.lower() == "heldout":
        return DATASETS["MNISTHoldout"].native_shape
    return tuple(resolve(name).native_shape)
