"""Graders for chapter 10, *From GPT to today's LLMs: RMSNorm, SwiGLU, RoPE, grouped-query
attention and mixtures of experts*."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..layers import RMSNorm
from ._grading import Exercise

EPS = 1e-6


def check_10_1(rms_norm: Callable) -> None:
    """10.1 — ``rms_norm(x, weight, eps)``: x (..., C) divided by the root of its mean square
    over the last dimension (plus ``eps``), times ``weight`` (C,)."""
    ex = Exercise("10.1")
    x = torch.randn(2, 5, 8, generator=ex.random, dtype=torch.float64) * 3 + 2  # mean ≠ 0
    weight = torch.rand(8, generator=ex.random, dtype=torch.float64) + 0.5
    norm = RMSNorm(8, EPS).double()
    with torch.no_grad():
        norm.weight.copy_(weight)
        want = norm(x)
    got = ex.tensor(rms_norm, x.clone(), weight.clone(), EPS, dtype=torch.float64)
    ex.expect_shape(got, want.shape, "the output", "normalise each vector: keep x's shape.")
    hint = "x / sqrt(mean(x², dim=-1, keepdim=True) + eps) * weight."
    layer_norm = F.layer_norm(x, (8,), weight, eps=EPS)
    if torch.allclose(got, layer_norm, atol=1e-6):
        hint = "that is LayerNorm: RMSNorm subtracts no mean; divide x itself by its RMS."
    elif torch.allclose(got, x / x.pow(2).sum(-1, keepdim=True).add(EPS).sqrt() * weight):
        hint = "use the mean of the squares (divide their sum by C), not their sum."
    elif torch.allclose(got, want / weight):
        hint = "multiply by weight, the learned gain of each feature."
    elif got.shape == want.shape and torch.allclose(
        got.pow(2).mean(0, keepdim=True), torch.ones(1, 5, 8, dtype=got.dtype) * weight**2
    ):
        hint = "take the mean over the features (dim=-1), not over the batch."
    ex.expect_close(got, want, "the output is not x / RMS(x) · weight", hint)
    small = torch.zeros(1, 8, dtype=torch.float64)
    zero = ex.tensor(rms_norm, small, weight.clone(), EPS, dtype=torch.float64)
    ex.expect(
        bool(torch.isfinite(zero).all()),
        "an all-zero vector gives NaN or inf.",
        "add eps inside the square root: sqrt(mean(x²) + eps).",
    )
    ex.passed("x / RMS(x) · weight, with no mean subtracted")


def check_10_2(swiglu: Callable) -> None:
    """10.2 — ``swiglu(x, w_gate, w_up, w_down)``: the gated feed-forward layer
    down(silu(gate(x)) · up(x)), with the weights laid out as ``nn.Linear``'s (out, in)."""
    ex = Exercise("10.2")
    C, H = 6, 10
    x = torch.randn(3, 4, C, generator=ex.random, dtype=torch.float64)
    w_gate, w_up = torch.randn(2, H, C, generator=ex.random, dtype=torch.float64)
    w_down = torch.randn(C, H, generator=ex.random, dtype=torch.float64)
    gate, up = x @ w_gate.T, x @ w_up.T  # (3, 4, H) each
    want = (F.silu(gate) * up) @ w_down.T
    got = ex.tensor(swiglu, x.clone(), w_gate, w_up, w_down, dtype=torch.float64)
    ex.expect_shape(got, want.shape, "the output", "d → hidden → d: the output has x's shape.")
    hint = "(silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T."
    wrong = {
        "the gate goes through silu, not the up projection: silu(gate) * up.": (F.silu(up) * gate),
        "SwiGLU's gate is silu(z) = z · sigmoid(z), not sigmoid(z) (that is GLU).": (
            torch.sigmoid(gate) * up
        ),
        "SwiGLU's gate is silu, not GELU (GEGLU).": F.gelu(gate) * up,
        "multiply by the up projection: the gate scales each of its features.": F.silu(gate),
    }
    for message, hidden in wrong.items():
        if got.shape == want.shape and torch.allclose(got, hidden @ w_down.T):
            hint = message
    ex.expect_close(got, want, "the output is not down(silu(gate(x)) · up(x))", hint)
    ex.passed("down(silu(gate(x)) · up(x)): the gate decides how much of each feature passes")


def _sorted_by_expert(weights: torch.Tensor, chosen: torch.Tensor):
    """Each token's (expert, weight) pairs in expert order, so that any order of the k passes."""
    order = chosen.argsort(-1)
    return weights.gather(-1, order), chosen.gather(-1, order)


def check_10_3(route: Callable) -> None:
    """10.3 — ``route(scores, k)``: the router's scores (N, E) for N tokens and E experts.
    Return ``(weights, experts)``, each (N, k): each token's ``k`` highest-scoring experts and
    their weights, the softmax of those k scores (they add up to 1 for each token)."""
    ex = Exercise("10.3")
    scores = torch.randn(7, 5, generator=ex.random, dtype=torch.float64) * 2
    for k in (2, 1, 5):
        got = ex.call(route, scores.clone(), k)
        ex.expect(
            isinstance(got, tuple | list) and len(got) == 2,
            f"return (weights, experts), got {type(got).__name__}.",
            "end with: return weights, experts",
        )
        weights = ex.as_tensor(got[0], "weights", torch.float64)
        experts = ex.as_tensor(got[1], "experts").long()
        best, want_experts = scores.topk(k, dim=-1)
        want_weights = best.softmax(-1)
        ex.expect_shape(experts, (7, k), f"k={k}: experts", "torch.topk(scores, k, dim=-1).")
        ex.expect_shape(weights, (7, k), f"k={k}: weights", "one weight per chosen expert.")
        got_w, got_e = _sorted_by_expert(weights, experts)
        want_w, want_e = _sorted_by_expert(want_weights, want_experts)
        ex.expect_equal(
            got_e, want_e, f"k={k}: not each token's k best experts", "torch.topk(scores, k)."
        )
        hint = "softmax over the k chosen scores only: best.softmax(-1)."
        if torch.allclose(got_w, scores.softmax(-1).gather(-1, want_e)):
            hint = (
                "these are the softmax over all E experts: renormalise over the k chosen "
                "ones, so each token's weights add up to 1."
            )
        elif torch.allclose(got_w, scores.gather(-1, want_e)):
            hint = "the weights are the raw scores: take their softmax over the k chosen."
        ex.expect_close(got_w, want_w, f"k={k}: the weights are wrong", hint)
    ex.passed("top-k experts per token, weighted by the softmax of their scores")


def check_10_4(repeat_kv: Callable) -> None:
    """10.4 — ``repeat_kv(kv, n_rep)``: keys or values of grouped-query attention, (B, H_kv, T,
    D), repeated for the query heads, (B, H_kv · n_rep, T, D): query head h reads key/value head
    h // n_rep, so each key/value head appears n_rep times in a row."""
    ex = Exercise("10.4")
    B, H_kv, T, D = 2, 3, 4, 5
    kv = torch.randn(B, H_kv, T, D, generator=ex.random, dtype=torch.float64)
    for n_rep in (2, 1, 4):
        want = kv.repeat_interleave(n_rep, dim=1)
        got = ex.tensor(repeat_kv, kv.clone(), n_rep, dtype=torch.float64)
        ex.expect_shape(
            got, want.shape, f"n_rep={n_rep}: the output", "repeat along the heads (dim=1)."
        )
        hint = "head j of kv becomes heads j·n_rep … j·n_rep + n_rep - 1."
        if torch.equal(got, kv.repeat(1, n_rep, 1, 1)):
            hint = (
                "kv.repeat tiles the heads (0, 1, 2, 0, 1, 2): query head h must read key/value "
                "head h // n_rep (0, 0, 1, 1, 2, 2): use repeat_interleave."
            )
        ex.expect_equal(got, want, f"n_rep={n_rep}: the heads are in the wrong order", hint)
    ex.passed("each key/value head serves n_rep query heads in a row")
