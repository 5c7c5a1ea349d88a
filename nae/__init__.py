"""Normalized Autoencoders (Yoon, Noh & Park, ICML 2021) in a small PyTorch library.

Quick start::

    import nae
    cfg = nae.load_config("mnist_ood", budget="smoke")
    trainer = nae.train(cfg, "runs/mnist-smoke")
    model = nae.load_run("runs/mnist-smoke")
    model.energy(x)        # the outlier score

``import nae`` is light: it neither imports torch nor touches the environment.  The
names below, and the submodules (``nae.data``, ``nae.viz``, ...), are imported on first
use, so that ``python -m nae`` can set ``OMP_WAIT_POLICY`` before torch starts OpenMP
(see ``nae/__main__.py``).
"""
import importlib as _importlib

from .errors import CheckpointError, ConfigError, DataError, DivergenceError, NAEError, TrainingInterrupted

__version__ = "0.1.0"

#: public name -> the module that defines it, imported on first use
_LAZY = {
    "RunConfig": "config", "load_config": "config",
    "AE": "models", "NAE": "models", "VAE": "models", "build_model": "models",
    "load_run": "run",
    "Trainer": "trainer", "train": "trainer",
}

__all__ = [
    "AE", "NAE", "VAE", "RunConfig", "Trainer", "build_model", "load_config", "load_run", "train",
    "NAEError", "ConfigError", "DataError", "CheckpointError", "DivergenceError", "TrainingInterrupted",
    "load_pretrained",
]


def __getattr__(name: str):
    """``nae.NAE``, ``nae.train``, ... and the submodules (``nae.data``), imported on first use."""
    if name in _LAZY:
        value = getattr(_importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        try:
            value = _importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise  # a submodule that exists but fails to import
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


def load_pretrained(name: str, which: str = "final", device="cpu", root=None):
    """A published pretrained model from ``pretrained/`` (or ``root``), sha256-checked; see nae.pretrained."""
    from .pretrained import load_pretrained as _lp

    return _lp(name, which=which, device=device, root=root)
