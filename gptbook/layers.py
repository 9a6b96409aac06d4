"""The layers inside a decoder block besides attention: its feed-forward layer and its norm.

Introduced in chapter 5 with GPT's MLP (d → 4d → GELU → d; the LayerNorm is PyTorch's own).
Chapter 10 adds what today's LLMs use instead. LLaMA (Touvron et al., 2023) and the models after
it keep GPT-2's pre-LN decoder and change its parts, each a switch of
:class:`gptbook.config.GPTConfig` (``norm_type="rmsnorm"``, ``mlp="swiglu"``, and in attention
``positions="rope"`` and ``n_kv_head``):

- RMSNorm (Zhang & Sennrich, 2019) divides by the root mean square and scales; it subtracts no
  mean and adds no bias: LayerNorm without its centring.
- SwiGLU (Shazeer, 2020) replaces d → 4d → GELU → d by a gated unit, down(silu(gate(x)) · up(x)),
  with a hidden width of about 2/3 · 4d, so that its three matrices hold as many weights as
  GPT's two.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import whole


class MLP(nn.Module):
    """The position-wise feed-forward layer: d → 4d → GELU → d.

    GELU in its tanh approximation, as OpenAI's GPT-1 and GPT-2 code computes it."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc(x), approximate="tanh")  # (B, T, 4C)
        return self.drop(self.proj(h))  # (B, T, C)


# ---------------------------------------------------------------------- today's LLMs (chapter 10)
#: SwiGLU's hidden width is rounded up to a multiple of this (LLaMA rounds to 256; the book's
#: small models to 16, which keeps the count within a few percent of GPT's MLP).
SWIGLU_MULTIPLE = 16


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight over the last dimension, computed in float32 as
    Hugging Face's ``LlamaRMSNorm`` does (its parity tests need the same rounding)."""

    def __init__(self, n_embd: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(whole("n_embd", n_embd)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., C)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def swiglu_hidden(n_embd: int, multiple: int = SWIGLU_MULTIPLE) -> int:
    """The hidden width that gives SwiGLU's three matrices about the weights of GPT's two:
    2/3 · 4 · n_embd, rounded up to a multiple of ``multiple``."""
    return multiple * math.ceil(2 * 4 * n_embd / 3 / multiple)


class SwiGLU(nn.Module):
    """The gated feed-forward layer: down(silu(gate(x)) · up(x)), d → hidden → d."""

    def __init__(self, n_embd: int, hidden: int, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        self.gate = nn.Linear(n_embd, hidden, bias=bias)
        self.up = nn.Linear(n_embd, hidden, bias=bias)
        self.down = nn.Linear(hidden, n_embd, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        h = F.silu(self.gate(x)) * self.up(x)  # (B, T, hidden): the gate scales each feature
        return self.drop(self.down(h))


class MoE(nn.Module):
    """A sparse mixture of experts (Shazeer et al., 2017; Mixtral, Jiang et al., 2024): a router
    scores ``n_expert`` feed-forward experts for each token, the ``top_k`` best run, and their
    outputs are summed with the softmax of those k scores as weights.

    Each forward pass keeps what the chapter measures: ``aux_loss``, the load-balancing loss
    (:func:`load_balancing_loss`), and ``counts`` (n_expert,), how many tokens each expert took.
    """

    def __init__(self, experts: list[nn.Module], n_embd: int, top_k: int):
        super().__init__()
        if not 1 <= top_k <= len(experts):
            raise ValueError(f"top_k must be between 1 and the {len(experts)} experts, got {top_k}")
        self.top_k = top_k
        self.router = nn.Linear(n_embd, len(experts), bias=False)
        self.experts = nn.ModuleList(experts)
        self.aux_loss = torch.zeros(())
        self.counts = torch.zeros(len(experts), dtype=torch.long)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        tokens = x.reshape(-1, x.shape[-1])  # (N, C): every token on its own
        scores = self.router(tokens)  # (N, E)
        best, chosen = scores.topk(self.top_k, dim=-1)  # (N, k) each
        weights = best.float().softmax(-1).to(x.dtype)  # (N, k): the chosen experts' shares
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            rows, slot = (chosen == e).nonzero(as_tuple=True)  # the tokens that chose expert e
            if rows.numel():
                out.index_add_(0, rows, weights[rows, slot, None] * expert(tokens[rows]))
        self.aux_loss = load_balancing_loss(scores, chosen, len(self.experts))
        self.counts = torch.bincount(chosen.flatten(), minlength=len(self.experts)).detach()
        return out.view_as(x)


def load_balancing_loss(scores: torch.Tensor, chosen: torch.Tensor, n_expert: int) -> torch.Tensor:
    """The Switch Transformer's auxiliary loss, as Mixtral computes it: n_expert · Σ_e f_e · P_e,
    with f_e the share of the (token, slot) choices that went to expert e (summed over the k
    slots) and P_e the router's mean probability for e. It is k when the router spreads both
    evenly, and grows as tokens crowd onto a few experts.

    ``scores`` (N, E) are the router's logits, ``chosen`` (N, k) the experts each token chose."""
    probs = scores.float().softmax(-1)  # (N, E)
    picked = F.one_hot(chosen, n_expert).float()  # (N, k, E)
    share = picked.mean(0)  # (k, E): per slot, the share of tokens each expert got
    return n_expert * (share * probs.mean(0)).sum()
