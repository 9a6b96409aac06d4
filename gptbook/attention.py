"""Attention: scaled dot-product attention, masks, and multi-head self-attention.

Introduced in chapter 4. Each position asks a question (its query), every position
offers a label (its key) and a content (its value); the output at a position is the
average of the values, weighted by softmax(q · k / sqrt(d)). Masks decide who may
look at whom: a causal mask lets position t see positions ≤ t (GPT); banded and
strided masks keep only some of them (the Sparse Transformer, used by GPT-3).

Masks here are boolean, shape (T_q, T_k) or broadcastable to the scores, with
True meaning "may attend" — the convention of
``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import whole

BACKENDS = ("naive", "torch")


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) boolean, True on and below the diagonal: position t sees 0..t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def banded_mask(T: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Causal and local: position t sees the ``width`` positions t-width+1..t."""
    if width < 1:
        raise ValueError(f"width must be ≥ 1, got {width}")
    i = torch.arange(T, device=device)
    distance = i[:, None] - i[None, :]  # (T, T): query minus key
    return (distance >= 0) & (distance < width)


def strided_mask(T: int, stride: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The Sparse Transformer's strided pattern: t sees its last ``stride`` positions and every
    earlier position whose distance is a multiple of ``stride``."""
    if stride < 1:
        raise ValueError(f"stride must be ≥ 1, got {stride}")
    i = torch.arange(T, device=device)
    distance = i[:, None] - i[None, :]
    return (distance >= 0) & ((distance < stride) | (distance % stride == 0))


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
):
    """softmax(q kᵀ / sqrt(d) + mask) v, written out, for q (..., T_q, d), k (..., T_k, d) and
    v (..., T_k, d_v).

    ``mask`` is boolean (True = may attend), broadcastable to (..., T_q, T_k). Returns the
    output (..., T_q, d_v), and the attention weights too if ``return_weights``.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"queries and keys need the same feature size, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"every key needs a value: {k.shape[-2]} keys but {v.shape[-2]} values")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError("mask must be boolean (True = may attend), e.g. causal_mask(T)")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    out = weights @ v  # (..., T_q, d_v)
    return (out, weights) if return_weights else out


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: one fused QKV projection, H heads, an output projection.

    ``backend="naive"`` uses :func:`scaled_dot_product_attention` above; ``"torch"`` calls
    PyTorch's fused kernels (flash / memory-efficient attention where the device has them).
    Both give the same result. ``causal=True`` applies the causal mask; ``mask`` may add
    any other boolean (T, T) pattern. (Chapter 9 adds a KV cache for generation.)
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        causal: bool = True,
        dropout: float = 0.0,
        bias: bool = True,
        backend: str = "torch",
    ):
        super().__init__()
        n_embd, n_head = whole("n_embd", n_embd), whole("n_head", n_head)
        if n_embd % n_head:
            raise ValueError(
                f"n_embd={n_embd} is not divisible by n_head={n_head}; "
                "choose n_head that divides it (each head gets n_embd / n_head features)"
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: use one of {', '.join(BACKENDS)}")
        self.n_embd, self.n_head, self.causal, self.dropout, self.backend = (
            n_embd,
            n_head,
            causal,
            dropout,
            backend,
        )
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, H, T, C/H)."""
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) -> (B, T, H·D): the heads side by side."""
        B, H, T, D = x.shape
        return x.transpose(1, 2).reshape(B, T, H * D)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, return_weights: bool = False
    ):
        """Self-attention over x (B, T, C): (B, T, C), and the weights (B, H, T, T) if asked."""
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(f"expected input (B, T, {self.n_embd}), got {tuple(x.shape)}")
        T = x.shape[1]
        q, k, v = self.qkv(x).split(self.n_embd, dim=-1)  # (B, T, C) each
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, H, T, D)
        p = self.dropout if self.training else 0.0
        weights = None
        if self.backend == "torch" and not return_weights and mask is None:  # flash / fused
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)
        else:
            if self.causal:
                causal = causal_mask(T, x.device)
                mask = causal if mask is None else mask & causal
            if self.backend == "torch" and not return_weights:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            else:
                y, weights = scaled_dot_product_attention(q, k, v, mask, p, return_weights=True)
        out = self.proj(self.merge_heads(y))  # (B, T, C)
        return (out, weights) if return_weights else out
