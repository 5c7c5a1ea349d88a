"""Training: AE pre-training, then NAE training, with resumable checkpoints.

A :class:`Trainer` owns a run directory::

    RUN_DIR/config.yml      the resolved configuration
    RUN_DIR/checkpoint.pt   the latest full state (model, optimiser, replay buffer,
                            RNG states, phase, epoch, iteration), written atomically
    RUN_DIR/ae.pt           the autoencoder at the end of pre-training (the AE baseline)
    RUN_DIR/model.pt        the final model
    RUN_DIR/ema.pt          with ``train.nae.ema``: the moving average of the NAE weights at the end
    RUN_DIR/metrics.jsonl   one JSON object per logged event
    RUN_DIR/model.stepN.pt  the final model (and ema.stepN.pt) of a finished run that was
                            reopened at step N with a larger budget (``resume(extend=...)``)

``Trainer(cfg, run_dir).fit()`` trains from scratch; ``Trainer.resume(run_dir).fit()``
continues exactly where the last checkpoint stopped.  ``fit(max_minutes=M)`` stops
cleanly at a checkpoint after M minutes (for short GPU loans).

Data parallel: under ``torchrun --nproc_per_node N`` every process holds the same
model, takes its 1/N share of each global batch (``data.batch_size`` is the global
batch, the same batches as a one-process run), runs its own Langevin chains with its
own replay buffer and generator, and the gradients are averaged over the processes
before the optimiser step.  The effective batch is therefore ``data.batch_size`` and
the learning rate is the config's, unchanged: the same optimisation as one process,
with N times more negative chains running in parallel (each of batch/N samples).
Process 0 writes the checkpoint, the others their ``rankR.pt`` (buffer and generator).

Metrics reach the outside world through callbacks: objects with an
``on_event(event, trainer, metrics)`` method.  Events: ``"step"`` (every iteration),
``"validation"``, ``"phase_end"``, ``"checkpoint"``, ``"end"``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from . import checkpoint as ckpt
from .config import RunConfig, config_diff, extend_schedule, get_dotted, load_saved_config, save_config
from .data import iterate_batches, outlier_set, training_sets
from .errors import CheckpointError, ConfigError, DataError, DivergenceError, NAEError, TrainingInterrupted
from .models import build_model, weight_penalty  # noqa: F401 (weight_penalty re-exported)
from .callbacks import History, JSONLinesLogger, ProgressBar  # noqa: F401 (re-exported)
from .distributed import all_reduce_mean, init_distributed
from .langevin import ChainInterrupted, interruptible
from .speed import autocast  # noqa: F401 (re-exported)
from .speed import describe_precision, flush_denormals, resolve_precision, warn_if_slow

PHASES = {"nae": ("ae", "nae"), "ae": ("ae",), "vae": ("ae",)}

#: the signals after which fit() finishes its step, checkpoints and raises TrainingInterrupted
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _position(phases, phase: str, step: int) -> tuple:
    """Orders (phase, step) along a run: phases in order, then "finished"."""
    order = [*phases, "finished"]
    return (order.index(phase) if phase in order else len(order), step)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU; a CUDA device asked for without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NAEError(f"device {name!r} was asked for, but CUDA is not available here; use --device cpu")
    return dev


def resolve_weights_file(source: str, fname: str = "ae.pt", key: str = "train.init_ae") -> Path:
    """The file that ``train.init_ae`` (or, with ``fname="model.pt"``, ``train.init_nae``) names:
    such a file, a run directory holding one, or the name of a published model (its verified file)."""
    p = Path(source).expanduser()
    if p.is_dir():
        p = p / fname
    if p.is_file():
        return p.resolve()
    if "/" not in source and not source.endswith(".pt"):
        from .pretrained import pretrained_path

        f = pretrained_path(source) / fname
        if f.is_file():
            return f
        raise CheckpointError(f"{key}: the published model {source!r} has no {fname}")
    raise CheckpointError(f"{key}: {source} is neither a file named {fname}, a run directory with one, "
                          f"nor a published model's name")


# ---------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Trains one run: AE pre-training, then NAE training, checkpointed in ``run_dir`` (see the module doc)."""
    def __init__(self, cfg: RunConfig, run_dir, callbacks=(), progress: bool = True, device=None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.rank, self.world, local = init_distributed()
        self.device = resolve_device(device or cfg.device)
        if self.world > 1:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", local)
            if cfg.data.batch_size % self.world:
                raise NAEError(f"data.batch_size={cfg.data.batch_size} (the global batch) must be divisible by "
                               f"the number of processes ({self.world})")
        ckpt.seed_everything(cfg.seed)
        self.model = build_model(cfg).to(self.device)
        # "auto" becomes fp32 or bf16 here, once: config.yml (and so a resumed run) records the choice
        requested = cfg.train.precision
        cfg.train.precision = resolve_precision(requested, self.device)
        self.precision_note = describe_precision(cfg.train.precision, self.device) + \
            (" (resolved from auto)" if requested == "auto" else "")
        warn_if_slow(cfg.train.precision, self.device)
        if cfg.train.precision == "bf16" and self.model.x_shape and len(self.model.x_shape) == 3:
            self.model = self.model.to(memory_format=torch.channels_last)
        # each rank runs its own chains: rank 0 uses the seed of a one-process run
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed + 1_000_003 * self.rank)
        self.phases = PHASES[cfg.model.kind]
        self.state = {"phase": self.phases[0], "epoch": 0, "iter_in_epoch": 0, "step": 0,
                      "best_val": math.inf, "bad_vals": 0, "done": False, "wall_s": 0.0}
        self.best_ae = None
        self.ema = None              #: the moving average of the NAE weights (train.nae.ema), or None
        self._pending_init_ae = bool(cfg.train.init_ae) and "nae" in self.phases
        if self._pending_init_ae:  # the AE phase is replaced by a trained autoencoder
            self.state["phase"] = "nae"
        #: train.ae.init: the AE phase starts from trained weights (loaded when fit() starts)
        self._pending_ae_init = bool(cfg.train.ae.init) and self.state["phase"] == "ae"
        self.optimizer = self._make_optimizer(self.state["phase"])
        self.history = History()
        main = self.rank == 0
        self.callbacks = ([JSONLinesLogger(self.run_dir / "metrics.jsonl"), ProgressBar(progress)] if main else []) + \
            [self.history, *callbacks]
        self._data = None
        self.run_history = []        #: changes made on resume: {phase, step, key, old, new, time}
        self.interrupted = None      #: the signal number that stopped fit(), if any
        self.resumed_from = None     #: the checkpoint this trainer was resumed from
        self._pending = []           #: events of the resume, logged once fit() holds the lock
        self._metrics_offset = None  #: size of metrics.jsonl when the loaded checkpoint was written
        self._resumed_position = None
        self._last_x = None          #: the latest training batch (checks a checkpoint's energies)
        self._last_ckpt_time = time.time()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def resume(cls, run_dir, callbacks=(), progress: bool = True, device=None, extend=()) -> "Trainer":
        """Continues the run in ``run_dir`` from its checkpoint.

        ``extend``: schedule or learning-rate overrides (``["train.nae.max_iters=300"]``,
        ``["train.nae.lr=1e-6"]``; see ``nae.config.RESUMABLE_KEYS``).  A finished run whose
        last phase gets a larger budget is reopened where that phase stopped; a change the
        weights could not get (the budget of a phase that has ended, a budget below the
        current step) is refused.  Every change is recorded in the run's history.
        """
        run_dir = Path(run_dir)
        path = run_dir / "checkpoint.pt"
        if not path.is_file():
            raise CheckpointError(f"cannot resume: {path} does not exist (start the run without --resume)")
        saved = load_saved_config(run_dir / "config.yml")
        cfg = extend_schedule(saved, extend) if extend else saved
        t = cls(cfg, run_dir, callbacks, progress, device)
        obj = ckpt.load_checkpoint(path, map_location=t.device)
        t.load_state(obj)
        t.resumed_from = path
        t._pending_init_ae = t._pending_ae_init = False  # the checkpoint holds the weights
        if extend:
            t._apply_changes(saved)
        if t.world > 1:
            rank_file = run_dir / f"rank{t.rank}.pt"
            if t.rank > 0:
                if not rank_file.is_file():
                    raise CheckpointError(f"cannot resume rank {t.rank}: {rank_file} is missing (was the run "
                                          f"started with a different number of processes?)")
                obj = ckpt.load_checkpoint(rank_file, map_location=t.device)
                if obj.get("sampler") and getattr(t.model, "sampler", None):
                    t.model.sampler.load_state_dict(obj["sampler"], t.device)
                ckpt.set_rng_state(obj["rng"], t.generator)
        return t

    def resume_line(self) -> str:
        """``resumed from RUN/checkpoint.pt at phase nae, step 120`` (one line for the CLI)."""
        st = self.state
        if st["done"]:
            return f"resumed from {self.resumed_from}: the run is already finished (nothing to train)"
        return f"resumed from {self.resumed_from} at phase {st['phase']}, step {st['step']}"

    def _phase_status(self, phase: str) -> str:
        """``"ended"``, ``"current"`` or ``"future"`` for a phase of this run."""
        now = self.state["phase"]
        if now == "finished" or self.phases.index(phase) < self.phases.index(now):
            return "ended"
        return "current" if phase == now else "future"

    def _apply_changes(self, saved: RunConfig) -> None:
        """Checks the resume changes ``saved`` -> ``self.cfg`` against the run's state, reopens a
        finished run whose last phase grew, sets changed learning rates, records the history."""
        changes = [(key, get_dotted(saved, key), get_dotted(self.cfg, key)) for key in config_diff(saved, self.cfg)]
        if not changes:
            return
        self._reopen_if_extended(saved)
        for key, old, new in changes:
            self._check_change(key, old, new, saved)
        self._set_learning_rates()
        for key, old, new in changes:
            entry = {"phase": self.state["phase"], "step": self.state["step"], "key": key, "old": old, "new": new,
                     "time": round(time.time(), 3)}
            self.run_history.append(entry)
            self._pending.append(("changed", {k: v for k, v in entry.items() if k not in ("phase", "step", "time")}))

    def _check_change(self, key: str, old, new, saved: RunConfig) -> None:
        """Refuses a resume change that config.yml would claim but the weights would not get."""
        parts = key.split(".")
        phase = parts[1] if len(parts) == 3 and parts[1] in ("ae", "nae") else None
        if phase is None or phase not in self.phases:
            return  # checkpoint cadence, or a phase this kind of model does not train
        status = self._phase_status(phase)
        budget = parts[2] in ("epochs", "max_iters")
        if status == "ended":
            old_total = self.phase_total_iters(pc=getattr(saved.train, phase))
            if budget and self.phase_total_iters(phase) == old_total:
                return  # the same number of iterations: the schedule the weights got
            raise ConfigError(
                f"{key}={new} cannot be applied on resume: the {phase.upper()} phase has ended "
                f"(it ran with {key}={old}), and config.yml must describe the training the weights got. "
                + ("Give the last phase a larger budget to train longer, or start a new run."
                   if budget else "Start a new run to change it."))
        if status == "current" and budget and self.phase_total_iters(phase) < self.state["step"]:
            raise ConfigError(f"{key}={new} cannot be applied on resume: the {phase.upper()} phase is already at "
                              f"iteration {self.state['step']}, beyond the {self.phase_total_iters(phase)} "
                              f"iterations it would set")

    def _set_learning_rates(self) -> None:
        """The config's learning rates on the current optimiser (the checkpoint's are restored with it)."""
        phase = self.state["phase"]
        if phase not in self.phases:
            return
        fresh = self._make_optimizer(phase)
        for group, new in zip(self.optimizer.param_groups, fresh.param_groups):
            group["lr"] = new["lr"]

    def _reopen_if_extended(self, saved: RunConfig) -> None:
        """Reopens a finished run's last phase when its budget grew."""
        if self.state["phase"] != "finished":
            return
        last = self.phases[-1]
        ended = self.state.get("ended")
        if ended is None:  # checkpoints written before "ended" was recorded: the phase stopped at its budget
            step = self.phase_total_iters(pc=getattr(saved.train, "ae" if last == "ae" else "nae"))
            per_epoch = self.iters_per_epoch()
            ended = {"phase": last, "step": step, "epoch": step // per_epoch, "iter_in_epoch": step % per_epoch}
        total = self.phase_total_iters(last)
        if ended["phase"] != last or ended["step"] >= total:
            return
        self.state.update({"phase": last, "step": ended["step"], "epoch": ended["epoch"],
                           "iter_in_epoch": ended["iter_in_epoch"], "done": False})
        self._pending.append(("reopened", {"phase": last, "from_step": ended["step"], "to_step": total}))

    def _keep_final_weights(self, step: int) -> list:
        """A reopened run's final files (``model.pt``, ``ema.pt``) say where it ended, no longer
        where it will end: they are renamed ``model.step{step}.pt`` and ``ema.step{step}.pt``, so
        that ``load_run``, ``evaluate`` and ``scripts/publish_if_better.py`` read the run's
        checkpoint until its new end writes them again, and the weights it had are not lost."""
        kept = []
        for name in ("model.pt", "ema.pt"):
            src = self.run_dir / name
            if src.is_file():
                dst = src.with_name(f"{src.stem}.step{step}.pt")
                os.replace(src, dst)
                kept.append(dst.name)
        return kept

    def _load_weights(self, path: Path, key: str, prefixes=None) -> dict:
        """The float weights stored in ``path`` (only the keys starting with ``prefixes``, when
        given), loaded into the model; a CheckpointError naming ``key`` if they do not fit."""
        sd = {k: v.float() if v.is_floating_point() else v
              for k, v in ckpt.load_checkpoint(path, map_location="cpu").get("model", {}).items()
              if prefixes is None or k.startswith(prefixes)}
        if prefixes is not None:
            want = {k for k in self.model.state_dict() if k.startswith(prefixes)}
            if set(sd) != want:
                raise CheckpointError(f"{key}: {path} does not hold this config's encoder and decoder "
                                      f"({len(want & set(sd))} of {len(want)} tensors match); give the ae.pt of a "
                                      f"run with the same model section")
        try:
            self.model.load_state_dict(sd, strict=prefixes is None)
        except RuntimeError as e:
            raise CheckpointError(f"{key}: {path} does not fit this config's networks: "
                                  f"{str(e).splitlines()[0]}") from None
        return sd

    def _start_from(self, key: str, source: str, event: str, fname: str = "ae.pt", prefixes=None) -> dict:
        """Loads the weights that config key ``key`` names (``source``: a file, a run directory or
        a published name) into the model, records their path and SHA-256 in the state as ``event``
        (the caller logs it); the weights loaded."""
        from .pretrained import sha256

        path = resolve_weights_file(source, fname, key)
        sd = self._load_weights(path, key, prefixes)
        self.state[event] = {"path": str(path), "sha256": sha256(path)}
        return sd

    def _init_from_ae(self) -> None:
        """Loads ``train.init_ae`` into the encoder and decoder and makes it this run's ``ae.pt``;
        then, with ``train.init_nae``, the whole NAE (a fresh optimiser and buffer continue it)."""
        sd = self._start_from("train.init_ae", self.cfg.train.init_ae, "init_ae", prefixes=("encoder.", "decoder."))
        self._save_weights("ae.pt", sd, "ae")
        self._emit("init_ae", dict(self.state["init_ae"]))
        if self.cfg.train.init_nae:
            self._start_from("train.init_nae", self.cfg.train.init_nae, "init_nae", fname="model.pt")
            self._emit("init_nae", dict(self.state["init_nae"]))
        self._pending_init_ae = False

    def _init_ae_phase(self) -> None:
        """Loads ``train.ae.init`` into the encoder and decoder: the AE phase trains on from
        these weights (with the fresh optimiser the trainer made)."""
        self._start_from("train.ae.init", self.cfg.train.ae.init, "ae_init", prefixes=("encoder.", "decoder."))
        self._emit("ae_init", dict(self.state["ae_init"]))
        self._pending_ae_init = False

    def _make_optimizer(self, phase: str):
        m = self.model
        if phase == "ae":
            pc = self.cfg.train.ae
            params = [p for n, p in m.named_parameters() if n != "log_temperature"]
            return torch.optim.Adam(params, lr=pc.lr)
        pc = self.cfg.train.nae
        groups = [{"params": list(m.encoder.parameters()) + list(m.decoder.parameters()), "lr": pc.lr}]
        if isinstance(getattr(m, "log_temperature", None), torch.nn.Parameter):
            groups.append({"params": [m.log_temperature], "lr": pc.temperature_lr})
        return torch.optim.Adam(groups)

    def phase_cfg(self, phase=None):
        """The config of a phase (default: the current one)."""
        return getattr(self.cfg.train, "ae" if (phase or self.state["phase"]) == "ae" else "nae")

    def phase_total_iters(self, phase=None, pc=None) -> int:
        """Iterations of a phase (default: the current one) under its config ``pc``."""
        pc = pc or self.phase_cfg(phase)
        per_epoch = self.iters_per_epoch()
        total = pc.epochs * per_epoch
        return min(total, pc.max_iters) if pc.max_iters is not None else total

    def iters_per_epoch(self) -> int:
        """Iterations in one pass over the training set."""
        n = len(self.data[0])
        return max(1, math.ceil(n / self.cfg.data.batch_size))

    @property
    def data(self):
        """(train, validation) data sets, loaded on first use."""
        if self._data is None:
            train, val = training_sets(self.cfg)
            for ds in (train, val):
                if len(ds) == 0:
                    raise DataError(f"the {ds.split} split of {ds.name} has no images: nothing to train on")
            self._data = train, val
        return self._data

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a checkpoint holds to continue exactly."""
        return {
            "format": ckpt.FORMAT,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.model.sampler.state_dict() if getattr(self.model, "sampler", None) else None,
            "state": dict(self.state),
            "best_ae": self.best_ae,
            "ema": self.ema,
            "rng": ckpt.rng_state(self.generator),
            "history": list(self.run_history),
            "metrics_bytes": self._metrics_size(),
        }

    def _metrics_size(self) -> Optional[int]:
        path = self.run_dir / "metrics.jsonl"
        return path.stat().st_size if path.is_file() else 0

    def load_state(self, obj: dict) -> None:
        """Restores a checkpoint written by :meth:`state_dict`."""
        try:
            self.model.load_state_dict(obj["model"])
        except RuntimeError as e:
            raise CheckpointError(f"the checkpoint does not fit the model of config.yml: {str(e).splitlines()[0]}") from None
        self.state = dict(obj["state"])
        self.optimizer = self._make_optimizer(self.state["phase"])
        if obj.get("optimizer") is None:  # a portable copy of the run (nae.portable): a fresh optimiser
            self._pending.append(("optimizer_reset", {"kept_copy": obj.get("kept_copy"),
                                                      "note": "continued from a portable copy (float16 weights, "
                                                              "no optimiser state): a fresh optimiser"}))
        else:
            self.optimizer.load_state_dict(obj["optimizer"])
        if obj.get("sampler") and getattr(self.model, "sampler", None):
            self.model.sampler.load_state_dict(obj["sampler"], self.device)
        self.best_ae = obj.get("best_ae")
        ema = obj.get("ema")
        self.ema = None if ema is None else {k: v.to(self.device) for k, v in ema.items()}
        ckpt.set_rng_state(obj["rng"], self.generator)
        self.run_history = list(obj.get("history") or [])  # checkpoints before the history: none
        self._metrics_offset = obj.get("metrics_bytes")
        self._resumed_position = (self.state["phase"], self.state["step"])

    def save_checkpoint(self) -> None:
        """Writes the full state atomically, if its weights and energies are finite (else the
        previous checkpoint stays the last good one, and a DivergenceError stops the run)."""
        self._check_savable()
        if self.world > 1:
            import torch.distributed as dist

            if self.rank > 0:  # this rank's chains: its replay buffer and generator
                sampler = self.model.sampler.state_dict() if getattr(self.model, "sampler", None) else None
                ckpt.atomic_save({"format": ckpt.FORMAT, "sampler": sampler, "rng": ckpt.rng_state(self.generator)},
                                 self.run_dir / f"rank{self.rank}.pt")
            dist.barrier()  # every rank file is written before the main checkpoint
        if self.rank == 0:
            ckpt.atomic_save(self.state_dict(), self.run_dir / "checkpoint.pt")
        self._last_ckpt_time = time.time()
        self._emit("checkpoint", {})

    @torch.no_grad()
    def _check_savable(self) -> None:
        """Weights, and the energies they give the latest batch and negatives, must be finite: a
        checkpoint of weights about to overflow would not be a good one to resume from."""
        weights = torch.stack([p.detach().float().abs().max() for p in self.model.parameters()])
        tensors = {"a weight": weights}
        m = self.model
        if self._last_x is not None:
            with autocast(self.device, self.cfg.train.precision):
                tensors["the energy of the latest batch"] = m.energy(self._last_x).float()
                if self.state["phase"] == "nae" and getattr(self, "last_negatives", None) is not None:
                    tensors["the energy of the latest negative samples"] = m.energy(self.last_negatives).float()
        self._check_finite(tensors, before_checkpoint=True)

    def _save_weights(self, name: str, state_dict: dict, kind: str) -> None:
        if self.rank != 0:
            return
        obj = {"format": ckpt.FORMAT, "kind": kind, "config": self.cfg.to_dict(),
               "model": {k: v.detach().cpu() for k, v in state_dict.items()}}
        ckpt.atomic_save(obj, self.run_dir / name)

    def _emit(self, event: str, metrics: dict) -> None:
        for cb in self.callbacks:
            cb.on_event(event, self, metrics)

    # -- steps -----------------------------------------------------------------------------
    def _ae_step(self, x) -> dict:
        pc, m = self.cfg.train.ae, self.model
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.cfg.train.precision):
            out = m.pretrain_loss(x, pc, generator=self.generator)
        loss, recon = out["loss"], out["recon"]
        self._check_finite({"AE loss": loss})
        loss.backward()
        self._sync_grads()
        if pc.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(m.parameters(), pc.clip_grad_norm)
        self._optimizer_step()
        return {"loss": float(loss.detach()), "recon": float(recon)}

    def _interruptible_nae_step(self, x) -> Optional[dict]:
        """One NAE iteration, abandoned within one Langevin step when SIGINT/SIGTERM arrives
        during its chains (they take minutes for 64x64 data on a CPU).  An abandoned iteration
        leaves no trace: the weights change only after sampling, the replay buffer only at
        the end of a draw, and the generator is set back; so it returns None and a resume
        redoes the iteration exactly.  With several processes the signal is honoured after
        the iteration instead (every rank must finish its collective calls)."""
        if self.world > 1:
            return self._nae_step(x)
        rng = self.generator.get_state()
        try:
            with interruptible(lambda: self.interrupted is not None):
                return self._nae_step(x)
        except ChainInterrupted:
            self.generator.set_state(rng)
            return None

    def _nae_step(self, x) -> dict:
        pc, m = self.cfg.train.nae, self.model
        n_neg = x.shape[0]
        if self.cfg.sampler.n_negatives is not None:  # this process's share of the negatives
            n_neg = max(1, self.cfg.sampler.n_negatives // self.world)
        with autocast(self.device, self.cfg.train.precision):
            neg = m.sampler.sample(m, n_neg, generator=self.generator, x_data=x)
        x_neg = neg["x"]
        self._check_finite({"negative samples": x_neg})
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.cfg.train.precision):
            out = m.loss(x, x_neg, pc)  # the objective lives with the model (nae.models.NAE.loss)
        loss, e_pos, e_neg, T = out["loss"], out["e_pos"], out["e_neg"], out["T"]
        self._check_finite({"positive energy E(x)": e_pos, "negative energy E(x-)": e_neg, "NAE loss": loss})
        loss.backward()
        self._sync_grads()
        if pc.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(m.parameters(), pc.clip_grad_norm)
        self._optimizer_step()
        self._update_ema()
        out = {"loss": float(loss.detach()), "e_pos": float(e_pos.detach().mean()), "e_neg": float(e_neg.detach().mean()),
               "T": float(T.detach()) if torch.is_tensor(T) else float(T)}
        if neg.get("accept_rate") is not None:
            out["accept_rate"] = float(neg["accept_rate"])
        self.last_negatives = x_neg
        return out

    def _optimizer_step(self) -> None:
        try:
            self.optimizer.step()
        except RuntimeError as e:  # Adam's step size overflows float32 for absurd learning rates
            if "overflow" not in str(e):
                raise
            lrs = ", ".join(f"{g['lr']:g}" for g in self.optimizer.param_groups)
            raise DivergenceError(f"the optimiser step overflowed in phase {self.state['phase']!r} at iteration "
                                  f"{self.state['step']}: the learning rate is far too large "
                                  f"({lrs})") from None

    @torch.no_grad()
    def _update_ema(self) -> None:
        """One step of the moving average of the weights (``train.nae.ema``); it starts from the
        weights after the first NAE step it sees (or after the resume that switched it on)."""
        decay = self.cfg.train.nae.ema
        if not decay:
            self.ema = None
            return
        sd = self.model.state_dict()
        if self.ema is None:
            self.ema = {k: v.detach().clone() for k, v in sd.items() if v.is_floating_point()}
            self.state["ema_from_step"] = self.state["step"] + 1
            return
        for k, v in self.ema.items():
            v.lerp_(sd[k].detach().to(v.dtype), 1.0 - decay)

    @contextlib.contextmanager
    def ema_weights(self):
        """Within the block the model holds the moving-average weights (then its own again)."""
        m = self.model
        own = {k: v.detach().clone() for k, v in m.state_dict().items() if k in self.ema}
        m.load_state_dict(self.ema, strict=False)
        try:
            yield m
        finally:
            m.load_state_dict(own, strict=False)

    def _sync_grads(self) -> None:
        """Averages the gradients over all processes (each holds 1/world of the global batch)."""
        if self.world > 1:
            all_reduce_mean([p.grad for p in self.model.parameters() if p.grad is not None])

    def _check_finite(self, tensors: dict, before_checkpoint: bool = False) -> None:
        for name, t in tensors.items():
            bad = ~torch.isfinite(t).all()
            if self.world > 1:  # every rank stops together
                import torch.distributed as dist

                bad = bad.float()
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)
                bad = bad > 0
            if bool(bad):
                raise DivergenceError(self._divergence_message(name, before_checkpoint))

    def _divergence_message(self, name: str, before_checkpoint: bool) -> str:
        phase, step = self.state["phase"], self.state["step"]
        when = "after" if before_checkpoint else "at"
        lr = self.phase_cfg(phase).lr if phase in self.phases else None
        advice = (f"resume it with a smaller learning rate: python -m nae train --resume --out {self.run_dir} "
                  f"train.{phase}.lr={lr / 10:g}" if lr else "resume it with a smaller learning rate")
        return (f"{name} became NaN or inf in phase {phase!r} {when} iteration {step} (epoch {self.state['epoch']}). "
                f"The last checkpoint with finite weights and energies is kept in {self.run_dir}; {advice}, "
                f"or start a new run with a smaller Langevin step size.")

    # -- validation ------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict:
        """Validation energies and the AUROC of each watched outlier set (in the AE phase: the AE's)."""
        m = self.model
        was = m.training
        m.eval()
        out = self._scores(m)
        if self.state["phase"] == "nae" and self.ema is not None:
            with self.ema_weights():  # the same numbers for the moving average, prefixed "ema_"
                out.update({f"ema_{k}": v for k, v in self._scores(m).items() if k != "warnings"})
            out["ema_from_step"] = self.state.get("ema_from_step")
        m.train(was)
        return out

    def _scores(self, m) -> dict:
        """Mean validation energy and the AUROC of each watched outlier set.  In the AE phase the
        AUROC is the plain autoencoder's (its reconstruction error as the score): it is logged
        to show how the baseline moves as the AE trains; early stopping looks at the energy only."""
        from .evaluate import watched_sets
        from .metrics import auroc

        val = self.data[1]
        bs = self.cfg.data.eval_batch_size
        with autocast(self.device, self.cfg.train.precision):
            e_val = m.predict(val.as_float(), bs)
        out = {"val_energy": float(e_val.mean())}
        for name in watched_sets(self.cfg):
            try:
                ood = self._ood_cache(name)
            except NAEError as e:
                out[f"auroc_{name}"] = None
                out.setdefault("warnings", str(e).splitlines()[0])
                continue
            with autocast(self.device, self.cfg.train.precision):
                e_ood = m.predict(ood, bs)
            out[f"auroc_{name}"] = auroc(e_val.numpy(), e_ood.numpy())
        return out

    def _ood_cache(self, name):
        if not hasattr(self, "_ood"):
            self._ood = {}
        if name not in self._ood:
            n = self.cfg.data.n_val or 2000
            self._ood[name] = outlier_set(self.cfg, name, "val", n=n).as_float()
        return self._ood[name]

    # -- the loop --------------------------------------------------------------------------
    def fit(self, max_minutes: Optional[float] = None, stop_after: Optional[int] = None) -> str:
        """Trains until done.  Returns ``"done"`` or ``"paused"`` (time or ``stop_after`` iterations
        reached).  On SIGINT or SIGTERM the current step is finished (an NAE iteration still in its
        Langevin chains is abandoned and undone instead), a checkpoint written, and
        :class:`~nae.errors.TrainingInterrupted` (a KeyboardInterrupt) raised.  A paused or
        interrupted run is checkpointed and ``Trainer.resume`` continues it exactly.

        While it runs, fit() holds the run directory's lock (:mod:`nae.rundir`): a second
        training in the same directory is refused."""
        if max_minutes is not None and not max_minutes > 0:
            raise ConfigError(f"max_minutes (--max-minutes) must be positive, got {max_minutes!r}")
        with self._guard():
            return self._fit(max_minutes, stop_after)

    @contextlib.contextmanager
    def _guard(self):
        """The lock, the signal handlers and readable storage errors around fit()."""
        from .rundir import RunLock

        lock = RunLock(self.run_dir) if self.rank == 0 else None
        previous = {}
        with flush_denormals(self.cfg.train.flush_denormal):  # then IEEE denormals again
            try:
                try:
                    self.run_dir.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise CheckpointError(f"cannot create the run directory {self.run_dir}: "
                                          f"{os.strerror(e.errno).lower() if e.errno else e}") from None
                if lock is not None:
                    lock.acquire()
                    ckpt.clean_stale_tmp(self.run_dir)
                    self._dedupe_metrics()
                    if lock.stale_holder:
                        self._pending.insert(0, ("lock_taken_over", {"stale_holder": lock.stale_holder}))
                previous = self._install_signal_handlers()
                yield
            except OSError as e:
                if e.errno in ckpt.STORAGE_ERRNOS:
                    raise ckpt.storage_error(e, e.filename or self.run_dir) from None
                raise
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                if lock is not None:
                    lock.release()

    def _install_signal_handlers(self) -> dict:
        """SIGINT/SIGTERM set ``self.interrupted``; the loop stops after the current step (an NAE
        iteration still in its chains is abandoned within one Langevin step and undone).  A second
        signal stops at once (KeyboardInterrupt).  Only possible in the main thread."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}
        self.interrupted = None

        def handler(signum, frame):
            if self.interrupted is not None:
                raise KeyboardInterrupt
            self.interrupted = signum

        return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}

    def _dedupe_metrics(self) -> None:
        """After a resume: drops the events metrics.jsonl got after the checkpoint was written
        (they are about to be logged again), keeping those of the checkpoint's own moment."""
        path = self.run_dir / "metrics.jsonl"
        if self._resumed_position is None or not path.is_file():
            return
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        offset = self._metrics_offset
        if offset is None:  # checkpoints before "metrics_bytes": after its last checkpoint event
            start = self._last_checkpoint_line(lines)
        else:
            start = len(text.encode()[:offset].decode(errors="ignore").splitlines(keepends=True))
        if start is None or offset is not None and offset > len(text.encode()):
            return
        limit = _position(self.phases, *self._resumed_position)
        keep = lines[:start] + [ln for ln in lines[start:] if not self._logged_after(ln, limit)]
        if len(keep) != len(lines):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(keep))
            os.replace(tmp, path)
        self._resumed_position = None

    def _last_checkpoint_line(self, lines) -> Optional[int]:
        phase, step = self._resumed_position
        for i in range(len(lines) - 1, -1, -1):
            rec = _json_or_none(lines[i])
            if rec and rec.get("event") == "checkpoint" and (rec.get("phase"), rec.get("step")) == (phase, step):
                return i + 1
        return None

    def _logged_after(self, line: str, limit: tuple) -> bool:
        rec = _json_or_none(line)
        if rec is None:
            return True  # a line cut short by a failed write (a full disk)
        if "phase" not in rec or "step" not in rec:
            return False
        return _position(self.phases, rec["phase"], rec["step"]) > limit

    def _fit(self, max_minutes, stop_after) -> str:
        if self.rank == 0:
            save_config(self.cfg, self.run_dir / "config.yml", self.run_history)
        for event, metrics in self._pending:
            if event == "reopened" and self.rank == 0:
                metrics = {**metrics, "kept": ", ".join(self._keep_final_weights(metrics["from_step"]))}
            self._emit(event, metrics)
        if self.resumed_from is not None:
            self._emit("resumed", {"from": str(self.resumed_from)})
        self._pending = []
        if self.state["done"]:
            return "done"
        self._emit("start", {"precision": self.cfg.train.precision, "device": str(self.device),
                             "hardware": self.precision_note, "threads": torch.get_num_threads()})
        if self._pending_init_ae:
            self._init_from_ae()
        if self._pending_ae_init:
            self._init_ae_phase()
        t0 = time.time()
        self._last_ckpt_time = t0
        wall0 = self.state["wall_s"]
        done_iters = 0
        self.model.train()
        train, _ = self.data
        dev = self.device
        cl = self.cfg.train.precision == "bf16" and len(self.model.x_shape) == 3
        while self.state["phase"] in self.phases:
            if self._decide(self.interrupted is not None)[0]:  # a signal between phases (or before the start)
                return self._stop("interrupted")
            phase = self.state["phase"]
            pc = self.phase_cfg()
            finished = self.state["epoch"] >= pc.epochs or (pc.max_iters is not None and self.state["step"] >= pc.max_iters)
            while not finished:
                epoch = self.state["epoch"]
                g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.phases.index(phase) * 7919 + epoch)
                batches = iterate_batches(train, self.cfg.data.batch_size, shuffle=True, hflip=self.cfg.data.hflip,
                                            dequantize=self.cfg.data.dequantize, generator=g)
                for i, x in enumerate(batches):
                    if i < self.state["iter_in_epoch"]:
                        continue  # already done before the interruption
                    if self.world > 1:  # the same global batch on every rank; each takes its share
                        x = torch.tensor_split(x, self.world)[self.rank]
                    x = x.to(dev, non_blocking=True)
                    if cl:
                        x = x.contiguous(memory_format=torch.channels_last)
                    if phase == "ae":
                        metrics = self._ae_step(x)
                    else:
                        metrics = self._interruptible_nae_step(x)
                        if metrics is None:  # a signal arrived mid-chain: the iteration was undone
                            return self._stop("interrupted")
                    self._last_x = x
                    self.state["iter_in_epoch"] = i + 1
                    self.state["step"] += 1
                    self.state["wall_s"] = wall0 + time.time() - t0
                    done_iters += 1
                    self._emit("step", metrics)
                    step = self.state["step"]
                    if step % self.phase_cfg().val_every == 0:
                        self._run_validation()
                    stop_phase = (pc.max_iters is not None and step >= pc.max_iters) or self._early_stopped()
                    if stop_phase:
                        break
                    pause, interrupt, timed = self._decide(
                        (stop_after is not None and done_iters >= stop_after)
                        or (max_minutes is not None and time.time() - t0 >= 60 * max_minutes),
                        self.interrupted is not None,
                        self.cfg.train.ckpt_minutes is not None
                        and time.time() - self._last_ckpt_time >= 60 * self.cfg.train.ckpt_minutes)
                    if pause or interrupt:
                        return self._stop("interrupted" if interrupt else "paused")
                    if step % self.cfg.train.ckpt_every == 0 or timed:
                        self.save_checkpoint()
                else:
                    self.state["epoch"] += 1
                    self.state["iter_in_epoch"] = 0
                    if self.state["epoch"] < pc.epochs:
                        self.save_checkpoint()
                    finished = self.state["epoch"] >= pc.epochs
                    continue
                finished = True
            self._end_phase()
        self.state["done"] = True
        self._check_savable()
        self._save_weights("model.pt", self.model.state_dict(), self.cfg.model.kind)
        if self.ema is not None:
            self._save_weights("ema.pt", {**self.model.state_dict(), **self.ema}, self.cfg.model.kind)
        self.save_checkpoint()
        self._emit("end", {"wall_s": self.state["wall_s"]})
        return "done"

    def _stop(self, status: str) -> str:
        """Checkpoints; returns "paused", or raises TrainingInterrupted for "interrupted"."""
        self.save_checkpoint()
        if status == "paused":
            self._emit("paused", {})
            return status
        sig = signal.Signals(self.interrupted or signal.SIGTERM)  # ranks > 0 follow rank 0's signal
        self._emit("interrupted", {"signal": sig.name})
        raise TrainingInterrupted(
            f"interrupted by {sig.name} at phase {self.state['phase']}, step {self.state['step']}: checkpoint "
            f"written to {self.run_dir / 'checkpoint.pt'}; continue with: python -m nae train --resume "
            f"--out {self.run_dir}", sig.name, 128 + int(sig))

    def _decide(self, *flags) -> list:
        """The flags as rank 0 sees them (its clock and signals decide for every process)."""
        out = [bool(f) for f in flags]
        if self.world > 1:
            import torch.distributed as dist

            t = torch.tensor([1.0 if f else 0.0 for f in out], device=self.device)
            dist.broadcast(t, 0)
            out = [bool(v > 0) for v in t.tolist()]
        return out

    def _run_validation(self):
        if self.state.get("last_val_step") == (self.state["phase"], self.state["step"]):
            return  # already validated at this iteration
        self.state["last_val_step"] = (self.state["phase"], self.state["step"])
        metrics = self.validate()
        if self.state["phase"] == "ae":
            v = metrics["val_energy"]
            if v < self.state["best_val"]:
                self.state["best_val"] = v
                self.state["bad_vals"] = 0
                self.best_ae = {k: t.detach().cpu().clone() for k, t in self.model.state_dict().items()}
            else:
                self.state["bad_vals"] += 1
            metrics["best_val"] = self.state["best_val"]
        self._emit("validation", metrics)

    def _early_stopped(self) -> bool:
        pc = self.cfg.train.ae
        return self.state["phase"] == "ae" and pc.patience is not None and self.state["bad_vals"] >= pc.patience

    def _end_phase(self):
        phase = self.state["phase"]
        if phase == "ae":
            self._run_validation()
            if self.best_ae is not None:
                self.model.load_state_dict(self.best_ae)  # continue from the best pre-trained weights
            ae_sd = {k: v for k, v in self.model.state_dict().items() if k.startswith(("encoder.", "decoder."))}
            self._save_weights("ae.pt", ae_sd if self.cfg.model.kind == "nae" else self.model.state_dict(),
                               "ae" if self.cfg.model.kind == "nae" else self.cfg.model.kind)
        else:
            self._run_validation()
        self._emit("phase_end", {"phase": phase, "wall_s": self.state["wall_s"]})
        idx = self.phases.index(phase)
        nxt = self.phases[idx + 1] if idx + 1 < len(self.phases) else "finished"
        self.state["ended"] = {k: self.state[k] for k in ("phase", "step", "epoch", "iter_in_epoch")}
        self.state.update({"phase": nxt, "epoch": 0, "iter_in_epoch": 0, "step": 0})
        if nxt != "finished":
            self.optimizer = self._make_optimizer(nxt)
            self.save_checkpoint()


def _json_or_none(line: str):
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def prepare(cfg: Optional[RunConfig], run_dir, resume: bool = False, progress: bool = True, callbacks=(),
            extend=(), device=None) -> Trainer:
    """The trainer of a new run (``cfg``) or of a resumed one (``resume``), not yet fitted."""
    run_dir = Path(run_dir)
    if resume:
        return Trainer.resume(run_dir, callbacks, progress, device=device, extend=extend)
    if (run_dir / "checkpoint.pt").exists():
        raise CheckpointError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out")
    return Trainer(cfg, run_dir, callbacks, progress, device=device)


def train(cfg: RunConfig, run_dir, resume: bool = False, max_minutes=None, progress: bool = True,
          callbacks=(), extend=(), device=None) -> Trainer:
    """Trains (or resumes) a run; returns the trainer.  See :class:`Trainer`.

    ``extend`` (with ``resume``): schedule or learning-rate overrides, see :meth:`Trainer.resume`.
    """
    t = prepare(cfg, run_dir, resume, progress, callbacks, extend, device)
    t.fit(max_minutes=max_minutes)
    return t
