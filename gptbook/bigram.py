"""The simplest autoregressive models: n-grams by counting, and a neural bigram.

Introduced in chapter 1. An n-gram model predicts the next token from the previous
n - 1 tokens only. Counting how often each token follows each context, and
normalising the counts, gives the maximum-likelihood model; a little smoothing
(add-k) keeps unseen pairs from getting probability zero. The neural bigram learns
the same table as the weights of an ``nn.Embedding`` by gradient descent.

Both follow the book's model contract (see :mod:`gptbook.lm`):
``model(idx, targets=None) -> (logits, loss)``, and both set ``block_size``, the
context they need, so :func:`gptbook.sampling.generate` feeds them no more.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .lm import cross_entropy, evaluate


class NGram(nn.Module):
    """A count-based n-gram model over ``vocab_size`` tokens with add-``smoothing`` counts.

    ``NGram(V, n=2)`` is the bigram, ``n=1`` the unigram (no context). Before the text
    starts, the context is padded with token ``pad_id``. The table has V^(n-1) rows,
    so keep n small for large vocabularies.
    """

    def __init__(self, vocab_size: int, n: int = 2, smoothing: float = 0.1, pad_id: int = 0):
        super().__init__()
        if n < 1:
            raise ValueError(f"n must be ≥ 1 (1 = unigram, 2 = bigram), got {n}")
        if smoothing < 0:
            raise ValueError(f"smoothing must be ≥ 0, got {smoothing}")
        if vocab_size ** (n - 1) * vocab_size > 2**28:
            raise ValueError(
                f"a dense {n}-gram table over {vocab_size} tokens is too large; use a smaller n"
            )
        self.vocab_size, self.n, self.smoothing, self.pad_id = vocab_size, n, smoothing, pad_id
        self.block_size = max(n - 1, 1)
        contexts = vocab_size ** (n - 1)
        self.register_buffer("counts", torch.zeros(contexts, vocab_size))  # (contexts, V)
        self.register_buffer("log_probs", self.probs().log())  # (contexts, V), refreshed by fit()

    def context_ids(self, idx: torch.Tensor) -> torch.Tensor:
        """The row of the table for each position of ``idx`` (B, T): its previous n-1 tokens."""
        B, T = idx.shape
        padded = (
            torch.cat([idx.new_full((B, self.n - 2), self.pad_id), idx], dim=1)
            if self.n > 2
            else idx
        )
        rows = torch.zeros_like(idx)  # (B, T)
        for k in range(self.n - 1):  # the context read as a number in base V
            rows = rows * self.vocab_size + padded[:, k : k + T]
        return rows

    def fit(self, ids: torch.Tensor) -> NGram:
        """Count every (context, next token) pair of the 1-D tensor ``ids``."""
        rows = self.context_ids(ids[None, :-1])[0]  # (N-1,)
        pairs = rows * self.vocab_size + ids[1:]
        self.counts += torch.bincount(pairs, minlength=self.counts.numel()).view_as(self.counts)
        self.log_probs = self.probs().log()
        return self

    def probs(self) -> torch.Tensor:
        """The smoothed table of next-token probabilities, (V^(n-1), V); rows sum to 1.

        A context never seen (possible only without smoothing) predicts uniformly.
        """
        smoothed = self.counts + self.smoothing
        total = smoothed.sum(dim=1, keepdim=True)  # (contexts, 1)
        uniform = torch.full_like(smoothed, 1 / self.vocab_size)
        return torch.where(total > 0, smoothed / total.clamp_min(1e-30), uniform)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.log_probs[self.context_ids(idx)]  # (B, T, V): log-probabilities
        return logits, None if targets is None else cross_entropy(logits, targets)


class NeuralBigram(nn.Module):
    """A bigram as a neural network: the logits of the next token are a row of a (V, V) table."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, 1
        self.logits_table = nn.Embedding(vocab_size, vocab_size)
        nn.init.zeros_(self.logits_table.weight)  # start at the uniform distribution: loss ln V

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.logits_table(idx)  # (B, T, V)
        return logits, None if targets is None else cross_entropy(logits, targets)


@functools.lru_cache(maxsize=4)
def baseline_loss(split: str = "val", n: int = 2) -> float:
    """Chapter 1's counted n-gram of the training plays (characters), scored on ``split`` in
    nats per character: the baseline later chapters compare their models against."""
    from . import data

    model = NGram(data.char_tokenizer().vocab_size, n).fit(data.tokens("train"))
    return evaluate(model, data.tokens(split))
