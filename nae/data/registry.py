"""The table of named data sets (:data:`DATASETS`), name lookup with suggestions, the
paper's outlier sets per in-distribution set, and the listing ``python -m nae data`` prints."""
from __future__ import annotations

import difflib

from nae.errors import DataError

from .generated import GeneratedSpec
from .paths import resolve_root
from .sets import (
    FASHION_MNIST_SYSTEM_DIR,
    CelebAGraySpec,
    CelebASpec,
    Cifar100Spec,
    Cifar10Spec,
    HoldoutSpec,
    IdxSpec,
    ImageNet32Spec,
    OmniglotSpec,
    SvhnSpec,
)
from .spec import SPLITS, DatasetSpec, how_to_get_text


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

    def spec(cls, name, kind, shape, how, desc, dirnames=None, tv_class=None, **options):
        """A ``cls`` spec; ``dirnames`` and ``tv_class`` (IDX sets only): the folder names looked
        in and the torchvision class that downloads the set."""
        s = cls(name, kind, shape, desc, how, **options)
        if dirnames is not None:
            s.dirnames, s.tv_class = dirnames, tv_class
        return s

    grey28, rgb32, rgb64 = (1, 28, 28), (3, 32, 32), (3, 64, 64)
    mnist = {"how": mnist_how, "dirnames": ("MNIST", "mnist"), "tv_class": "MNIST", "downloadable": True}
    fashion = {"how": fm_how, "dirnames": ("FashionMNIST", "fashion-mnist", "fashion_mnist"),
               "tv_class": "FashionMNIST", "downloadable": True}
    celeba = {"how": celeba_how, "resizes_from_source": True}
    generated = {"how": gen_how, "resizes_from_source": True}
    specs = [
        spec(IdxSpec, "MNIST", "in-distribution", grey28,
             desc="MNIST digits; train/val 54,000/6,000 (seeded permutation), test 10,000", **mnist),
        spec(IdxSpec, "FashionMNIST", "in-distribution", grey28,
             desc="Fashion-MNIST; train/val 54,000/6,000 (seeded permutation), test 10,000", **fashion),
        spec(Cifar10Spec, "CIFAR10", "in-distribution", rgb32, cifar10_how, downloadable=True,
             desc="CIFAR-10; train/val 45,000/5,000 (seeded permutation, differs from the original), test 10,000"),
        spec(CelebASpec, "CelebA64", "in-distribution", rgb64,
             desc="CelebA aligned, CenterCrop(140) -> Resize(64); official partition", **celeba),
        spec(CelebASpec, "CelebA32", "in-distribution", rgb32,
             desc="CelebA aligned, CenterCrop(140) -> Resize(32); official partition", **celeba),
        spec(HoldoutSpec, "MNISTHoldout", "in-distribution", grey28,
             desc="MNIST without the held-out digits (holdout=(9,) by default); train/val = first 50,000 / last "
                  "10,000 of the official train set, test = official test; outliers=True gives only the held-out "
                  "digits", **mnist),
        spec(SvhnSpec, "SVHN", "outlier", rgb32, svhn_how, downloadable=True,
             desc="SVHN cropped digits; train/val 65,930/7,327 (seeded permutation), test 26,032"),
        spec(CelebASpec, "CelebA", "outlier", rgb32, alias_of="CelebA32",
             desc="alias of CelebA32 (the CIFAR-10 outlier set)", **celeba),
        spec(Cifar100Spec, "CIFAR100", "outlier", rgb32, cifar100_how, downloadable=True,
             desc="CIFAR-100; train/val 45,000/5,000 (seeded permutation), test 10,000"),
        spec(ImageNet32Spec, "ImageNet32", "outlier", rgb32, imagenet_how,
             desc="Downsampled ImageNet 32x32; train/val 80/20 % of train (seeded), test = official val 50,000"),
        spec(OmniglotSpec, "Omniglot", "outlier", grey28, omniglot_how, downloadable=True, resizes_from_source=True,
             desc="Omniglot, inverted (black background), resized to 28; train = background set, "
                  "val/test = evaluation set (13,180)"),
        spec(CelebAGraySpec, "CelebA64Gray", "outlier", rgb64,
             desc="CelebA-64 through ToGray: g = sqrt(R^2+G^2+B^2)/sqrt(3), repeated to 3 channels", **celeba),
        spec(GeneratedSpec, "Constant", "generated", rgb32,
             desc="constant images of a uniform random RGB colour (1 channel: the R value)", **generated),
        spec(GeneratedSpec, "ConstantGray", "generated", rgb32,
             desc="constant images of a uniform random grey level in every channel", **generated),
        spec(GeneratedSpec, "Noise", "generated", rgb32, desc="i.i.d. uniform uint8 pixels", **generated),
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


USER_PREFIXES = ("folder:", "npy:", "npz:")


def resolve(name: str) -> DatasetSpec:
    """The spec registered as ``name``: an exact match, else ignoring case, else also ignoring
    ``_`` and ``-``; a DataError with the closest names and the valid ones otherwise."""
    if not isinstance(name, str) or not name:
        raise DataError(f"data set name must be a non-empty string, got {name!r}")
    if name in DATASETS:
        return DATASETS[name]
    lower = {k.lower(): k for k in DATASETS}
    key = name.lower().replace("_", "").replace("-", "")
    for cand in (name.lower(), key):
        if cand in lower:
            return DATASETS[lower[cand]]
    valid = list(DATASETS) + ["heldout"] + [p + "PATH" for p in USER_PREFIXES]
    close = difflib.get_close_matches(name, list(DATASETS) + ["heldout"], n=3, cutoff=0.5)
    if not close:
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)]
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise DataError(f"unknown data set {name!r}.{hint} Valid names: {', '.join(valid)}")


def list_datasets(root=None) -> list:
    """One dict per registered set: name, kind, found, where (path found, or the list of
    paths tried), size ({split: count} or None), how_to_get, shape, description and,
    when the files are there but unreadable, error."""
    r = resolve_root(root)
    rows = []
    for name, spec in DATASETS.items():
        found, tried = spec.locate(r)
        row = {
            "name": name,
            "kind": spec.kind,
            "found": found is not None,
            "where": None,
            "size": None,
            "how_to_get": how_to_get_text(spec, r),
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
