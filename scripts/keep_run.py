#!/usr/bin/env python3
"""Keeps a paused run in the repository, or makes a run directory from a kept one (``nae.portable``).

A long run (a CIFAR-10 or CelebA NAE phase) outlives a session; ``~/nae-runs/`` does not
outlive a change of machine.  At a session's end, ``keep`` writes a small copy of the paused
run (float16 weights and moving average, replay buffer, step and random state, config and log;
no optimiser state) into a folder of the repository; on the next machine, ``restore`` turns it
back into a run directory that ``python -m nae train --resume --out RUN`` continues, with a
fresh optimiser (its log says so: an ``optimizer_reset`` event).  On the same machine, resume
the original run directory instead: that resumption is exact.

    python scripts/keep_run.py keep ~/nae-runs/cifar_lr5 benchmarks/results/cifar_continuations/RUN/kept
    python scripts/keep_run.py restore benchmarks/results/cifar_continuations/RUN/kept ~/nae-runs/cifar_lr5 \\
        --ae ~/nae-runs/cifar_h200/ae.pt       # the AE file the run started from (train.init_ae), if asked
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    from nae import portable
    from nae.errors import NAEError

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keep", help="RUN_DIR DEST: the portable copy of a paused run")
    k.add_argument("run_dir")
    k.add_argument("dest")
    r = sub.add_parser("restore", help="KEPT RUN_DIR: a run directory to --resume")
    r.add_argument("kept")
    r.add_argument("run_dir")
    r.add_argument("--ae", help="the AE file the run started from (train.init_ae), when the copy holds none")
    a = p.parse_args(argv)
    try:
        if a.cmd == "keep":
            dst = portable.keep(a.run_dir, a.dest)
            size = sum(f.stat().st_size for f in dst.iterdir()) / 2**20
            print(f"kept {a.run_dir} in {dst} ({size:.1f} MiB)")
        else:
            run = portable.restore(a.kept, a.run_dir, ae=a.ae)
            print(f"restored {a.kept} into {run}; continue with: python -m nae train --resume --out {run}")
    except NAEError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
