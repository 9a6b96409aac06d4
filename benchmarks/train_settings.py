"""What each speed setting of gptbook.train buys: the Trainer's tokens/s, one change at a time.

The same model, data and batch for every row; each row builds a fresh Trainer, runs
warm-up steps (compilation happens there), then times steps one by one (waiting for
the device after each) and reports the median, the speed-up over the first row, the
achieved FLOP/s (``model.flops_per_token()`` × tokens/s) and its share of the machine's
attainable peak in the row's precision (a large matrix product, measured once per
precision in the same run by ``gptbook.measure.attainable_flops``: any device, the CPU
too), and MFU where the device's datasheet peak is known. Chapter 5 describes the settings.

    python benchmarks/train_settings.py [--preset book-small] [--B 32] [--steps 20] [--warmup 3]
                                        [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import torch

from gptbook import book
from gptbook.measure import (
    MATMUL_SIZE,
    attainable_flops,
    describe_machine,
    format_flops,
    fraction_of_peak,
    mfu,
)
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
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: book.device())")
    args = parser.parse_args()
    args.device = book.device(args.device)
    book.allow_tf32()  # as a chapter's book.setup() does
    config = GPTConfig.preset(args.preset, dropout=0.0)
    tokens = args.B * config.block_size
    rows = variants(args.device)
    tf32 = torch.backends.cuda.matmul.allow_tf32  # the same for every row and its ceiling
    dtypes = {
        row["precision"]: autocast_dtype(args.device, row["precision"]) or torch.float32
        for row in rows.values()
    }

    def ceilings() -> dict[str, float]:
        """The attainable peak in each precision the rows use, under the rows' TF32 setting."""
        torch.backends.cuda.matmul.allow_tf32 = tf32
        return {name: attainable_flops(args.device, dtype) for name, dtype in dtypes.items()}

    # measured before and after the rows, the better of the two: a disturbed run reads low
    peaks = ceilings()
    seconds = {}
    for name, overrides in rows.items():
        torch.manual_seed(0)
        torch.backends.cuda.matmul.allow_tf32 = tf32  # every row starts from the same settings
        model = GPT(config).to(args.device)
        cfg = TrainConfig(
            max_steps=args.steps + args.warmup, batch_size=args.B, warmup_steps=1, **overrides
        )
        seconds[name] = time_steps(Trainer(model, cfg), args.steps, args.warmup)
    peaks = {
        name: max(peak, again) for (name, peak), again in zip(peaks.items(), ceilings().values())
    }

    print(f"{date.today()} · {describe_machine(args.device)} · torch {torch.__version__}")
    print(
        f"{args.preset}: {config.n_layer} layers, d={config.n_embd}, T={config.block_size}, "
        f"B={args.B}, vocab {config.vocab_size}; median of {args.steps} steps after "
        f"{args.warmup} warm-up steps"
    )
    n = MATMUL_SIZE[torch.device(args.device).type]
    shown_peaks = ", ".join(f"{name} {format_flops(peak)}" for name, peak in peaks.items())
    print(
        f"attainable peak: {shown_peaks} ({n}×{n} matrix products, best of 10, before and after "
        "the rows); each row against its own precision's\n"
    )
    print(
        "| setting | median step (ms) | tokens/s | speed-up | achieved FLOP/s "
        "| of attainable peak | MFU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    baseline = seconds["float32, eager"]
    for name, overrides in rows.items():
        tokens_per_s = tokens / seconds[name]
        achieved = model.flops_per_token() * tokens_per_s  # the same model in every row
        share = fraction_of_peak(model, tokens_per_s, peaks[overrides["precision"]])
        util = mfu(model, tokens_per_s, args.device)
        shown = f"{util:.1%}" if util is not None else "n/a"
        print(
            f"| {name} | {seconds[name] * 1e3:.1f} | {tokens_per_s:,.0f} "
            f"| {baseline / seconds[name]:.2f}× | {format_flops(achieved)} | {share:.1%} "
            f"| {shown} |"
        )


if __name__ == "__main__":
    main()
