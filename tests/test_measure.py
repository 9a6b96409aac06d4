"""gptbook.measure: wall time, peak memory measured in a fresh process, and MFU."""

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


def test_mfu_needs_a_known_peak(monkeypatch):
    from gptbook.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=84, block_size=32, n_layer=2, n_head=2, n_embd=32))
    assert measure.peak_flops("cpu") is None and measure.mfu(model, 1e4, "cpu") is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert measure.peak_flops("cuda") == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert measure.mfu(model, 1e6, "cuda") == pytest.approx(model.flops_per_token() * 1e6 / 989e12)
    for name, tflops in [
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA L4", 121),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("Tesla T4", 65),
        ("Tesla V100-SXM2-16GB", 125),
        ("Tesla V100-PCIE-32GB", 112),
        ("Tesla V100S-PCIE-32GB", 130),
    ]:
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert measure.peak_flops("cuda") == tflops * 1e12, name
    for name in ["Some Future GPU", "NVIDIA L40S"]:  # an L40S is not an L4: no guess
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert measure.peak_flops("cuda") is None, name
