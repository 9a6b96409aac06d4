"""gptbook's byte-level BPE (chapter 2) next to the tools people use: training and encoding.

Three tables, each with ratios measured in the same run:

- training: ``ByteBPE.train`` on the training plays against Hugging Face ``tokenizers``'
  BPE trainer (GPT-2's ByteLevel pre-tokenizer, the same vocabulary size);
- encoding the validation plays with GPT-2's ranks: ``ByteBPE`` on its first pass (empty
  piece cache) and warm, against tiktoken (Rust), as tokens per second;
- adversarial inputs, one huge pre-token each: 16,000 × "a", and letters with no whitespace.

Every ``ByteBPE`` result is checked against its peer (the same ids as tiktoken; the same
vocabulary size as Hugging Face's trainer) before its time is reported.

    python benchmarks/bpe.py [--vocab 8192] [--chars 0 (all)] [--repeats 3] [--long 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import date
from importlib.metadata import version

from gptbook import bpe, data
from gptbook.tokenizers import gpt2_tokenizer


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The fastest of ``repeats`` runs of ``fn()`` in seconds, and what the last run returned."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def hf_train(text: str, vocab_size: int):
    """Hugging Face's BPE trainer with GPT-2's byte-level pre-tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer


def training_table(text: str, vocab_size: int, repeats: int) -> None:
    ours, tok = best_time(lambda: bpe.ByteBPE.train(text, vocab_size), repeats)
    theirs, hf = best_time(lambda: hf_train(text, vocab_size), repeats)
    assert tok.n_vocab == hf.get_vocab_size() == vocab_size, (tok.n_vocab, hf.get_vocab_size())
    print(f"training on {len(text):,} characters, vocabulary {vocab_size:,}\n")
    print("| trainer | seconds | × Hugging Face's time |")
    print("|---|---:|---:|")
    print(f"| gptbook `ByteBPE.train` | {ours:.2f} | {ours / theirs:.2f} |")
    print(f"| Hugging Face `tokenizers` BpeTrainer | {theirs:.2f} | 1.00 |\n")


def encoding_table(text: str, repeats: int) -> None:
    enc = gpt2_tokenizer()
    warm = bpe.ByteBPE.from_tiktoken(enc)
    reference, ids = best_time(lambda: enc.encode(text), repeats)
    rows = {
        "tiktoken (Rust)": reference,
        "gptbook `ByteBPE`, first pass": best_time(
            lambda: bpe.ByteBPE.from_tiktoken(enc).encode(text), repeats
        ),
        "gptbook `ByteBPE`, warm cache": best_time(lambda: warm.encode(text), repeats),
    }
    print(f"encoding the validation plays ({len(text):,} characters, {len(ids):,} tokens)\n")
    print("| encoder | seconds | tokens/s | × tiktoken's time |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        seconds, out = row if isinstance(row, tuple) else (row, ids)
        assert out == ids, f"{name} gives other ids than tiktoken"
        print(f"| {name} | {seconds:.3f} | {len(ids) / seconds:,.0f} | {seconds / reference:.1f} |")
    print()


def adversarial_table(long: int, repeats: int) -> None:
    enc = gpt2_tokenizer()
    letters = "".join(c for c in data.text("train") if c.isalpha())[:long]
    inputs = {'16,000 × "a"': "a" * 16_000, f"{len(letters):,} letters, no whitespace": letters}
    print("| adversarial input | gptbook `ByteBPE` (s) | tiktoken (s) | × tiktoken's time |")
    print("|---|---:|---:|---:|")
    for name, text in inputs.items():
        theirs, ids = best_time(lambda t=text: enc.encode(t), repeats)
        ours, out = best_time(lambda t=text: bpe.ByteBPE.from_tiktoken(enc).encode(t), 1)
        assert out == ids, f"ByteBPE gives other ids than tiktoken on {name}"
        print(f"| {name} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=int, default=8192, help="vocabulary size to train")
    parser.add_argument("--chars", type=int, default=0, help="train on this many characters")
    parser.add_argument("--val-chars", type=int, default=0, help="encode this many characters")
    parser.add_argument("--long", type=int, default=1_000_000, help="letters without whitespace")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    train, val = data.text("train"), data.text("val")
    train, val = train[: args.chars or len(train)], val[: args.val_chars or len(val)]
    versions = " · ".join(f"{p} {version(p)}" for p in ("torch", "tokenizers", "tiktoken"))
    print(
        f"{date.today()} · {platform.machine()} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · {versions} · best of {args.repeats}\n"
    )
    training_table(train, args.vocab, args.repeats)
    encoding_table(val, args.repeats)
    adversarial_table(args.long, args.repeats)


if __name__ == "__main__":
    main()
