"""A tiny causal Transformer with a choice of positional encoding.

Introduced in chapter 3 for its experiments, where attention is still a black box
(PyTorch's ``scaled_dot_product_attention``; chapter 4 opens it). Chapter 5 builds
the real GPT. Pre-LN blocks: x + attention(LN(x)), then x + MLP(LN(x)).

``encoding`` is one of ``"none"``, ``"sinusoidal"``, ``"learned"`` (a table of
``block_size`` positions) or ``"rope"`` (rotary, applied to queries and keys).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checks import whole
from .lm import IGNORE_INDEX, cross_entropy
from .positional import LearnedPositional, apply_rope, sinusoidal

ENCODINGS = ("none", "sinusoidal", "learned", "rope")


class TinyBlock(nn.Module):
    """A pre-LN block: causal self-attention (RoPE on queries and keys, or not), then an MLP."""

    def __init__(self, n_embd: int, n_head: int, rope: bool):
        super().__init__()
        self.n_head, self.rope = n_head, rope
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd)
        )

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of LN(x) (B, T, C), each (B, H, T, C/H), RoPE applied."""
        B, T, C = x.shape
        q, k, v = (
            self.qkv(self.ln1(x))
            .view(B, T, 3, self.n_head, C // self.n_head)
            .permute(2, 0, 3, 1, 4)
        )
        if self.rope:
            q, k = apply_rope(q), apply_rope(k)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.heads(x)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, C/H)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    """Token embedding (+ positions) → ``n_layer`` pre-LN blocks → LN → logits."""

    def __init__(
        self,
        vocab_size: int,
        encoding: str = "learned",
        n_embd: int = 64,
        n_head: int = 4,
        n_layer: int = 2,
        block_size: int = 256,
    ):
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding={encoding!r}: use one of {', '.join(ENCODINGS)}")
        for name, value in dict(n_embd=n_embd, n_head=n_head, n_layer=n_layer).items():
            whole(name, value)
        whole("block_size", block_size)
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.encoding = encoding
        self.embed = nn.Embedding(vocab_size, n_embd)
        self.positions = LearnedPositional(block_size, n_embd) if encoding == "learned" else None
        self.blocks = nn.ModuleList(
            TinyBlock(n_embd, n_head, encoding == "rope") for _ in range(n_layer)
        )
        self.ln = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        x = self.embed(idx)  # (B, T, C)
        if self.encoding == "learned":
            x = x + self.positions(T)
        elif self.encoding == "sinusoidal":
            x = x + sinusoidal(T, x.shape[-1]).to(x.device)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln(x))  # (B, T, V)
        return logits, None if targets is None else cross_entropy(logits, targets)


def lag_batch(
    batch_size: int, T: int, vocab_size: int, lag: int, generator: torch.Generator | None = None
):
    """The copy-with-lag task: random tokens x (B, T); target y[:, t] = x[:, t - lag].

    Solving it needs the *relative* position t - lag. The first ``lag`` targets have
    no answer and are set to :data:`~gptbook.lm.IGNORE_INDEX`, which the loss skips.
    """
    for name, value in dict(batch_size=batch_size, T=T, vocab_size=vocab_size, lag=lag).items():
        whole(name, value)
    if lag >= T:
        raise ValueError(f"lag={lag} leaves no target in sequences of T={T}: use lag < T")
    x = torch.randint(vocab_size, (batch_size, T), generator=generator)
    y = torch.full_like(x, IGNORE_INDEX)
    y[:, lag:] = x[:, :-lag]
    return x, y


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the answerable positions (targets ≠ IGNORE_INDEX) where the argmax is right."""
    logits, _ = model(x)
    answerable = y != IGNORE_INDEX
    return (logits.argmax(-1)[answerable] == y[answerable]).float().mean().item()
