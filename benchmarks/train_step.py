"""One training step of gptbook's GPT against Hugging Face's GPT2LMHeadModel.

Same architecture (GPT-2: pre-LN, tanh GELU, tied embeddings, no dropout), same
batch, same precision (float32), same optimizer (AdamW), in one process; the two
models alternate so that both see the same machine state. Prints a table of median
step times, tokens per second, and the ratio (HF time / gptbook time: above 1 means
gptbook is faster).

    python benchmarks/train_step.py [--steps 20] [--layers 4] [--d 256] [--heads 4] [--T 256] [--B 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date

import torch

from gptbook.model import GPT, GPTConfig


def hf_model(cfg: GPTConfig):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu_new",
    )  # fmt: skip
    return GPT2LMHeadModel(hf_cfg)


def step_fn(model, x, y, hf: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss = model(input_ids=x, labels=x).loss if hf else model(x, y)[1]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in [("steps", 20), ("layers", 4), ("d", 256), ("heads", 4), ("T", 256), ("B", 8), ("vocab", 50_257)]:
        parser.add_argument(f"--{flag}", type=int, default=default)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=args.vocab, block_size=args.T, n_layer=args.layers, n_head=args.heads,
                    n_embd=args.d, dropout=0.0, norm="pre", scaled_residual_init=True)  # fmt: skip
    ids = torch.randint(args.vocab, (args.B, args.T + 1))
    x, y = ids[:, :-1], ids[:, 1:]  # HF shifts its labels inside the model; it gets x as labels
    models = {"gptbook GPT": GPT(cfg), "HF GPT2LMHeadModel": hf_model(cfg)}
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    steps = {name: step_fn(m, x, y, hf=name.startswith("HF")) for name, m in models.items()}
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
    print(f"{date.today()} · {platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
          f"torch {torch.__version__} · float32 · {torch.get_num_threads()} threads")
    print(f"config: {args.layers} layers, d={args.d}, {args.heads} heads, T={args.T}, B={args.B}, "
          f"vocab {args.vocab:,}; median of {args.steps} steps after 2 warm-up steps\n")
    print("| model | parameters | median step (ms) | tokens/s |")
    print("|---|---:|---:|---:|")
    for name in models:
        print(f"| {name} | {n_params[name]:,} | {median[name] * 1e3:.1f} | {args.B * args.T / median[name]:,.0f} |")
    print(f"\nratio (HF time / gptbook time): {median['HF GPT2LMHeadModel'] / median['gptbook GPT']:.2f}")


if __name__ == "__main__":
    main()
