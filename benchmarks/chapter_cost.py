"""The step timings behind the compute tables of the CIFAR-10 and CelebA-64 chapters.

    python benchmarks/chapter_cost.py --config cifar10_ood [--negatives 32] [--reps 2]

Times one AE step, one latent-chain pass, one input-chain pass and one NAE loss step
(``nae.cost.measure``, one torch thread, batch 128) in fp32 and in bf16, with the original
number of negatives (the batch) and with ``--negatives``, prints them and stores them in
``benchmarks/results/cost_CONFIG.json`` (``--out``: another file, e.g. ``cost_CONFIG_amx.json``
for another kind of CPU; the chapters show every ``cost_CONFIG*.json``) with the CPU, its
instruction sets (bf16 is fast only with AMX or a fast AVX512-BF16), the date and the load
average of each row.  In the full budget, notebooks 03 and 04 show these stored figures (measured on an idle
machine) instead of timing steps while they run; run it again on another CPU to refresh them.
Takes about 15 (CIFAR-10) to 25 (CelebA-64) minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--negatives", type=int, default=32, help="the smaller number of negatives to time too")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--out", default=None, help="default: benchmarks/results/cost_CONFIG.json")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from nae import cost
    from nae.config import load_config
    from nae.tutorial.notebook import hardware

    cfg = load_config(a.config, "full")
    rows = []
    for prec in ("fp32", "bf16"):
        full = cost.measure(cfg, prec, reps=a.reps)
        rows.append(full)
        print(json.dumps(full), flush=True)
        few = {**full, **cost.measure(cfg, prec, reps=a.reps, n_neg=a.negatives,
                                      only=("z_pass_s", "x_pass_s", "loss_step_s"))}
        rows.append(few)
        print(json.dumps(few), flush=True)
    out = Path(a.out) if a.out else RESULTS / f"cost_{a.config}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from nae.speed import isa_line

    out.write_text(json.dumps({"config": a.config, "hardware": hardware(), "isa": isa_line(),
                               "date": time.strftime("%Y-%m-%d"),
                               "command": " ".join(["python benchmarks/chapter_cost.py", *sys.argv[1:]]),
                               "rows": rows}, indent=1) + "\n")
    print(f"stored {out}")


if __name__ == "__main__":
    main()
