"""Where the data live and where decoded images are cached.

The data root is ``$NAE_DATA`` if set, else ``data_root`` in the user settings file
``~/.config/nae/config.toml`` (:mod:`nae.settings`), else ``<repo>/datasets/``; nothing is
ever written there, except by ``load_dataset(..., download=True)``, which asks torchvision
to download into it.  Decoded images (CelebA, Omniglot, image folders) are cached as
``.npz`` files in ``$NAE_CACHE`` or ``<repo>/.cache/nae-data/``; the cache file name
carries a hash of every source file's path, size and mtime, so a changed source is
decoded again and the stale cache file is removed.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np


_REPO = Path(__file__).resolve().parents[2]
_CACHE_VERSION = "1"


def data_root() -> Path:
    """The data root: ``$NAE_DATA`` if set, else ``data_root`` of the user settings file
    (:mod:`nae.settings`, ``~/.config/nae/config.toml``), else ``<repo>/datasets``."""
    return data_root_origin()[0]


def data_root_origin() -> tuple[Path, str]:
    """``(root, origin)``: the data root and, in words, where that choice came from."""
    env = os.environ.get("NAE_DATA")
    if env:
        return Path(env).expanduser(), "from $NAE_DATA"
    from nae.settings import setting_path

    found = setting_path("data_root")
    if found is not None:
        return found[0], f"data_root in {found[1]}"
    return _REPO / "datasets", "the default: datasets/ in the repository"


def cache_dir() -> Path:
    """The cache folder: ``$NAE_CACHE`` if set, else ``<repo>/.cache/nae-data``."""
    env = os.environ.get("NAE_CACHE")
    return Path(env).expanduser() if env else _REPO / ".cache" / "nae-data"


def resolve_root(root) -> Path:
    """``root`` as a Path with ``~`` expanded, or :func:`data_root` when ``root`` is None."""
    return Path(root).expanduser() if root is not None else data_root()


def short_hash(text: str, n: int = 10) -> str:
    """The first ``n`` hex digits of the SHA-1 of ``text`` (used in cache file names)."""
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:n]


def _stamp(sources: Sequence[Path], extra: str = "") -> str:
    """Hash of the sources' paths, sizes and mtimes (and ``extra``)."""
    h = hashlib.sha1(f"{_CACHE_VERSION}\0{extra}\n".encode())
    for p in sources:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def cached_arrays(
    key: str,
    sources: Sequence[Path],
    build: Callable[[], dict],
    extra: str = "",
    quick: Optional[Callable[[], dict]] = None,
) -> dict:
    """Return ``build()``'s dict of arrays, cached in :func:`cache_dir` under ``key``.

    The cache file is ``<key>--<stamp>.npz``; the stamp changes with any source file's
    path, size or mtime, and older files of the same key are removed when a new one is
    written.  A cache that cannot be written only gives a warning.  ``quick``: when there
    is no valid cache yet, return ``quick()`` instead (not cached; used for ``n=``).
    """
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", key)
    directory = cache_dir()
    path = directory / f"{safe}--{_stamp(sources, extra)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # a damaged cache file is rebuilt
            pass
    if quick is not None:
        return quick()
    arrays = build()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
        pattern = re.compile(re.escape(safe) + r"--[0-9a-f]{16}\.npz")
        for old in directory.iterdir():
            if old != path and pattern.fullmatch(old.name):
                old.unlink(missing_ok=True)
    except OSError as e:
        warnings.warn(f"could not write the data cache {path}: {e}", stacklevel=3)
    return arrays
