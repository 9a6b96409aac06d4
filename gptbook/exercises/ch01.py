"""Graders for chapter 1, *Autoregressive vs non-autoregressive generation*."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import nar, speculative
from ..bigram import NGram
from ..sampling import probabilities
from ._grading import call, expect, passed


def check_01_1(bigram_counts: Callable) -> None:
    """1.1 — ``bigram_counts(ids, vocab_size) -> (V, V)``: how often token j follows token i."""
    g = torch.Generator().manual_seed(1)
    for V, n in [(3, 20), (11, 5000)]:
        ids = torch.randint(V, (n,), generator=g)
        got = torch.as_tensor(call("1.1", bigram_counts, ids, V)).float()
        want = NGram(V, 2, smoothing=0).fit(ids).counts
        expect(got.shape == (V, V), "1.1", f"expected shape ({V}, {V}), got {tuple(got.shape)}.")
        expect(
            got.sum().item() == n - 1,
            "1.1",
            f"{n} tokens hold {n - 1} (previous, next) pairs, your counts add up to {got.sum().item():g}.",
        )
        expect(
            torch.equal(got, want),
            "1.1",
            "some counts are wrong; is row i the previous token and column j the next one?",
            "counts[ids[t], ids[t + 1]] += 1 for every t (or torch.bincount on ids[:-1] * V + ids[1:]).",
        )
    passed("1.1", "row i, column j counts how often j follows i")


def _toy_bigram() -> NGram:
    model = NGram(5, 2, smoothing=0)
    model.counts.copy_(
        torch.tensor(
            [[1.0, 6, 2, 1, 0], [4, 0, 3, 2, 1], [1, 1, 1, 1, 6], [8, 1, 0, 1, 0], [2, 2, 2, 2, 2]]
        )
    )
    model.log_probs = model.probs().log()
    return model


def check_01_2(generate: Callable) -> None:
    """1.2 — ``generate(model, idx, max_new_tokens, temperature) -> ids``: the sampling loop."""
    model, n = _toy_bigram(), 20_000
    start = torch.zeros(n, 1, dtype=torch.long)
    out = torch.as_tensor(call("1.2", generate, model, start[:3], 4, 1.0))
    expect(
        out.shape == (3, 5),
        "1.2",
        f"3 rows of 1 token plus 4 new ones is shape (3, 5), got {tuple(out.shape)}.",
    )
    expect(bool((out[:, 0] == 0).all()), "1.2", "the prompt must stay at the start of each row.")
    greedy = torch.as_tensor(call("1.2", generate, model, start[:2], 6, 0.0))
    expect(
        greedy[0].tolist() == [0, 1, 0, 1, 0, 1, 0],
        "1.2",
        f"with temperature 0 every step takes the most likely token: expected [0, 1, 0, 1, 0, 1, 0], got {greedy[0].tolist()}.",
        "temperature 0 means argmax; do not divide by zero.",
    )
    for temperature in (0.5, 2.0):
        out = torch.as_tensor(call("1.2", generate, model, start, 1, temperature))
        freq = torch.bincount(out[:, 1], minlength=5).float() / n
        want = probabilities(model.log_probs[0], temperature)
        distance = 0.5 * (freq - want).abs().sum().item()
        expect(
            distance < 0.03,
            "1.2",
            f"at temperature {temperature} the first token's frequencies {freq.numpy().round(3)} "
            f"differ from softmax(logits / T) = {want.numpy().round(3)}.",
            "divide the last position's logits by the temperature, softmax, then torch.multinomial.",
        )
    passed("1.2", "greedy at T = 0, and the sampled frequencies match softmax(logits / T)")


def check_01_3(remask: Callable) -> None:
    """1.3 — ``remask(tokens, confidence, n_mask, mask_id)``: one mask-predict refinement step."""
    g = torch.Generator().manual_seed(3)
    for n_mask in (0, 1, 3, 6):
        tokens = torch.randint(26, (8, 7), generator=g)
        confidence = torch.rand(8, 7, generator=g)
        want = nar.remask_lowest(tokens, confidence, n_mask, 26)
        got = torch.as_tensor(call("1.3", remask, tokens.clone(), confidence.clone(), n_mask, 26))
        expect(
            got.shape == tokens.shape,
            "1.3",
            f"keep the shape {tuple(tokens.shape)}, got {tuple(got.shape)}.",
        )
        expect(
            bool(((got == 26).sum(1) == n_mask).all()),
            "1.3",
            f"every row must have exactly n_mask={n_mask} masked positions.",
        )
        expect(
            torch.equal(got, want),
            "1.3",
            f"with n_mask={n_mask}, mask the positions of LOWEST confidence in each row and keep the rest.",
            "confidence.topk(n_mask, dim=1, largest=False).indices, then scatter mask_id.",
        )
    passed("1.3", "the least confident letters are masked again")


def check_01_4(speculative_parts: Callable) -> None:
    """1.4 — ``speculative_parts(p, q) -> (accept, residual)``: the speculative acceptance rule."""
    g = torch.Generator().manual_seed(4)
    for _ in range(5):
        p = torch.softmax(torch.randn(9, generator=g) * 2, -1)
        q = torch.softmax(torch.randn(9, generator=g) * 2, -1)
        accept, resid = (torch.as_tensor(t).double() for t in call("1.4", speculative_parts, p, q))
        expect(
            torch.allclose(accept, speculative.acceptance(p, q).double(), atol=1e-6),
            "1.4",
            "the acceptance probability of token x is min(1, p(x) / q(x)).",
        )
        expect(
            torch.allclose(resid, speculative.residual(p, q).double(), atol=1e-6),
            "1.4",
            "the residual is max(p - q, 0), normalised to sum to 1.",
        )
        # What makes the rule exact: P(output = x) = q(x) accept(x) + P(reject) residual(x) = p(x).
        rejected = 1 - (q.double() * accept).sum()
        expect(
            torch.allclose(q.double() * accept + rejected * resid, p.double(), atol=1e-6),
            "1.4",
            "the output is not distributed as p.",
        )
    passed("1.4", "draft-then-verify samples exactly from the target p")
