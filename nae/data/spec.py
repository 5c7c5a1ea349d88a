"""What a named data set is (:class:`DatasetSpec`), the request a loader gets, the splits.

A spec knows where its files may lie (``candidates``, ``locate``), how many images each
split has (``counts``, from headers only) and how to read a split (``load``).  The
concrete specs are in :mod:`nae.data.sets` and :mod:`nae.data.generated`; the table of
names in :mod:`nae.data.registry`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from nae.errors import DataError


SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "training": "train",
    "validation": "val",
    "valid": "val",
    "evaluation": "test",
    "eval": "test",
}
#: seed of the fixed ``numpy.random.default_rng`` train/val permutations
SPLIT_SEED = 1


@dataclass
class Request:
    """What :func:`nae.data.load_dataset` asks a spec for (after checking the arguments)."""

    name: str
    split: str
    root: Path
    size: Optional[int] = None
    channels: Optional[int] = None
    holdout: Optional[tuple] = None
    outliers: bool = False
    seed: int = 0
    n: Optional[int] = None
    download: bool = False


def how_to_get_text(spec: "DatasetSpec", root) -> str:
    """``spec.how_to_get`` with the real data root in place of ``<root>``."""
    return spec.how_to_get if root is None else spec.how_to_get.replace("<root>", str(root))


def missing_error(spec: "DatasetSpec", tried: Sequence, extra: str = "", root=None) -> DataError:
    """The error for a set that is not there: the paths tried and how to get it."""
    tried_s = "\n".join(f"  - {p}" for p in tried)
    how = how_to_get_text(spec, root)
    msg = f"data set {spec.name!r} not found{extra}. Paths tried:\n{tried_s}\nHow to get it: {how}"
    return DataError(msg)


def train_val_index(n_total: int, split: str, nominal: tuple) -> np.ndarray:
    """Indices of ``split`` ('train'/'val') in a training set of ``n_total`` images.

    ``nominal = (N, n_val)``: with exactly N images the val part has n_val images (the
    original counts); otherwise the same fraction, at least one image.
    """
    big, n_val = nominal
    if n_total != big:
        n_val = max(1, int(round(n_total * n_val / big))) if n_total > 1 else 0
    perm = np.random.default_rng(SPLIT_SEED).permutation(n_total)
    return perm[: n_total - n_val] if split == "train" else perm[n_total - n_val:]


def as_tensor(x: np.ndarray) -> torch.Tensor:
    """A tensor sharing memory with a C-contiguous, writable copy of ``x`` if needed."""
    if not x.flags.writeable:
        x = np.array(x, order="C")
    return torch.from_numpy(np.ascontiguousarray(x))


def as_labels(y) -> Optional[torch.Tensor]:
    """Labels as an int64 tensor ``(N,)`` (or None)."""
    if y is None:
        return None
    return torch.from_numpy(np.asarray(y).astype(np.int64).reshape(-1))


def check_split(split: str) -> str:
    """``split`` as one of :data:`SPLITS` (aliases like ``validation`` accepted), else a DataError."""
    s = SPLIT_ALIASES.get(split, split) if isinstance(split, str) else split
    if s not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return s


@dataclass
class DatasetSpec:
    """One named data set.

    ``native_shape`` is (C, H, W); ``kind`` is 'in-distribution', 'outlier' or
    'generated'; ``downloadable``: torchvision can download it (``download=True``).
    """

    name: str
    kind: str
    native_shape: tuple
    description: str
    how_to_get: str
    downloadable: bool = False
    alias_of: Optional[str] = None
    resizes_from_source: bool = False

    # --- overridden by the subclasses
    def candidates(self, root: Path) -> list:
        """The paths looked at, in order."""
        return []

    def locate(self, root: Path, split: Optional[str] = None):
        """``(found, tried)``: what was found (a path or dict of paths) or None."""
        raise NotImplementedError

    def counts(self, root: Path, found) -> Optional[dict]:
        """``{split: count}`` cheaply (headers, partition files), or None."""
        return None

    def load(self, req: Request) -> tuple:
        """``(images, labels, source)`` of ``req.split``: a uint8 tensor (N, C, H, W), int64
        labels or None, and a string saying where the data came from."""
        raise NotImplementedError

    def _download(self, req: Request) -> None:
        raise DataError(f"{self.name} cannot be downloaded automatically. How to get it: {self.how_to_get}")

    # --- shared
    def _locate_or_download(self, req: Request, part: Optional[str] = None):
        found, tried = self.locate(req.root, part)
        if found is None and req.download and self.downloadable:
            try:
                self._download(req)
            except DataError:
                raise
            except Exception as e:
                raise DataError(
                    f"downloading {self.name!r} into {req.root} with torchvision failed: {e}. "
                    f"How to get it otherwise: {self.how_to_get}"
                ) from e
            found, tried = self.locate(req.root, part)
        if found is None:
            extra = "" if part is None else f" (files for its {part!r} split)"
            if req.download and not self.downloadable:
                extra += "; download=True is not available for it"
            raise missing_error(self, tried, extra, req.root)
        return found


def torchvision_datasets():
    """``torchvision.datasets``, imported when a download is asked for."""
    try:
        import torchvision.datasets as tvd
    except ImportError as e:  # pragma: no cover
        raise DataError("download=True needs torchvision: pip install torchvision") from e
    return tvd
