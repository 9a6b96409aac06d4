"""One training step of gptbook's GPT against Hugging Face's GPT2LMHeadModel.

Same architecture (GPT-2: pre-LN, tanh GELU, tied embeddings, no dropout), same
batch, same precision (float32 on the CPU; on a GPU bf16 autocast, or fp16 with loss
scaling where bf16 is not native, as gptbook.train chooses), same optimizer
(AdamW, fused on a GPU), in one process; the two models alternate so that both see
the same machine state. Prints a table of median step times, tokens per second, the
achieved FLOP/s (``model.flops_per_token()`` × tokens/s) and its share of the machine's
attainable peak (a large matrix product in the run's precision, measured in the same run
by ``gptbook.measure.attainable_flops``: any device, the CPU too), MFU against the
datasheet peak on a known GPU, and the ratio (HF time / gptbook time: above 1 means
gptbook is faster).

    python benchmarks/train_step.py [--steps 20] [--layers 4] [--d 256] [--heads 4] [--T 256]
                                    [--B 8] [--vocab 50257] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import torch
from torch.profiler import record_function

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
from gptbook.train import autocast, autocast_dtype


def hf_model(cfg: GPTConfig):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu_new",
    )
    return GPT2LMHeadModel(hf_cfg)


def step_fn(model, x, y, hf: bool = False, dtype: torch.dtype | None | str = "auto"):
    """One training step (AdamW, fused on a GPU) of ``model`` on the batch ``x``, ``y``, in
    ``dtype`` autocast ("auto": as gptbook.train chooses for the device); the optimiser's part
    is marked for the profiler (benchmarks/profile_step.py)."""
    cuda = x.is_cuda
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    dtype = autocast_dtype(x.device) if dtype == "auto" else dtype  # the same for both models
    scaler = torch.amp.GradScaler(x.device.type, enabled=dtype == torch.float16)

    def step():
        with autocast(x.device, dtype):
            loss = model(input_ids=x, labels=x).loss if hf else model(x, y)[1]
        scaler.scale(loss).backward()
        with record_function("optimizer"):
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()

    return step


def add_model_flags(parser: argparse.ArgumentParser, steps: int) -> None:
    """The flags train_step.py and profile_step.py share: steps, the model, the batch, device."""
    model = [("layers", 4), ("d", 256), ("heads", 4), ("T", 256), ("B", 8), ("vocab", 50_257)]
    for flag, default in [("steps", steps), *model]:
        parser.add_argument(f"--{flag}", type=int, default=default)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: book.device())")


def gpt2_config(args: argparse.Namespace) -> GPTConfig:
    """GPT-2's architecture (pre-LN, scaled residual init), no dropout, at the flags' size."""
    return GPTConfig(
        vocab_size=args.vocab,
        block_size=args.T,
        n_layer=args.layers,
        n_head=args.heads,
        n_embd=args.d,
        dropout=0.0,
        norm="pre",
        scaled_residual_init=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_flags(parser, steps=20)
    args = parser.parse_args()
    args.device = book.device(args.device)
    torch.manual_seed(0)
    book.allow_tf32()
    cfg = gpt2_config(args)
    ids = torch.randint(args.vocab, (args.B, args.T + 1))
    x, y = ids[:, :-1].to(args.device), ids[:, 1:].to(args.device)  # HF shifts its labels itself
    models = {
        "gptbook GPT": GPT(cfg).to(args.device),
        "HF GPT2LMHeadModel": hf_model(cfg).to(args.device),
    }
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    steps = {name: step_fn(m, x, y, hf=name.startswith("HF")) for name, m in models.items()}
    # the ceiling: the same device, the products' precision, measured before and after the steps
    # (the better of the two: a run disturbed by another process reads low, never high)
    dtype = autocast_dtype(args.device)
    peak = attainable_flops(args.device, dtype or torch.float32)
    for fn in steps.values():  # warm up
        fn()
        fn()
    times = {name: [] for name in models}
    for _ in range(args.steps):
        for name, fn in steps.items():  # alternate: both share the machine's state
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    peak = max(peak, attainable_flops(args.device, dtype or torch.float32))
    precision = "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
    where = describe_machine(args.device)
    print(f"{date.today()} · {where} · torch {torch.__version__} · {precision}")
    print(
        f"config: {args.layers} layers, d={args.d}, {args.heads} heads, T={args.T}, B={args.B}, "
        f"vocab {args.vocab:,}; median of {args.steps} steps after 2 warm-up steps"
    )
    n = MATMUL_SIZE[torch.device(args.device).type]
    matmul = f"{str(dtype or torch.float32).removeprefix('torch.')} {n}×{n} matrix product"
    print(
        f"attainable peak: {format_flops(peak)} ({matmul}, best of 10, "
        "before and after the steps)\n"
    )
    print(
        "| model | parameters | median step (ms) | tokens/s | achieved FLOP/s "
        "| of attainable peak | MFU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    flops_model = models["gptbook GPT"]  # the same FLOPs for both: the same architecture
    for name in models:
        tokens_per_s = args.B * args.T / median[name]
        achieved = flops_model.flops_per_token() * tokens_per_s
        share = fraction_of_peak(flops_model, tokens_per_s, peak)
        util = mfu(flops_model, tokens_per_s, args.device)
        shown = f"{util:.1%}" if util is not None else "n/a (no known peak)"
        print(
            f"| {name} | {n_params[name]:,} | {median[name] * 1e3:.1f} | {tokens_per_s:,.0f} "
            f"| {format_flops(achieved)} | {share:.1%} | {shown} |"
        )
    ratio = median["HF GPT2LMHeadModel"] / median["gptbook GPT"]
    print(f"\nratio (HF time / gptbook time): {ratio:.2f}")


if __name__ == "__main__":
    main()
