"""Throughput of nae.data.iterate_batches: CIFAR-10 train, batch 128, hflip + dequantisation.

    python benchmarks/bench_data.py [--epochs 3] [--batch-size 128] [--device cpu] [--threads N]

Prints the load time and images/s per epoch (median over epochs), i.e. what the data
pipeline alone can feed a training loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# idle OpenMP threads sleep instead of spinning (chosen before torch loads OpenMP)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from nae.data import iterate_batches, load_dataset  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="CIFAR10")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    ds = load_dataset(args.dataset, "train")
    load_s = time.perf_counter() - t0
    print(f"{args.dataset} train: {len(ds)} images {ds.shape}, loaded in {load_s:.2f} s "
          f"(cpus={os.cpu_count()}, torch threads={torch.get_num_threads()}, device={args.device})")

    gen = torch.Generator().manual_seed(0)
    rates = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        n = 0
        for x in iterate_batches(ds, args.batch_size, shuffle=True, hflip=True, dequantize=True,
                                 generator=gen, device=args.device):
            n += x.shape[0]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rates.append(n / dt)
        print(f"epoch {epoch}: {n} images in {dt:.2f} s = {n / dt:,.0f} images/s")
    print(f"median: {statistics.median(rates):,.0f} images/s "
          f"(batch {args.batch_size}, shuffle + hflip + dequantize)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
