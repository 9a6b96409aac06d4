"""Graders for chapter 3, *Positional encoding*."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import positional
from ._grading import call, expect, passed


def check_03_1(sinusoidal_table: Callable) -> None:
    """3.1 — ``sinusoidal_table(T, d)``: sin at even features, cos at odd ones."""
    for T, d in [(10, 4), (64, 32)]:
        got = torch.as_tensor(call("3.1", sinusoidal_table, T, d)).double()
        want = positional.sinusoidal(T, d).double()
        expect(got.shape == (T, d), "3.1", f"expected shape ({T}, {d}), got {tuple(got.shape)}.")
        expect(
            torch.allclose(got, want, atol=1e-5),
            "3.1",
            f"the table differs from sin/cos(p · 10000^(-2i/d)) (largest error {(got - want).abs().max():.3g}).",
            "feature 2i is sin(p ω_i) and feature 2i + 1 is cos(p ω_i), with ω_i = 10000 ** (-2 * i / d).",
        )
    passed("3.1", "the sinusoidal table is right")


def check_03_2(rope: Callable) -> None:
    """3.2 — ``rope(x, positions)``: rotate each feature pair of x (..., T, D) by position × ω_i."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64)
    for positions in (torch.arange(7), torch.arange(20, 27)):
        got = torch.as_tensor(call("3.2", rope, x.clone(), positions)).double()
        want = positional.apply_rope(x, positions)
        expect(
            got.shape == x.shape, "3.2", f"keep the shape {tuple(x.shape)}, got {tuple(got.shape)}."
        )
        expect(
            torch.allclose(got, want, atol=1e-6),
            "3.2",
            f"for positions starting at {int(positions[0])} the rotated features differ from RoPE's.",
            "pair (a, b) = (x[..., 2i], x[..., 2i + 1]) becomes (a cos θ - b sin θ, a sin θ + b cos θ), "
            "θ = position × 10000 ** (-2i / D).",
        )
    passed("3.2", "queries and keys are rotated by their positions")


def check_03_3(rotation_for_offset: Callable) -> None:
    """3.3 — ``rotation_for_offset(k, d)``: the (d, d) matrix M with PE(p + k) = PE(p) @ M."""
    table = positional.sinusoidal(60, 12).double()
    for k in (1, 7, 20):
        M = torch.as_tensor(call("3.3", rotation_for_offset, k, 12)).double()
        expect(M.shape == (12, 12), "3.3", f"expected a (12, 12) matrix, got {tuple(M.shape)}.")
        expect(
            torch.allclose(table[:-k] @ M, table[k:], atol=1e-5),
            "3.3",
            f"for k = {k}, PE(p) @ M is not PE(p + k).",
            "M is block-diagonal; block i is [[cos kω_i, -sin kω_i], [sin kω_i, cos kω_i]] "
            "(sin(a + b) = sin a cos b + cos a sin b).",
        )
    passed("3.3", "a fixed offset is the same rotation at every position")


def check_03_4(make_table: Callable) -> None:
    """3.4 — ``make_table(max_len, d)``: a module whose ``forward(T)`` gives (T, d) and refuses T > max_len."""
    table = call("3.4", make_table, 8, 4)
    expect(
        isinstance(table, torch.nn.Module),
        "3.4",
        "return an nn.Module, so the table's parameters are trained.",
    )
    n_params = sum(p.numel() for p in table.parameters())
    expect(
        n_params == 32,
        "3.4",
        f"a table of 8 positions × 4 features has 32 parameters, yours has {n_params}.",
    )
    out = torch.as_tensor(call("3.4", table, 5))
    expect(
        out.shape == (5, 4), "3.4", f"table(5) should have shape (5, 4), got {tuple(out.shape)}."
    )
    try:
        table(9)
    except ValueError as err:
        expect(
            "8" in str(err),
            "3.4",
            f"say what the limit is: your message was {str(err)!r}.",
            "mention max_len (8).",
        )
    except Exception as err:  # noqa: BLE001
        expect(
            False,
            "3.4",
            f"table(9) raised {type(err).__name__}; raise a ValueError that names the limit.",
        )
    else:
        expect(False, "3.4", "table(9) must raise a ValueError: position 8 has no learned vector.")
    passed("3.4", "a learned table, with a clear error past its end")
