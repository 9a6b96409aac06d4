"""Measuring what code costs: wall time, peak memory in a fresh process, and MFU.

Introduced in chapter 1 (the serial cost of generation) and used wherever the book
times or weighs something; chapter 5 adds model FLOPs utilisation (MFU) on a GPU, against
the datasheet peak, and on any device against the peak the machine attains in the same run
(:func:`attainable_flops`, the CPU included). These measure; they never assert a speed
(speed targets live in ``benchmarks/``).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import book
from .checks import whole

if TYPE_CHECKING:  # pragma: no cover
    import torch


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` runs of ``fn()``, in seconds (the least disturbed run; a
    fast dev run makes fewer)."""
    repeats = whole("repeats", repeats)
    best = float("inf")
    for _ in range(book.cap(repeats)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_memory_mb(setup: str, statement: str) -> float:
    """How much the peak resident memory grows (MB) while ``statement`` runs after ``setup``.

    Both are Python source, run in a fresh interpreter so that nothing else shares the
    peak. Resolution is the operating system's page accounting: reliable for tens of MB.
    """
    code = textwrap.dedent(
        f"""
        import resource, sys

        def peak_bytes():
            # Linux: the process's own high-water mark. (ru_maxrss would start from the parent's
            # peak, which a fresh child inherits across fork and exec.)
            try:
                with open("/proc/self/status") as status:
                    hwm = [line for line in status if line.startswith("VmHWM:")]
                return int(hwm[0].split()[1]) * 1024
            except (OSError, IndexError):
                return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
        {setup}
        before = peak_bytes()
        {statement}
        print((peak_bytes() - before) / 2**20)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the measured code failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


#: Dense bf16 tensor-core peaks in TFLOP/s (fp16 for the T4 and V100s, which have no bf16), from
#: NVIDIA's datasheets, without sparsity. Looked up by name, never assumed: unknown devices get no
#: MFU. As is customary, MFU is quoted against this 16-bit peak whatever precision a run uses.
PEAK_TFLOPS = {
    "H100 PCIe": 756,
    "H100 NVL": 835,
    "H100": 989,
    "H200 NVL": 835,
    "H200": 989,
    "A100": 312,
    "L4": 121,
    "T4": 65,
    "V100-PCIE": 112,
    "V100S": 130,
    "V100": 125,
}


def peak_flops(device: str | torch.device) -> float | None:
    """The peak FLOP/s of a CUDA device, from :data:`PEAK_TFLOPS` by its name; None if unknown."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if re.search(rf"\b{re.escape(key)}\b", name):  # whole words: "L4" is not the "L40S"
            return PEAK_TFLOPS[key] * 1e12
    return None


def mfu(model, tokens_per_second: float, device: str | torch.device) -> float | None:
    """Model FLOPs utilisation of a training run: ``model.flops_per_token()`` × tokens/s over the
    device's peak (chapter 5); None where the peak is unknown."""
    peak = peak_flops(device)
    return None if peak is None else model.flops_per_token() * tokens_per_second / peak


#: The side of the square product :func:`attainable_flops` times, by device type: large enough to
#: keep every core (or every tensor core) busy, small enough to take well under a second
#: (2048: 17 GFLOP, about 0.1 s on two CPU cores; 8192: 1.1 TFLOP, about 2 ms on an H100).
MATMUL_SIZE = {"cpu": 2048, "cuda": 8192, "mps": 4096}

#: The dtypes it times: those every backend multiplies (no float8, no integers).
MATMUL_DTYPES = ("float64", "float32", "bfloat16", "float16")


def attainable_flops(
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    n: int | None = None,
    repeats: int = 5,
) -> float:
    """The FLOP/s this machine attains now on a dense ``(n, n) @ (n, n)`` product (chapter 5).

    Measured on ``device`` in ``dtype`` (default float32): two untimed products to warm up (they
    load the kernels, wake the cores, raise the GPU's clocks), then the fastest of ``repeats``
    timed ones, each waiting for the GPU to finish (``torch.cuda.synchronize``). A product counts
    2·n³ FLOPs (a multiply and an add per term); ``n`` defaults to :data:`MATMUL_SIZE`.

    Why it is a fair ceiling for a training step: nearly all of a Transformer's FLOPs are matrix
    products, and a large square product is the most efficient of them (every loaded number is
    reused n times), run by the same library (MKL or oneDNN on a CPU, cuBLAS on a GPU), with
    the same thread count, clocks and precision settings (TF32 for float32 on a GPU if
    ``torch.backends.cuda.matmul.allow_tf32`` is on) as the run it is measured beside. So a step
    reaches it only if it did nothing but large products; what the step loses to smaller
    products, attention, normalisation, element-wise work and the optimiser shows as the gap.
    Unlike the datasheet peak (:func:`peak_flops`) it exists on every device, the CPU included;
    it is a peak this machine really reaches, below the datasheet's, so a run's share of it reads
    higher than its MFU. The inputs come from a private generator: measuring leaves the global
    random state (and so a seeded run's numbers) untouched.
    """
    import torch

    try:
        where = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'") from error
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if where.type not in available:
        raise ValueError(f"attainable_flops measures 'cpu', 'cuda' or 'mps', not {device!r}")
    if not available[where.type]:
        raise ValueError(f"no {where.type} device on this machine: use device='cpu'")
    if where.type == "cuda" and (where.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"no {where}: this machine has {torch.cuda.device_count()} CUDA devices")
    dtype = torch.float32 if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or str(dtype).removeprefix("torch.") not in MATMUL_DTYPES:
        names = ", ".join(f"torch.{name}" for name in MATMUL_DTYPES)
        raise ValueError(f"dtype must be one of {names}, got {dtype!r}")
    n = MATMUL_SIZE[where.type] if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    generator = torch.Generator(where).manual_seed(0)
    a, b = (torch.randn(n, n, device=where, dtype=dtype, generator=generator) for _ in range(2))
    out = torch.empty(n, n, device=where, dtype=dtype)

    def product() -> None:
        torch.mm(a, b, out=out)
        if where.type == "cuda":  # the GPU runs asynchronously: wait for it to finish
            torch.cuda.synchronize(where)
        elif where.type == "mps":
            torch.mps.synchronize()

    product()  # warm-up: kernels loaded, cores awake, GPU clocks up
    product()
    return 2 * n**3 / best_time(product, repeats)


def fraction_of_peak(model, tokens_per_second: float, peak: float) -> float:
    """The share of ``peak`` FLOP/s a training run achieves: ``model.flops_per_token()`` ×
    tokens/s over ``peak`` (chapter 5).

    Over :func:`attainable_flops` it says how close a run comes to the machine's own limit, on
    any device; over :func:`peak_flops` it is :func:`mfu`.
    """
    if not peak > 0 or peak == float("inf"):
        raise ValueError(f"peak must be a positive, finite FLOP/s, got {peak}")
    if not tokens_per_second >= 0:
        raise ValueError(f"tokens_per_second must be ≥ 0, got {tokens_per_second}")
    return model.flops_per_token() * tokens_per_second / peak


def format_flops(flops: float) -> str:
    """A FLOP/s figure in readable units: ``"181.9 GFLOP/s"``, ``"745.3 TFLOP/s"``."""
    for unit, scale in [("PFLOP/s", 1e15), ("TFLOP/s", 1e12), ("GFLOP/s", 1e9), ("MFLOP/s", 1e6)]:
        if flops >= scale:
            return f"{flops / scale:.1f} {unit}"
    return f"{flops:.1f} FLOP/s"


def describe_machine(device: str | torch.device = "cpu") -> str:
    """Where a measurement runs, in one line: the GPU's name, or the CPU's model, its vector
    instructions, its cores and the threads PyTorch uses (the benchmarks print it)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            ]
        model = names[0] if names else model
    except OSError:  # not Linux
        pass
    simd = torch.backends.cpu.get_cpu_capability()
    return f"{model} · {simd} · {os.cpu_count()} CPUs · {torch.get_num_threads()} threads"


def saved_tensor_bytes(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Bytes of the activations autograd keeps from one forward pass of ``model(*inputs)`` for
    the backward pass (chapter 7): every tensor saved for backward, each storage counted once,
    the model's own weights left out. Measured with ``torch.autograd.graph.saved_tensors_hooks``."""
    import torch

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}  # storage address -> bytes

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(*inputs)
    return sum(kept.values())
