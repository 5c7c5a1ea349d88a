"""Writes the run directories of tests/data/legacy/ (kept in git, a few KB each).

They were written by the code of commit aba6e86 (before the reorganisation of the
library) and must keep loading and resuming: tests/test_legacy.py.  Do not run this
again unless the checkpoint format changes on purpose.

    PYTHONPATH=. python tests/data/make_legacy_runs.py
"""
import shutil
from pathlib import Path

import torch

from nae.config import load_config
from nae.trainer import Trainer

HERE = Path(__file__).resolve().parent / "legacy"

RUNS = {
    # toy 2-D NAE, paused in the NAE phase (learned temperature, replay buffer, loss v1)
    "toy2d_nae": ("toy2d", ["train.nae.max_iters=6", "train.ckpt_every=1000", "data.n_train=400",
                            "data.n_val=100", "data.batch_size=50", "sampler.buffer_size=100",
                            "model.encoder={name: fcnet, hidden: [8]}",
                            "model.decoder={name: fcnet, hidden: [8]}"], 3),
    # a tiny MNIST hold-out NAE, paused in the AE phase (loss v2), like the live runs
    "mnist_holdout_ae": ("mnist_holdout", ["data.n_train=64", "data.n_val=32", "data.batch_size=16",
                                           "model.z_dim=4", "model.encoder={name: conv2fc, nh: 1, nh_mlp: 8}",
                                           "model.decoder={name: deconv2, nh: 1}", "sampler.buffer_size=32",
                                           "train.ae.max_iters=4", "train.ae.val_every=2",
                                           "train.nae.max_iters=2", "train.nae.val_every=2",
                                           "train.ckpt_every=1000", "sampler.z_chain.n_steps=2",
                                           "sampler.x_chain.n_steps=2"], 2),
}


def main():
    torch.set_num_threads(1)
    for name, (config, overrides, stop_after) in RUNS.items():
        run = HERE / name
        shutil.rmtree(run, ignore_errors=True)
        cfg = load_config(config, budget="smoke", overrides=overrides)
        status = Trainer(cfg, run, progress=False).fit(stop_after=stop_after)
        print(name, status, sorted(p.name for p in run.iterdir()))


if __name__ == "__main__":
    main()
