"""Generated outlier sets: Constant, ConstantGray and Noise.

Constant: each image one colour, R, G, B uniform on {0..255} (with one channel, the R
value); ConstantGray: one grey level in every channel; Noise: i.i.d. uniform uint8 pixels.
The original read these from ``.npy`` files of unknown origin; ours are generated from
``numpy.random.default_rng([seed, set, split, block])`` in blocks of 1000 images, so the
first ``n`` images do not depend on ``n``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .spec import SPLITS, DatasetSpec


#: images per split of the generated sets (the original's 40,000-image files)
GENERATED_COUNTS = {"train": 32000, "val": 4000, "test": 4000}


_GEN_CODES = {"Constant": 1, "ConstantGray": 2, "Noise": 3}
_GEN_BLOCK = 1000


class GeneratedSpec(DatasetSpec):
    """Constant / ConstantGray / Noise, generated from (seed, split) in blocks of 1000
    images, so that the first n images do not depend on n."""

    def locate(self, root, split=None):
        """Always ``("generated", [])``: nothing is read from disk."""
        return "generated", []

    def counts(self, root, found):
        """The fixed :data:`GENERATED_COUNTS`: train/val/test 32,000/4,000/4,000."""
        return dict(GENERATED_COUNTS)

    def load(self, req):
        """The first ``req.n`` (default all) images of ``req.split``, uint8 (N, C, S, S) with C =
        ``req.channels`` or 3 and S = ``req.size`` or 32, generated per block of 1000; no labels."""
        total = GENERATED_COUNTS[req.split]
        n = total if req.n is None else min(req.n, total)
        c = req.channels or 3
        s = req.size or self.native_shape[1]
        blocks = []
        for b in range(math.ceil(n / _GEN_BLOCK)):
            m = min(_GEN_BLOCK, total - b * _GEN_BLOCK)
            rng = np.random.default_rng([req.seed, _GEN_CODES[self.name], SPLITS.index(req.split), b])
            if self.name == "Noise":
                blk = rng.integers(0, 256, size=(m, c, s, s), dtype=np.uint8)
            else:
                if self.name == "Constant":
                    v = rng.integers(0, 256, size=(m, 3), dtype=np.uint8)[:, :c]  # 1 channel: the R value
                else:
                    v = np.repeat(rng.integers(0, 256, size=(m, 1), dtype=np.uint8), c, axis=1)
                blk = np.broadcast_to(v[:, :, None, None], (m, c, s, s))
            blocks.append(blk)
        x = np.concatenate(blocks)[:n] if blocks else np.zeros((0, c, s, s), np.uint8)
        return torch.from_numpy(np.ascontiguousarray(x)), None, f"generated (seed={req.seed}, split={req.split})"
