"""Graders for chapter 9, *Choosing the next token: sampling, beam search, the KV cache and
speculative decoding*."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..sampling import top_k, top_p
from ..speculative import verify as verify_step
from ._grading import Exercise

INF_HINT = "set the removed logits to -inf (float('-inf')), so that softmax gives them 0."
SURVIVOR_HINT = "compare each row with its own threshold (keepdim=True keeps the shapes)."


def _check_filter(ex: Exercise, got: torch.Tensor, want: torch.Tensor, logits, setting: str):
    """A logits filter's answer against the package's: the same survivors, their logits kept."""
    ex.expect_shape(got, want.shape, f"the filtered logits ({setting})", "return (B, V) logits.")
    kept, want_kept = got > -math.inf, want > -math.inf
    if bool((got >= 0).all()) and torch.allclose(
        got.sum(-1), torch.ones(len(got), dtype=got.dtype)
    ):
        ex.fail(
            f"{setting}: you returned probabilities (each row sums to 1), not logits.", INF_HINT
        )
    if bool((got == 0).any()) and not bool((logits == 0).any()):
        ex.fail(f"{setting}: the removed tokens got the logit 0, still a likely token.", INF_HINT)
    ex.expect_equal(kept, want_kept, f"{setting}: the wrong tokens survive", SURVIVOR_HINT)
    ex.expect_close(got[kept], logits[kept], f"{setting}: the surviving logits changed", INF_HINT)


def check_09_1(top_k_filter: Callable) -> None:
    """9.1 — ``top_k_filter(logits, k)``: logits (B, V) with all but the ``k`` largest of each row
    set to -inf."""
    ex = Exercise("9.1")
    logits = torch.randn(4, 30, generator=ex.random) * 2
    for k in (1, 5, 30):
        got = ex.tensor(top_k_filter, logits.clone(), k, dtype=torch.float64)
        want = top_k(logits, k).double()
        survivors = (got > -math.inf).sum(-1)
        if got.shape == want.shape and bool((survivors == k - 1).all()):
            ex.fail(
                f"k={k}: each row keeps {k - 1} tokens, not {k}.",
                "the k-th largest value itself survives: remove only logits < it.",
            )
        _check_filter(ex, got, want, logits.double(), f"k={k}")
    ex.passed("the k likeliest tokens of each row survive")


def check_09_2(nucleus: Callable) -> None:
    """9.2 — ``nucleus(logits, p)``: top-p filtering of logits (B, V): the smallest set of the
    likeliest tokens whose probabilities add up to at least ``p`` survives (at least one)."""
    ex = Exercise("9.2")
    logits = torch.randn(5, 40, generator=ex.random) * 2
    for p in (0.9, 0.5, 0.01, 1.0):
        got = ex.tensor(nucleus, logits.clone(), p, dtype=torch.float64)
        want = top_p(logits, p).double()
        if got.shape == want.shape:
            short = (got > -math.inf).sum(-1) < (want > -math.inf).sum(-1)
            if bool(short.any()):
                ex.fail(
                    f"p={p}: some rows keep too few tokens; their probabilities add up to less "
                    f"than p.",
                    "keep the token whose probability takes the running sum past p as well: "
                    "drop a token only if the mass before it is already ≥ p.",
                )
        _check_filter(ex, got, want, logits.double(), f"p={p}")
    ex.passed("sort, add up, cut: the nucleus survives")


def check_09_3(attend_with_cache: Callable) -> None:
    """9.3 — ``attend_with_cache(q, k, v, k_cache, v_cache)``: the new token's query, key and
    value (B, H, 1, D) and the cached keys and values (B, H, S, D); return the attention output
    (B, H, 1, D) over all S + 1 positions, and the grown cache (B, H, S + 1, D) twice."""
    ex = Exercise("9.3")
    B, H, S, D = 2, 3, 5, 4
    x = torch.randn(3, B, H, S + 1, D, generator=ex.random, dtype=torch.float64)
    queries, keys, values = x  # a whole sequence of S + 1 tokens
    full = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)  # (B, H, S+1, D)
    q, k, v = queries[:, :, -1:], keys[:, :, -1:], values[:, :, -1:]
    out, k_all, v_all = ex.tensors(
        attend_with_cache,
        q,
        k,
        v,
        keys[:, :, :-1].clone(),
        values[:, :, :-1].clone(),
        names=("out", "k_cache", "v_cache"),
        dtype=torch.float64,
    )
    grow = "append the new key and value after the cached ones: torch.cat([cache, new], dim=2)."
    ex.expect_shape(k_all, keys.shape, "the new key cache", grow)
    ex.expect_close(k_all, keys, "the key cache is not the old keys, then the new one", grow)
    ex.expect_close(v_all, values, "the value cache is not the old values, then the new one", grow)
    ex.expect_shape(out, (B, H, 1, D), "the output", "one query: (B, H, 1, D).")
    hint = "softmax(q · kᵀ / √D) over all S + 1 keys, the new one included, times the values."
    without_new = F.scaled_dot_product_attention(q, keys[:, :, :-1], values[:, :, :-1])
    if torch.allclose(out, without_new):
        hint = "the new token must attend to itself too: use the cache after appending k and v."
    elif torch.allclose(out, F.scaled_dot_product_attention(q, keys, values, scale=1.0)):
        hint = "divide the scores by √D before the softmax."
    ex.expect_close(
        out, full[:, :, -1:], "the output differs from full causal attention's last row", hint
    )
    ex.passed("one new query against every cached key: the last row of full attention")


def check_09_4(speculative_step: Callable) -> None:
    """9.4 — ``speculative_step(ps, qs, drafted, u)``: one verification. ``ps`` (γ + 1, V) and
    ``qs`` (γ, V) are the target's and the draft's probabilities, ``drafted`` (γ,) the drafts,
    ``u`` (γ,) uniform numbers. Return ``(n, dist)``: how many draft tokens are accepted (token
    i if u[i] < min(1, p/q), stopping at the first that is not) and the distribution (V,) of the
    next token: the normalised residual max(p - q, 0) there, or p's last row if all pass."""
    ex = Exercise("9.4")
    gamma, V = 4, 6
    cases = 0
    for trial in range(60):
        ps = torch.rand(gamma + 1, V, generator=ex.random, dtype=torch.float64) ** 3
        qs = torch.rand(gamma, V, generator=ex.random, dtype=torch.float64) ** 3
        ps, qs = ps / ps.sum(-1, keepdim=True), qs / qs.sum(-1, keepdim=True)
        drafted = torch.multinomial(qs, 1, generator=ex.random).squeeze(-1)  # (γ,)
        u = torch.rand(gamma, generator=ex.random, dtype=torch.float64) * (0.3 if trial % 3 else 1)
        n, want = verify_step(ps, qs, drafted, u)
        got = ex.call(speculative_step, ps.clone(), qs.clone(), drafted.clone(), u.clone())
        ex.expect(
            isinstance(got, tuple | list) and len(got) == 2,
            f"return (n, dist), got {type(got).__name__}.",
            "end with: return n, dist",
        )
        got_n, dist = int(got[0]), ex.as_tensor(got[1], "dist", torch.float64)
        accepted = [bool(u[i] < min(1.0, ps[i, t] / qs[i, t])) for i, t in enumerate(drafted)]
        hint = "walk the drafts left to right and stop at the first rejection."
        if got_n == sum(accepted) and got_n != n:
            hint = "a rejection ends the step: the drafts after it are never tested."
        ex.expect(
            got_n == n,
            f"with acceptance tests {accepted} expected n = {n}, got {got_n}.",
            hint,
        )
        hint = "after a rejection at i: norm(max(ps[i] - qs[i], 0)); if all pass: ps[γ]."
        if n < gamma and dist.shape == want.shape and torch.allclose(dist, ps[n]):
            hint = "after a rejection, sample from the residual max(p - q, 0), normalised, not p."
        ex.expect_close(dist, want, f"with n = {n} the next token's distribution is wrong", hint)
        cases += n == gamma
    ex.expect(cases > 0, "internal: no case accepted every draft.")
    ex.passed("accepted up to the first rejection, then the residual (or a bonus token)")
