"""Where the time of one training step goes: a per-op profile of gptbook's GPT, in groups.

The step of ``benchmarks/train_step.py``: GPT-2 architecture (pre-LN, tanh GELU, tied
embeddings, no dropout), a random batch, forward, backward and AdamW (fused on a GPU);
float32 on the CPU, bf16 autocast on a GPU (fp16 with loss scaling where bf16 is not
native), or the ``--precision`` asked for. After warm-up steps, ``--steps`` steps are timed
without the profiler (the median gives tokens/s and the achieved FLOP/s,
``model.flops_per_token()`` × tokens/s), then ``--profile-steps`` steps run under
``torch.profiler``. Every op's self time (on a GPU, the
time of the kernels it launched itself) goes to the first group below that names the op or
one of the ops that called it, so that, say, the zero-filling inside the cross-entropy's
backward counts as cross-entropy; what no group names is "other element-wise" or "other".
The profiler adds its own cost, more for many small ops: compare the total with the step
time measured without it.

Prints a table of milliseconds per step and share per group, with the largest ops of each,
and how close the step comes to the machine's attainable peak (a large matrix product in
the run's precision, ``gptbook.measure.attainable_flops``, measured in the same run): for
the whole step, and for the matrix products alone (their FLOPs as the profiler counts them).

    python benchmarks/profile_step.py [--steps 10] [--profile-steps 3] [--layers 4] [--d 256]
                                      [--heads 4] [--T 256] [--B 8] [--vocab 50257] [--device cuda]
                                      [--precision auto|float32|bfloat16|float16]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import Counter, defaultdict
from datetime import date

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from train_step import add_model_flags, gpt2_config, step_fn  # this folder's script

from gptbook import book
from gptbook.measure import MATMUL_SIZE, attainable_flops, describe_machine, format_flops
from gptbook.model import GPT
from gptbook.precision import PRECISIONS
from gptbook.train import autocast_dtype

#: The groups an op (or one of its callers) can name, tried in this order on its name.
GROUPS = {
    "optimizer (AdamW)": r"^optimizer$|^optimizer\.|adamw",
    "attention": r"scaled_?dot_?product|flash_?attention|efficient_?attention|cudnn_?attention",
    "softmax / cross-entropy": r"softmax|nll_?loss|cross_?entropy",
    "LayerNorm": r"layer_?norm",
    "GELU": r"gelu",
    "matrix products": r"^(aten::)?(mm|addmm|bmm|baddbmm|matmul|linear|_addmm_activation)$"
    r"|^(mm|addmm|bmm|baddbmm)backward\d*$",
}
#: Element-wise and reduction ops: those left to this group when no caller names another.
ELEMENTWISE = re.compile(
    r"^(aten::)?(_foreach_\w+|add|sub|rsub|mul|div|neg|pow|sqrt|rsqrt|exp|log|tanh|lerp|addcmul"
    r"|addcdiv|copy|fill|zero|clone|contiguous|sum|mean|where|masked_fill|clamp|maximum|minimum"
    r"|abs|sign|ones_like|zeros_like|_to_copy)_?(backward\d*)?$"
)
OTHER_ELEMENTWISE, OTHER = "other element-wise", "other"
#: The table's order: the products first, then the rest of the forward and backward passes.
ORDER = [
    "matrix products",
    "attention",
    "softmax / cross-entropy",
    "LayerNorm",
    "GELU",
    OTHER_ELEMENTWISE,
    "optimizer (AdamW)",
    OTHER,
]
WRAPPER = "autograd::engine::evaluate_function: "


def named_group(name: str) -> str | None:
    """The group an op's name belongs to, or None if no group names it."""
    name = name.removeprefix(WRAPPER).lower()
    for group, pattern in GROUPS.items():
        if re.search(pattern, name):
            return group
    return None


def group_of(event) -> str:
    """The first group that names the op or one of its callers; else element-wise or other."""
    caller = event
    while caller is not None:
        if group := named_group(caller.name):
            return group
        caller = caller.cpu_parent
    return OTHER_ELEMENTWISE if ELEMENTWISE.match(event.name.removeprefix(WRAPPER)) else OTHER


def grouped(prof, cuda: bool, steps: int):
    """Milliseconds per step, the largest ops, and the matrix products' FLOPs, by group."""
    ms, ops, flops = Counter(), defaultdict(Counter), 0
    for event in prof.events():
        if event.device_type != DeviceType.CPU or event.is_async:
            continue  # kernels are counted through the ops that launched them
        us = event.self_device_time_total if cuda else event.self_cpu_time_total
        group = group_of(event)
        ms[group] += us / 1e3 / steps
        ops[group][event.name.removeprefix(WRAPPER).removeprefix("aten::")] += us
        if group == "matrix products":
            flops += (event.flops or 0) / steps
    return ms, ops, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_flags(parser, steps=10)
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=["auto", *PRECISIONS])
    args = parser.parse_args()
    args.device = book.device(args.device)
    if min(args.steps, args.profile_steps) < 1:
        parser.error("--steps and --profile-steps must be ≥ 1")
    torch.manual_seed(0)
    book.allow_tf32()
    cuda = torch.device(args.device).type == "cuda"
    model = GPT(gpt2_config(args)).to(args.device)
    ids = torch.randint(args.vocab, (args.B, args.T + 1))
    x, y = ids[:, :-1].to(args.device), ids[:, 1:].to(args.device)
    autocast_to = autocast_dtype(args.device, args.precision)  # None: float32
    step = step_fn(model, x, y, dtype=autocast_to)
    # the ceiling: the same device, the products' precision, measured before and after the steps
    # (the better of the two: a run disturbed by another process reads low, never high)
    dtype = autocast_to or torch.float32
    peak = attainable_flops(args.device, dtype)
    for _ in range(2):  # warm up
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, with_flops=True) as prof:
        for _ in range(args.profile_steps):
            step()
    ms, ops, matmul_flops = grouped(prof, cuda, args.profile_steps)
    peak = max(peak, attainable_flops(args.device, dtype))

    precision = "float32" if dtype == torch.float32 else f"{dtype}".removeprefix("torch.")
    precision += "" if dtype == torch.float32 else " autocast"
    n = MATMUL_SIZE[torch.device(args.device).type]
    where = describe_machine(args.device)
    print(f"{date.today()} · {where} · torch {torch.__version__} · {precision}")
    print(
        f"config: {args.layers} layers, d={args.d}, {args.heads} heads, T={args.T}, B={args.B}, "
        f"vocab {args.vocab:,}; {args.profile_steps} profiled steps after 2 warm-up steps "
        f"and {args.steps} timed ones"
    )
    matmul = f"{str(dtype).removeprefix('torch.')} {n}×{n} matrix product"
    print(
        f"attainable peak: {format_flops(peak)} ({matmul}, best of 10, "
        "before and after the steps)\n"
    )
    kind = "GPU kernel" if cuda else "CPU"
    print(f"| group | {kind} ms per step | share | largest ops |")
    print("|---|---:|---:|---|")
    total = sum(ms.values())
    for group in ORDER:
        largest = ", ".join(name for name, _ in ops[group].most_common(3)) or "–"
        print(f"| {group} | {ms[group]:.1f} | {ms[group] / total:.1%} | {largest} |")
    print(f"| total | {total:.1f} | 100.0% | |")

    tokens_per_s = args.B * args.T / seconds
    achieved = model.flops_per_token() * tokens_per_s
    print(
        f"\nstep without the profiler: median {seconds * 1e3:.1f} ms of {args.steps}, "
        f"{tokens_per_s:,.0f} tokens/s, {format_flops(achieved)} "
        f"= {achieved / peak:.1%} of the attainable peak"
    )
    matmul_ms = ms["matrix products"]
    if matmul_ms > 0:
        rate = matmul_flops / (matmul_ms / 1e3)
        print(
            f"matrix products alone: {matmul_flops / 1e9:.1f} GFLOP per step "
            f"in {matmul_ms:.1f} ms, "
            f"{format_flops(rate)} = {rate / peak:.1%} of the attainable peak"
        )
    rest = [group for group in ORDER if group != "matrix products"]
    rest.sort(key=lambda group: -ms[group])
    shares = ", ".join(f"{group} {ms[group] / total:.0%}" for group in rest[:3])
    print(
        f"outside the matrix products: {1 - matmul_ms / total:.0%} of the profiled time; "
        f"most of it {shares}"
    )


if __name__ == "__main__":
    main()
