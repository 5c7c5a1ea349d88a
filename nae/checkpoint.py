"""Atomic checkpoint files and random-number-generator state."""
from __future__ import annotations

import errno
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError

FORMAT = "nae-checkpoint-v1"


#: OS errors that mean "this storage cannot take the file", not a bug
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def storage_error(e: OSError, path) -> CheckpointError:
    """One line naming the cause (``no space left on device at RUN/checkpoint.pt``)."""
    cause = os.strerror(e.errno).lower() if e.errno else str(e)
    return CheckpointError(f"{cause} at {path}: nothing was half-written, and the previous checkpoint (if any) is "
                           f"intact; free some space or choose a writable --out, then continue with --resume")


def atomic_save(obj, path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A crash or kill while writing leaves the previous file intact (and at worst a
    ``NAME.*.tmp`` file, which :func:`clean_stale_tmp` removes); a full disk or a read-only
    folder raises a :class:`CheckpointError` naming the cause, with the previous file intact.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(tmp)
        if e.errno in STORAGE_ERRNOS:
            raise storage_error(e, path) from None
        raise
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path) -> None:
    if path is not None and os.path.exists(path):
        try:
            os.unlink(path)
        except OSError:
            pass


def clean_stale_tmp(run_dir) -> list:
    """Removes the ``NAME.pt.*.tmp`` files that killed writes left in ``run_dir`` (call it
    only while holding the run's lock: then no write is in progress).  Returns their names."""
    removed = []
    for p in Path(run_dir).glob("*.pt.*.tmp"):
        _unlink_quietly(p)
        removed.append(p.name)
    return removed


def load_checkpoint(path, map_location="cpu") -> dict:
    """Reads a checkpoint; a missing or unreadable file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated or not a torch file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an NAE checkpoint (expected format {FORMAT!r})")
    return obj


def rng_state(generator: torch.Generator | None = None) -> dict:
    """The states of every random generator a run uses (torch, CUDA, numpy, random, ``generator``)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Restores what :func:`rng_state` saved."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())  # a checkpoint loaded with map_location="cuda" moved it
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"].cpu())


def seed_everything(seed: int) -> None:
    """Seeds torch, CUDA, numpy and random."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
