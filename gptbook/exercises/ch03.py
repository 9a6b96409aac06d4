"""Graders for chapter 3, *Positional encoding*."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import positional
from ._grading import Exercise


def check_03_1(sinusoidal_table: Callable) -> None:
    """3.1 — ``sinusoidal_table(T, d)``: sin at even features, cos at odd ones.

    (T, d) = (10, 4) and (64, 32), against :func:`gptbook.positional.sinusoidal`.
    """
    ex = Exercise("3.1")
    for T, d in [(10, 4), (64, 32)]:
        ex.expect_close(
            ex.tensor(sinusoidal_table, T, d),
            positional.sinusoidal(T, d),
            "the table differs from sin/cos(p · 10000^(-2i/d)).",
            "feature 2i is sin(p ω_i) and feature 2i + 1 is cos(p ω_i), "
            "with ω_i = 10000 ** (-2 * i / d).",
            atol=1e-5,
            what=f"sinusoidal_table({T}, {d})",
        )
    ex.passed("the sinusoidal table is right")


def check_03_2(rope: Callable) -> None:
    """3.2 — ``rope(x, positions)``: rotate each feature pair of x (..., T, D) by position × ω_i.

    x of shape (2, 3, 7, 8) at positions 0..6 and 20..26, against ``positional.apply_rope``.
    """
    ex = Exercise("3.2")
    x = torch.randn(2, 3, 7, 8, generator=ex.random, dtype=torch.float64)
    for positions in (torch.arange(7), torch.arange(20, 27)):
        got = ex.tensor(rope, x.clone(), positions)
        ex.expect_shape(
            got,
            x.shape,
            "the rotated x",
            "a rotation moves each feature pair within its plane: the output keeps x's shape.",
        )
        ex.expect_close(
            got,
            positional.apply_rope(x, positions),
            f"for positions starting at {int(positions[0])} "
            "the rotated features differ from RoPE's.",
            "pair (a, b) = (x[..., 2i], x[..., 2i + 1]) becomes "
            "(a cos θ - b sin θ, a sin θ + b cos θ), θ = position × 10000 ** (-2i / D).",
        )
    ex.passed("queries and keys are rotated by their positions")


def check_03_3(rotation_for_offset: Callable) -> None:
    """3.3 — ``rotation_for_offset(k, d)``: the (d, d) matrix M with PE(p + k) = PE(p) @ M.

    Offsets k = 1, 7 and 20 with d = 12, on the sinusoidal table of 60 positions.
    """
    ex = Exercise("3.3")
    table = positional.sinusoidal(60, 12).double()
    for k in (1, 7, 20):
        M = ex.tensor(rotation_for_offset, k, 12, dtype=torch.float64)
        ex.expect_shape(
            M,
            (12, 12),
            f"rotation_for_offset({k}, 12)",
            "PE(p) @ M maps d features to d features: M is a (d, d) matrix.",
        )
        ex.expect_close(
            table[:-k] @ M,
            table[k:],
            f"for k = {k}, PE(p) @ M is not PE(p + k).",
            "M is block-diagonal; block i is [[cos kω_i, -sin kω_i], [sin kω_i, cos kω_i]] "
            "(sin(a + b) = sin a cos b + cos a sin b).",
            atol=1e-5,
        )
    ex.passed("a fixed offset is the same rotation at every position")


def check_03_4(make_table: Callable) -> None:
    """3.4 — ``make_table(block_size, d)``: a module whose ``forward(T)`` gives (T, d) and
    refuses T > block_size.

    make_table(8, 4): an nn.Module of 32 parameters; table(5) has shape (5, 4) and is
    trained; table(9) raises a ValueError that names the limit.
    """
    ex = Exercise("3.4")
    table = ex.call(make_table, 8, 4)
    ex.expect(
        isinstance(table, torch.nn.Module),
        f"return an nn.Module, so the table's parameters are trained; got {type(table).__name__}.",
        "subclass torch.nn.Module and keep the table in an nn.Parameter (or an nn.Embedding).",
    )
    n_params = sum(p.numel() for p in table.parameters())
    ex.expect(
        n_params == 32,
        f"a table of 8 positions × 4 features has 32 parameters, yours has {n_params}.",
        "one learned vector of d features per position 0 .. block_size - 1: (block_size, d).",
    )
    out = ex.tensor(table, 5)
    ex.expect_shape(out, (5, 4), "table(5)", "return the vectors of the first T positions.")
    ex.expect(
        out.requires_grad,
        "table(5) does not depend on the parameters, so training could not change it.",
        "return rows of the nn.Parameter itself (weight[:T]), not a copy made under no_grad.",
    )
    limit_hint = "check T against block_size first: if T > block_size: raise ValueError(...)."
    try:
        table(9)
    except ValueError as err:
        ex.expect(
            "8" in str(err),
            f"say what the limit is: your message was {str(err)!r}.",
            "mention block_size (8) in the message.",
        )
    except Exception as err:  # noqa: BLE001 — any other error is the wrong kind
        ex.fail(
            f"table(9) raised {type(err).__name__}; raise a ValueError that names the limit.",
            limit_hint,
        )
    else:
        ex.fail("table(9) must raise a ValueError: position 8 has no learned vector.", limit_hint)
    ex.passed("a learned table, with a clear error past its end")
