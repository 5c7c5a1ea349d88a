"""Numeric precision: which one a run uses, and the bf16 autocast context.

``train.precision`` is ``fp32``, ``bf16`` or ``auto`` (the default of every config).
:func:`resolve_precision` turns ``auto`` into ``bf16`` where the hardware runs bf16
matrix work *fast*, and into ``fp32`` everywhere else:

===============================================  ========  ===========================================
hardware                                          ``auto``  measured (2 threads, our networks)
===============================================  ========  ===========================================
CUDA GPU with bf16 (Ampere or newer)              bf16      tensor cores
x86 CPU with AMX (``amx_bf16``; Sapphire Rapids)  bf16      MNIST NAE step 2.4x, CIFAR-10 energy pass
                                                            4.5x faster than fp32
x86 CPU with AVX512-BF16 but no AMX               fp32      bf16 1.1x (MNIST) to 1.6x (CIFAR-10)
                                                            *slower* than fp32
AVX2-only CPU (e.g. AMD EPYC of our first runs)   fp32      bf16 about 7x slower (emulated)
===============================================  ========  ===========================================

So "native bf16" alone is not enough: AVX512-BF16 has bf16 dot-product instructions,
but oneDNN's convolutions gain nothing from them on our (small) networks, while AMX
tiles make the same convolutions several times faster.  ``benchmarks/bench_step.py``
prints the resolved precision and the CPU's ISA next to its timings.

What runs in bf16 when a run resolves to ``bf16``: only the operations that
``torch.autocast(dtype=torch.bfloat16)`` lowers (convolutions, transposed
convolutions, linear layers and matrix products, in the forward and backward passes);
their inputs are cast to bf16 and their outputs are bf16.  Everything else stays fp32:
the parameters and the Adam optimiser, the Langevin chain state x and z and its
gradient dE/dx (x is an fp32 leaf, so its gradient is fp32), the noise, the replay
buffer, the reconstruction error ``(x - x_hat)**2`` (x_hat is promoted to fp32), the
energies, the loss and all its reductions.  The image networks also run in the
``channels_last`` memory format then (see :mod:`nae.nets`).
"""
from __future__ import annotations

import contextlib
import platform

import torch

from .errors import ConfigError

#: the values ``train.precision`` (and ``--precision``) accepts
PRECISIONS = ("fp32", "bf16", "auto")


def cpu_features() -> dict:
    """The CPU's instruction-set flags as PyTorch sees them (``{}`` where it cannot tell)."""
    try:
        return dict(torch._C._cpu._get_cpu_capability())
    except (AttributeError, RuntimeError):
        return {}


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX bf16 tiles (Intel Sapphire Rapids and newer)."""
    return bool(cpu_features().get("amx_bf16"))


def cpu_bf16_native() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX).

    Without it (AVX2-only CPUs) PyTorch falls back to emulated kernels, many times
    slower than fp32.  Native is not the same as fast: see the module docstring."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_bf16_fast() -> bool:
    """Whether bf16 is *faster* than fp32 on this CPU for our networks: AMX is present."""
    return cpu_has_amx()


def isa_line() -> str:
    """One line naming the CPU and the instruction sets that decide the precision."""
    f = cpu_features()
    name = f.get("cpu_name") or platform.processor() or platform.machine()
    flags = [k for k in ("avx2", "avx512_f", "avx512_bf16", "amx_bf16") if f.get(k)]
    return f"{name} ({platform.machine()}): {', '.join(flags) or 'no AVX2'}; torch kernels: " \
           f"{torch.backends.cpu.get_cpu_capability()}"


def resolve_precision(precision: str, device) -> str:
    """``fp32`` or ``bf16`` for ``precision`` (``fp32``, ``bf16`` or ``auto``) on ``device``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_bf16_fast() else "fp32"
    return "fp32"


def describe_precision(precision: str, device) -> str:
    """A line saying which precision a run uses and why (printed when training starts)."""
    device = torch.device(device)
    where = isa_line() if device.type == "cpu" else str(device)
    return f"precision {precision} on {where}"


def autocast(device, precision: str):
    """bf16 autocast when ``precision == 'bf16'``, else a no-op context."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    if precision == "auto":
        raise ValueError("resolve 'auto' with resolve_precision() before autocast()")
    return contextlib.nullcontext()


def warn_if_slow(precision: str, device) -> None:
    """Warns when bf16 was asked for where it is slower than fp32."""
    import warnings

    if precision != "bf16" or torch.device(device).type != "cpu" or cpu_bf16_fast():
        return
    why = ("no native bf16 (no AVX512-BF16/AMX): PyTorch emulates it, about 7x slower than fp32"
           if not cpu_bf16_native() else
           "AVX512-BF16 without AMX: measured 1.1-1.6x slower than fp32 on our networks")
    warnings.warn(f"precision bf16 on this CPU ({why}). Use precision fp32 or auto here.", stacklevel=3)
