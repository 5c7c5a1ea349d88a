"""User data: ``folder:PATH`` (images, flat or one sub-folder per class), ``npy:PATH``
and ``npz:PATH`` (arrays ``(N, H, W)``, NHWC or NCHW; uint8 in [0, 255] or float in [0, 1]).

The same images serve every split, unless the folder has ``train/``, ``val/``, ``test/``
sub-folders or the npz has ``x_train`` / ``x_val`` / ``x_test``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nae.errors import DataError

from .formats import load_npz, read_image_folder
from .spec import Request, as_labels


def _split_dir(path: Path, split: str) -> Path:
    names = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "evaluation")}
    present = [n for ns in names.values() for n in ns if (path / n).is_dir()]
    if not present:
        return path
    for n in names[split]:
        if (path / n).is_dir():
            return path / n
    raise DataError(f"{path} has split sub-folders {present} but none for split {split!r}")


def _as_image_array(x: np.ndarray, what: str) -> np.ndarray:
    """uint8 or float32 (N, C, H, W) from (N, H, W), NHWC or NCHW arrays."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        first, last = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
        if last and (not first or x.shape[1] == x.shape[2]):
            x = x.transpose(0, 3, 1, 2)
        elif not first:
            raise DataError(f"{what}: array of shape {x.shape} is neither NHWC nor NCHW with 1 or 3 channels")
    else:
        raise DataError(f"{what}: expected images (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{what}: integer images must lie in [0, 255]; found [{x.min()}, {x.max()}]")
        return np.ascontiguousarray(x.astype(np.uint8))
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
            raise DataError(f"{what}: float images must lie in [0, 1]; found [{np.nanmin(x)}, {np.nanmax(x)}] or non-finite values")
        return np.ascontiguousarray(x.astype(np.float32))
    raise DataError(f"{what}: unsupported dtype {x.dtype} (use uint8 in [0, 255] or float in [0, 1])")


def load_user(req: Request) -> tuple:
    """``(images, labels, source)`` of ``req.split`` from ``folder:PATH``, ``npy:PATH`` or
    ``npz:PATH``: images (N, C, H, W) uint8, or float32 in [0, 1]; int64 labels or None."""
    prefix, _, raw = req.name.partition(":")
    if not raw:
        raise DataError(f"{req.name!r}: a path is needed after '{prefix}:'")
    path = Path(raw).expanduser()
    if prefix == "folder":
        d = _split_dir(path, req.split) if path.is_dir() else path
        x, y = read_image_folder(d, req.channels, req.size, key=f"folder-{path.name}")
        return torch.from_numpy(x), as_labels(y), str(d)
    if not path.is_file():
        raise DataError(f"{req.name!r}: file {path} does not exist")
    y = None
    if prefix == "npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"cannot read {path}: {e} (not a .npy file?)") from e
        if not isinstance(x, np.ndarray):
            raise DataError(f"{path}: is an .npz archive; use 'npz:{path}'")
    else:
        z = load_npz(path)
        split_key = {"train": "x_train", "val": "x_val", "test": "x_test"}[req.split]
        split_keys = [k for k in ("x_train", "x_val", "x_test") if k in z]
        if "x" in z:
            x, y = z["x"], z.get("y")
        elif split_keys:
            if split_key not in z:
                raise DataError(f"{path}: has {split_keys} but no {split_key!r} for split {req.split!r}")
            x, y = z[split_key], z.get("y_" + req.split)
        elif len(z) == 1:
            x = next(iter(z.values()))
        else:
            raise DataError(
                f"{path}: no image array: expected key 'x' (and optionally 'y'), keys x_train/x_val/x_test, "
                f"or a single array; found keys {sorted(z)}"
            )
    x = _as_image_array(x, str(path))
    if len(x) == 0:
        raise DataError(f"{path}: holds 0 images ({req.split!r} split): nothing to train or score on")
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise DataError(f"{path}: {len(x)} images but {len(y)} labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: labels must be integers, got {y.dtype}")
    return torch.from_numpy(x), as_labels(y), str(path)
