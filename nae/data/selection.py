"""The data of a run: its training and validation sets, its in-distribution test set and
its outlier sets, at the model's input shape (what ``nae.trainer``, ``nae.evaluate`` and the
figures ask for, from a :class:`~nae.config.RunConfig`)."""
from __future__ import annotations

from typing import Optional

from .imageset import ImageSet
from .loading import load_dataset
from .registry import DEFAULT_OOD


def _holdout_kw(cfg) -> dict:
    return {} if cfg.data.holdout is None else {"holdout": tuple(cfg.data.holdout)}


def training_sets(cfg) -> tuple:
    """``(train, val)`` of a config: image sets at the model's shape, or 2-D toy points."""
    if len(cfg.model.x_shape) == 1:
        from nae.toy2d import sample_toy

        n_train = cfg.data.n_train or 100_000
        n_val = cfg.data.n_val or 2_000
        train = ImageSet(cfg.data.indist, "train", sample_toy(cfg.data.indist, n_train, seed=cfg.seed), None)
        val = ImageSet(cfg.data.indist, "val", sample_toy(cfg.data.indist, n_val, seed=cfg.seed + 10_000), None)
        return train, val
    c, h, _ = cfg.model.x_shape
    kw = dict(size=h, channels=c, **_holdout_kw(cfg))
    train = load_dataset(cfg.data.indist, "train", n=cfg.data.n_train, **kw)
    val = load_dataset(cfg.data.indist, "val", n=cfg.data.n_val, **kw)
    return train, val


def indist_test_set(cfg, n: Optional[int] = None) -> ImageSet:
    """The in-distribution test split of a config, at the model's shape (first ``n`` images)."""
    c, h, _ = cfg.model.x_shape
    return load_dataset(cfg.data.indist, "test", size=h, channels=c, n=n, **_holdout_kw(cfg))


def outlier_set(cfg, name: str, split: str = "val", n: Optional[int] = None) -> ImageSet:
    """An outlier set of a config, at the model's shape ("heldout": the held-out digits)."""
    c, h, _ = cfg.model.x_shape
    if name == "heldout":
        return load_dataset(cfg.data.indist, split, size=h, channels=c, holdout=tuple(cfg.data.holdout or ()),
                            outliers=True, n=n)
    return load_dataset(name, split, size=h, channels=c, n=n, seed=cfg.seed)


def default_ood(cfg) -> list:
    """The paper's outlier sets for a config's in-distribution set."""
    return list(DEFAULT_OOD.get(cfg.data.indist, []))
