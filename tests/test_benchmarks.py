"""The benchmark scripts still run and print their tables (benchmarks/RESULTS.md records them)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str) -> str:
    """What ``benchmarks/<script> args`` prints (it must exit 0)."""
    command = [sys.executable, ROOT / "benchmarks" / script, *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


RATE = r"[\d.]+ [MGTP]?FLOP/s"  # as gptbook.measure.format_flops writes a FLOP/s figure
PEAK_LINE = rf"^attainable peak: .*{RATE}.*matrix product"


def test_train_step_benchmark_compares_equal_models():
    args = [
        "--steps",
        "1",
        "--layers",
        "1",
        "--d",
        "32",
        "--heads",
        "2",
        "--T",
        "16",
        "--B",
        "2",
        "--vocab",
        "84",
        "--device",
        "cpu",
    ]
    out = run_benchmark("train_step.py", *args)
    rows = re.findall(r"^\| (gptbook GPT|HF GPT2LMHeadModel) \| ([\d,]+) \|", out, re.M)
    assert [name for name, _ in rows] == ["gptbook GPT", "HF GPT2LMHeadModel"], out
    assert rows[0][1] == rows[1][1], "the two models must have the same number of parameters"
    assert re.search(r"ratio \(HF time / gptbook time\): \d+\.\d\d", out) and "float32" in out
    # the achieved FLOP/s, its share of the peak measured in the run, and MFU (no peak on a CPU)
    assert re.search(PEAK_LINE, out, re.M), out
    assert "| achieved FLOP/s | of attainable peak | MFU |" in out
    shares = re.findall(
        rf"^\| (?:gptbook|HF) .* \| {RATE} \| ([\d.]+)% \| n/a \(no known peak\) \|$", out, re.M
    )
    assert len(shares) == 2, out


def test_train_settings_benchmark_prints_a_row_per_setting():
    args = ["--preset", "book-tiny", "--B", "2", "--steps", "1", "--warmup", "1", "--device", "cpu"]
    out = run_benchmark("train_settings.py", *args)
    rows = re.findall(r"^\| ([^|]+) \| [\d.]+ \| [\d,]+ \| ([\d.]+)× \|", out, re.M)
    assert [name for name, _ in rows] == [
        "float32, eager",
        "bfloat16 autocast",
        "float32, torch.compile",
        "bfloat16 autocast, torch.compile",
    ], out
    assert rows[0][1] == "1.00"  # the first row is the baseline
    # each row's share of the attainable peak in its own precision, both measured in the run
    assert re.search(rf"^attainable peak: float32 {RATE}, bfloat16 {RATE} ", out, re.M), out
    shares = re.findall(rf"× \| {RATE} \| ([\d.]+)% \| n/a \|$", out, re.M)
    assert len(shares) == 4, out


def test_import_time_benchmark_times_every_statement():
    out = run_benchmark("import_time.py", "--repeats", "1")
    rows = re.findall(r"^\| `([^`]+)` \| [\d.]+ \| [\d.]+ \|", out, re.M)
    assert rows[:2] == ["(bare interpreter)", "import gptbook"] and "book.setup()" in rows, out


def test_profile_step_benchmark_groups_the_step_time():
    args = ["--steps", "1", "--profile-steps", "1", "--layers", "1", "--d", "32", "--heads", "2"]
    args += ["--T", "16", "--B", "2", "--vocab", "84", "--device", "cpu"]
    out = run_benchmark("profile_step.py", *args)
    assert re.search(PEAK_LINE, out, re.M) and "float32" in out, out
    assert "| group | CPU ms per step | share | largest ops |" in out
    rows = re.findall(r"^\| ([^|]+) \| ([\d.]+) \| ([\d.]+)% \|([^|]*)\|$", out, re.M)
    groups = [group for group, *_ in rows]
    assert groups == [
        "matrix products",
        "attention",
        "softmax / cross-entropy",
        "LayerNorm",
        "GELU",
        "other element-wise",
        "optimizer (AdamW)",
        "other",
        "total",
    ], out
    ms = {group: float(value) for group, value, *_ in rows}
    shares = [float(share) for _, _, share, _ in rows[:-1]]
    assert ms["total"] == pytest.approx(sum(ms.values()) - ms["total"], abs=0.05 * len(shares))
    assert sum(shares) == pytest.approx(100, abs=0.1 * len(shares)), out
    largest = {group: ops for group, _, _, ops in rows}  # each group holds the ops it names
    for group, ops in [
        ("matrix products", r"\bmm\b|addmm"),
        ("attention", r"scaled_dot_product"),
        ("softmax / cross-entropy", r"softmax|nll_loss|cross_entropy"),
        ("LayerNorm", r"layer_norm"),
        ("GELU", r"gelu"),
        ("optimizer (AdamW)", r"AdamW|optimizer"),
    ]:
        assert re.search(ops, largest[group]), f"{group} should hold {ops}:\n{out}"
    assert re.search(
        rf"^step without the profiler: .* {RATE} = [\d.]+% of the attainable", out, re.M
    )
    assert re.search(rf"^matrix products alone: [\d.]+ GFLOP per step .* {RATE}", out, re.M), out


def test_bpe_benchmark_compares_with_hugging_face_and_tiktoken():
    args = ["--vocab", "300", "--chars", "20000", "--val-chars", "5000", "--long", "2000"]
    out = run_benchmark("bpe.py", *args, "--repeats", "1")
    number = r"[\d.,]+"
    rows = re.findall(rf"^\| ([^|]+) \| {number} \| ({number}) \|$", out, re.M)
    assert [name for name, _ in rows] == [
        "gptbook `ByteBPE.train`",
        "Hugging Face `tokenizers` BpeTrainer",
    ], out
    assert rows[1][1] == "1.00"  # the peer is the baseline
    rows = re.findall(rf"^\| ([^|]+) \| {number} \| {number} \| ({number}) \|$", out, re.M)
    assert [name for name, _ in rows] == [
        "tiktoken (Rust)",
        "gptbook `ByteBPE`, first pass",
        "gptbook `ByteBPE`, warm cache",
        '16,000 × "a"',
        "2,000 letters, no whitespace",
    ], out
    assert rows[0][1] == "1.0" and "vocabulary 300" in out and "tokenizers " in out


def test_generate_benchmark_prints_a_row_per_setting():
    args = ["--preset", "book-tiny", "--prompt", "4", "--new", "4", "--batches", "1", "2"]
    out = run_benchmark("generate.py", *args, "--repeats", "1")
    rows = re.findall(
        r"^\| (\d) \| (yes|no) \| (greedy|sampled) \| [\d,]+ \| [\d,]+ \| \d+\.\d\d \|$", out, re.M
    )
    assert len(rows) == 8, out
    assert {(b, c, d) for b, c, d in rows} == {
        (b, c, d) for b in "12" for c in ("yes", "no") for d in ("greedy", "sampled")
    }


def test_chapter_times_lists_every_chapter_and_runs_one():
    out = run_benchmark("chapter_times.py", "--no-run")
    rows = re.findall(r"^\| (\d+)\. .* \| (\d+) \| not run \|$", out, re.M)
    chapters = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    assert [int(n) for n, _ in rows] == [int(p.name[:2]) for p in chapters], out
    assert all(int(minutes) >= 5 for _, minutes in rows), "a chapter reads in minutes"
    out = run_benchmark("chapter_times.py", "--chapters", "00", "--threads", "1")
    assert re.search(r"^\| 0\. .* \| \d+ \| \d+ \|$", out, re.M), out
