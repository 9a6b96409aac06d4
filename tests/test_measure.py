"""gptbook.measure: wall time, peak memory in a fresh process, MFU and the attainable peak."""

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


def test_attainable_flops_times_a_square_product(monkeypatch):
    state = torch.random.get_rng_state()
    for dtype in [torch.float32, torch.bfloat16]:
        flops = measure.attainable_flops("cpu", dtype, n=128, repeats=2)
        assert isinstance(flops, float) and 0 < flops < float("inf"), dtype
    assert measure.attainable_flops(torch.device("cpu"), n=1, repeats=1) > 0
    assert torch.equal(torch.random.get_rng_state(), state), (
        "measuring must not draw from torch's RNG"
    )
    timed = []  # a product counts 2·n³ FLOPs, over the best of `repeats` timed runs
    monkeypatch.setattr(measure, "best_time", lambda fn, repeats: timed.append(repeats) or 0.5)
    assert measure.attainable_flops("cpu", n=64, repeats=3) == 2 * 64**3 / 0.5 and timed == [3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(device="gpu"), "unknown device 'gpu'"),
        (dict(device="cuda:x"), "unknown device"),
        (dict(device="meta"), "measures 'cpu', 'cuda' or 'mps'"),
        (dict(n=0), "n must be an integer ≥ 1"),
        (dict(n=2.5), "n must be an integer ≥ 1"),
        (dict(repeats=0), "repeats must be ≥ 1"),
        (dict(dtype=torch.int64), "dtype must be one of"),
        (dict(dtype="float32"), "dtype must be one of"),
    ],
)
def test_attainable_flops_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure.attainable_flops(**kwargs)


def test_attainable_flops_names_a_missing_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no cuda device on this machine: use device='cpu'"):
        measure.attainable_flops("cuda")


def test_fraction_of_peak_is_achieved_flops_over_the_peak(monkeypatch):
    from gptbook.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=84, block_size=32, n_layer=2, n_head=2, n_embd=32))
    achieved = model.flops_per_token() * 1e4
    assert measure.fraction_of_peak(model, 1e4, achieved) == pytest.approx(1.0)
    assert measure.fraction_of_peak(model, 1e4, 4 * achieved) == pytest.approx(0.25)
    assert measure.fraction_of_peak(model, 0, achieved) == 0
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4")
    assert measure.fraction_of_peak(model, 1e6, measure.peak_flops("cuda")) == pytest.approx(
        measure.mfu(model, 1e6, "cuda")
    )  # over the datasheet peak it is MFU
    for peak in [0, -1.0, float("inf"), float("nan")]:
        with pytest.raises(ValueError, match="peak must be a positive, finite FLOP/s"):
            measure.fraction_of_peak(model, 1e4, peak)
    for tokens_per_second in [-1.0, float("nan")]:
        with pytest.raises(ValueError, match="tokens_per_second must be ≥ 0"):
            measure.fraction_of_peak(model, tokens_per_second, 1e12)


def test_format_flops_and_describe_machine():
    assert measure.format_flops(1.819e11) == "181.9 GFLOP/s"
    assert measure.format_flops(7.453e14) == "745.3 TFLOP/s"
    assert (
        measure.format_flops(2.5e6) == "2.5 MFLOP/s" and measure.format_flops(12) == "12.0 FLOP/s"
    )
    line = measure.describe_machine("cpu")
    assert line.endswith(f"CPUs · {torch.get_num_threads()} threads"), line
