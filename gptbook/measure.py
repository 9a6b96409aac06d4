"""Measuring what code costs: wall time, and peak memory in a fresh process.

Introduced in chapter 1 (the serial cost of generation) and used wherever the book
times or weighs something. These measure; they never assert a speed (speed targets
live in ``benchmarks/``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable


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
