"""Image data sets of the NAE experiments, one idea per module.

==================  ====================================================================
``paths``           the data root (``$NAE_DATA``, the settings file, ``datasets/``), the cache
``imageset``        :class:`ImageSet`: ``(N, C, H, W)`` uint8 (or float32) images and labels
``spec``            :class:`DatasetSpec` (what a named set is), the load request, the splits
``formats``         readers of the official files: IDX, CIFAR pickles, ``.npz``, image files
``sets``            the official sets: MNIST, FashionMNIST, CIFAR, SVHN, ImageNet32, CelebA, ...
``generated``       Constant, ConstantGray, Noise
``user``            ``folder:PATH``, ``npy:PATH``, ``npz:PATH``
``registry``        :data:`DATASETS`, :data:`DEFAULT_OOD`, name lookup, the listing
``loading``         :func:`load_dataset`: one split in memory, at the shape asked for
``batches``         :func:`iterate_batches`: shuffled, flipped, dequantised float batches
``selection``       the sets of a run config: :func:`training_sets`, :func:`outlier_set`
==================  ====================================================================

Every set is loaded into memory once as a ``uint8`` tensor ``(N, C, H, W)`` (user data
in ``float32`` stays float), and is turned into ``float32`` in ``[0, 1]`` batch by batch
by :func:`iterate_batches`.  The names, splits and conversions of every set, and where
they differ from the original code, are described in the book (``book/library.md``).
"""
from nae.errors import DataError

from .batches import iterate_batches
from .imageset import ImageSet
from .loading import load_dataset, native_shape
from .paths import cache_dir, data_root, data_root_origin
from .registry import DATASETS, DEFAULT_OOD, format_dataset_table, format_missing_sets, list_datasets
from .selection import default_ood, indist_test_set, outlier_set, training_sets
from .spec import SPLITS, DatasetSpec

__all__ = [
    "DATASETS",
    "DEFAULT_OOD",
    "DataError",
    "DatasetSpec",
    "ImageSet",
    "SPLITS",
    "cache_dir",
    "data_root",
    "data_root_origin",
    "default_ood",
    "format_dataset_table",
    "format_missing_sets",
    "indist_test_set",
    "iterate_batches",
    "list_datasets",
    "load_dataset",
    "native_shape",
    "outlier_set",
    "training_sets",
]
