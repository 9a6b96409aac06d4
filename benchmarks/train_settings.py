"""What each speed setting of gptbook.train buys: tokens/s of the Trainer with one setting changed at a time.

The same model, data and batch for every row; each row builds a fresh Trainer, runs
warm-up steps (compilation happens there), then times steps one by one (waiting for
the device after each) and reports the median, the speed-up over the first row, and
MFU where the device's peak is known. Chapter 5 describes the settings.

    python benchmarks/train_settings.py [--preset book-small] [--B 32] [--steps 20] [--warmup 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date

import torch

from gptbook.measure import mfu
from gptbook.model import GPT, GPTConfig
from gptbook.train import TrainConfig, Trainer, autocast_dtype


def variants(device: str) -> dict[str, dict]:
    """The rows: TrainConfig overrides, each against float32 eager."""
    rows = {"float32, eager": dict(precision="float32")}
    mixed = autocast_dtype(device, "auto") or torch.bfloat16  # the CPU autocasts to bfloat16
    name = str(mixed).removeprefix("torch.")
    rows[f"{name} autocast"] = dict(precision=name)
    rows["float32, torch.compile"] = dict(precision="float32", compile=True)
    rows[f"{name} autocast, torch.compile"] = dict(precision=name, compile=True)
    return rows


def time_steps(trainer: Trainer, steps: int, warmup: int) -> float:
    """Median seconds per optimiser step, after ``warmup`` untimed steps."""
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        trainer.train_step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.train_step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="book-small")
    for flag, default in [("B", 32), ("steps", 20), ("warmup", 3)]:
        parser.add_argument(f"--{flag}", type=int, default=default)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    config = GPTConfig.preset(args.preset, dropout=0.0)
    tokens = args.B * config.block_size
    where = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else (
            f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · {torch.get_num_threads()} threads"
        )
    )
    print(f"{date.today()} · {where} · torch {torch.__version__}")
    print(
        f"{args.preset}: {config.n_layer} layers, d={config.n_embd}, T={config.block_size}, B={args.B}, "
        f"vocab {config.vocab_size}; median of {args.steps} steps after {args.warmup} warm-up steps\n"
    )
    print("| setting | median step (ms) | tokens/s | speed-up | MFU |")
    print("|---|---:|---:|---:|---:|")
    baseline = None
    for name, overrides in variants(args.device).items():
        torch.manual_seed(0)
        model = GPT(config).to(args.device)
        cfg = TrainConfig(
            max_steps=args.steps + args.warmup, batch_size=args.B, warmup_steps=1, **overrides
        )
        seconds = time_steps(Trainer(model, cfg), args.steps, args.warmup)
        baseline = baseline or seconds
        util = mfu(model, tokens / seconds, args.device)
        shown = f"{util:.1%}" if util is not None else "n/a"
        print(
            f"| {name} | {seconds * 1e3:.1f} | {tokens / seconds:,.0f} | {baseline / seconds:.2f}× | {shown} |"
        )


if __name__ == "__main__":
    main()
