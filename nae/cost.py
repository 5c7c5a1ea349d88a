"""What a schedule costs on the hardware at hand: time a few steps, multiply out.

An NAE run has two phases.  The AE phase costs ``AE steps x (one AE step)``.  An NAE
step runs the latent chain (``z_chain.n_steps`` passes of E(dec(z)) and its gradient with
respect to z), the input chain (``x_chain.n_steps`` passes of E(x) and dE/dx), both on
``sampler.n_negatives`` samples, then one loss step on the batch; so

    NAE step ~ z_steps * t_z(n_neg) + x_steps * t_x(n_neg) + t_loss(batch)

:func:`measure` times those pieces (median of a few repetitions, after a warm-up) for a
config and a precision; :func:`schedule_hours` multiplies them out for any schedule, and
:func:`compute_markdown` makes the table the CIFAR-10 and CelebA chapters show (the
original schedule next to the one we run).  Timings depend on the machine's load, which
is printed with them.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from typing import Mapping, Optional, Sequence

import torch

from .speed import autocast


def _median_time(fn, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


PARTS = ("ae_step_s", "z_pass_s", "x_pass_s", "loss_step_s")


def measure(cfg, precision: str = "fp32", reps: int = 3, n_neg: Optional[int] = None,
            only: Optional[Sequence[str]] = None) -> dict:
    """Seconds for one AE step (batch ``data.batch_size``), one latent-chain and one input-chain
    pass (``n_neg`` samples, default ``sampler.n_negatives`` or the batch size) and one NAE loss
    step, on the CPU with the current torch threads, in ``precision`` (fp32 or bf16).

    ``only``: time just these of :data:`PARTS` (e.g. the chain passes at another ``n_neg``)."""
    unknown = set(only or ()) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    from .langevin import energy_and_grad, frozen
    from .models import build_model

    b = cfg.data.batch_size
    n_neg = n_neg or cfg.sampler.n_negatives or b
    model = build_model(cfg)
    if precision == "bf16" and len(model.x_shape) == 3:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    g = torch.Generator().manual_seed(0)
    x = torch.rand((b, *model.x_shape), generator=g)
    x_neg = torch.rand((n_neg, *model.x_shape), generator=g)
    z = torch.nn.functional.normalize(torch.randn((n_neg, *model.z_shape), generator=g).flatten(1), dim=1)
    z = z.view(n_neg, *model.z_shape)

    def ae_step():
        opt.zero_grad()
        with autocast("cpu", precision):
            out = model.pretrain_loss(x, cfg.train.ae)
        out["loss"].backward()
        opt.step()

    def z_pass():
        with frozen(model), autocast("cpu", precision):
            energy_and_grad(model.latent_energy, z)

    def x_pass():
        with frozen(model), autocast("cpu", precision):
            energy_and_grad(model.energy, x_neg)

    def loss_step():
        opt.zero_grad()
        with autocast("cpu", precision):
            out = model.loss(x, x_neg, cfg.train.nae) if hasattr(model, "loss") else model.pretrain_loss(x, cfg.train.ae)
        out["loss"].backward()
        opt.step()

    out = {"precision": precision, "batch": b, "n_neg": n_neg, "threads": torch.get_num_threads(),
           "load_avg": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None}
    for key, fn in zip(PARTS, (ae_step, z_pass, x_pass, loss_step)):
        if only is None or key in only:
            out[key] = _median_time(fn, reps)
    return out


def nae_step_s(cfg, t: Mapping) -> float:
    """Estimated seconds of one NAE step from :func:`measure`'s timings."""
    return (cfg.sampler.z_chain.n_steps * t["z_pass_s"] + cfg.sampler.x_chain.n_steps * t["x_pass_s"]
            + t["loss_step_s"])


def schedule_hours(cfg, t: Mapping, n_train: int, ae_epochs: float, nae_iters: int) -> dict:
    """Hours of a schedule: ``ae_epochs`` AE epochs over ``n_train`` images and ``nae_iters``
    NAE iterations, at the timings ``t`` (which must come from the same config's batch and
    negatives)."""
    ae_steps = ae_epochs * math.ceil(n_train / cfg.data.batch_size)
    ae_h = ae_steps * t["ae_step_s"] / 3600
    nae_h = nae_iters * nae_step_s(cfg, t) / 3600
    return {"ae_steps": int(ae_steps), "ae_hours": ae_h, "nae_iters": int(nae_iters), "nae_step_s": nae_step_s(cfg, t),
            "nae_hours": nae_h, "hours": ae_h + nae_h}


def compute_markdown(rows: Mapping[str, Mapping]) -> str:
    """A table: one row per (schedule, precision), with the step times and the hours.

    ``rows`` maps a label ("original, fp32") to ``{**measure(...), **schedule_hours(...)}``.
    The load average when each row was timed is a column: on shared cores it sets the times.
    """
    lines = ["| schedule | load avg. | AE step | negatives | NAE step | AE phase | NAE phase | total |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in rows.items():
        load = "–" if r.get("load_avg") is None else f"{r['load_avg']:.1f}"
        lines.append(f"| {label} | {load} | {r['ae_step_s']:.2f} s | {r['n_neg']} | {r['nae_step_s']:.1f} s | "
                     f"{r['ae_steps']:,} steps, {r['ae_hours']:.1f} h | {r['nae_iters']:,} it, {r['nae_hours']:.1f} h | "
                     f"**{r['hours']:.1f} h** |")
    return "\n".join(lines)
