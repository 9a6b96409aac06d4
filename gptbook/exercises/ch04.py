"""Graders for chapter 4, *Attention*."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import attention
from ._grading import call, expect, passed


def _bool_mask(exercise: str, got, T: int) -> torch.Tensor:
    got = torch.as_tensor(got)
    expect(
        got.shape == (T, T), exercise, f"expected a ({T}, {T}) mask, got shape {tuple(got.shape)}."
    )
    expect(
        got.dtype == torch.bool,
        exercise,
        f"return a boolean mask (True = may attend), got {got.dtype}.",
    )
    return got


def check_04_1(causal: Callable) -> None:
    """4.1 — ``causal(T)``: the (T, T) boolean causal mask, True where position i may see j."""
    for T in (1, 4, 9):
        got = _bool_mask("4.1", call("4.1", causal, T), T)
        expect(
            torch.equal(got, attention.causal_mask(T)),
            "4.1",
            f"for T = {T} the mask is wrong: row i must be True for columns 0..i and False after.",
            "torch.ones(T, T, dtype=torch.bool).tril()",
        )
    passed("4.1", "position t sees positions 0..t")


def check_04_2(attend: Callable) -> None:
    """4.2 — ``attend(q, k, v, mask)``: one head of scaled dot-product attention."""
    g = torch.Generator().manual_seed(4)
    q, k, v = (
        torch.randn(6, 8, generator=g, dtype=torch.float64),
        torch.randn(6, 8, generator=g, dtype=torch.float64),
        torch.randn(6, 3, generator=g, dtype=torch.float64),
    )
    for mask in (None, attention.causal_mask(6)):
        got = torch.as_tensor(call("4.2", attend, q, k, v, mask)).double()
        want = attention.scaled_dot_product_attention(q, k, v, mask)
        expect(
            got.shape == (6, 3),
            "4.2",
            f"the output has one row per query and v's width: (6, 3), got {tuple(got.shape)}.",
        )
        unscaled = attention.scaled_dot_product_attention(q * 8**0.5, k, v, mask)
        expect(
            not torch.allclose(got, unscaled, atol=1e-6),
            "4.2",
            "the scores are not scaled: divide q kᵀ by sqrt(d) before the softmax.",
        )
        expect(
            torch.allclose(got, want, atol=1e-6),
            "4.2",
            f"the output differs from softmax(q kᵀ / √d) v{' with the causal mask' if mask is not None else ''}.",
            "masked scores become -inf before the softmax (scores.masked_fill(~mask, float('-inf'))).",
        )
    passed("4.2", "one head of attention, masked and scaled")


def check_04_3(split_heads: Callable, merge_heads: Callable) -> None:
    """4.3 — ``split_heads(x, n_head)`` (B, T, C) -> (B, H, T, C/H), and ``merge_heads`` back."""
    x = torch.arange(2 * 5 * 12, dtype=torch.float32).view(2, 5, 12)
    heads = torch.as_tensor(call("4.3", split_heads, x, 3))
    expect(
        heads.shape == (2, 3, 5, 4),
        "4.3",
        f"split_heads should give (2, 3, 5, 4), got {tuple(heads.shape)}.",
    )
    expect(
        torch.equal(heads[:, 1], x[..., 4:8]),
        "4.3",
        "head h must hold features h·C/H .. (h+1)·C/H - 1 of every position.",
        "x.view(B, T, H, C // H).transpose(1, 2)",
    )
    back = torch.as_tensor(call("4.3", merge_heads, heads))
    expect(
        back.shape == x.shape and torch.equal(back, x),
        "4.3",
        "merge_heads(split_heads(x)) must give x back.",
    )
    passed("4.3", "heads split and merge without mixing features")


def check_04_4(banded: Callable) -> None:
    """4.4 — ``banded(T, width)``: causal and local, position t sees t-width+1..t."""
    for T, width in [(6, 1), (8, 3), (5, 10)]:
        got = _bool_mask("4.4", call("4.4", banded, T, width), T)
        want = attention.banded_mask(T, width)
        expect(
            torch.equal(got, want),
            "4.4",
            f"for T = {T}, width = {width}: row i must be True exactly for columns max(0, i - width + 1)..i.",
            "use the distance i - j: 0 <= i - j < width.",
        )
    passed("4.4", "each position sees its last `width` positions")
