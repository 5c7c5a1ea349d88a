"""Loading trained runs: ``load_run(path)`` gives back the model of a run directory."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import RunConfig, load_saved_config
from .errors import CheckpointError
from .models import build_model


def _read_config(run_dir: Path) -> RunConfig:
    if not run_dir.exists():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a directory; give the run directory that `nae train --out` wrote")
    path = run_dir / "config.yml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory: config.yml is missing")
    return load_saved_config(path)


#: which weights of a run ``load_run`` can load: the files it looks for, in order, and why they may be missing
_WEIGHTS = {
    "final": (("model.pt", "checkpoint.pt"), ""),
    "ae": (("ae.pt",), "the AE phase has not finished"),
    "ema": (("ema.pt",), "only a finished run trained with train.nae.ema (a moving average of its weights) "
                         "has one"),
}


def load_run(path, which: str = "final", device="cpu", verify: bool = True):
    """The trained model of a run directory, in eval mode.

    ``which="final"`` loads ``model.pt`` (or, for an unfinished run, the latest
    ``checkpoint.pt``); ``which="ae"`` loads the autoencoder at the end of pre-training
    (the AE baseline of an NAE run) as an :class:`nae.models.AE`; ``which="ema"`` loads the
    moving average of the NAE weights (``ema.pt``, written by runs with ``train.nae.ema``).
    The model has ``.energy(x)``, ``.reconstruct(x)``, ``.sample(n)``; its config is
    attached as ``model.config``.

    ``verify``: when the directory is a published model or a copy of one (its config.yml is
    listed in a ``manifest.json``), the sha256 of its files are checked first.
    """
    run_dir = Path(path)
    cfg = _read_config(run_dir)
    if verify:
        from .pretrained import verify_published

        verify_published(run_dir)
    if which not in _WEIGHTS:
        raise ValueError(f"which must be one of {', '.join(map(repr, _WEIGHTS))}, not {which!r}")
    names, why_missing = _WEIGHTS[which]
    if which == "ae" and cfg.model.kind == "nae":
        cfg = copy.deepcopy(cfg)
        cfg.model.kind = "ae"
    files = [run_dir / n for n in names]
    found = [f for f in files if f.is_file()]
    if not found:
        if which == "final" and (run_dir / "ae.pt").is_file():
            why_missing = ("only its AE phase is there (a published milestone, or a copy of ae.pt): load the AE "
                           "with which='ae' (`--which ae` on the command line)")
        raise CheckpointError(f"no weights in {run_dir}: looked for {', '.join(f.name for f in files)}"
                              + (f" ({why_missing})" if why_missing else ""))
    obj = ckpt.load_checkpoint(found[0], map_location="cpu")
    model = build_model(cfg)
    try:
        model.load_state_dict(obj["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{found[0]} does not fit the model in {run_dir / 'config.yml'}: "
                              f"{str(e).splitlines()[0]}") from None
    model.config = cfg
    model.run_dir = run_dir
    model.weights_file = found[0]
    return model.to(device).eval()
