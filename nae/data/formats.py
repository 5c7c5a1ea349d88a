"""Readers of the official file formats: IDX (MNIST), pickles (CIFAR), ``.npz``, image files.

Every reader checks what it reads (magic numbers, lengths, keys, dtypes) and turns a
truncated or foreign file into a :class:`~nae.errors.DataError` that names the file.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from nae.errors import DataError

from .paths import cached_arrays, short_hash


IMAGE_EXTENSIONS = {
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when it ends in ``.gz``; a DataError naming the file if it
    is unreadable or truncated."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e} (truncated or corrupt file?)") from e


def idx_header(path: Path) -> tuple:
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


def idx_check_size(path: Path) -> tuple:
    """The dims of an IDX file, after checking that the file holds as many bytes as its header
    says (for ``.gz``, the uncompressed size in the gzip trailer), without reading the data."""
    dims = idx_header(path)
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


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX ubyte file (plain or gzip), checking magic number and length."""
    raw = read_bytes(path)
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


def load_npz(path: Path) -> dict:
    """``{key: array}`` of every array in an ``.npz`` file (pickles refused); a DataError if the
    file is truncated or corrupt."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"cannot read {path}: {e} (truncated or corrupt .npz?)") from e


def npz_shapes(path: Path) -> dict:
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


def load_pickle(path: Path) -> dict:
    """The dict in a pickle file (CIFAR python format, read with ``encoding="bytes"``), its bytes
    keys decoded as latin-1; a DataError if unreadable or not a dict."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # pickle raises many kinds of errors on corrupt input
        raise DataError(f"cannot read {path}: {e} (truncated or corrupt pickle?)") from e
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def cifar_pickle(path: Path, label_key: str) -> tuple:
    """``(x, y)`` of a CIFAR python file: its ``data`` rows as uint8 (N, 3, 32, 32) and the int64
    labels under ``label_key`` (``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100)."""
    d = load_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise DataError(f"{path}: key {key!r} missing (keys: {sorted(d)}); not a CIFAR python file")
    x = np.asarray(d["data"])
    y = np.asarray(d[label_key], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
        raise DataError(f"{path}: 'data' must be uint8 (N, 3072) with N labels; got {x.dtype} {x.shape}, {len(y)} labels")
    return x.reshape(-1, 3, 32, 32), y


# --------------------------------------------------------------------------- image files


def pil_image():
    """The ``PIL.Image`` module, imported on first use; a DataError if Pillow is not installed."""
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover
        raise DataError("Pillow is needed to decode image files: pip install pillow") from e
    return Image


def decode_all(func: Callable, paths: Sequence[Path]) -> list:
    """``[func(p) for p in paths]`` on a few threads (PIL releases the GIL when decoding)."""
    workers = max(1, min(8, os.cpu_count() or 1))
    if len(paths) < 64 or workers == 1:
        return [func(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, paths, chunksize=64))


def open_image(path: Path):
    """The PIL image at ``path``, fully decoded (``load()``); a DataError naming the file otherwise."""
    Image = pil_image()
    try:
        im = Image.open(path)
        im.load()
        return im
    except Exception as e:
        raise DataError(f"cannot read image {path}: {e}") from e


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")


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


def read_image_folder(path: Path, channels: Optional[int], size: Optional[int], key: str) -> tuple:
    """Decode every image of a folder (flat, or one sub-folder per class) with PIL."""
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist")
    files, labels = _list_folder(path)
    if not files:
        raise DataError(
            f"no images found in {path} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} files, "
            f"directly or in one sub-folder per class)"
        )
    if channels is None:
        channels = 1 if open_image(files[0]).mode in GREY_MODES else 3
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    Image = pil_image()
    mode = "L" if channels == 1 else "RGB"

    def decode(p):
        im = open_image(p)
        if im.mode in ("I", "I;16", "I;16B", "I;16L") and mode == "L":
            a = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.clip(a / (65535.0 if "16" in im.mode else max(a.max(), 1)) * 255, 0, 255).astype(np.uint8))
        im = im.convert(mode)
        if size is not None:
            im = im.resize((size, size), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        return a[:, :, None] if a.ndim == 2 else a

    def build():
        arrs = decode_all(decode, files)
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

    full_key = f"{key}-{short_hash(str(path.resolve()))}-c{channels}-s{size or 'native'}"
    arrays = cached_arrays(full_key, files, build)
    return arrays["x"], arrays.get("y")
