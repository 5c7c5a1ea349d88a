"""Image data sets of the NAE experiments: registry, loaders, splits, batches.

Every set is loaded into memory once as a ``uint8`` tensor ``(N, C, H, W)`` (user data
in ``float32`` stays float), and is turned into ``float32`` in ``[0, 1]`` batch by batch
by :func:`iterate_batches`, which also applies the on-the-fly augmentation (horizontal
flip, uniform dequantisation).  There is no mean/std normalisation, as in the original.

Where the data live
    The data root is ``$NAE_DATA`` if set, else ``data_root`` in the user settings file
    ``~/.config/nae/config.toml`` (:mod:`nae.settings`), else ``<repo>/datasets/``.
    ``python -m nae data`` says which one is used.  Nothing is ever written there,
    except by ``load_dataset(..., download=True)`` which asks torchvision to download
    into it.  Decoded images (CelebA, Omniglot, image folders) are cached as
    ``.npz`` files in ``$NAE_CACHE`` or ``<repo>/.cache/nae-data/``; the cache file name
    carries a hash of every source file's path, size and mtime, so a changed source is
    decoded again and the stale cache file is removed.

Names (see :data:`DATASETS`, :func:`list_datasets`)
    In-distribution: ``MNIST``, ``FashionMNIST``, ``CIFAR10``, ``CelebA64``, ``CelebA32``,
    ``MNISTHoldout``.  Outliers: ``SVHN``, ``CelebA`` (= ``CelebA32``), ``CIFAR100``,
    ``ImageNet32``, ``Omniglot``, ``CelebA64Gray`` (and the in-distribution sets).
    Generated: ``Constant``, ``ConstantGray``, ``Noise``.  User data: ``folder:PATH``,
    ``npy:PATH``, ``npz:PATH``.  ``heldout`` is short for
    ``load_dataset("MNISTHoldout", ..., outliers=True)``.

Splits (``train`` / ``val`` / ``test``)
    * MNIST, FashionMNIST: train / val = first 54,000 / last 6,000 of
      ``numpy.random.default_rng(1).permutation(60000)`` of the official training set
      (as the original); test = the official 10,000 test images.  The original returned
      the 60,000 *training* images as its evaluation split (its defect 6.1); we do not.
    * MNISTHoldout: train = official train[:50000], val = train[50000:], test = official
      test (no shuffling, as the original ``MNISTLeaveOut``), each without the held-out
      digits (``holdout``, default ``(9,)``); with ``outliers=True`` only the held-out
      digits of that split.
    * CIFAR10, CIFAR100: 45,000 / 5,000 from ``default_rng(1).permutation(50000)`` of the
      official training set; test = official 10,000.  **The original used a permutation
      file it does not ship, so this split differs from the original's.**
    * SVHN: 65,930 / 7,327 from ``default_rng(1).permutation(73257)`` (again differs from
      the original's unshipped file); test = official 26,032.
    * CelebA*: the official partition file, 0 / 1 / 2 = train / val / test.
    * ImageNet32: train / val = 80 % / 20 % of the official training set by
      ``default_rng(1)`` (the original's train_train / train_val); test = the official
      50,000 validation images.
    * Omniglot: train = ``images_background``; val and test = ``images_evaluation``
      (as the original: "background set for training, evaluation set otherwise").
    * Constant, ConstantGray, Noise: 32,000 / 4,000 / 4,000 images (the original's
      counts), generated deterministically from ``(seed, split)``.
    * User data: the same images for every split, unless the folder has ``train/``,
      ``val/``, ``test/`` sub-folders or the npz has ``x_train`` / ``x_val`` / ``x_test``.

Generated and transformed sets (differences from the original)
    * Constant: each image one colour, R, G, B uniform on {0..255}; with one channel the
      R value (as the original, which is a uniform grey level).  ConstantGray: one grey
      level, uniform on {0..255}, in every channel.  Noise: i.i.d. uniform uint8 pixels.
      The original read these from ``.npy`` files whose generating distribution is not
      known; ours are generated from ``numpy.random.default_rng([seed, set, split, block])``
      in blocks of 1000 images, so the first ``n`` images do not depend on ``n``.
    * CelebA64Gray: the original ``ToGray`` g = sqrt(R^2 + G^2 + B^2), repeated to 3
      channels, gives values up to sqrt(3).  We divide by sqrt(3) so that the range stays
      [0, 1] like every other set (and store it rounded to uint8).  Anyone reproducing the
      original ood_val numbers exactly must multiply by sqrt(3).
    * Omniglot: val and test are the same (evaluation) images, as in the original.

Shapes
    Each set has a native shape (:func:`native_shape`).  ``size`` / ``channels`` ask for
    another one.  Declared conversions: grey -> RGB (the channel repeated, as the original
    ``Gray2RGB``) and a bilinear, antialiased resize (the original ``Resize``).  CelebA and
    Omniglot are resized from the source images (crop/resize in PIL, as the original);
    other sets are resized from their in-memory ``uint8`` tensors.  RGB -> grey is not
    declared (the original never did it) and raises :class:`~nae.errors.DataError`,
    except for ``CelebA64Gray`` (grey by construction) and ``folder:`` data (PIL converts).
"""

from __future__ import annotations

import dataclasses
import difflib
import gzip
import hashlib
import math
import os
import pickle
import re
import struct
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from nae.errors import DataError

__all__ = [
    "DATASETS",
    "DEFAULT_OOD",
    "DatasetSpec",
    "ImageSet",
    "SPLITS",
    "cache_dir",
    "data_root",
    "data_root_origin",
    "format_dataset_table",
    "format_missing_sets",
    "iterate_batches",
    "list_datasets",
    "load_dataset",
    "native_shape",
]

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "training": "train",
    "validation": "val",
    "valid": "val",
    "evaluation": "test",
    "eval": "test",
}
#: seed of the fixed ``numpy.random.default_rng`` train/val permutations
SPLIT_SEED = 1
#: images per split of the generated sets (the original's 40,000-image files)
GENERATED_COUNTS = {"train": 32000, "val": 4000, "test": 4000}
#: where the Debian package ``dataset-fashion-mnist`` installs the gzip IDX files
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

_REPO = Path(__file__).resolve().parent.parent
_CACHE_VERSION = "1"
_IMAGE_EXTENSIONS = {
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


# --------------------------------------------------------------------------- paths


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


def _root(root) -> Path:
    return Path(root).expanduser() if root is not None else data_root()


def _short_hash(text: str, n: int = 10) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:n]


def _stamp(sources: Sequence[Path], extra: str = "") -> str:
    """Hash of the sources' paths, sizes and mtimes (and ``extra``)."""
    h = hashlib.sha1(f"{_CACHE_VERSION}\0{extra}\n".encode())
    for p in sources:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def _cached_arrays(
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


# --------------------------------------------------------------------------- ImageSet


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

    def to(self, device) -> "ImageSet":
        """A copy with images (and labels) on ``device``; batches are then gathered there."""
        return dataclasses.replace(
            self,
            images=self.images.to(device),
            labels=None if self.labels is None else self.labels.to(device),
        )

    def __repr__(self) -> str:
        return (
            f"ImageSet(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"shape={self.shape}, dtype={self.images.dtype})"
        )


# --------------------------------------------------------------------------- requests


@dataclass
class _Request:
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


def _how_to_get(spec: "DatasetSpec", root) -> str:
    """``spec.how_to_get`` with the real data root in place of ``<root>``."""
    return spec.how_to_get if root is None else spec.how_to_get.replace("<root>", str(root))


def _missing(spec: "DatasetSpec", tried: Sequence, extra: str = "", root=None) -> DataError:
    tried_s = "\n".join(f"  - {p}" for p in tried)
    how = _how_to_get(spec, root)
    msg = f"data set {spec.name!r} not found{extra}. Paths tried:\n{tried_s}\nHow to get it: {how}"
    return DataError(msg)


def _train_val_index(n_total: int, split: str, nominal: tuple) -> np.ndarray:
    """Indices of ``split`` ('train'/'val') in a training set of ``n_total`` images.

    ``nominal = (N, n_val)``: with exactly N images the val part has n_val images (the
    original counts); otherwise the same fraction, at least one image.
    """
    big, n_val = nominal
    if n_total != big:
        n_val = max(1, int(round(n_total * n_val / big))) if n_total > 1 else 0
    perm = np.random.default_rng(SPLIT_SEED).permutation(n_total)
    return perm[: n_total - n_val] if split == "train" else perm[n_total - n_val:]


def _tensor(x: np.ndarray) -> torch.Tensor:
    """A tensor sharing memory with a C-contiguous, writable copy of ``x`` if needed."""
    if not x.flags.writeable:
        x = np.array(x, order="C")
    return torch.from_numpy(np.ascontiguousarray(x))


def _labels(y) -> Optional[torch.Tensor]:
    if y is None:
        return None
    return torch.from_numpy(np.asarray(y).astype(np.int64).reshape(-1))


# --------------------------------------------------------------------------- file formats


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e} (truncated or corrupt file?)") from e


def _idx_header(path: Path) -> tuple:
    """The dims of an IDX file, from its header only."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:3] != b"\x00\x00\x08":
                raise DataError(f"{path}: not an IDX ubyte file (bad magic number {head.hex()})")
            ndim = head[3]
            dims = f.read(4 * ndim)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if len(dims) != 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    return struct.unpack(">" + "I" * ndim, dims)


def _idx_check_size(path: Path) -> tuple:
    """The dims of an IDX file, after checking that the file holds as many bytes as its header
    says (for ``.gz``, the uncompressed size in the gzip trailer), without reading the data."""
    dims = _idx_header(path)
    expected = 4 + 4 * len(dims) + int(np.prod(dims, dtype=np.int64))
    try:
        if path.suffix == ".gz":
            with open(path, "rb") as f:
                f.seek(-4, os.SEEK_END)
                size = struct.unpack("<I", f.read(4))[0]
            expected %= 1 << 32  # the trailer holds the size modulo 2**32
        else:
            size = path.stat().st_size
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if size != expected:
        raise DataError(f"{path}: truncated or corrupt IDX file: its header says {dims}, i.e. {expected} bytes, "
                        f"but the file has {size} bytes{' uncompressed' if path.suffix == '.gz' else ''}")
    return dims


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX ubyte file (plain or gzip), checking magic number and length."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DataError(f"{path}: not an IDX ubyte file (bad magic number {raw[:4].hex()})")
    if raw[3] != ndim:
        raise DataError(f"{path}: IDX file has {raw[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(
            f"{path}: truncated or corrupt IDX file: its header says {dims}, i.e. "
            f"{expected} bytes, but the file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e} (truncated or corrupt .npz?)") from e


def _npz_shapes(path: Path) -> dict:
    """``{key: shape}`` of an .npz file, from the member headers only."""
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, _ = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, _ = np.lib.format.read_array_header_2_0(f)
                out[info.filename[:-4]] = shape
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    return out


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # pickle raises many kinds of errors on corrupt input
        raise DataError(f"cannot read {path}: {e} (truncated or corrupt pickle?)") from e
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _cifar_pickle(path: Path, label_key: str) -> tuple:
    d = _load_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise DataError(f"{path}: key {key!r} missing (keys: {sorted(d)}); not a CIFAR python file")
    x = np.asarray(d["data"])
    y = np.asarray(d[label_key], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
        raise DataError(f"{path}: 'data' must be uint8 (N, 3072) with N labels; got {x.dtype} {x.shape}, {len(y)} labels")
    return x.reshape(-1, 3, 32, 32), y


# --------------------------------------------------------------------------- conversions


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


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover
        raise DataError("Pillow is needed to decode image files: pip install pillow") from e
    return Image


def _decode_all(func: Callable, paths: Sequence[Path]) -> list:
    """``[func(p) for p in paths]`` on a few threads (PIL releases the GIL when decoding)."""
    workers = max(1, min(8, os.cpu_count() or 1))
    if len(paths) < 64 or workers == 1:
        return [func(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, paths, chunksize=64))


def _open_image(path: Path):
    Image = _pil()
    try:
        im = Image.open(path)
        im.load()
        return im
    except Exception as e:
        raise DataError(f"cannot read image {path}: {e}") from e


# --------------------------------------------------------------------------- registry


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

    def load(self, req: _Request) -> tuple:
        """``(images, labels, source)`` of ``req.split``: a uint8 tensor (N, C, H, W), int64
        labels or None, and a string saying where the data came from."""
        raise NotImplementedError

    def _download(self, req: _Request) -> None:
        raise DataError(f"{self.name} cannot be downloaded automatically. How to get it: {self.how_to_get}")

    # --- shared
    def _locate_or_download(self, req: _Request, part: Optional[str] = None):
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
            raise _missing(self, tried, extra, req.root)
        return found


def _tv():
    try:
        import torchvision.datasets as tvd
    except ImportError as e:  # pragma: no cover
        raise DataError("download=True needs torchvision: pip install torchvision") from e
    return tvd


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_file(directory: Path, base: str) -> Optional[Path]:
    for p in (directory / base, directory / (base + ".gz")):
        if p.is_file():
            return p
    return None


class _IdxSpec(DatasetSpec):
    """MNIST / FashionMNIST from the four IDX files (plain or gzip)."""

    dirnames: tuple = ()
    tv_class: str = ""

    def candidates(self, root):
        dirs = []
        for d in self.dirnames:
            dirs += [root / d / "raw", root / d]
        if self.name == "FashionMNIST":
            dirs.append(FASHION_MNIST_SYSTEM_DIR)
        return dirs

    def locate(self, root, split=None):
        parts = ("train", "test") if split is None else (split,)
        tried = []
        for d in self.candidates(root):
            tried.append(d)
            files = {}
            for part in parts:
                for base, key in zip(_IDX_FILES[part], ("images", "labels")):
                    files[(part, key)] = _find_file(d, base)
            if all(files.values()):
                return (d, files), tried
        return None, tried

    def counts(self, root, found):
        d, files = found
        for path in files.values():  # every file complete, as its header says
            _idx_check_size(path)
        n_train = _idx_header(files[("train", "labels")])[0]
        n_test = _idx_header(files[("test", "labels")])[0]
        return self._split_counts(n_train, n_test)

    def _split_counts(self, n_train, n_test):
        n_val = len(_train_val_index(n_train, "val", (60000, 6000)))
        return {"train": n_train - n_val, "val": n_val, "test": n_test}

    def _download(self, req):
        tvd = _tv()
        getattr(tvd, self.tv_class)(str(req.root), train=req.split != "test", download=True)

    def _read_part(self, req, part):
        d, files = self._locate_or_download(req, part)
        x = _read_idx(files[(part, "images")], 3)
        y = _read_idx(files[(part, "labels")], 1)
        if len(x) != len(y):
            raise DataError(
                f"{files[(part, 'images')]} has {len(x)} images but {files[(part, 'labels')]} has {len(y)} labels"
            )
        return x, y, d

    def load(self, req):
        part = "test" if req.split == "test" else "train"
        x, y, d = self._read_part(req, part)
        if part == "train":
            idx = _train_val_index(len(x), req.split, (60000, 6000))
            x, y = x[idx], y[idx]
        else:
            x, y = x.copy(), y.copy()
        return torch.from_numpy(x[:, None]), _labels(y), str(d)


class _HoldoutSpec(_IdxSpec):
    """MNIST with some digits held out (the original ``MNISTLeaveOut``)."""

    def _split_counts(self, n_train, n_test):
        n_tr = 50000 if n_train == 60000 else int(round(n_train * 5 / 6))
        return {"train": n_tr, "val": n_train - n_tr, "test": n_test}

    def counts(self, root, found):
        # in-distribution counts for the default hold-out (9,), from the label files
        d, files = found
        out = {}
        ytr = _read_idx(files[("train", "labels")], 1)
        yte = _read_idx(files[("test", "labels")], 1)
        n_tr = self._split_counts(len(ytr), len(yte))["train"]
        for split, y in (("train", ytr[:n_tr]), ("val", ytr[n_tr:]), ("test", yte)):
            out[split] = int(np.sum(~np.isin(y, DEFAULT_HOLDOUT)))
        return out

    def load(self, req):
        part = "test" if req.split == "test" else "train"
        x, y, d = self._read_part(req, part)
        if part == "train":
            n_tr = self._split_counts(len(x), 0)["train"]
            sl = slice(0, n_tr) if req.split == "train" else slice(n_tr, None)
            x, y = x[sl], y[sl]
        held = np.isin(y, np.asarray(req.holdout, dtype=np.uint8))
        keep = held if req.outliers else ~held
        return torch.from_numpy(x[keep][:, None]), _labels(y[keep]), str(d)


DEFAULT_HOLDOUT = (9,)


class _Cifar10Spec(DatasetSpec):
    _batches = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

    def candidates(self, root):
        return [
            root / "cifar10.npz",
            root / "CIFAR10" / "cifar10.npz",
            root / "cifar10" / "cifar10.npz",
            root / "cifar-10-batches-py",
            root / "CIFAR10" / "cifar-10-batches-py",
            root / "cifar10" / "cifar-10-batches-py",
        ]

    def locate(self, root, split=None):
        tried = []
        for p in self.candidates(root):
            tried.append(p)
            if p.suffix == ".npz" and p.is_file():
                return p, tried
            if p.suffix != ".npz" and all((p / b).is_file() for b in self._batches):
                return p, tried
        return None, tried

    def counts(self, root, found):
        if found.suffix == ".npz":
            shapes = _npz_shapes(found)
            n_train, n_test = shapes.get("x_train", (0,))[0], shapes.get("x_test", (0,))[0]
        else:
            n_train = sum(len(_load_pickle(found / b).get("labels", [])) for b in self._batches[:5])
            n_test = len(_load_pickle(found / "test_batch").get("labels", []))
        n_val = len(_train_val_index(n_train, "val", (50000, 5000)))
        return {"train": n_train - n_val, "val": n_val, "test": n_test}

    def _download(self, req):
        _tv().CIFAR10(str(req.root), train=True, download=True)

    def _read_part(self, found: Path, part: str) -> dict:
        """``{"x": (N, 3, 32, 32) uint8, "y": (N,) int64}`` of 'train' or 'test'."""
        if found.suffix == ".npz":
            try:
                with np.load(found, allow_pickle=False) as z:
                    keys = list(z.files)
                    if f"x_{part}" not in keys or f"y_{part}" not in keys:
                        raise DataError(
                            f"{found}: keys x_{part}/y_{part} missing (keys: {sorted(keys)}); "
                            f"expected x_train, y_train, x_test, y_test"
                        )
                    x, y = z[f"x_{part}"], z[f"y_{part}"]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise DataError(f"cannot read {found}: {e} (truncated or corrupt .npz?)") from e
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or len(y) != len(x):
                raise DataError(
                    f"{found}: x_{part} must be uint8 (N, 32, 32, 3) with N labels; got {x.dtype} {x.shape}"
                )
            return {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "y": np.asarray(y).astype(np.int64)}
        names = self._batches[:5] if part == "train" else self._batches[5:]
        xs, ys = zip(*(_cifar_pickle(found / b, "labels") for b in names))
        return {"x": np.concatenate(xs), "y": np.concatenate(ys)}

    def _sources(self, found: Path, part: str) -> list:
        if found.suffix == ".npz":
            return [found]
        return [found / b for b in (self._batches[:5] if part == "train" else self._batches[5:])]

    def load(self, req):
        found = self._locate_or_download(req)
        part = "test" if req.split == "test" else "train"
        key = f"CIFAR10-{part}-{_short_hash(str(found.resolve()))}"
        arrays = _cached_arrays(key, self._sources(found, part), lambda: self._read_part(found, part))
        x, y = arrays["x"], arrays["y"]
        if part == "train":
            idx = _train_val_index(len(x), req.split, (50000, 5000))
            x, y = x[idx], y[idx]
        return _tensor(x), _labels(y), str(found)


class _Cifar100Spec(DatasetSpec):
    def candidates(self, root):
        return [
            root / "cifar-100-python",
            root / "CIFAR100" / "cifar-100-python",
            root / "cifar100" / "cifar-100-python",
            root / "CIFAR100",
            root / "cifar100",
        ]

    def locate(self, root, split=None):
        parts = ["train", "test"] if split is None else ["test" if split == "test" else "train"]
        tried = []
        for d in self.candidates(root):
            tried.append(d)
            if all((d / p).is_file() for p in parts):
                return d, tried
        return None, tried

    def counts(self, root, found):
        n_train = len(_load_pickle(found / "train").get("fine_labels", []))
        n_test = len(_load_pickle(found / "test").get("fine_labels", []))
        n_val = len(_train_val_index(n_train, "val", (50000, 5000)))
        return {"train": n_train - n_val, "val": n_val, "test": n_test}

    def _download(self, req):
        _tv().CIFAR100(str(req.root), train=True, download=True)

    def load(self, req):
        part = "test" if req.split == "test" else "train"
        d = self._locate_or_download(req, req.split)
        x, y = _cifar_pickle(d / part, "fine_labels")
        if part == "train":
            idx = _train_val_index(len(x), req.split, (50000, 5000))
            x, y = x[idx], y[idx]
        return _tensor(np.ascontiguousarray(x)), _labels(y), str(d / part)


class _SvhnSpec(DatasetSpec):
    def candidates(self, root):
        return [root / "SVHN", root / "svhn", root]

    def _files(self, split):
        if split is None:
            return ["train_32x32.mat", "test_32x32.mat"]
        return ["test_32x32.mat" if split == "test" else "train_32x32.mat"]

    def locate(self, root, split=None):
        tried = []
        for d in self.candidates(root):
            tried.append(d)
            if all((d / f).is_file() for f in self._files(split)):
                return d, tried
        return None, tried

    def counts(self, root, found):
        import scipy.io

        out = {}
        for part in ("train", "test"):
            path = found / f"{part}_32x32.mat"
            try:
                shapes = {k: s for k, s, _ in scipy.io.whosmat(str(path))}
            except Exception as e:
                raise DataError(f"cannot read {path}: {e}") from e
            out[part] = int(shapes.get("X", (0, 0, 0, 0))[-1])
        n_val = len(_train_val_index(out["train"], "val", (73257, 7327)))
        return {"train": out["train"] - n_val, "val": n_val, "test": out["test"]}

    def _download(self, req):
        _tv().SVHN(str(req.root), split="test" if req.split == "test" else "train", download=True)

    def load(self, req):
        import scipy.io

        d = self._locate_or_download(req, req.split)
        path = d / self._files(req.split)[0]
        try:
            m = scipy.io.loadmat(str(path), variable_names=["X", "y"])
        except NotImplementedError as e:
            raise DataError(f"{path}: MATLAB v7.3 files are not supported; use the official v5 .mat files") from e
        except Exception as e:
            raise DataError(f"cannot read {path}: {e} (truncated or corrupt .mat?)") from e
        if "X" not in m or "y" not in m:
            raise DataError(f"{path}: variables 'X' and 'y' expected, found {sorted(k for k in m if not k.startswith('__'))}")
        x, y = np.asarray(m["X"]), np.asarray(m["y"]).reshape(-1).astype(np.int64)
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
            raise DataError(f"{path}: X must be (32, 32, 3, N) with N labels; got {x.shape} and {len(y)} labels")
        x = np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8, copy=False)
        y[y == 10] = 0
        if req.split != "test":
            idx = _train_val_index(len(x), req.split, (73257, 7327))
            x, y = x[idx], y[idx]
        return _tensor(x), _labels(y), str(path)


class _ImageNet32Spec(DatasetSpec):
    def candidates(self, root):
        return [root / "ImageNet32", root / "imagenet32", root / "Imagenet32", root]

    def _part_files(self, d: Path, part: str):
        """The files of 'train' / 'test' in folder d: ('npz', [files]) / ('folder', dir) / None."""
        if part == "test":
            for p in (d / "Imagenet32_val_npz" / "val_data.npz", d / "val_data.npz", d / "val_data"):
                if p.is_file():
                    return "npz", [p]
            if (d / "valid_32x32").is_dir():
                return "folder", d / "valid_32x32"
            return None
        for sub in (d / "Imagenet32_train_npz", d):
            files = sorted(sub.glob("train_data_batch_*.npz"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
            if files:
                return "npz", files
        if (d / "train_32x32").is_dir():
            return "folder", d / "train_32x32"
        return None

    def locate(self, root, split=None):
        parts = ("train", "test") if split is None else ("test" if split == "test" else "train",)
        tried = []
        for d in self.candidates(root):
            tried.append(d)
            if all(self._part_files(d, p) is not None for p in parts):
                return d, tried
        # a root holding only the val files is still useful as an outlier set
        if split is None:
            for d in self.candidates(root):
                if self._part_files(d, "test") is not None:
                    return d, tried
        return None, tried

    def counts(self, root, found):
        out = {}
        for part in ("train", "test"):
            pf = self._part_files(found, part)
            if pf is None:
                out[part] = 0
            elif pf[0] == "npz":
                out[part] = sum(int(_npz_shapes(f).get("labels", (0,))[0]) for f in pf[1])
            else:
                out[part] = sum(1 for f in pf[1].rglob("*") if f.suffix.lower() in _IMAGE_EXTENSIONS)
        n_val = len(_train_val_index(out["train"], "val", (10, 2))) if out["train"] else 0
        return {"train": out["train"] - n_val, "val": n_val, "test": out["test"]}

    def load(self, req):
        part = "test" if req.split == "test" else "train"
        d = self._locate_or_download(req, req.split)
        kind, files = self._part_files(d, part)
        if kind == "folder":
            x, y = _folder_arrays(files, channels=3, size=32, key=f"ImageNet32-{part}")
        else:
            xs, ys = [], []
            for f in files:
                z = _load_npz(f)
                if "data" not in z or "labels" not in z:
                    raise DataError(f"{f}: keys 'data' and 'labels' expected (keys: {sorted(z)}); not an ImageNet32 npz batch")
                x = z["data"]
                if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(z["labels"]) != len(x):
                    raise DataError(f"{f}: 'data' must be uint8 (N, 3072) with N labels; got {x.dtype} {x.shape}")
                xs.append(x.reshape(-1, 3, 32, 32))
                ys.append(np.asarray(z["labels"]).reshape(-1).astype(np.int64) - 1)
            x, y = (np.concatenate(xs), np.concatenate(ys)) if len(xs) > 1 else (xs[0], ys[0])
        if part == "train":
            idx = _train_val_index(len(x), req.split, (10, 2))
            x = x[idx]
            y = None if y is None else y[idx]
        return _tensor(x), _labels(y), str(files if kind == "folder" else files[0].parent)


class _CelebASpec(DatasetSpec):
    """CelebA aligned images: CenterCrop(140) then Resize(size), in PIL."""

    _partition_names = ("list_eval_partition.txt", "list_eval_partition_subset.txt", "Eval/list_eval_partition.txt")

    def candidates(self, root):
        return [root / "celeba", root / "CelebA", root / "celeba" / "celeba", root / "CelebA" / "celeba"]

    def _partition(self, d: Path) -> Optional[Path]:
        for name in self._partition_names:
            if (d / name).is_file():
                return d / name
        return None

    def locate(self, root, split=None):
        tried = []
        for d in self.candidates(root):
            tried.append(d)
            if (d / "img_align_celeba").is_dir() and self._partition(d) is not None:
                return d, tried
        return None, tried

    def _read_partition(self, d: Path) -> dict:
        path = self._partition(d)
        out = {s: [] for s in SPLITS}
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read {path}: {e}") from e
        for i, line in enumerate(lines, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(f"{path}, line {i}: expected '<image file> <0|1|2>', got {line!r}")
            out[SPLITS[int(parts[1])]].append(parts[0])
        return out

    def counts(self, root, found):
        return {s: len(v) for s, v in self._read_partition(found).items()}

    def _images(self, req: _Request, size: int):
        d = self._locate_or_download(req)
        names = self._read_partition(d)[req.split]
        files = [d / "img_align_celeba" / n for n in names]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} image(s) listed in {self._partition(d)} are missing, e.g. {missing[0]}; "
                f"the CelebA folder is incomplete"
            )
        Image = _pil()

        def decode(path):
            im = _open_image(path).convert("RGB")
            w, h = im.size
            if w < 140 or h < 140:
                raise DataError(f"{path}: image is {w}x{h}, smaller than the 140x140 centre crop")
            left, top = int(round((w - 140) / 2.0)), int(round((h - 140) / 2.0))
            im = im.crop((left, top, left + 140, top + 140)).resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)

        def build(fs=files):
            arr = _decode_all(decode, fs)
            x = np.stack(arr).transpose(0, 3, 1, 2) if arr else np.zeros((0, 3, size, size), np.uint8)
            return {"x": np.ascontiguousarray(x)}

        quick = None
        if req.n is not None and req.n < len(files):
            quick = lambda: build(files[: req.n])  # noqa: E731  (decode only what is asked for)
        key = f"CelebA-{req.split}-s{size}-{_short_hash(str(d.resolve()))}"
        x = _cached_arrays(key, [self._partition(d)] + files, build, quick=quick)["x"]
        return torch.from_numpy(x), str(d)

    def load(self, req):
        size = req.size or self.native_shape[1]
        x, where = self._images(req, size)
        return x, None, where


class _CelebAGraySpec(_CelebASpec):
    """CelebA through the original ToGray, scaled by 1/sqrt(3) to stay in [0, 1]."""

    def load(self, req):
        size = req.size or self.native_shape[1]
        x, where = self._images(req, size)
        g = x.to(torch.float32).square_().sum(1, keepdim=True).sqrt_().div_(math.sqrt(3.0))
        g = g.round_().clamp_(0, 255).to(torch.uint8)
        c = 1 if req.channels == 1 else 3
        return g.expand(-1, c, -1, -1).contiguous(), None, where


class _OmniglotSpec(DatasetSpec):
    """Omniglot PNGs, resized and inverted (black background)."""

    def candidates(self, root):
        return [root / "omniglot-py", root / "omniglot", root / "Omniglot" / "omniglot-py", root / "Omniglot"]

    @staticmethod
    def _sub(split):
        return "images_background" if split == "train" else "images_evaluation"

    def locate(self, root, split=None):
        subs = [self._sub(split)] if split is not None else ["images_evaluation"]
        tried = []
        for d in self.candidates(root):
            tried.append(d)
            if all((d / s).is_dir() for s in subs):
                return d, tried
        return None, tried

    @staticmethod
    def _files(folder: Path):
        files, labels, k = [], [], 0
        for alphabet in sorted(p for p in folder.iterdir() if p.is_dir()):
            for char in sorted(p for p in alphabet.iterdir() if p.is_dir()):
                pngs = sorted(p for p in char.iterdir() if p.suffix.lower() == ".png")
                files += pngs
                labels += [k] * len(pngs)
                k += 1
        return files, labels

    def counts(self, root, found):
        out = {}
        for split in SPLITS:
            folder = found / self._sub(split)
            out[split] = sum(1 for _ in folder.rglob("*.png")) if folder.is_dir() else 0
        return out

    def _download(self, req):
        _tv().Omniglot(str(req.root), background=req.split == "train", download=True)

    def load(self, req):
        size = req.size or 28
        d = self._locate_or_download(req, req.split)
        folder = d / self._sub(req.split)
        files, labels = self._files(folder)
        if not files:
            raise DataError(f"{folder}: no PNG files found (expected <alphabet>/<character>/*.png)")
        Image = _pil()

        def decode(path):
            im = _open_image(path).convert("L").resize((size, size), Image.BILINEAR)
            return 255 - np.asarray(im, dtype=np.uint8)

        def build(m=len(files)):
            return {"x": np.stack(_decode_all(decode, files[:m]))[:, None], "y": np.asarray(labels[:m], np.int64)}

        quick = (lambda: build(req.n)) if req.n is not None and req.n < len(files) else None
        key = f"Omniglot-{self._sub(req.split)}-s{size}-{_short_hash(str(d.resolve()))}"
        arrays = _cached_arrays(key, files, build, quick=quick)
        return torch.from_numpy(arrays["x"]), _labels(arrays["y"]), str(folder)


_GEN_CODES = {"Constant": 1, "ConstantGray": 2, "Noise": 3}
_GEN_BLOCK = 1000


class _GeneratedSpec(DatasetSpec):
    """Constant / ConstantGray / Noise, generated from (seed, split) in blocks of 1000
    images, so that the first n images do not depend on n."""

    def locate(self, root, split=None):
        return "generated", []

    def counts(self, root, found):
        return dict(GENERATED_COUNTS)

    def load(self, req):
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


def _make_registry() -> dict:
    fm_how = (
        "on Debian/Ubuntu `apt-get install dataset-fashion-mnist` (installs the gzip IDX files in "
        f"{FASHION_MNIST_SYSTEM_DIR}); or load_dataset('FashionMNIST', download=True) with internet "
        "(torchvision writes <root>/FashionMNIST/raw); or put the four IDX files from "
        "https://github.com/zalandoresearch/fashion-mnist into <root>/FashionMNIST/raw/"
    )
    mnist_how = (
        "load_dataset('MNIST', download=True) with internet (torchvision writes <root>/MNIST/raw); or put "
        "the four IDX files (train/t10k images/labels, plain or .gz) from http://yann.lecun.com/exdb/mnist/ "
        "into <root>/MNIST/raw/"
    )
    cifar10_how = (
        "load_dataset('CIFAR10', download=True) with internet (torchvision writes <root>/cifar-10-batches-py); "
        "or unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into <root>/; "
        "or put cifar10.npz (x_train, y_train, x_test, y_test; HWC uint8) in <root>/"
    )
    cifar100_how = (
        "load_dataset('CIFAR100', download=True) with internet (torchvision writes <root>/cifar-100-python); "
        "or unpack cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into <root>/"
    )
    svhn_how = (
        "load_dataset('SVHN', download=True) with internet (torchvision writes <root>/train_32x32.mat, "
        "test_32x32.mat); or download train_32x32.mat and test_32x32.mat from "
        "http://ufldl.stanford.edu/housenumbers/ into <root>/SVHN/"
    )
    imagenet_how = (
        "download Imagenet32_train_npz.zip and Imagenet32_val_npz.zip (Downsampled ImageNet 32x32, needs an "
        "ImageNet account) from https://image-net.org/download-images and unzip them into <root>/ImageNet32/ "
        "(only the val part is needed as an outlier set); torchvision cannot download it"
    )
    celeba_how = (
        "download img_align_celeba.zip and list_eval_partition.txt from "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and put them in <root>/celeba/ "
        "(img_align_celeba/*.jpg and list_eval_partition.txt)"
    )
    omniglot_how = (
        "load_dataset('Omniglot', download=True) with internet (torchvision writes <root>/omniglot-py); or "
        "unzip images_background.zip and images_evaluation.zip from https://github.com/brendenlake/omniglot "
        "into <root>/omniglot-py/"
    )
    gen_how = "generated on the fly; nothing to download"

    def idx(cls, name, kind, dirnames, how, tv_class, desc, alias_of=None):
        spec = cls(name, kind, (1, 28, 28), desc, how, downloadable=True, alias_of=alias_of)
        spec.dirnames, spec.tv_class = dirnames, tv_class
        return spec

    specs = [
        idx(_IdxSpec, "MNIST", "in-distribution", ("MNIST", "mnist"), mnist_how, "MNIST",
            "MNIST digits; train/val 54,000/6,000 (seeded permutation), test 10,000"),
        idx(_IdxSpec, "FashionMNIST", "in-distribution", ("FashionMNIST", "fashion-mnist", "fashion_mnist"), fm_how,
            "FashionMNIST", "Fashion-MNIST; train/val 54,000/6,000 (seeded permutation), test 10,000"),
        _Cifar10Spec("CIFAR10", "in-distribution", (3, 32, 32),
                     "CIFAR-10; train/val 45,000/5,000 (seeded permutation, differs from the original), test 10,000",
                     cifar10_how, downloadable=True),
        _CelebASpec("CelebA64", "in-distribution", (3, 64, 64),
                    "CelebA aligned, CenterCrop(140) -> Resize(64); official partition", celeba_how,
                    resizes_from_source=True),
        _CelebASpec("CelebA32", "in-distribution", (3, 32, 32),
                    "CelebA aligned, CenterCrop(140) -> Resize(32); official partition", celeba_how,
                    resizes_from_source=True),
        idx(_HoldoutSpec, "MNISTHoldout", "in-distribution", ("MNIST", "mnist"), mnist_how, "MNIST",
            "MNIST without the held-out digits (holdout=(9,) by default); train/val = first 50,000 / last 10,000 "
            "of the official train set, test = official test; outliers=True gives only the held-out digits"),
        _SvhnSpec("SVHN", "outlier", (3, 32, 32),
                  "SVHN cropped digits; train/val 65,930/7,327 (seeded permutation), test 26,032", svhn_how,
                  downloadable=True),
        _CelebASpec("CelebA", "outlier", (3, 32, 32), "alias of CelebA32 (the CIFAR-10 outlier set)", celeba_how,
                    alias_of="CelebA32", resizes_from_source=True),
        _Cifar100Spec("CIFAR100", "outlier", (3, 32, 32),
                      "CIFAR-100; train/val 45,000/5,000 (seeded permutation), test 10,000", cifar100_how,
                      downloadable=True),
        _ImageNet32Spec("ImageNet32", "outlier", (3, 32, 32),
                        "Downsampled ImageNet 32x32; train/val 80/20 % of train (seeded), test = official val 50,000",
                        imagenet_how),
        _OmniglotSpec("Omniglot", "outlier", (1, 28, 28),
                      "Omniglot, inverted (black background), resized to 28; train = background set, "
                      "val/test = evaluation set (13,180)", omniglot_how, downloadable=True,
                      resizes_from_source=True),
        _CelebAGraySpec("CelebA64Gray", "outlier", (3, 64, 64),
                        "CelebA-64 through ToGray: g = sqrt(R^2+G^2+B^2)/sqrt(3), repeated to 3 channels",
                        celeba_how, resizes_from_source=True),
        _GeneratedSpec("Constant", "generated", (3, 32, 32),
                       "constant images of a uniform random RGB colour (1 channel: the R value)", gen_how,
                       resizes_from_source=True),
        _GeneratedSpec("ConstantGray", "generated", (3, 32, 32),
                       "constant images of a uniform random grey level in every channel", gen_how,
                       resizes_from_source=True),
        _GeneratedSpec("Noise", "generated", (3, 32, 32), "i.i.d. uniform uint8 pixels", gen_how,
                       resizes_from_source=True),
    ]
    return {s.name: s for s in specs}


#: the registry of named data sets
DATASETS: dict = _make_registry()

#: the paper's default outlier sets per in-distribution set ("heldout": the held-out
#: digits, i.e. ``load_dataset("MNISTHoldout", split, holdout=..., outliers=True)``)
DEFAULT_OOD: dict = {
    "MNIST": ["FashionMNIST", "Omniglot", "Constant", "ConstantGray", "Noise"],
    "FashionMNIST": ["MNIST", "Omniglot", "Constant", "ConstantGray", "Noise"],
    "CIFAR10": ["ConstantGray", "FashionMNIST", "SVHN", "CelebA", "Noise", "Constant", "MNIST", "CIFAR100",
                "ImageNet32"],
    "CelebA64": ["CelebA64Gray", "ConstantGray", "CIFAR10", "Noise"],
    "MNISTHoldout": ["heldout"],
}

_USER_PREFIXES = ("folder:", "npy:", "npz:")


def _resolve(name: str) -> DatasetSpec:
    if not isinstance(name, str) or not name:
        raise DataError(f"data set name must be a non-empty string, got {name!r}")
    if name in DATASETS:
        return DATASETS[name]
    lower = {k.lower(): k for k in DATASETS}
    key = name.lower().replace("_", "").replace("-", "")
    for cand in (name.lower(), key):
        if cand in lower:
            return DATASETS[lower[cand]]
    valid = list(DATASETS) + ["heldout"] + [p + "PATH" for p in _USER_PREFIXES]
    close = difflib.get_close_matches(name, list(DATASETS) + ["heldout"], n=3, cutoff=0.5)
    if not close:
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)]
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise DataError(f"unknown data set {name!r}.{hint} Valid names: {', '.join(valid)}")


# --------------------------------------------------------------------------- user data


def _split_dir(path: Path, split: str) -> Path:
    names = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "evaluation")}
    present = [n for ns in names.values() for n in ns if (path / n).is_dir()]
    if not present:
        return path
    for n in names[split]:
        if (path / n).is_dir():
            return path / n
    raise DataError(f"{path} has split sub-folders {present} but none for split {split!r}")


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in _IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")


def _list_folder(path: Path) -> tuple:
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for k, d in enumerate(subdirs):
        fs = sorted(f for f in d.rglob("*") if _is_image(f))
        files += fs
        labels += [k] * len(fs)
    if files:
        return files, labels
    return sorted(f for f in path.iterdir() if _is_image(f)), None


def _folder_arrays(path: Path, channels: Optional[int], size: Optional[int], key: str) -> tuple:
    """Decode every image of a folder (flat, or one sub-folder per class) with PIL."""
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist")
    files, labels = _list_folder(path)
    if not files:
        raise DataError(
            f"no images found in {path} (looked for {', '.join(sorted(_IMAGE_EXTENSIONS))} files, "
            f"directly or in one sub-folder per class)"
        )
    if channels is None:
        channels = 1 if _open_image(files[0]).mode in _GREY_MODES else 3
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    Image = _pil()
    mode = "L" if channels == 1 else "RGB"

    def decode(p):
        im = _open_image(p)
        if im.mode in ("I", "I;16", "I;16B", "I;16L") and mode == "L":
            a = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.clip(a / (65535.0 if "16" in im.mode else max(a.max(), 1)) * 255, 0, 255).astype(np.uint8))
        im = im.convert(mode)
        if size is not None:
            im = im.resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        return a[:, :, None] if a.ndim == 2 else a

    def build():
        arrs = _decode_all(decode, files)
        first = arrs[0].shape
        for f, a in zip(files, arrs):
            if a.shape != first:
                raise DataError(
                    f"images in {path} differ in size ({files[0].name}: {first[1]}x{first[0]}, "
                    f"{f}: {a.shape[1]}x{a.shape[0]}); pass size=... to resize them all"
                )
        out = {"x": np.ascontiguousarray(np.stack(arrs).transpose(0, 3, 1, 2))}
        if labels is not None:
            out["y"] = np.asarray(labels, np.int64)
        return out

    full_key = f"{key}-{_short_hash(str(path.resolve()))}-c{channels}-s{size or 'native'}"
    arrays = _cached_arrays(full_key, files, build)
    return arrays["x"], arrays.get("y")


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


def _load_user(req: _Request) -> tuple:
    prefix, _, raw = req.name.partition(":")
    if not raw:
        raise DataError(f"{req.name!r}: a path is needed after '{prefix}:'")
    path = Path(raw).expanduser()
    if prefix == "folder":
        d = _split_dir(path, req.split) if path.is_dir() else path
        x, y = _folder_arrays(d, req.channels, req.size, key=f"folder-{path.name}")
        return torch.from_numpy(x), _labels(y), str(d)
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
        z = _load_npz(path)
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
    return torch.from_numpy(x), _labels(y), str(path)


# --------------------------------------------------------------------------- public API


def _check_split(split: str) -> str:
    s = _SPLIT_ALIASES.get(split, split) if isinstance(split, str) else split
    if s not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return s


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
    split = _check_split(split)
    if size is not None and (not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1):
        raise DataError(f"size must be a positive integer, got {size!r}")
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise DataError(f"n must be a positive integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    size = None if size is None else int(size)
    req = _Request(name=name, split=split, root=_root(root), size=size, channels=channels, seed=int(seed),
                   n=None if n is None else int(n), download=bool(download))

    display = name
    if isinstance(name, str) and name.startswith(_USER_PREFIXES):
        if holdout is not None or outliers:
            raise DataError("holdout/outliers only apply to MNISTHoldout")
        images, labels, source = _load_user(req)
    else:
        if isinstance(name, str) and name.lower() == "heldout":
            spec, outliers, display = DATASETS["MNISTHoldout"], True, "heldout"
        else:
            spec = _resolve(name)
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
    if isinstance(name, str) and name.startswith(_USER_PREFIXES):
        return load_dataset(name, "test", n=1).shape
    if isinstance(name, str) and name.lower() == "heldout":
        return DATASETS["MNISTHoldout"].native_shape
    return tuple(_resolve(name).native_shape)


def list_datasets(root=None) -> list:
    """One dict per registered set: name, kind, found, where (path found, or the list of
    paths tried), size ({split: count} or None), how_to_get, shape, description and,
    when the files are there but unreadable, error."""
    r = _root(root)
    rows = []
    for name, spec in DATASETS.items():
        found, tried = spec.locate(r)
        row = {
            "name": name,
            "kind": spec.kind,
            "found": found is not None,
            "where": None,
            "size": None,
            "how_to_get": _how_to_get(spec, r),
            "shape": tuple(spec.native_shape),
            "description": spec.description,
        }
        if found is None:
            row["where"] = [str(p) for p in tried]
        else:
            row["where"] = str(found[0] if isinstance(found, tuple) else found)
            try:
                row["size"] = spec.counts(r, found)
            except DataError as e:
                row["error"] = str(e)
        rows.append(row)
    return rows


def format_dataset_table(rows) -> str:
    """A plain-text table of :func:`list_datasets` rows."""
    header = ["name", "kind", "found", "train", "val", "test", "shape", "where / how to get it"]
    lines = []
    for r in rows:
        size = r.get("size") or {}
        shape = r.get("shape")
        if r.get("found"):
            where = str(r.get("where"))
            if r.get("error"):
                where += f"  [ERROR: {r['error']}]"
        else:
            where = "missing (see below)"
        lines.append([
            str(r.get("name")),
            str(r.get("kind")),
            "yes" if r.get("found") else "no",
            *(f"{size[s]:,}" if s in size else "-" for s in SPLITS),
            "x".join(str(v) for v in shape) if shape else "-",
            where,
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    right = {3, 4, 5}

    def fmt(cells):
        out = []
        for i, c in enumerate(cells):
            if i == len(cells) - 1:
                out.append(c)
            else:
                out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths[:-1]) + "  " + "-" * len(header[-1])
    return "\n".join([fmt(header), sep] + [fmt(l) for l in lines])


def format_missing_sets(rows, width: int = 100) -> str:
    """For the missing sets of :func:`list_datasets` rows: the paths looked in and how to
    get each set, wrapped to ``width`` columns; sets with the same paths are grouped."""
    import textwrap

    groups: dict = {}
    for r in rows:
        if not r.get("found"):
            tried = r.get("where") or []
            key = (tuple(map(str, tried)), r.get("how_to_get", ""))
            groups.setdefault(key, []).append(str(r.get("name")))
    blocks = []
    for (tried, how), names in groups.items():
        lines = [", ".join(names)]
        lines += textwrap.wrap("looked in: " + ", ".join(tried), width, initial_indent="  ",
                               subsequent_indent="    ", break_on_hyphens=False)
        lines += textwrap.wrap("how to get it: " + how, width, initial_indent="  ",
                               subsequent_indent="    ", break_on_hyphens=False)
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


_NUMPY_ON_CPU = True  # tests switch it off to run the torch (device) path on the CPU


def _numpy_batches(arr, n_batches, batch_size, shuffle, hflip, dequantize, rng) -> Iterator[torch.Tensor]:
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
        yield torch.from_numpy(out)


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
    noise) comes from ``generator`` (default: torch's global generator), so the same
    generator state gives the same batches.  On the CPU the batches are made with numpy
    (one draw from ``generator`` seeds a ``numpy.random.Generator``); otherwise images are
    gathered where ``ds.images`` lives (see :meth:`ImageSet.to`; best: the whole set on the
    GPU with a CUDA generator) and moved to ``device`` as uint8.
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    images = ds.images
    n = int(images.shape[0])
    out_dev = torch.device(device) if device is not None else images.device
    n_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    on_cpu = images.device.type == "cpu" and out_dev.type == "cpu"
    if _NUMPY_ON_CPU and on_cpu and (generator is None or generator.device.type == "cpu"):
        # CPU: numpy, single-threaded, seeded from the torch generator.  Small per-batch
        # torch ops on 2 OpenMP threads collapse (10x) when another process holds a core.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        return _numpy_batches(images.numpy(), n_batches, batch_size, shuffle, hflip, dequantize,
                              np.random.default_rng(seed))
    rand_dev = generator.device if generator is not None else out_dev
    perm_dev = generator.device if generator is not None else images.device
    order = torch.randperm(n, generator=generator, device=perm_dev) if shuffle else None

    def gen():
        for b in range(n_batches):
            lo, hi = b * batch_size, min(n, (b + 1) * batch_size)
            if order is None:
                x = images[lo:hi]
            else:
                x = images.index_select(0, order[lo:hi].to(images.device))
            x = x.to(out_dev, non_blocking=True)
            if hflip:  # on the uint8 batch: 4x less memory traffic than on floats
                flip = (torch.rand(x.shape[0], generator=generator, device=rand_dev) < 0.5).to(out_dev)
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            if x.dtype == torch.uint8:
                if dequantize:
                    # (v/255) * 255/256 + u/256 == (v + u) / 256, computed in one pass
                    noise = torch.rand(x.shape, generator=generator, device=rand_dev).to(out_dev)
                    x = noise.add_(x).mul_(1.0 / 256.0)
                else:
                    x = x.to(torch.float32).div_(255.0)
            else:
                x = x.to(torch.float32, copy=True)
                if dequantize:
                    noise = torch.rand(x.shape, generator=generator, device=rand_dev).to(out_dev)
                    x = x.mul_(255.0 / 256.0).add_(noise, alpha=1.0 / 256.0)
            yield x

    return gen()
