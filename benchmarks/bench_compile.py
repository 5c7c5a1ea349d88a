"""Eager vs ``torch.compile`` for the Langevin chains' inner computation: E(x) and dE/dx
(input gradient only, parameters frozen) of a config's NAE.

    python benchmarks/bench_compile.py --config mnist_holdout --batch 32 --threads 1

Prints the compile time, the largest differences between the two (energy, relative
gradient) and the median time per pass of each, measured interleaved.  On the 2-core AVX2
CPU of this project (torch 2.14.1) compiled was slower than eager: MNIST net, batch 32,
1 thread, median 167 ms eager vs 181 ms compiled per pass (0.92x; the cores were shared
with another job; an earlier run gave 238-255 vs 272-307 ms), same results to 2e-7.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from nae.config import load_config  # noqa: E402
from nae.models import build_model  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="mnist_holdout")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=3, help="interleaved rounds of 10 passes each")
    a = p.parse_args()
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    cfg = load_config(a.config, budget="full")
    m = build_model(cfg).to(a.device).eval()
    for q in m.parameters():
        q.requires_grad_(False)
    x0 = torch.rand(a.batch, *cfg.model.x_shape, device=a.device)

    def energy_grad(x):
        x = x.detach().requires_grad_(True)
        e = m.energy(x)
        (g,) = torch.autograd.grad(e.sum(), x)
        return e.detach(), g

    def sync():
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    t0 = time.time()
    compiled = torch.compile(energy_grad)
    e1, g1 = compiled(x0)
    sync()
    print(f"config {a.config}, batch {a.batch}, device {a.device}, threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}; compile {time.time() - t0:.1f} s")
    e0, g0 = energy_grad(x0)
    print(f"max |E diff| {(e1 - e0).abs().max().item():.2e}, "
          f"max |grad diff| / max |grad| {((g1 - g0).abs().max() / g0.abs().max()).item():.2e}")
    times = {"eager": [], "compiled": []}
    for _ in range(a.reps):
        for name, f in (("eager", energy_grad), ("compiled", compiled)):
            sync()
            t = time.perf_counter()
            for _ in range(10):
                f(x0)
            sync()
            times[name].append((time.perf_counter() - t) / 10)
    for name, ts in times.items():
        print(f"{name:9s} median {1000 * statistics.median(ts):7.1f} ms per pass  (rounds: "
              + ", ".join(f"{1000 * t:.1f}" for t in ts) + ")")
    print(f"speedup of compiled: {statistics.median(times['eager']) / statistics.median(times['compiled']):.2f}x")


if __name__ == "__main__":
    main()
