"""gptbook.measure: wall time and peak memory, measured in a fresh process."""

from __future__ import annotations

import pytest
import torch

from gptbook import measure


def test_best_time_is_the_fastest_run():
    calls = []
    assert measure.best_time(lambda: calls.append(1), repeats=4) >= 0 and len(calls) == 4
    with pytest.raises(ValueError, match="repeats"):
        measure.best_time(lambda: None, repeats=0)


def test_peak_memory_sees_an_allocation_even_from_a_large_parent():
    ballast = torch.ones(50_000_000)  # 200 MB in this process, which the child must not inherit
    setup = "import torch"
    small = measure.peak_memory_mb(setup, "x = torch.ones(1_000_000)")  # 4 MB
    large = measure.peak_memory_mb(setup, "x = torch.ones(40_000_000)")  # 160 MB
    assert small < 20 and 140 < large < 200
    del ballast
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        measure.peak_memory_mb(setup, "1 / 0")
