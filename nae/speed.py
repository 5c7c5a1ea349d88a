"""Speed: every trick that makes the same computation faster, in one place.

* **Numeric precision** (``train.precision``): bf16 autocast where it is fast
  (:func:`resolve_precision`, :func:`autocast`), see below.
* **channels_last**: the image networks run their activations in the ``channels_last``
  memory format (:func:`to_channels_last`, called by :mod:`nae.nets`).
* **Upsampling as matrix products** (:class:`Upsample2x`).
* **Convolutions that are matrix products** (:class:`Conv2d`, :class:`ConvTranspose2d`): a
  convolution whose kernel covers its whole input, a transposed convolution of a 1x1 input, and
  a transposed convolution with one output channel, computed as ``F.linear``/``matmul``.
* **Threads**: :func:`set_cpu_threads`; the command line also sets
  ``OMP_WAIT_POLICY=PASSIVE`` before torch starts OpenMP (``nae/__main__.py``).
* **Denormals**: :func:`flush_denormals` (``train.flush_denormal``).

None of them changes a result beyond float rounding (``tests/test_speed_equivalence.py``
checks energies, input gradients and chains against a transcription of the original ops;
``benchmarks/precision_parity.py`` the conclusions under bf16).

Precision
---------
``train.precision`` is ``fp32``, ``bf16`` or ``auto`` (the default of every config).
:func:`resolve_precision` turns ``auto`` into ``bf16`` where the hardware runs bf16
matrix work *fast*, and into ``fp32`` everywhere else:

===============================================  ========  ===========================================
hardware                                          ``auto``  measured (1-2 threads, our networks)
===============================================  ========  ===========================================
CUDA GPU with bf16 (Ampere or newer)              bf16      tensor cores
x86 CPU with AMX (``amx_bf16``; Sapphire Rapids)  bf16      MNIST NAE step 2.4x, CIFAR-10 energy pass
                                                            4.5x faster than fp32
x86 CPU with AVX512-BF16 but no AMX               probe     Intel Xeon: bf16 1.1x (MNIST) to 1.6x
                                                            (CIFAR-10) *slower* than fp32; AMD EPYC
                                                            Zen 5: bf16 1.8x (MNIST) and 1.8x
                                                            (CIFAR-10) *faster* (energy + input-
                                                            gradient pass, batch 32, 1 thread);
                                                            AMD EPYC Zen 4: MNIST NAE step 2.0x
                                                            faster
AVX2-only CPU (e.g. AMD EPYC of our first runs)   fp32      bf16 about 7x slower (emulated)
===============================================  ========  ===========================================

So "native bf16" alone does not decide: AVX512-BF16 has bf16 dot-product instructions,
and whether oneDNN's convolutions gain from them on our (small) networks depends on the
processor (they did not on the Intel Xeon, they did on the AMD EPYC Zen 5).  On such a
CPU :func:`cpu_bf16_fast` therefore *measures*: :func:`bf16_probe_speedup` times a small
convolution stack of the kind our networks are made of (forward and input gradient, in
channels_last, at the process's thread count; a fraction of a second, once per machine: the
figure is kept in ``~/.cache/nae/bf16_probe.json``, so a run and its resumption agree) in
fp32 and in bf16 autocast, and ``auto`` picks bf16 where bf16 was at least
``BF16_PROBE_MIN_SPEEDUP`` (1.2x) faster.  AMX CPUs and CPUs without native bf16 are not
probed (their answer does not depend on it).  ``NAE_CPU_BF16=fast`` or ``slow`` skips the
probe and says the answer (for a machine whose probe runs under heavy load).
``benchmarks/bench_step.py`` prints the resolved precision, the CPU's ISA and the probe's
figure next to its timings.

What runs in bf16 when a run resolves to ``bf16``: only the operations that
``torch.autocast(dtype=torch.bfloat16)`` lowers (convolutions, transposed
convolutions, linear layers and matrix products, in the forward and backward passes);
their inputs are cast to bf16 and their outputs are bf16.  Everything else stays fp32:
the parameters and the Adam optimiser, the Langevin chain state x and z and its
gradient dE/dx (x is an fp32 leaf, so its gradient is fp32), the noise, the replay
buffer, the reconstruction error ``(x - x_hat)**2`` (x_hat is promoted to fp32), the
energies, the loss and all its reductions.  The image networks also run in the
``channels_last`` memory format then (see :mod:`nae.nets`).

channels_last
-------------
On CPU, oneDNN's convolutions, max pooling and bilinear upsampling are much faster in NHWC
than in NCHW (the energy + input-gradient pass of the MNIST model: about 1.3-1.5x with 2
threads; a 1-channel NCHW input even sends the first convolution to a slow path).  The
networks convert at the entry of every encoder and after the first decoder layer, whatever
format the caller uses; parameters and state dicts are unchanged.  ``NAE_CHANNELS_LAST=0``
turns this off (for A/B timing).

Convolutions that are matrix products
-------------------------------------
oneDNN's direct convolutions run far below the matrix-product peak when the convolution is a
dense layer in disguise.  Measured on the AVX2-only AMD EPYC (1 thread, batch 128, forward +
input gradient): the MNIST encoder's 4x4 convolution of a 4x4 map (128 -> 1024 channels) ran at
14-16 GFLOP/s, the decoder's first transposed convolution (a 1x1 latent to a 4x4 map) at 2-6
GFLOP/s and its last one (32 channels -> 1) at 3-4 GFLOP/s, against about 55 for a matrix
product.  :class:`Conv2d` and :class:`ConvTranspose2d` are ``nn.Conv2d``/``nn.ConvTranspose2d``
(same parameters, same state dict) that recognise these cases from the input's shape and compute
them as one matrix product (and, for one output channel, ``F.fold``, which adds the overlapping
patches); any other shape takes the parent's path (``NAE_FAST_CONV=0`` sends every call there,
for A/B timing).  Same outputs up to float rounding (``tests/test_speed_equivalence.py``).
On the AVX2 CPU this and pooling before ReLU in the MNIST encoder (:mod:`nae.nets`) took the
chains' energy + input-gradient pass from about 47% (the eager original) to 65% of the fp32
matrix-product rate (``book/speed.md``).

Upsampling
----------
``Upsample2x`` (bilinear x2 with ``align_corners=True``, the original ``nn.Upsample``)
calls ``F.interpolate`` on channels_last input, whose forward and backward kernels are fast
in NHWC, and otherwise two small matrix products (faster than ``upsample_bilinear2d``'s
NCHW backward).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError

# ---------------------------------------------------------------------------------
# numeric precision

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


#: the speed-up of bf16 over fp32 in :func:`bf16_probe_speedup` from which ``auto`` picks bf16
BF16_PROBE_MIN_SPEEDUP = 1.2

_probe_cache: dict = {}


def probe_cache_file() -> Path:
    """Where :func:`bf16_probe_speedup` keeps its figures, one per CPU, torch version and thread
    count: ``$NAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/nae``, else ``~/.cache/nae``."""
    root = os.environ.get("NAE_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nae"
    return Path(root) / "bf16_probe.json"


def _isa_flags() -> list:
    """The instruction sets that decide the precision, those this CPU has."""
    f = cpu_features()
    return [k for k in ("avx2", "avx512_f", "avx512_bf16", "amx_bf16") if f.get(k)]


def _said_bf16() -> Optional[str]:
    """``"fast"`` or ``"slow"`` where ``NAE_CPU_BF16`` says it, None where it is unset."""
    said = os.environ.get("NAE_CPU_BF16", "").strip().lower()
    if said and said not in ("fast", "slow"):
        raise ConfigError(f"NAE_CPU_BF16={said!r}: use 'fast', 'slow' or leave it unset (then a probe decides)")
    return said or None


def _probe_key() -> str:
    name = cpu_features().get("cpu_name") or platform.processor()
    return f"{name}|{','.join(_isa_flags())}|torch {torch.__version__}|threads {torch.get_num_threads()}"


def _read_probe_file() -> dict:
    try:
        return dict(json.loads(probe_cache_file().read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def bf16_probe_speedup(reps: int = 15) -> float:
    """fp32 time / bf16 time of a small convolution stack (forward + input gradient,
    channels_last, batch 16, at the current thread count): the fastest of ``reps`` interleaved
    repetitions of each after one warm-up (the minimum, because other work on the machine only
    ever adds time).  Measured once per machine: the figure is kept in :func:`probe_cache_file`
    (delete it to measure again), so that every process on the machine, a run and its resumption
    included, resolves ``auto`` alike."""
    import time

    key = _probe_key()
    if key in _probe_cache:
        return _probe_cache[key]
    stored = _read_probe_file().get(key)
    if isinstance(stored, (int, float)) and stored > 0:
        _probe_cache[key] = float(stored)
        return float(stored)
    times: dict = {False: [], True: []}
    # callers may be inside no_grad/inference_mode (evaluation): the probe needs its gradients,
    # and tensors made outside this block would be inference tensors; and the layers' random
    # initialisation must not move the global random stream (a seeded run stays the same
    # whether or not a probe ran before its model was built)
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
        gen = torch.Generator().manual_seed(0)
        net = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(64, 64, 3, padding=1)).to(memory_format=torch.channels_last)
        x0 = torch.randn(16, 32, 16, 16, generator=gen).to(memory_format=torch.channels_last)

        def once(bf16: bool) -> float:
            t0 = time.perf_counter()
            x = x0.clone().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = net(x)
            torch.autograd.grad(y.float().square().sum(), x)
            return time.perf_counter() - t0

        for r in range(reps + 1):
            for bf16 in (False, True):
                dt = once(bf16)
                if r:
                    times[bf16].append(dt)
    speedup = min(times[False]) / min(times[True])
    _probe_cache[key] = speedup
    try:  # atomically, so that concurrent processes read a whole file; a read-only home only costs a probe
        path = probe_cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**_read_probe_file(), key: speedup}, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass
    return speedup


def cpu_bf16_fast() -> bool:
    """Whether bf16 is *faster* than fp32 on this CPU for our networks: AMX is present, or
    the CPU has AVX512-BF16 and :func:`bf16_probe_speedup` measured bf16 at least
    ``BF16_PROBE_MIN_SPEEDUP`` faster (``NAE_CPU_BF16=fast|slow`` says it instead)."""
    said = _said_bf16()
    if said:
        return said == "fast"
    if cpu_has_amx():
        return True
    if not cpu_bf16_native():
        return False
    return bf16_probe_speedup() >= BF16_PROBE_MIN_SPEEDUP


def isa_line() -> str:
    """One line naming the CPU and the instruction sets that decide the precision."""
    name = cpu_features().get("cpu_name") or platform.processor() or platform.machine()
    flags = _isa_flags()
    probe = _probe_cache.get(_probe_key())
    probed = f"; bf16 probe {probe:.2f}x as fast as fp32" if probe is not None else ""
    return f"{name} ({platform.machine()}): {', '.join(flags) or 'no AVX2'}; torch kernels: " \
           f"{torch.backends.cpu.get_cpu_capability()}{probed}"


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
    if _said_bf16() == "slow":
        why = "NAE_CPU_BF16=slow says bf16 is slower than fp32 here"
    elif not cpu_bf16_native():
        why = "no native bf16 (no AVX512-BF16/AMX): PyTorch emulates it, about 7x slower than fp32"
    else:
        why = (f"AVX512-BF16 without AMX, and bf16 measured only {bf16_probe_speedup():.2f}x as fast "
               f"as fp32 by nae.speed.bf16_probe_speedup")
    warnings.warn(f"precision bf16 on this CPU ({why}). Use precision fp32 or auto here.", stacklevel=3)


# ---------------------------------------------------------------------------------
# memory format and upsampling

#: run the image networks' activations in channels_last (see the module docstring)
CHANNELS_LAST = os.environ.get("NAE_CHANNELS_LAST", "1") != "0"


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the channels_last memory format if :data:`CHANNELS_LAST` and 4-D.

    A no-op (no copy) when ``x`` already is; its backward converts the gradient back
    to the caller's format, so callers never see the difference."""
    if CHANNELS_LAST and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _interp_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Matrix A (n_out, n_in) of 1-D linear interpolation with align_corners=True."""
    a = torch.zeros(n_out, n_in, dtype=torch.float64)
    if n_in == 1:
        a[:, 0] = 1.0
        return a.float()
    pos = torch.arange(n_out, dtype=torch.float64) * (n_in - 1) / (n_out - 1)
    lo = pos.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    w = pos - lo
    a[torch.arange(n_out), lo] += 1 - w
    a[torch.arange(n_out), hi] += w
    return a.float()


class Upsample2x(nn.Module):
    """Bilinear x2 upsampling with ``align_corners=True``: ``F.interpolate`` on channels_last
    input, else two matrix products (see the module docstring)."""

    def __init__(self, size_in: int):
        super().__init__()
        self.register_buffer("a", _interp_matrix(size_in, 2 * size_in), persistent=False)

    def forward(self, x):
        """(B, C, n, n) -> (B, C, 2n, 2n), n = ``size_in``: bilinear, corners aligned."""
        if x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last):
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        a = self.a.to(x.dtype)
        # (B,C,H,W) -> rows: A @ x, columns: x @ A^T
        return torch.matmul(torch.matmul(a, x), a.t())


# ---------------------------------------------------------------------------------
# convolutions that are matrix products

#: compute the convolutions that are matrix products as such (``NAE_FAST_CONV=0``: off, for A/B timing)
FAST_CONV = os.environ.get("NAE_FAST_CONV", "1") != "0"


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes a convolution whose kernel covers its whole (unpadded,
    undilated, ungrouped) input as a linear layer: (B, C, k, k) -> (B, O, 1, 1)."""

    def forward(self, x):
        """As ``nn.Conv2d``; a full-window convolution runs as ``F.linear`` (see the module docstring)."""
        if (FAST_CONV and x.dim() == 4 and tuple(x.shape[-2:]) == tuple(self.kernel_size) and self.groups == 1
                and self.padding == (0, 0) and self.dilation == (1, 1) and self.padding_mode == "zeros"):
            # flatten in the weight's (C, H, W) order: copies a channels_last input, which is
            # much smaller than the weight (B x C*k*k against O x C*k*k)
            w = self.weight.reshape(self.out_channels, -1)
            return F.linear(x.reshape(x.shape[0], -1), w, self.bias)[:, :, None, None]
        return super().forward(x)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that computes two cases as matrix products: a 1x1 input
    ((B, C, 1, 1) -> (B, O, k, k), a linear layer) and one output channel (a matrix product per
    pixel, then ``F.fold`` adds the overlapping k x k patches).  Stride 1, no padding, no groups
    or dilation; anything else takes the parent's path."""

    def forward(self, x, output_size=None):
        """As ``nn.ConvTranspose2d`` (see the class docstring for the two fast cases)."""
        plain = (FAST_CONV and x.dim() == 4 and output_size is None and self.stride == (1, 1)
                 and self.padding == (0, 0) and self.output_padding == (0, 0) and self.groups == 1
                 and self.dilation == (1, 1))
        if plain and x.shape[-2:] == (1, 1):
            kh, kw = self.kernel_size
            y = torch.matmul(x.reshape(x.shape[0], -1), self.weight.reshape(self.in_channels, -1))
            y = y.view(x.shape[0], self.out_channels, kh, kw)
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        if plain and self.out_channels == 1:
            (b, c, h, w), (kh, kw) = x.shape, self.kernel_size
            cols = torch.matmul(x.permute(0, 2, 3, 1).reshape(b, h * w, c), self.weight.reshape(c, kh * kw))
            y = F.fold(cols.transpose(1, 2), (h + kh - 1, w + kw - 1), (kh, kw))
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        return super().forward(x, output_size)


# ---------------------------------------------------------------------------------
# threads and denormals


def set_cpu_threads(n: Optional[int] = None) -> int:
    """Sets torch's intra-op threads (default ``min(2, cores)``) and returns the number."""
    n = n or min(2, os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def flush_denormals(on: bool = True):
    """Flushes denormal floats (below 1.2e-38) to zero inside the block, where the CPU
    supports it, and gives the process its IEEE denormals back afterwards.  Yields whether
    flushing is on.  Late in MNIST training denormals made an AE step 2.3-2.7x slower on
    our Xeon (``train.flush_denormal``, off by default)."""
    flushed = bool(on) and torch.set_flush_denormal(True)  # False where unsupported
    try:
        yield flushed
    finally:
        if flushed:
            torch.set_flush_denormal(False)
