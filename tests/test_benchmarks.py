"""The benchmark scripts still run and print their tables (their numbers are recorded in benchmarks/RESULTS.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
    out = subprocess.run(
        [sys.executable, ROOT / "benchmarks" / "train_step.py", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = re.findall(r"^\| (gptbook GPT|HF GPT2LMHeadModel) \| ([\d,]+) \|", out, re.M)
    assert [name for name, _ in rows] == ["gptbook GPT", "HF GPT2LMHeadModel"], out
    assert rows[0][1] == rows[1][1], "the two models must have the same number of parameters"
    assert re.search(r"ratio \(HF time / gptbook time\): \d+\.\d\d", out) and "float32" in out


def test_train_settings_benchmark_prints_a_row_per_setting():
    args = ["--preset", "book-tiny", "--B", "2", "--steps", "1", "--warmup", "1", "--device", "cpu"]
    out = subprocess.run(
        [sys.executable, ROOT / "benchmarks" / "train_settings.py", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = re.findall(r"^\| ([^|]+) \| [\d.]+ \| [\d,]+ \| ([\d.]+)× \|", out, re.M)
    assert [name for name, _ in rows] == [
        "float32, eager",
        "bfloat16 autocast",
        "float32, torch.compile",
        "bfloat16 autocast, torch.compile",
    ], out
    assert rows[0][1] == "1.00"  # the first row is the baseline


def test_import_time_benchmark_times_every_statement():
    out = subprocess.run(
        [sys.executable, ROOT / "benchmarks" / "import_time.py", "--repeats", "1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = re.findall(r"^\| `([^`]+)` \| [\d.]+ \| [\d.]+ \|", out, re.M)
    assert rows[:2] == ["(bare interpreter)", "import gptbook"] and "book.setup()" in rows, out
