"""The official data sets: MNIST, FashionMNIST, MNISTHoldout, CIFAR-10/100, SVHN,
ImageNet32, CelebA (64, 32, grey) and Omniglot, one :class:`~nae.data.spec.DatasetSpec`
subclass per source format.  Their splits are described in the book's library page."""
from __future__ import annotations

import math
import re
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from nae.errors import DataError

from .formats import (
    IMAGE_EXTENSIONS,
    cifar_pickle,
    decode_all,
    idx_check_size,
    idx_header,
    load_npz,
    load_pickle,
    npz_shapes,
    open_image,
    pil_image,
    read_idx,
    read_image_folder,
)
from .paths import cached_arrays, short_hash
from .spec import SPLITS, DatasetSpec, Request, as_labels, as_tensor, torchvision_datasets, train_val_index


#: where the Debian package ``dataset-fashion-mnist`` installs the gzip IDX files
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


#: the digits MNISTHoldout holds out unless told otherwise
DEFAULT_HOLDOUT = (9,)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_file(directory: Path, base: str) -> Optional[Path]:
    for p in (directory / base, directory / (base + ".gz")):
        if p.is_file():
            return p
    return None


class IdxSpec(DatasetSpec):
    """MNIST / FashionMNIST from the four IDX files (plain or gzip)."""

    dirnames: tuple = ()
    tv_class: str = ""

    def candidates(self, root):
        """``root/D/raw`` then ``root/D`` for each folder name D of ``dirnames``; for FashionMNIST
        also :data:`FASHION_MNIST_SYSTEM_DIR`."""
        dirs = []
        for d in self.dirnames:
            dirs += [root / d / "raw", root / d]
        if self.name == "FashionMNIST":
            dirs.append(FASHION_MNIST_SYSTEM_DIR)
        return dirs

    def locate(self, root, split=None):
        """The first candidate folder with the IDX files (``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-*``; plain or ``.gz``) of part ``split`` ('train' or 'test';
        None: both): ``((folder, {(part, "images"|"labels"): path}), tried)``."""
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
        """Split sizes from the IDX headers, after checking each file's length against its header:
        train/val a seeded split of the train file (54,000/6,000 of 60,000), test the t10k file."""
        d, files = found
        for path in files.values():  # every file complete, as its header says
            idx_check_size(path)
        n_train = idx_header(files[("train", "labels")])[0]
        n_test = idx_header(files[("test", "labels")])[0]
        return self._split_counts(n_train, n_test)

    def _split_counts(self, n_train, n_test):
        n_val = len(train_val_index(n_train, "val", (60000, 6000)))
        return {"train": n_train - n_val, "val": n_val, "test": n_test}

    def _download(self, req):
        tvd = torchvision_datasets()
        getattr(tvd, self.tv_class)(str(req.root), train=req.split != "test", download=True)

    def _read_part(self, req, part):
        d, files = self._locate_or_download(req, part)
        x = read_idx(files[(part, "images")], 3)
        y = read_idx(files[(part, "labels")], 1)
        if len(x) != len(y):
            raise DataError(
                f"{files[(part, 'images')]} has {len(x)} images but {files[(part, 'labels')]} has {len(y)} labels"
            )
        return x, y, d

    def load(self, req):
        """Images uint8 (N, 1, 28, 28) and int64 labels of ``req.split``: train/val a seeded
        permutation of the train files (54,000/6,000 of 60,000), test the t10k files."""
        part = "test" if req.split == "test" else "train"
        x, y, d = self._read_part(req, part)
        if part == "train":
            idx = train_val_index(len(x), req.split, (60000, 6000))
            x, y = x[idx], y[idx]
        else:
            x, y = x.copy(), y.copy()
        return torch.from_numpy(x[:, None]), as_labels(y), str(d)


class HoldoutSpec(IdxSpec):
    """MNIST with some digits held out (the original ``MNISTLeaveOut``)."""

    def _split_counts(self, n_train, n_test):
        n_tr = 50000 if n_train == 60000 else int(round(n_train * 5 / 6))
        return {"train": n_tr, "val": n_train - n_tr, "test": n_test}

    def counts(self, root, found):
        """In-distribution split sizes for the default hold-out (9,), counted from the label files:
        first 50,000 / last 10,000 train labels and the test labels, without the held-out digits."""
        d, files = found
        out = {}
        ytr = read_idx(files[("train", "labels")], 1)
        yte = read_idx(files[("test", "labels")], 1)
        n_tr = self._split_counts(len(ytr), len(yte))["train"]
        for split, y in (("train", ytr[:n_tr]), ("val", ytr[n_tr:]), ("test", yte)):
            out[split] = int(np.sum(~np.isin(y, DEFAULT_HOLDOUT)))
        return out

    def load(self, req):
        """Images uint8 (N, 1, 28, 28) and labels of ``req.split`` without the digits ``req.holdout``
        (only those if ``req.outliers``); train/val the first 50,000 / last 10,000 train images, unshuffled."""
        part = "test" if req.split == "test" else "train"
        x, y, d = self._read_part(req, part)
        if part == "train":
            n_tr = self._split_counts(len(x), 0)["train"]
            sl = slice(0, n_tr) if req.split == "train" else slice(n_tr, None)
            x, y = x[sl], y[sl]
        held = np.isin(y, np.asarray(req.holdout, dtype=np.uint8))
        keep = held if req.outliers else ~held
        return torch.from_numpy(x[keep][:, None]), as_labels(y[keep]), str(d)


def _cifar_candidates(root: Path, folder: str, names: tuple) -> list:
    """``root/NAME``, ``root/FOLDER/NAME`` and ``root/folder/NAME`` (``folder`` lower-cased)
    for each name of ``names`` in turn: where a CIFAR archive's files may lie."""
    return [d / name for name in names for d in (root, root / folder, root / folder.lower())]


class Cifar10Spec(DatasetSpec):
    """CIFAR-10 from ``cifar10.npz`` (x_train, y_train, x_test, y_test; NHWC uint8) or the python
    batches of ``cifar-10-batches-py``; the decoded arrays are cached."""
    _batches = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

    def candidates(self, root):
        """``cifar10.npz``, then ``cifar-10-batches-py``, each in ``root``, ``root/CIFAR10`` and
        ``root/cifar10``."""
        return _cifar_candidates(root, "CIFAR10", ("cifar10.npz", "cifar-10-batches-py"))

    def locate(self, root, split=None):
        """``(path, tried)``: the first candidate that is an ``.npz`` file or a folder with all six
        batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``); ``split`` is not used."""
        tried = []
        for p in self.candidates(root):
            tried.append(p)
            if p.suffix == ".npz" and p.is_file():
                return p, tried
            if p.suffix != ".npz" and all((p / b).is_file() for b in self._batches):
                return p, tried
        return None, tried

    def counts(self, root, found):
        """Split sizes from the npz member headers or the batches' label lists; train/val a seeded
        45,000/5,000 of 50,000."""
        if found.suffix == ".npz":
            shapes = npz_shapes(found)
            n_train, n_test = shapes.get("x_train", (0,))[0], shapes.get("x_test", (0,))[0]
        else:
            n_train = sum(len(load_pickle(found / b).get("labels", [])) for b in self._batches[:5])
            n_test = len(load_pickle(found / "test_batch").get("labels", []))
        n_val = len(train_val_index(n_train, "val", (50000, 5000)))
        return {"train": n_train - n_val, "val": n_val, "test": n_test}

    def _download(self, req):
        torchvision_datasets().CIFAR10(str(req.root), train=True, download=True)

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
        xs, ys = zip(*(cifar_pickle(found / b, "labels") for b in names))
        return {"x": np.concatenate(xs), "y": np.concatenate(ys)}

    def _sources(self, found: Path, part: str) -> list:
        if found.suffix == ".npz":
            return [found]
        return [found / b for b in (self._batches[:5] if part == "train" else self._batches[5:])]

    def load(self, req):
        """Images uint8 (N, 3, 32, 32) and int64 labels of ``req.split``: train/val a seeded
        45,000/5,000 permutation of the training images, test the test batch (``x_test``)."""
        found = self._locate_or_download(req)
        part = "test" if req.split == "test" else "train"
        key = f"CIFAR10-{part}-{short_hash(str(found.resolve()))}"
        arrays = cached_arrays(key, self._sources(found, part), lambda: self._read_part(found, part))
        x, y = arrays["x"], arrays["y"]
        if part == "train":
            idx = train_val_index(len(x), req.split, (50000, 5000))
            x, y = x[idx], y[idx]
        return as_tensor(x), as_labels(y), str(found)


class Cifar100Spec(DatasetSpec):
    """CIFAR-100 from the pickles ``train`` and ``test`` of ``cifar-100-python`` (fine labels)."""
    def candidates(self, root):
        """``cifar-100-python`` in ``root``, ``root/CIFAR100`` and ``root/cifar100``, then the
        latter two folders themselves."""
        return _cifar_candidates(root, "CIFAR100", ("cifar-100-python",)) + [root / "CIFAR100", root / "cifar100"]

    def locate(self, root, split=None):
        """``(folder, tried)``: the first candidate with the pickle ``train`` or ``test`` that ``split``
        needs (both when ``split`` is None)."""
        parts = ["train", "test"] if split is None else ["test" if split == "test" else "train"]
        tried = []
        for d in self.candidates(root):
            tried.append(d)
            if all((d / p).is_file() for p in parts):
                return d, tried
        return None, tried

    def counts(self, root, found):
        """Split sizes from the pickles' ``fine_labels``; train/val a seeded 45,000/5,000 of 50,000."""
        n_train = len(load_pickle(found / "train").get("fine_labels", []))
        n_test = len(load_pickle(found / "test").get("fine_labels", []))
        n_val = len(train_val_index(n_train, "val", (50000, 5000)))
        return {"train": n_train - n_val, "val": n_val, "test": n_test}

    def _download(self, req):
        torchvision_datasets().CIFAR100(str(req.root), train=True, download=True)

    def load(self, req):
        """Images uint8 (N, 3, 32, 32) and int64 fine labels (100 classes) of ``req.split``:
        train/val a seeded 45,000/5,000 permutation of ``train``, test the pickle ``test``."""
        part = "test" if req.split == "test" else "train"
        d = self._locate_or_download(req, req.split)
        x, y = cifar_pickle(d / part, "fine_labels")
        if part == "train":
            idx = train_val_index(len(x), req.split, (50000, 5000))
            x, y = x[idx], y[idx]
        return as_tensor(np.ascontiguousarray(x)), as_labels(y), str(d / part)


class SvhnSpec(DatasetSpec):
    """SVHN cropped digits from the official MATLAB v5 files ``train_32x32.mat`` and
    ``test_32x32.mat`` (label 10 stands for the digit 0)."""
    def candidates(self, root):
        """``root/SVHN``, ``root/svhn``, then ``root`` itself (where torchvision downloads it)."""
        return [root / "SVHN", root / "svhn", root]

    def _files(self, split):
        if split is None:
            return ["train_32x32.mat", "test_32x32.mat"]
        return ["test_32x32.mat" if split == "test" else "train_32x32.mat"]

    def locate(self, root, split=None):
        """``(folder, tried)``: the first candidate with the ``.mat`` file of ``split`` (both when None)."""
        tried = []
        for d in self.candidates(root):
            tried.append(d)
            if all((d / f).is_file() for f in self._files(split)):
                return d, tried
        return None, tried

    def counts(self, root, found):
        """Split sizes from the shape of ``X`` in each ``.mat`` header (``scipy.io.whosmat``);
        train/val a seeded 65,930/7,327 of 73,257."""
        import scipy.io

        out = {}
        for part in ("train", "test"):
            path = found / f"{part}_32x32.mat"
            try:
                shapes = {k: s for k, s, _ in scipy.io.whosmat(str(path))}
            except Exception as e:
                raise DataError(f"cannot read {path}: {e}") from e
            out[part] = int(shapes.get("X", (0, 0, 0, 0))[-1])
        n_val = len(train_val_index(out["train"], "val", (73257, 7327)))
        return {"train": out["train"] - n_val, "val": n_val, "test": out["test"]}

    def _download(self, req):
        torchvision_datasets().SVHN(str(req.root), split="test" if req.split == "test" else "train", download=True)

    def load(self, req):
        """Images uint8 (N, 3, 32, 32) from ``X`` (32, 32, 3, N) and int64 labels ``y`` (10 -> 0):
        train/val a seeded permutation of ``train_32x32.mat``, test ``test_32x32.mat``."""
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
            idx = train_val_index(len(x), req.split, (73257, 7327))
            x, y = x[idx], y[idx]
        return as_tensor(x), as_labels(y), str(path)


class ImageNet32Spec(DatasetSpec):
    """Downsampled ImageNet 32x32 from the official npz batches (``train_data_batch_*.npz``,
    ``val_data.npz``) or from image folders ``train_32x32/`` and ``valid_32x32/``."""
    def candidates(self, root):
        """``root/ImageNet32``, ``root/imagenet32``, ``root/Imagenet32``, then ``root`` itself."""
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
        """``(folder, tried)``: the first candidate with the files of ``split``'s part (None: both, or
        failing that only the val files, which suffice for an outlier set)."""
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
        """Split sizes from the npz ``labels`` headers or by counting image files: train/val a seeded
        80/20 % of the train part, test the official val set (0 for a part that is missing)."""
        out = {}
        for part in ("train", "test"):
            pf = self._part_files(found, part)
            if pf is None:
                out[part] = 0
            elif pf[0] == "npz":
                out[part] = sum(int(npz_shapes(f).get("labels", (0,))[0]) for f in pf[1])
            else:
                out[part] = sum(1 for f in pf[1].rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
        n_val = len(train_val_index(out["train"], "val", (10, 2))) if out["train"] else 0
        return {"train": out["train"] - n_val, "val": n_val, "test": out["test"]}

    def load(self, req):
        """Images uint8 (N, 3, 32, 32) and int64 labels of ``req.split`` (npz labels shifted to
        0..999; a flat folder has none): train/val a seeded 80/20 % of train, test the official val set."""
        part = "test" if req.split == "test" else "train"
        d = self._locate_or_download(req, req.split)
        kind, files = self._part_files(d, part)
        if kind == "folder":
            x, y = read_image_folder(files, channels=3, size=32, key=f"ImageNet32-{part}")
        else:
            xs, ys = [], []
            for f in files:
                z = load_npz(f)
                if "data" not in z or "labels" not in z:
                    raise DataError(f"{f}: keys 'data' and 'labels' expected (keys: {sorted(z)}); not an ImageNet32 npz batch")
                x = z["data"]
                if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(z["labels"]) != len(x):
                    raise DataError(f"{f}: 'data' must be uint8 (N, 3072) with N labels; got {x.dtype} {x.shape}")
                xs.append(x.reshape(-1, 3, 32, 32))
                ys.append(np.asarray(z["labels"]).reshape(-1).astype(np.int64) - 1)
            x, y = (np.concatenate(xs), np.concatenate(ys)) if len(xs) > 1 else (xs[0], ys[0])
        if part == "train":
            idx = train_val_index(len(x), req.split, (10, 2))
            x = x[idx]
            y = None if y is None else y[idx]
        return as_tensor(x), as_labels(y), str(files if kind == "folder" else files[0].parent)


class CelebASpec(DatasetSpec):
    """CelebA aligned images: CenterCrop(140) then Resize(size), in PIL."""

    _partition_names = ("list_eval_partition.txt", "list_eval_partition_subset.txt", "Eval/list_eval_partition.txt")

    def candidates(self, root):
        """``root/celeba``, ``root/CelebA``, ``root/celeba/celeba``, ``root/CelebA/celeba``."""
        return [root / "celeba", root / "CelebA", root / "celeba" / "celeba", root / "CelebA" / "celeba"]

    def _partition(self, d: Path) -> Optional[Path]:
        for name in self._partition_names:
            if (d / name).is_file():
                return d / name
        return None

    def locate(self, root, split=None):
        """``(folder, tried)``: the first candidate with ``img_align_celeba/`` and a partition file
        (``list_eval_partition.txt``, ``list_eval_partition_subset.txt`` or ``Eval/list_eval_partition.txt``)."""
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
        """Split sizes from the partition file (0/1/2 = train/val/test)."""
        return {s: len(v) for s, v in self._read_partition(found).items()}

    def _images(self, req: Request, size: int):
        d = self._locate_or_download(req)
        names = self._read_partition(d)[req.split]
        files = [d / "img_align_celeba" / n for n in names]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} image(s) listed in {self._partition(d)} are missing, e.g. {missing[0]}; "
                f"the CelebA folder is incomplete"
            )
        Image = pil_image()

        def decode(path):
            im = open_image(path).convert("RGB")
            w, h = im.size
            if w < 140 or h < 140:
                raise DataError(f"{path}: image is {w}x{h}, smaller than the 140x140 centre crop")
            left, top = int(round((w - 140) / 2.0)), int(round((h - 140) / 2.0))
            im = im.crop((left, top, left + 140, top + 140)).resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)

        def build(fs=files):
            arr = decode_all(decode, fs)
            x = np.stack(arr).transpose(0, 3, 1, 2) if arr else np.zeros((0, 3, size, size), np.uint8)
            return {"x": np.ascontiguousarray(x)}

        quick = None
        if req.n is not None and req.n < len(files):
            quick = lambda: build(files[: req.n])  # noqa: E731  (decode only what is asked for)
        key = f"CelebA-{req.split}-s{size}-{short_hash(str(d.resolve()))}"
        x = cached_arrays(key, [self._partition(d)] + files, build, quick=quick)["x"]
        return torch.from_numpy(x), str(d)

    def load(self, req):
        """Images uint8 (N, 3, S, S) of ``req.split`` of the official partition, S = ``req.size`` or
        the native size (centre crop 140, bilinear resize); no labels; decoded images are cached."""
        size = req.size or self.native_shape[1]
        x, where = self._images(req, size)
        return x, None, where


class CelebAGraySpec(CelebASpec):
    """CelebA through the original ToGray, scaled by 1/sqrt(3) to stay in [0, 1]."""

    def load(self, req):
        """The CelebA images turned grey, g = sqrt(R^2+G^2+B^2)/sqrt(3) rounded to uint8, repeated to 3
        channels (1 if ``req.channels == 1``): (N, C, S, S); no labels."""
        size = req.size or self.native_shape[1]
        x, where = self._images(req, size)
        g = x.to(torch.float32).square_().sum(1, keepdim=True).sqrt_().div_(math.sqrt(3.0))
        g = g.round_().clamp_(0, 255).to(torch.uint8)
        c = 1 if req.channels == 1 else 3
        return g.expand(-1, c, -1, -1).contiguous(), None, where


class OmniglotSpec(DatasetSpec):
    """Omniglot PNGs, resized and inverted (black background)."""

    def candidates(self, root):
        """``root/omniglot-py``, ``root/omniglot``, ``root/Omniglot/omniglot-py``, ``root/Omniglot``."""
        return [root / "omniglot-py", root / "omniglot", root / "Omniglot" / "omniglot-py", root / "Omniglot"]

    @staticmethod
    def _sub(split):
        return "images_background" if split == "train" else "images_evaluation"

    def locate(self, root, split=None):
        """``(folder, tried)``: the first candidate with ``images_background/`` (train) or
        ``images_evaluation/`` (val, test, and ``split`` None)."""
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
        """PNG files per split: train in ``images_background``, val and test in ``images_evaluation``
        (0 where the folder is missing)."""
        out = {}
        for split in SPLITS:
            folder = found / self._sub(split)
            out[split] = sum(1 for _ in folder.rglob("*.png")) if folder.is_dir() else 0
        return out

    def _download(self, req):
        torchvision_datasets().Omniglot(str(req.root), background=req.split == "train", download=True)

    def load(self, req):
        """Images uint8 (N, 1, S, S) of ``req.split``, S = ``req.size`` or 28, resized and inverted,
        with int64 labels numbering the characters in (alphabet, character) order; cached."""
        size = req.size or 28
        d = self._locate_or_download(req, req.split)
        folder = d / self._sub(req.split)
        files, labels = self._files(folder)
        if not files:
            raise DataError(f"{folder}: no PNG files found (expected <alphabet>/<character>/*.png)")
        Image = pil_image()

        def decode(path):
            im = open_image(path).convert("L").resize((size, size), Image.BILINEAR)
            return 255 - np.asarray(im, dtype=np.uint8)

        def build(m=len(files)):
            return {"x": np.stack(decode_all(decode, files[:m]))[:, None], "y": np.asarray(labels[:m], np.int64)}

        quick = (lambda: build(req.n)) if req.n is not None and req.n < len(files) else None
        key = f"Omniglot-{self._sub(req.split)}-s{size}-{short_hash(str(d.resolve()))}"
        arrays = cached_arrays(key, files, build, quick=quick)
        return torch.from_numpy(arrays["x"]), as_labels(arrays["y"]), str(folder)
