"""A paused run, small enough to keep in the repository, continued on another machine.

Long runs (CIFAR-10 and CelebA NAE phases: many CPU hours) outlive a session, and the machine
of the next session may not be the same one: its ``~/nae-runs/`` is then gone with the run.
:func:`keep` makes a *portable copy* of a paused run's state, and :func:`restore` turns it
into a run directory that ``python -m nae train --resume --out RUN`` continues:

* ``checkpoint.pt`` as the trainer wrote it (step, replay buffer, random state, history) but
  with the weights, their moving average (``train.nae.ema``) and the AE phase's best weights
  (early stopping) in float16 and **without the
  optimiser's state** (Adam's moments would triple the size): the continuation starts a fresh
  optimiser, and its log says so (an ``optimizer_reset`` event);
  (the moving average in ``ema.pt`` beside it, so that no file is larger than the model's
  float16 weights);
* ``config.yml`` and ``metrics.jsonl``, unchanged;
* the AE baseline ``ae.pt`` in float16, unless the run took it from a file (``train.init_ae``)
  that ``restore`` can be given again: then ``kept.json`` records that file's SHA-256 and
  :func:`restore` checks it.

That is not an exact resumption (only the optimiser differs; the float16 rounding of the
weights is below bf16 autocast's), so a run continued this way says so; a resumption on the
same machine (``--resume`` from the original ``checkpoint.pt``) stays exact.

    python scripts/keep_run.py keep ~/nae-runs/cifar_lr5 benchmarks/results/cifar_continuations/RUN/kept
    python scripts/keep_run.py restore benchmarks/results/cifar_continuations/RUN/kept ~/nae-runs/cifar_lr5 \\
        --ae FILE
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from . import checkpoint as ckpt
from .diagnostics import read_metrics
from .errors import CheckpointError

KEPT_FORMAT = "nae-kept-run-v1"
KEPT_INFO = "kept.json"
EMA_FILE = "ema.pt"  #: the moving average, beside checkpoint.pt (each file about the model's float16 size)


def _half(d: Optional[dict]) -> Optional[dict]:
    if d is None:
        return None
    return {k: (v.half() if v.is_floating_point() else v) for k, v in d.items()}


def _float(d: Optional[dict]) -> Optional[dict]:
    if d is None:
        return None
    return {k: (v.float() if v.is_floating_point() else v) for k, v in d.items()}


def keep(run_dir, dst) -> Path:
    """Writes the portable copy of the paused run in ``run_dir`` into ``dst`` (created; its
    files replaced) and returns ``dst``.  CheckpointError if the run has no checkpoint."""
    run, dst = Path(run_dir).expanduser(), Path(dst)
    src = run / "checkpoint.pt"
    if not src.is_file():
        raise CheckpointError(f"{run} holds no checkpoint.pt: only a run paused at a checkpoint (--max-minutes, "
                              f"or stopped by SIGINT/SIGTERM) can be kept")
    obj = ckpt.load_checkpoint(src)
    state = obj.get("state") or {}
    obj["model"] = _half(obj["model"])
    obj["ema"] = _half(obj.get("ema"))
    obj["best_ae"] = _half(obj.get("best_ae"))  # the AE phase's best weights (early stopping)
    obj["optimizer"] = None
    obj["stored_dtype"] = "float16"
    dst.mkdir(parents=True, exist_ok=True)
    ema = obj.pop("ema")  # a file of its own: each stays under the repository's file-size limit
    if ema is not None:
        ckpt.atomic_save({"format": ckpt.FORMAT, "model": ema, "stored_dtype": "float16"}, dst / EMA_FILE)
    else:
        (dst / EMA_FILE).unlink(missing_ok=True)
    ckpt.atomic_save(obj, dst / "checkpoint.pt")
    for name in ("config.yml", "metrics.jsonl"):
        shutil.copyfile(run / name, dst / name)
    init = [e for e in read_metrics(run) if e.get("event") == "init_ae"]
    info = {"format": KEPT_FORMAT, "from": str(run), "phase": state.get("phase"), "step": state.get("step"),
            "weights": "float16, no optimiser state (a continuation starts a fresh one)"}
    if init:
        info["ae"] = {"init_ae": init[-1].get("path"), "sha256": init[-1].get("sha256")}
        (dst / "ae.pt").unlink(missing_ok=True)
    elif (run / "ae.pt").is_file():
        ae = ckpt.load_checkpoint(run / "ae.pt")
        ae["model"] = _half(ae["model"])
        ae["stored_dtype"] = "float16"
        ckpt.atomic_save(ae, dst / "ae.pt")
        info["ae"] = {"file": "ae.pt"}
    (dst / KEPT_INFO).write_text(json.dumps(info, indent=1) + "\n")
    return dst


def restore(kept_dir, run_dir, ae: Optional[str] = None) -> Path:
    """Makes ``run_dir`` (which must not hold a checkpoint) from the portable copy in
    ``kept_dir``; ``ae``: the AE file the run started from (``train.init_ae``), when the copy
    holds none (its SHA-256 is checked).  Returns ``run_dir``."""
    from .pretrained import sha256

    kept, run = Path(kept_dir), Path(run_dir).expanduser()
    info_path = kept / KEPT_INFO
    if not info_path.is_file():
        raise CheckpointError(f"{kept} is not a kept run (no {KEPT_INFO}): make one with scripts/keep_run.py keep")
    info = json.loads(info_path.read_text())
    if (run / "checkpoint.pt").is_file():
        raise CheckpointError(f"{run} already holds a checkpoint: continue it with --resume, or choose another folder")
    want = info.get("ae") or {}
    if "sha256" in want:
        if ae is None:
            raise CheckpointError(f"this kept run started from the AE {want.get('init_ae')} (train.init_ae); give that "
                                  f"file again with --ae FILE (SHA-256 {want['sha256'][:12]}...)")
        got = sha256(Path(ae).expanduser())
        if got != want["sha256"]:
            raise CheckpointError(f"--ae {ae} is not the AE this run started from: SHA-256 {got[:12]}... against "
                                  f"{want['sha256'][:12]}... ({want.get('init_ae')})")
    run.mkdir(parents=True, exist_ok=True)
    obj = ckpt.load_checkpoint(kept / "checkpoint.pt")
    obj["model"] = _float(obj["model"])
    obj["ema"] = _float(ckpt.load_checkpoint(kept / EMA_FILE)["model"]) if (kept / EMA_FILE).is_file() else None
    obj["best_ae"] = _float(obj.get("best_ae"))
    obj.pop("stored_dtype", None)
    obj["kept_copy"] = str(kept)
    ckpt.atomic_save(obj, run / "checkpoint.pt")
    for name in ("config.yml", "metrics.jsonl"):
        shutil.copyfile(kept / name, run / name)
    if not want:  # paused in its AE phase: no ae.pt yet
        return run
    if "file" in want:
        ae_obj = ckpt.load_checkpoint(kept / "ae.pt")
        ae_obj["model"] = _float(ae_obj["model"])
        ae_obj.pop("stored_dtype", None)
    else:  # as the trainer wrote it from train.init_ae: the encoder and decoder, the run's config
        sd = ckpt.load_checkpoint(Path(ae).expanduser()).get("model", {})
        ae_obj = {"format": ckpt.FORMAT, "kind": "ae", "config": obj["config"],
                  "model": {k: v.float() if v.is_floating_point() else v for k, v in sd.items()
                            if k.startswith(("encoder.", "decoder."))}}
    ckpt.atomic_save(ae_obj, run / "ae.pt")
    return run
