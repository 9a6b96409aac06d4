"""The layers inside a decoder block besides attention: its feed-forward layer and its norm.

Introduced in chapter 5 with GPT's MLP (d → 4d → GELU → d; the LayerNorm is PyTorch's own).
Chapter 10 adds what today's LLMs use instead. LLaMA (Touvron et al., 2023) and the models after
it keep GPT-2's pre-LN decoder and change its parts, each a switch of
:class:`gptbook.model.GPTConfig` (``norm_type="rmsnorm"``, ``mlp="swiglu"``, and in attention
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
