"""Generation speed: gptbook's ``sampling.generate`` against transformers' ``generate``.

One network for both: gptbook's GPT, written with ``to_hf`` (chapter 7) and loaded by
transformers' GPT2LMHeadModel; greedy runs are checked to give the same tokens. For each batch
size, with and without the KV cache, greedy and sampled (temperature 0.8, top-k 50, top-p 0.95),
the two run alternately in one process. The table gives the median tokens/s (new tokens × batch
/ wall time, prompt included) and the ratio gptbook / transformers (above 1: gptbook is faster).

    python benchmarks/generate.py [--preset book-medium] [--prompt 16] [--new 128]
                                  [--batches 1 8] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from gptbook import book, sampling
from gptbook.measure import describe_machine
from gptbook.model import GPT, GPTConfig

SAMPLED = dict(temperature=0.8, top_k=50, top_p=0.95)


def models(preset: str, device: str):
    """gptbook's GPT of ``preset``'s shape (pre-LN, as GPT-2: what to_hf writes), no dropout, and
    the same weights in transformers."""
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    ours = GPT(GPTConfig.preset(preset, norm="pre", dropout=0.0)).eval()
    with tempfile.TemporaryDirectory() as folder:
        theirs = GPT2LMHeadModel.from_pretrained(ours.to_hf(Path(folder) / "m")).eval()
    theirs.generation_config.eos_token_id = None  # every run makes all its new tokens
    theirs.generation_config.pad_token_id = 0
    return ours.to(device), theirs.to(device)


def runners(ours, theirs, prompt: torch.Tensor, new: int, cache: bool, sampled: bool):
    """Two functions that each generate ``new`` tokens after ``prompt``: gptbook's and HF's."""
    mask = torch.ones_like(prompt)
    settings = SAMPLED if sampled else dict(temperature=0)
    hf_settings = dict(do_sample=True, **SAMPLED) if sampled else dict(do_sample=False)

    def gptbook():
        return sampling.generate(ours, prompt, new, **settings, use_cache=cache)

    def hf():
        with torch.no_grad():
            return theirs.generate(
                prompt, attention_mask=mask, max_new_tokens=new, use_cache=cache, **hf_settings
            )

    return gptbook, hf


def timed(fn) -> float:
    start = time.perf_counter()
    out = fn()
    if out.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="book-medium")
    parser.add_argument("--prompt", type=int, default=16, help="prompt tokens")
    parser.add_argument("--new", type=int, default=128, help="new tokens per run")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: book.device())")
    args = parser.parse_args()
    device = book.device(args.device)
    ours, theirs = models(args.preset, device)
    c = ours.config
    if args.prompt + args.new > c.block_size:  # transformers' generate does not slide a window
        args.new = c.block_size - args.prompt
        print(f"(new tokens cut to {args.new}: the prompt and them must fit {c.block_size} tokens)")
    print(f"{date.today()} · {describe_machine(device)} · torch {torch.__version__} · float32")
    print(
        f"model: {args.preset} shape, pre-LN, {c.n_layer} layers, d={c.n_embd}, {c.n_head} heads, "
        f"vocab {c.vocab_size:,}, {ours.num_params():,} parameters; prompt {args.prompt} tokens, "
        f"{args.new} new; median of {args.repeats} runs after one warm-up\n"
    )
    print("| batch | cache | decoding | gptbook tokens/s | transformers tokens/s | ratio |")
    print("|---:|---|---|---:|---:|---:|")
    g = torch.Generator().manual_seed(0)
    for batch in args.batches:
        prompt = torch.randint(c.vocab_size, (batch, args.prompt), generator=g).to(device)
        for cache in (True, False):
            for sampled in (False, True):
                ours_fn, hf_fn = runners(ours, theirs, prompt, args.new, cache, sampled)
                if not sampled:  # the same network: the same greedy tokens
                    assert torch.equal(ours_fn(), hf_fn()), "greedy tokens differ"
                else:
                    ours_fn(), hf_fn()  # warm up
                times = {"gptbook": [], "hf": []}
                for _ in range(args.repeats):
                    times["gptbook"].append(timed(ours_fn))
                    times["hf"].append(timed(hf_fn))
                rate = {k: batch * args.new / statistics.median(t) for k, t in times.items()}
                print(
                    f"| {batch} | {'yes' if cache else 'no'} | "
                    f"{'sampled' if sampled else 'greedy'} | {rate['gptbook']:,.0f} | "
                    f"{rate['hf']:,.0f} | {rate['gptbook'] / rate['hf']:.2f} |"
                )


if __name__ == "__main__":
    main()
