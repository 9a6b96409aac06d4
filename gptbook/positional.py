"""Positional encodings: how a Transformer knows where each token is.

Introduced in chapter 3. Attention compares every token with every other and is
blind to their order, so the model must be told positions:

- :func:`sinusoidal` (the Transformer, 2017): fixed sines and cosines of the
  position at geometrically spaced frequencies, added to the token embeddings;
- :class:`LearnedPositional` (GPT-1, GPT-2, GPT-3): a learned vector per position,
  up to a maximum length;
- :func:`apply_rope` / :class:`RoPE` (rotary embeddings, modern LLMs): rotate each
  pair of query and key features by an angle proportional to the position, so that
  their dot product depends only on the *distance* between the two positions.

Features are paired as (0, 1), (2, 3), ...; pair i turns at frequency base^(-2i/d).
"""

from __future__ import annotations

import torch
from torch import nn

from .checks import whole


def _check_even(d: int, what: str) -> None:
    if d % 2:
        raise ValueError(f"{what} must be even (features are used in pairs), got {d}")


def frequencies(d: int, base: float = 10_000.0) -> torch.Tensor:
    """The angular frequency of each feature pair, base^(-2i/d) for i < d/2: shape (d/2,)."""
    _check_even(d, "the dimension")
    return base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)


def sinusoidal(T: int, d: int, base: float = 10_000.0) -> torch.Tensor:
    """The sinusoidal table (T, d): sin(p·ω_i) at feature 2i, cos(p·ω_i) at feature 2i + 1."""
    T, d = whole("T", T), whole("d", d)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * frequencies(d, base)  # (T, d/2)
    table = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (T, d/2, 2)
    return table.flatten(1).float()  # (T, d)


class LearnedPositional(nn.Module):
    """A learned vector for each position 0..block_size-1, as in GPT-1/2/3: a (block_size, n_embd)
    table."""

    def __init__(self, block_size: int, n_embd: int):
        super().__init__()
        self.block_size = block_size
        self.table = nn.Embedding(block_size, n_embd)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, T: int, start: int = 0) -> torch.Tensor:
        """The vectors of positions start..start+T-1: (T, n_embd)."""
        if start + T > self.block_size:
            raise ValueError(
                f"position {start + T - 1} is beyond the learned table (block_size="
                f"{self.block_size}): a learned encoding has no vector for positions it never had; "
                "crop the input to block_size tokens or build the table with a larger block_size "
                "(and train it)"
            )
        return self.table.weight[start : start + T]


def apply_rope(
    x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10_000.0
) -> torch.Tensor:
    """Rotate feature pairs of ``x`` (..., T, D) by position × frequency; same shape.

    ``positions`` (T,) defaults to 0..T-1. For queries and keys of shape (B, H, T, D),
    ⟨apply_rope(q)[m], apply_rope(k)[n]⟩ depends on m - n only. No rotation matrices
    are built: each pair (a, b) becomes (a cos θ - b sin θ, a sin θ + b cos θ).
    """
    T, D = x.shape[-2], x.shape[-1]
    _check_even(D, "the head dimension")
    if positions is None:
        positions = torch.arange(T, device=x.device)
    if positions.shape != (T,):
        raise ValueError(
            f"positions must have shape ({T},) to match x, got {tuple(positions.shape)}"
        )
    angles = positions.double()[:, None] * frequencies(D, base).to(x.device)  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x.unflatten(-1, (D // 2, 2)).unbind(-1)  # each (..., T, D/2)
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


class RoPE(nn.Module):
    """Rotary position embedding as a module: ``RoPE(head_dim)(q)``; no parameters."""

    def __init__(self, head_dim: int, base: float = 10_000.0):
        super().__init__()
        _check_even(head_dim, "the head dimension")
        self.head_dim, self.base = head_dim, base

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"expected a last dimension of {self.head_dim}, got {x.shape[-1]}")
        return apply_rope(x, positions, self.base)
