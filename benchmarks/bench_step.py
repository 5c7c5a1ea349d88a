"""Training-step, sampling and energy timings of our NAE, against a plain eager
transcription of the original code (``benchmarks/eager_reference.py``).

    python benchmarks/bench_step.py --config mnist_ood [--device cpu|cuda] [--precision auto|fp32|bf16]
        [--iters 10] [--warmup 2] [--batch 128] [--json out.json] [--threads 2] [--no-eager]

Reports medians (seconds) over ``--iters`` timed repetitions after ``--warmup`` untimed ones:

* ``ae_step_s``: one AE pre-training step (``Trainer._ae_step``), batch ``--batch``;
* ``nae_step_s``: one NAE step (``Trainer._nae_step``: on-manifold sampling with the config's
  chain lengths from a warm replay buffer, loss, backward, Adam), batch ``--batch``;
* ``sample64_s``: ``model.sample(64)`` (fresh latents, the config's chains);
* ``energy_images_per_s``: energies without gradients, at batch 128 and 512;
* ``grad_pass``: the energy + input-gradient pass of the Langevin chains at batch ``--batch``
  (ours, ours without the matrix-product convolutions of ``nae.speed``, and eager), its GFLOP/s
  (FLOPs counted by ``torch.utils.flop_counter``) and that as a fraction of the fp32
  matrix-product rate (a 2048^3 sgemm) timed in the same round, median over rounds;
* ``eager_nae_step_s``: the same NAE step in the eager reference (same weights, fp32 always,
  because the original has no bf16), and ``speedup_vs_eager`` = eager / ours.

Ours and the eager reference are timed **interleaved** in one process (A, B, A, B, ...), so a
busy machine slows both sides alike; the load average is printed next to the figures.
For CIFAR-10 on a CPU a full NAE step takes minutes: use e.g. ``--iters 3 --warmup 1``;
the output states how many repetitions each median covers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

# libgomp's default (spin-)waiting makes every parallel region of a 2-thread process
# crawl when other processes compete for the cores (measured: an MNIST energy+gradient
# pass at batch 4 took 1.1 s with 2 threads instead of 0.09 s).  Passive waiting must be
# chosen before torch loads the OpenMP runtime; pass --omp-wait ACTIVE (or set the
# variable) to measure the default.
if "--omp-wait" in sys.argv:
    os.environ["OMP_WAIT_POLICY"] = sys.argv[sys.argv.index("--omp-wait") + 1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from nae.config import load_config  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device):
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def _real_batch(cfg, n, seed=0):
    """n real training images of the config's in-distribution set (uniform noise if absent)."""
    c, h, _ = cfg.model.x_shape
    try:
        from nae.data import load_dataset

        ds = load_dataset(cfg.data.indist, "train", size=h, channels=c, n=max(n, 512))
        x = ds.as_float()[:n]
        if x.shape[0] < n:
            x = x.repeat((n + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:n]
        return x.contiguous(), f"{cfg.data.indist} train"
    except Exception as e:  # noqa: BLE001 - any missing data: fall back
        g = torch.Generator().manual_seed(seed)
        return torch.rand((n, c, h, h), generator=g), f"uniform random ({type(e).__name__}: {str(e)[:60]})"


def _load_avg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _fill_buffer(buffer_push, z_shape, n, device, gen):
    """Pushes n random unit latents (the buffer is warm, as after many NAE steps)."""
    done = 0
    while done < n:
        k = min(1000, n - done)
        z = torch.randn((k, *z_shape), generator=gen, device=device)
        z = z / z.flatten(1).norm(dim=1).view(-1, *([1] * len(z_shape)))
        buffer_push(z)
        done += k


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="auto (default): bf16 where it is fast on this hardware, else fp32 (nae.speed)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: min(2, cores))")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-eager", action="store_true", help="skip the eager reference")
    ap.add_argument("--only", default=None,
                    help="comma list of ae,nae,sample,energy,grad (default: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--omp-wait", default=None, choices=("ACTIVE", "PASSIVE"),
                    help="OMP_WAIT_POLICY (default PASSIVE; applied before torch is imported)")
    args = ap.parse_args(argv)

    from nae.speed import set_cpu_threads
    from nae.speed import autocast, cpu_bf16_fast, cpu_bf16_native, isa_line, resolve_precision
    from nae.trainer import Trainer, resolve_device

    device = resolve_device(args.device)
    threads = None
    if device.type == "cpu":
        threads = set_cpu_threads(args.threads)
    parts = set((args.only or "ae,nae,sample,energy,grad").split(","))
    prec = resolve_precision(args.precision, device)

    cfg = load_config(args.config, budget="full")
    cfg = replace(cfg, train=replace(cfg.train, precision=prec), device=str(device))
    run_dir = Path(tempfile.mkdtemp(prefix="nae-bench-"))
    trainer = Trainer(cfg, run_dir, progress=False, device=str(device))
    model = trainer.model
    cl = prec == "bf16" and len(model.x_shape) == 3
    x_cpu, source = _real_batch(cfg, max(args.batch, 512))
    x = x_cpu[: args.batch].to(device)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    n_it, n_wu = args.iters, args.warmup

    info = {
        "config": args.config, "device": str(device), "precision": prec, "precision_asked": args.precision,
        "cpu": isa_line() if device.type == "cpu" else None, "batch": args.batch,
        "threads": threads, "iters": n_it, "warmup": n_wu, "data": source,
        "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_native": cpu_bf16_native() if device.type == "cpu" else None,
        "cpu_bf16_fast": cpu_bf16_fast() if device.type == "cpu" else None,
        "z_steps": cfg.sampler.z_chain.n_steps, "x_steps": cfg.sampler.x_chain.n_steps,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "channels_last_nets": __import__("nae.speed").speed.CHANNELS_LAST,
        "load_avg_start": _load_avg(),
    }
    print("bench_step: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    if device.type == "cpu" and prec == "bf16" and not info["cpu_bf16_fast"]:
        print("WARNING: bf16 is not faster than fp32 on this CPU (no AMX, and either no AVX512-BF16, "
              "so it is emulated, or nae.speed.bf16_probe_speedup measured no gain): see nae.speed.", flush=True)
    res: dict = {}
    samples: dict = {}

    def record(key, ts):
        samples[key] = [round(t, 5) for t in ts]
        res[key] = statistics.median(ts)
        print(f"  {key:22s} median {res[key]:9.4f} s over {len(ts)} iters  (all: "
              + ", ".join(f"{t:.3f}" for t in ts) + ")", flush=True)

    # -- AE step ----------------------------------------------------------------------
    if "ae" in parts:
        trainer.state["phase"] = "ae"
        trainer.optimizer = trainer._make_optimizer("ae")
        model.train()
        for _ in range(n_wu):
            trainer._ae_step(x)
        record("ae_step_s", [_timed(lambda: trainer._ae_step(x), device) for _ in range(n_it)])

    # -- NAE step, ours and eager interleaved ---------------------------------------
    if "nae" in parts:
        trainer.state["phase"] = "nae"
        trainer.optimizer = trainer._make_optimizer("nae")
        model.train()
        gen = torch.Generator(device).manual_seed(args.seed)
        sampler = model.sampler
        _fill_buffer(sampler.buffer.push, model.z_shape, sampler.buffer.max_size, device, gen)
        eager = None
        if not args.no_eager:
            from eager_reference import EagerNAE

            torch.manual_seed(args.seed)
            eager = EagerNAE.from_model(cfg, model)
            eager.train()
            eager_opt = torch.optim.Adam(list(eager.encoder.parameters()) + list(eager.decoder.parameters()),
                                         lr=cfg.train.nae.lr)
            _fill_buffer(eager.buffer.push, eager.z_shape, eager.buffer.max_samples, torch.device("cpu"), gen)
            x_eager = x_cpu[: args.batch].to(device)  # the original: NCHW, fp32
        ours, theirs = [], []
        for i in range(n_wu + n_it):
            t = _timed(lambda: trainer._nae_step(x), device)
            if i >= n_wu:
                ours.append(t)
            if eager is not None:
                t = _timed(lambda: eager.train_step(x_eager, eager_opt), device)
                if i >= n_wu:
                    theirs.append(t)
            print(f"    nae iter {i + 1}/{n_wu + n_it}{' (warm-up)' if i < n_wu else ''}: ours {ours[-1] if i >= n_wu else t:.3f} s"
                  + (f", eager {theirs[-1]:.3f} s" if eager is not None and i >= n_wu else ""), flush=True)
        record("nae_step_s", ours)
        if eager is not None:
            record("eager_nae_step_s", theirs)
            res["speedup_vs_eager"] = res["eager_nae_step_s"] / res["nae_step_s"]
            print(f"  speedup_vs_eager       {res['speedup_vs_eager']:.2f}x", flush=True)

    # -- sampling 64 -----------------------------------------------------------------
    if "sample" in parts:
        gen = torch.Generator(device).manual_seed(args.seed + 1)

        def sample64():
            with autocast(device, prec):
                model.sample(64, generator=gen)

        for _ in range(min(n_wu, 1)):
            sample64()
        record("sample64_s", [_timed(sample64, device) for _ in range(n_it)])

    # -- energies (ours and, interleaved, the eager reference) --------------------------
    if "energy" in parts:
        model.eval()
        ref = None
        if not args.no_eager:
            from eager_reference import EagerNAE

            ref = EagerNAE.from_model(cfg, model).eval()
        res["energy_images_per_s"] = {}
        if ref is not None:
            res["eager_energy_images_per_s"] = {}
        for b in (128, 512):
            xb = x_cpu[:b].to(device)
            xb_ref = xb
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)

            def energy():
                with torch.no_grad(), autocast(device, prec):
                    model.energy(xb)

            def energy_ref():
                with torch.no_grad():
                    ref.energy(xb_ref)

            for _ in range(max(n_wu, 1)):
                energy()
                if ref is not None:
                    energy_ref()
            ts, ts_ref = [], []
            for _ in range(n_it):
                ts.append(_timed(energy, device))
                if ref is not None:
                    ts_ref.append(_timed(energy_ref, device))
            med = statistics.median(ts)
            samples[f"energy_b{b}_s"] = [round(t, 5) for t in ts]
            res["energy_images_per_s"][str(b)] = b / med
            line = f"  energy batch {b:4d}      {b / med:9.1f} images/s (median of {n_it} iters, {med:.4f} s per batch)"
            if ref is not None:
                med_ref = statistics.median(ts_ref)
                samples[f"eager_energy_b{b}_s"] = [round(t, 5) for t in ts_ref]
                res["eager_energy_images_per_s"][str(b)] = b / med_ref
                line += f"; eager {b / med_ref:9.1f} images/s ({med_ref:.4f} s); speedup {med_ref / med:.2f}x"
            print(line, flush=True)

    # -- the chains' energy + input-gradient pass: GFLOP/s against the fp32 matmul peak ----
    if "grad" in parts:
        res["grad_pass"] = grad_pass_report(cfg, model, x_cpu[: args.batch], device, prec, n_wu, n_it,
                                            eager=not args.no_eager)

    info["load_avg_end"] = _load_avg()
    out = {**info, **res, "samples_s": samples}
    print(json.dumps({k: v for k, v in out.items() if k != "samples_s"}, indent=None, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
        print(f"wrote {args.json}")


def _sgemm_operands(device, n: int):
    return torch.randn(n, n, device=device), torch.randn(n, n, device=device)


def _grad_pass(energy, x):
    x = x.detach().requires_grad_(True)
    energy(x).float().sum().backward()  # the parameters are frozen: only dE/dx is computed
    return x.grad


def grad_pass_report(cfg, model, x, device, prec, n_wu, n_it, eager=True) -> dict:
    """Times ours (and the eager original's) energy + input-gradient pass and reports GFLOP/s.

    Each round times, back to back: a 2048^3 fp32 matrix product (the peak), ours, ours with
    ``nae.speed.FAST_CONV`` off (the convolutions that are matrix products left to oneDNN) and
    the eager original.  A shared machine's speed drifts by tens of percent from minute to
    minute, so the fraction of peak is taken per round (pass rate / that round's matrix-product
    rate) and its median reported, next to the medians of the times."""
    from torch.utils.flop_counter import FlopCounterMode

    from nae import speed
    from nae.langevin import frozen
    from nae.speed import autocast

    model.eval()
    xb = x.to(device)
    if prec == "bf16" and len(model.x_shape) == 3:
        xb = xb.contiguous(memory_format=torch.channels_last)

    def ours():
        with frozen(model), autocast(device, prec):
            _grad_pass(model.energy, xb)

    def ours_no_fast_conv():
        speed.FAST_CONV, before = False, speed.FAST_CONV
        try:
            ours()
        finally:
            speed.FAST_CONV = before

    counter = FlopCounterMode(display=False)
    with counter:
        ours_no_fast_conv()  # the original's layer types: the FLOPs the model needs
    flops = counter.get_total_flops()
    a, b = _sgemm_operands(device, 2048)
    runs = {"sgemm": lambda: a @ b, "ours": ours, "ours_no_fast_conv": ours_no_fast_conv}
    if eager:
        from eager_reference import EagerNAE

        ref = EagerNAE.from_model(cfg, model).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        x_ref = x.to(device)
        runs["eager"] = lambda: _grad_pass(ref.energy, x_ref)
    times = {k: [] for k in runs}
    for i in range(n_wu + n_it):  # interleaved rounds, like the NAE step above
        for k, fn in runs.items():
            t = _timed(fn, device)
            if i >= n_wu:
                times[k].append(t)
    sgemm_flops = 2 * 2048 ** 3
    peak = sgemm_flops / statistics.median(times["sgemm"]) / 1e9
    out = {"flops_per_pass": flops, "fp32_matmul_peak_gflops": peak,
           "fp32_matmul_best_gflops": sgemm_flops / min(times["sgemm"]) / 1e9, "rounds": n_it}
    for k, ts in times.items():
        if k == "sgemm":
            continue
        med = statistics.median(ts)
        frac = statistics.median((flops / t) / (sgemm_flops / s) for t, s in zip(ts, times["sgemm"]))
        out[f"{k}_s"] = med
        out[f"{k}_gflops"] = flops / med / 1e9
        out[f"{k}_fraction_of_peak"] = frac
        print(f"  grad pass ({k:17s}, batch {x.shape[0]}) median {med:.4f} s: {flops / med / 1e9:7.1f} GFLOP/s; "
              f"{100 * frac:5.1f}% of the fp32 matmul rate of the same round (median {peak:.1f} GFLOP/s); "
              f"{flops / x.shape[0] / 1e6:.0f} MFLOP per image", flush=True)
    return out


if __name__ == "__main__":
    main()
