"""Recipes of the published pretrained models: which config, which overrides.

A :class:`Recipe` says how one pretrained model is made.  ``overrides`` always apply
(what makes this model this model: the held-out digit, the sampler variant, ...);
``full`` adds the training budget of the published run (what the hardware and time
allowed, stated in the manifest); the smoke budget is the config's own.

Each notebook family keeps its recipes in its own module (``toy2d.py``, ``mnist.py``,
...); they are merged into :data:`RECIPES` here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Recipe:
    """How one pretrained model is made: a config, its overrides, the full-budget additions, and
    the outlier sets and test-sample count of the manifest's metrics."""
    config: str                                   #: a config name in configs/ or a path
    overrides: list = field(default_factory=list) #: always applied
    full: list = field(default_factory=list)      #: applied on top for the published (full) run
    ood: Optional[list] = None                    #: outlier sets for the manifest's metrics (None: defaults)
    eval_n: Optional[int] = None                  #: test samples per set for the manifest's metrics
    description: str = ""


RECIPES: dict[str, Recipe] = {}


def _register(module_recipes: dict) -> None:
    for k, v in module_recipes.items():
        if k in RECIPES:
            raise ValueError(f"recipe {k!r} is defined twice")
        RECIPES[k] = v


def _load_all() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        _register(getattr(mod, "RECIPES", {}))


_load_all()


def get_recipe(name: str) -> Recipe:
    """The :class:`Recipe` registered as ``name``; a ConfigError listing the known names otherwise."""
    from ...errors import ConfigError

    if name not in RECIPES:
        raise ConfigError(f"no recipe named {name!r}; known: {', '.join(sorted(RECIPES)) or 'none'}")
    return RECIPES[name]
