"""Training: AE pre-training, then NAE training, with resumable checkpoints.

A :class:`Trainer` owns a run directory::

    RUN_DIR/config.yml      the resolved configuration
    RUN_DIR/checkpoint.pt   the latest full state (model, optimiser, replay buffer,
                            RNG states, phase, epoch, iteration), written atomically
    RUN_DIR/ae.pt           the autoencoder at the end of pre-training (the AE baseline)
    RUN_DIR/model.pt        the final model
    RUN_DIR/metrics.jsonl   one JSON object per logged event

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
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from . import checkpoint as ckpt
from .config import RunConfig, extend_schedule, load_saved_config, save_config
from .errors import CheckpointError, DivergenceError, NAEError
from .models import build_model

PHASES = {"nae": ("ae", "nae"), "ae": ("ae",), "vae": ("ae",)}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NAEError(f"device {name!r} was asked for, but CUDA is not available here; use --device cpu")
    return dev


# ---------------------------------------------------------------------------------
# distributed data parallel (torchrun)


def init_distributed():
    """Initialises torch.distributed when launched by torchrun (WORLD_SIZE > 1).

    Returns (rank, world_size, local_rank).  Backend: NCCL on GPUs, gloo on CPUs.
    """
    import os

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), local


def _all_reduce_mean(tensors) -> None:
    """Averages a list of tensors over all ranks, in one flat buffer."""
    import torch.distributed as dist

    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    i = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[i:i + n].view_as(t))
        i += n


def autocast(device: torch.device, precision: str):
    """bf16 autocast when ``precision == 'bf16'``, else a no-op context."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def weight_penalty(module) -> torch.Tensor:
    """Sum of squares of every parameter of ``module`` (biases and norms included)."""
    return sum((p ** 2).sum() for p in module.parameters())


# ---------------------------------------------------------------------------------
# data access


def training_sets(cfg: RunConfig):
    """(train, val) data sets of a config: image sets from nae.data, or 2-D toy data."""
    from . import data as D

    if len(cfg.model.x_shape) == 1:
        from .toy2d import sample_toy

        n_train = cfg.data.n_train or 100_000
        n_val = cfg.data.n_val or 2_000
        train = D.ImageSet(cfg.data.indist, "train", sample_toy(cfg.data.indist, n_train, seed=cfg.seed), None)
        val = D.ImageSet(cfg.data.indist, "val", sample_toy(cfg.data.indist, n_val, seed=cfg.seed + 10_000), None)
        return train, val
    c, h, _ = cfg.model.x_shape
    kw = dict(size=h, channels=c)
    if cfg.data.holdout is not None:
        kw["holdout"] = tuple(cfg.data.holdout)
    train = D.load_dataset(cfg.data.indist, "train", n=cfg.data.n_train, **kw)
    val = D.load_dataset(cfg.data.indist, "val", n=cfg.data.n_val, **kw)
    return train, val


def outlier_set(cfg: RunConfig, name: str, split: str = "val", n: Optional[int] = None):
    from . import data as D

    c, h, _ = cfg.model.x_shape
    if name == "heldout":
        return D.load_dataset(cfg.data.indist, split, size=h, channels=c, holdout=tuple(cfg.data.holdout or ()),
                              outliers=True, n=n)
    return D.load_dataset(name, split, size=h, channels=c, n=n, seed=cfg.seed)


# ---------------------------------------------------------------------------------
# callbacks


class JSONLinesLogger:
    """Appends every validation / phase-end / end event (and every ``every``-th step) to a file."""

    def __init__(self, path, every: int = 10):
        self.path = Path(path)
        self.every = every

    def on_event(self, event, trainer, metrics):
        if event == "step" and trainer.state["step"] % self.every:
            return
        rec = {"event": event, "phase": trainer.state["phase"], "step": trainer.state["step"],
               "epoch": trainer.state["epoch"], "time": round(time.time(), 3)}
        rec.update({k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None})
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


class ProgressBar:
    """A tqdm bar per phase, with the latest metrics as postfix."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None

    def on_event(self, event, trainer, metrics):
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        if event in ("phase_end", "end", "paused"):
            if self.bar is not None:
                self.bar.close()
            self.bar = None
            return
        if event == "step" and (self.bar is None or self.bar.desc != trainer.state["phase"]):
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=trainer.phase_total_iters(), desc=trainer.state["phase"],
                            initial=trainer.state["step"] - 1, dynamic_ncols=True, leave=True)
        if self.bar is None:
            return
        if event == "step":
            self.bar.update(1)
            show = {k: f"{v:.4g}" for k, v in metrics.items() if isinstance(v, float)}
            self.bar.set_postfix(show, refresh=False)
        elif event == "validation":
            self.bar.write(f"[{trainer.state['phase']} {trainer.state['step']}] " +
                           ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))


class History:
    """Keeps every event's metrics in memory (handy in notebooks)."""

    def __init__(self):
        self.records = []

    def on_event(self, event, trainer, metrics):
        self.records.append({"event": event, "phase": trainer.state["phase"], "step": trainer.state["step"], **metrics})

    def series(self, key, event="step", phase=None):
        return [(r["step"], r[key]) for r in self.records
                if r["event"] == event and key in r and (phase is None or r["phase"] == phase)]


# ---------------------------------------------------------------------------------
# the trainer


class Trainer:
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
        if cfg.train.precision == "bf16" and self.device.type == "cpu":
            from .langevin import cpu_bf16_fast

            if not cpu_bf16_fast():
                import warnings

                warnings.warn("train.precision=bf16 on a CPU without native bf16 (no AVX512-BF16/AMX): PyTorch falls "
                              "back to slow kernels, about 7x slower than fp32 here. Use fp32 on this machine.",
                              stacklevel=2)
        if cfg.train.precision == "bf16" and self.model.x_shape and len(self.model.x_shape) == 3:
            self.model = self.model.to(memory_format=torch.channels_last)
        # each rank runs its own chains: rank 0 uses the seed of a one-process run
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed + 1_000_003 * self.rank)
        self.phases = PHASES[cfg.model.kind]
        self.state = {"phase": self.phases[0], "epoch": 0, "iter_in_epoch": 0, "step": 0,
                      "best_val": math.inf, "bad_vals": 0, "done": False, "wall_s": 0.0}
        self.best_ae = None
        self.optimizer = self._make_optimizer(self.state["phase"])
        self.history = History()
        main = self.rank == 0
        self.callbacks = ([JSONLinesLogger(self.run_dir / "metrics.jsonl"), ProgressBar(progress)] if main else []) + \
            [self.history, *callbacks]
        self._data = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def resume(cls, run_dir, callbacks=(), progress: bool = True, device=None, extend=()) -> "Trainer":
        """Continues the run in ``run_dir`` from its checkpoint.

        ``extend``: schedule overrides (``["train.nae.max_iters=300"]``, see
        ``nae.config.SCHEDULE_KEYS``) to train longer than first planned; a finished run whose
        last phase gets a larger budget is reopened where that phase stopped.
        """
        run_dir = Path(run_dir)
        path = run_dir / "checkpoint.pt"
        if not path.is_file():
            raise CheckpointError(f"cannot resume: {path} does not exist (start the run without --resume)")
        cfg = load_saved_config(run_dir / "config.yml")
        if extend:
            cfg = extend_schedule(cfg, extend)
        t = cls(cfg, run_dir, callbacks, progress, device)
        t.load_state(ckpt.load_checkpoint(path, map_location=t.device))
        if extend:
            t._reopen_if_extended()
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

    def _reopen_if_extended(self) -> None:
        """After ``extend``: reopens a finished run's last phase when its budget grew."""
        if self.state["phase"] != "finished":
            return
        last = self.phases[-1]
        ended = self.state.get("ended")
        if ended is None:  # checkpoints written before "ended" was recorded: the phase stopped at its budget
            old_cfg = load_saved_config(self.run_dir / "config.yml")  # not yet rewritten with the extension
            step = self.phase_total_iters(pc=getattr(old_cfg.train, "ae" if last == "ae" else "nae"))
            per_epoch = self.iters_per_epoch()
            ended = {"phase": last, "step": step, "epoch": step // per_epoch, "iter_in_epoch": step % per_epoch}
        total = self.phase_total_iters(last)
        if ended["phase"] != last or ended["step"] >= total:
            return
        self.state.update({"phase": last, "step": ended["step"], "epoch": ended["epoch"],
                           "iter_in_epoch": ended["iter_in_epoch"], "done": False})
        self._emit("reopened", {"phase": last, "from_step": ended["step"], "to_step": total})

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
        return getattr(self.cfg.train, "ae" if (phase or self.state["phase"]) == "ae" else "nae")

    def phase_total_iters(self, phase=None, pc=None) -> int:
        """Iterations of a phase (default: the current one) under its config ``pc``."""
        pc = pc or self.phase_cfg(phase)
        per_epoch = self.iters_per_epoch()
        total = pc.epochs * per_epoch
        return min(total, pc.max_iters) if pc.max_iters is not None else total

    def iters_per_epoch(self) -> int:
        n = len(self.data[0])
        return max(1, math.ceil(n / self.cfg.data.batch_size))

    @property
    def data(self):
        if self._data is None:
            self._data = training_sets(self.cfg)
        return self._data

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": ckpt.FORMAT,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.model.sampler.state_dict() if getattr(self.model, "sampler", None) else None,
            "state": dict(self.state),
            "best_ae": self.best_ae,
            "rng": ckpt.rng_state(self.generator),
        }

    def load_state(self, obj: dict) -> None:
        try:
            self.model.load_state_dict(obj["model"])
        except RuntimeError as e:
            raise CheckpointError(f"the checkpoint does not fit the model of config.yml: {str(e).splitlines()[0]}") from None
        self.state = dict(obj["state"])
        self.optimizer = self._make_optimizer(self.state["phase"])
        self.optimizer.load_state_dict(obj["optimizer"])
        if obj.get("sampler") and getattr(self.model, "sampler", None):
            self.model.sampler.load_state_dict(obj["sampler"], self.device)
        self.best_ae = obj.get("best_ae")
        ckpt.set_rng_state(obj["rng"], self.generator)

    def save_checkpoint(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if self.rank > 0:  # this rank's chains: its replay buffer and generator
                sampler = self.model.sampler.state_dict() if getattr(self.model, "sampler", None) else None
                ckpt.atomic_save({"format": ckpt.FORMAT, "sampler": sampler, "rng": ckpt.rng_state(self.generator)},
                                 self.run_dir / f"rank{self.rank}.pt")
            dist.barrier()  # every rank file is written before the main checkpoint
        if self.rank == 0:
            ckpt.atomic_save(self.state_dict(), self.run_dir / "checkpoint.pt")
        self._emit("checkpoint", {})

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
            if m.kind == "vae":
                loss = m.neg_elbo(x, sample=True, generator=self.generator).mean()
            else:
                loss = m.energy(x).mean()
            recon = loss.detach()
            if pc.l2_enc:
                loss = loss + pc.l2_enc * weight_penalty(m.encoder)
            if pc.l2_dec:
                loss = loss + pc.l2_dec * weight_penalty(m.decoder)
        self._check_finite({"AE loss": loss})
        loss.backward()
        self._sync_grads()
        if pc.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(m.parameters(), pc.clip_grad_norm)
        self.optimizer.step()
        return {"loss": float(loss.detach()), "recon": float(recon)}

    def _nae_step(self, x) -> dict:
        pc, m = self.cfg.train.nae, self.model
        with autocast(self.device, self.cfg.train.precision):
            neg = m.sampler.sample(m, x.shape[0], generator=self.generator, x_data=x)
        x_neg = neg["x"]
        self._check_finite({"negative samples": x_neg})
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.cfg.train.precision):
            e_pos = m.energy(x).float()
            e_neg = m.energy(x_neg).float()
            T = m.T
            diff = e_pos.mean() - e_neg.mean()
            if pc.loss == "v2":
                loss = diff / T + pc.gamma * (e_neg ** 2).mean()
            else:
                loss = diff + pc.gamma * (e_neg ** 2).mean()
                if isinstance(m.log_temperature, torch.nn.Parameter):
                    loss = loss + diff.detach() / T
            if pc.l2_enc:
                loss = loss + pc.l2_enc * weight_penalty(m.encoder)
            if pc.l2_dec:
                loss = loss + pc.l2_dec * weight_penalty(m.decoder)
            if pc.z_norm_reg:
                z = torch.cat([m.encoder(x), m.encoder(x_neg)])
                loss = loss + pc.z_norm_reg * (z ** 2).mean()
        self._check_finite({"positive energy E(x)": e_pos, "negative energy E(x-)": e_neg, "NAE loss": loss})
        loss.backward()
        self._sync_grads()
        if pc.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(m.parameters(), pc.clip_grad_norm)
        self.optimizer.step()
        out = {"loss": float(loss.detach()), "e_pos": float(e_pos.detach().mean()), "e_neg": float(e_neg.detach().mean()),
               "T": float(T.detach()) if torch.is_tensor(T) else float(T)}
        if neg.get("accept_rate") is not None:
            out["accept_rate"] = float(neg["accept_rate"])
        self.last_negatives = x_neg
        return out

    def _sync_grads(self) -> None:
        """Averages the gradients over all processes (each holds 1/world of the global batch)."""
        if self.world > 1:
            _all_reduce_mean([p.grad for p in self.model.parameters() if p.grad is not None])

    def _check_finite(self, tensors: dict) -> None:
        for name, t in tensors.items():
            bad = ~torch.isfinite(t).all()
            if self.world > 1:  # every rank stops together
                import torch.distributed as dist

                bad = bad.float()
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)
                bad = bad > 0
            if bool(bad):
                raise DivergenceError(
                    f"{name} became NaN or inf in phase {self.state['phase']!r} at iteration {self.state['step']} "
                    f"(epoch {self.state['epoch']}). The last good checkpoint is kept in {self.run_dir}; "
                    f"try a smaller learning rate or Langevin step size, then resume or restart."
                )

    # -- validation ------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict:
        m = self.model
        was = m.training
        m.eval()
        val = self.data[1]
        bs = self.cfg.data.eval_batch_size
        with autocast(self.device, self.cfg.train.precision):
            e_val = m.predict(val.as_float(), bs)
        out = {"val_energy": float(e_val.mean())}
        if self.state["phase"] == "nae":
            from .metrics import auroc

            for key in ("ood_val", "ood_target"):
                name = getattr(self.cfg.data, key)
                if not name:
                    continue
                try:
                    ood = self._ood_cache(name)
                except NAEError as e:
                    out[f"auroc_{name}"] = None
                    out.setdefault("warnings", str(e).splitlines()[0])
                    continue
                with autocast(self.device, self.cfg.train.precision):
                    e_ood = m.predict(ood, bs)
                out[f"auroc_{name}"] = auroc(e_val.numpy(), e_ood.numpy())
        m.train(was)
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
        reached; the state is checkpointed and ``Trainer.resume`` continues it)."""
        from . import data as D

        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            save_config(self.cfg, self.run_dir / "config.yml")
        if self.state["done"]:
            return "done"
        t0 = time.time()
        wall0 = self.state["wall_s"]
        done_iters = 0
        self.model.train()
        train, _ = self.data
        dev = self.device
        cl = self.cfg.train.precision == "bf16" and len(self.model.x_shape) == 3
        while self.state["phase"] in self.phases:
            phase = self.state["phase"]
            pc = self.phase_cfg()
            per_epoch = self.iters_per_epoch()
            finished = self.state["epoch"] >= pc.epochs or (pc.max_iters is not None and self.state["step"] >= pc.max_iters)
            while not finished:
                epoch = self.state["epoch"]
                g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.phases.index(phase) * 7919 + epoch)
                batches = D.iterate_batches(train, self.cfg.data.batch_size, shuffle=True, hflip=self.cfg.data.hflip,
                                            dequantize=self.cfg.data.dequantize, generator=g)
                for i, x in enumerate(batches):
                    if i < self.state["iter_in_epoch"]:
                        continue  # already done before the interruption
                    if self.world > 1:  # the same global batch on every rank; each takes its share
                        x = torch.tensor_split(x, self.world)[self.rank]
                    x = x.to(dev, non_blocking=True)
                    if cl:
                        x = x.contiguous(memory_format=torch.channels_last)
                    metrics = self._ae_step(x) if phase == "ae" else self._nae_step(x)
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
                    if step % self.cfg.train.ckpt_every == 0:
                        self.save_checkpoint()
                    if self._should_pause(stop_after is not None and done_iters >= stop_after,
                                          max_minutes is not None and time.time() - t0 >= 60 * max_minutes):
                        self.save_checkpoint()
                        self._emit("paused", {})
                        return "paused"
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
        self._save_weights("model.pt", self.model.state_dict(), self.cfg.model.kind)
        self.save_checkpoint()
        self._emit("end", {"wall_s": self.state["wall_s"]})
        return "done"

    def _should_pause(self, *flags) -> bool:
        stop = any(flags)
        if self.world > 1:  # rank 0's clock decides for everyone
            import torch.distributed as dist

            t = torch.tensor([1.0 if stop else 0.0], device=self.device)
            dist.broadcast(t, 0)
            stop = bool(t.item() > 0)
        return stop

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


def train(cfg: RunConfig, run_dir, resume: bool = False, max_minutes=None, progress: bool = True,
          callbacks=(), extend=()) -> Trainer:
    """Trains (or resumes) a run; returns the trainer.  See :class:`Trainer`.

    ``extend`` (with ``resume``): schedule overrides to train longer, see :meth:`Trainer.resume`.
    """
    run_dir = Path(run_dir)
    if resume:
        t = Trainer.resume(run_dir, callbacks, progress, extend=extend)
    else:
        if (run_dir / "checkpoint.pt").exists():
            raise CheckpointError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out")
        t = Trainer(cfg, run_dir, callbacks, progress)
    t.fit(max_minutes=max_minutes)
    return t
