"""Data parallel training under ``torchrun``: process-group setup and gradient averaging.

Under ``torchrun --nproc_per_node N`` every process holds the same model, takes its 1/N
share of each global batch, runs its own Langevin chains, and averages the gradients with
:func:`all_reduce_mean` before each optimiser step (see :class:`nae.trainer.Trainer`).
"""
from __future__ import annotations

import torch


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


def all_reduce_mean(tensors) -> None:
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
