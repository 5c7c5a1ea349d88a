"""Normalized Autoencoders (Yoon, Noh & Park, ICML 2021) in a small PyTorch library.

Quick start::

    import nae
    cfg = nae.load_config("mnist_ood", budget="smoke")
    trainer = nae.train(cfg, "runs/mnist-smoke")
    model = nae.load_run("runs/mnist-smoke")
    model.energy(x)        # the outlier score
"""
import os as _os

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning
# threads made small-batch passes up to 15x slower (benchmarks/bench_step.py).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import RunConfig, load_config  # noqa: E402
from .errors import CheckpointError, ConfigError, DataError, DivergenceError, NAEError, TrainingInterrupted
from .models import AE, NAE, VAE, build_model
from .run import load_run
from .train import Trainer, train

__version__ = "0.1.0"

__all__ = [
    "AE", "NAE", "VAE", "RunConfig", "Trainer", "build_model", "load_config", "load_run", "train",
    "NAEError", "ConfigError", "DataError", "CheckpointError", "DivergenceError", "TrainingInterrupted",
    "load_pretrained",
]


def load_pretrained(name: str, which: str = "final", device="cpu", root=None):
    """A published pretrained model from ``pretrained/`` (or ``root``), sha256-checked; see nae.pretrained."""
    from .pretrained import load_pretrained as _lp

    return _lp(name, which=which, device=device, root=root)
