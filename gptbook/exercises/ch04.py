"""Graders for chapter 4, *Attention*."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import attention
from ._grading import Exercise


def _bool_mask(ex: Exercise, fn: Callable, *args: int) -> torch.Tensor:
    """``fn(T, ...)`` as a (T, T) boolean mask, T being the first argument."""
    got = ex.tensor(fn, *args)
    T = args[0]
    ex.expect_shape(got, (T, T), f"the mask for T = {T}", "one row per query, one column per key.")
    ex.expect(
        got.dtype == torch.bool,
        f"return a boolean mask (True = may attend), got {got.dtype}.",
        "a comparison such as j <= i gives booleans; or pass dtype=torch.bool.",
    )
    return got


def check_04_1(causal: Callable) -> None:
    """4.1 — ``causal(T)``: the (T, T) boolean causal mask, True where position i may see j.

    T = 1, 4 and 9: shape, dtype and every entry, against ``attention.causal_mask``.
    """
    ex = Exercise("4.1")
    for T in (1, 4, 9):
        ex.expect_equal(
            _bool_mask(ex, causal, T),
            attention.causal_mask(T),
            f"for T = {T} the mask is wrong: row i must be True for columns 0..i and False after.",
            "torch.ones(T, T, dtype=torch.bool).tril()",
        )
    ex.passed("position t sees positions 0..t")


def check_04_2(attend: Callable) -> None:
    """4.2 — ``attend(q, k, v, mask)``: one head of scaled dot-product attention.

    q, k (6, 8) and v (6, 3) without a mask and with the causal one: the shape, the scaling,
    then the output, against ``attention.scaled_dot_product_attention``.
    """
    ex = Exercise("4.2")
    q, k, v = (
        torch.randn(6, 8, generator=ex.random, dtype=torch.float64),
        torch.randn(6, 8, generator=ex.random, dtype=torch.float64),
        torch.randn(6, 3, generator=ex.random, dtype=torch.float64),
    )
    for mask in (None, attention.causal_mask(6)):
        masked = " with the causal mask" if mask is not None else ""
        got = ex.tensor(attend, q, k, v, mask, dtype=torch.float64)
        ex.expect_shape(
            got,
            (6, 3),
            f"the output for q, k of shape (6, 8) and v of shape (6, 3){masked}",
            "the output has one row per query and v's width: weights (T, T) @ v (T, d_v).",
        )
        unscaled = attention.scaled_dot_product_attention(q * 8**0.5, k, v, mask)
        ex.expect(
            not torch.allclose(got, unscaled, atol=1e-6),
            "the scores are not scaled.",
            "divide q kᵀ by sqrt(d) before the softmax, d being the width of q and k.",
        )
        ex.expect_close(
            got,
            attention.scaled_dot_product_attention(q, k, v, mask),
            f"the output differs from softmax(q kᵀ / √d) v{masked}.",
            "masked scores become -inf before the softmax "
            "(scores.masked_fill(~mask, float('-inf'))); the softmax is over the keys (dim=-1).",
        )
    ex.passed("one head of attention, masked and scaled")


def check_04_3(split_heads: Callable, merge_heads: Callable) -> None:
    """4.3 — ``split_heads(x, n_head)`` (B, T, C) -> (B, H, T, C/H), and ``merge_heads`` back.

    x of shape (2, 5, 12) with 3 heads: the heads' shape and features, then the round trip.
    """
    ex = Exercise("4.3")
    x = torch.arange(2 * 5 * 12, dtype=torch.float32).view(2, 5, 12)
    heads = ex.tensor(split_heads, x, 3)
    ex.expect_shape(
        heads,
        (2, 3, 5, 4),
        "split_heads(x of shape (2, 5, 12), n_head=3)",
        "(B, T, C) becomes (B, n_head, T, C // n_head): the head axis comes before time.",
    )
    ex.expect_equal(
        heads,
        x.view(2, 5, 3, 4).transpose(1, 2),
        "head h must hold features h·C/H .. (h+1)·C/H - 1 of every position.",
        "x.view(B, T, H, C // H).transpose(1, 2); a plain view(B, H, T, C // H) mixes positions.",
    )
    ex.expect_equal(
        ex.tensor(merge_heads, heads),
        x,
        "merge_heads(split_heads(x)) must give x back.",
        "undo split_heads in reverse: transpose(1, 2), then reshape(B, T, H * D).",
        what="merge_heads(heads of shape (2, 3, 5, 4))",
    )
    ex.passed("heads split and merge without mixing features")


def check_04_4(banded: Callable) -> None:
    """4.4 — ``banded(T, width)``: causal and local, position t sees t-width+1..t.

    (T, width) = (6, 1), (8, 3) and (5, 10), against ``attention.banded_mask``.
    """
    ex = Exercise("4.4")
    for T, width in [(6, 1), (8, 3), (5, 10)]:
        ex.expect_equal(
            _bool_mask(ex, banded, T, width),
            attention.banded_mask(T, width),
            f"for T = {T}, width = {width}: row i must be True exactly for columns "
            "max(0, i - width + 1)..i.",
            "use the distance i - j: 0 <= i - j < width.",
        )
    ex.passed("each position sees its last `width` positions")
