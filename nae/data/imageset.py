"""``ImageSet``: an image set in memory, as every loader returns it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


@dataclass
class ImageSet:
    """An in-memory image set.

    ``images`` is ``(N, C, H, W)``, ``uint8`` in [0, 255] or ``float32`` in [0, 1];
    ``labels`` is ``int64`` ``(N,)`` or ``None``; ``source`` says where it came from.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: Optional[torch.Tensor] = None
    source: str = ""

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple:
        """``(C, H, W)``."""
        return tuple(int(s) for s in self.images.shape[1:])

    def as_float(self, index=None) -> torch.Tensor:
        """``float32`` images in [0, 1], ``(n, C, H, W)``; ``index``: None, int, slice,
        index tensor / array / list."""
        if index is None:
            x = self.images
        else:
            if isinstance(index, (int, np.integer)):
                index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
            elif isinstance(index, (list, np.ndarray)):
                index = torch.as_tensor(np.asarray(index), dtype=torch.long)
            x = self.images[index]
        if x.dtype == torch.uint8:
            return x.to(torch.float32).div_(255.0)
        return x.to(torch.float32, copy=True)

    def __repr__(self) -> str:
        return (
            f"ImageSet(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"shape={self.shape}, dtype={self.images.dtype})"
        )
