"""Measuring what code costs: wall time, peak memory in a fresh process, and MFU.

Introduced in chapter 1 (the serial cost of generation) and used wherever the book
times or weighs something; chapter 5 adds model FLOPs utilisation (MFU) on a GPU.
These measure; they never assert a speed (speed targets live in ``benchmarks/``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` runs of ``fn()``, in seconds (the least disturbed run)."""
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    best = float("inf")
    for _ in range(repeats):
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
                    return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
            except (OSError, StopIteration):
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


#: Dense bf16 tensor-core peaks in TFLOP/s (fp16 for the T4 and V100s, which have no bf16), from NVIDIA's
#: datasheets, without sparsity. Looked up by name, never assumed: unknown devices get no MFU. As is
#: customary, MFU is quoted against this 16-bit peak whatever precision a run uses.
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
