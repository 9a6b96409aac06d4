"""Graders for chapter 1, *Autoregressive vs non-autoregressive generation*."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import nar, speculative
from ..bigram import NGram
from ..sampling import probabilities
from ._grading import Exercise


def check_01_1(bigram_counts: Callable) -> None:
    """1.1 — ``bigram_counts(ids, vocab_size) -> (V, V)``: how often token j follows token i.

    Random ids with V = 3 and 11: the shape, the total (one pair per token but the last),
    then every count, against :class:`gptbook.bigram.NGram`.
    """
    ex = Exercise("1.1")
    for V, n in [(3, 20), (11, 5000)]:
        ids = torch.randint(V, (n,), generator=ex.random)
        got = ex.tensor(bigram_counts, ids, V)
        ex.expect_shape(
            got,
            (V, V),
            f"the counts for vocab_size={V}",
            "one row per previous token and one column per next token: (vocab_size, vocab_size).",
        )
        ex.expect(
            got.sum().item() == n - 1,
            f"{n} tokens hold {n - 1} (previous, next) pairs, "
            f"your counts add up to {got.sum().item():g}.",
            "pair ids[t] with ids[t + 1] for t = 0 .. len(ids) - 2: "
            "the last token has no next one.",
        )
        ex.expect_equal(
            got,
            NGram(V, 2, smoothing=0).fit(ids).counts,
            "some counts are wrong; is row i the previous token and column j the next one?",
            "counts[ids[t], ids[t + 1]] += 1 for every t "
            "(or torch.bincount on ids[:-1] * V + ids[1:]).",
        )
    ex.passed("row i, column j counts how often j follows i")


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
    """1.2 — ``generate(model, idx, max_new_tokens, temperature) -> ids``: the sampling loop.

    On a toy bigram model: the output's shape and prompt, greedy decoding at temperature 0,
    and the frequencies of 20,000 samples at temperatures 0.5 and 2.
    """
    ex = Exercise("1.2")
    model, n = _toy_bigram(), 20_000
    start = torch.zeros(n, 1, dtype=torch.long)
    out = ex.tensor(generate, model, start[:3], 4, 1.0)
    ex.expect_shape(
        out,
        (3, 5),
        "the output for 3 rows of 1 token and max_new_tokens=4",
        "return the prompt followed by the new tokens: 3 rows of 1 + 4 tokens.",
    )
    ex.expect(
        bool((out[:, 0] == 0).all()),
        "the prompt must stay at the start of each row.",
        "append each new token after idx with torch.cat([idx, next_id], dim=1).",
    )
    greedy = ex.tensor(generate, model, start[:2], 6, 0.0)
    ex.expect(
        greedy.shape == (2, 7) and greedy[0].tolist() == [0, 1, 0, 1, 0, 1, 0],
        "with temperature 0 every step takes the most likely token: "
        f"expected [0, 1, 0, 1, 0, 1, 0], got {greedy[0].tolist() if greedy.ndim else greedy}.",
        "temperature 0 means argmax of the last position's logits; do not divide by zero.",
    )
    for temperature in (0.5, 2.0):
        out = ex.tensor(generate, model, start, 1, temperature)
        freq = torch.bincount(out[:, 1], minlength=5).float() / n
        want = probabilities(model.log_probs[0], temperature)
        distance = 0.5 * (freq - want).abs().sum().item()
        ex.expect(
            distance < 0.03,
            f"at temperature {temperature} the first token's frequencies {freq.numpy().round(3)} "
            f"differ from softmax(logits / T) = {want.numpy().round(3)}.",
            "divide the last position's logits by the temperature, softmax, "
            "then torch.multinomial.",
        )
    ex.passed("greedy at T = 0, and the sampled frequencies match softmax(logits / T)")


def check_01_3(remask: Callable) -> None:
    """1.3 — ``remask(tokens, confidence, n_mask, mask_id)``: one mask-predict refinement step.

    n_mask = 0, 1, 3 and 6 on random letters, against :func:`gptbook.nar.remask_lowest`.
    """
    ex = Exercise("1.3")
    for n_mask in (0, 1, 3, 6):
        tokens = torch.randint(26, (8, 7), generator=ex.random)
        confidence = torch.rand(8, 7, generator=ex.random)
        got = ex.tensor(remask, tokens.clone(), confidence.clone(), n_mask, 26)
        ex.expect_shape(
            got,
            tokens.shape,
            "the re-masked tokens",
            "replace some entries by mask_id and keep the others: the shape does not change.",
        )
        ex.expect(
            bool(((got == 26).sum(1) == n_mask).all()),
            f"every row must have exactly n_mask={n_mask} masked positions.",
            "pick n_mask positions per row (dim=1), not n_mask in the whole batch.",
        )
        ex.expect_equal(
            got,
            nar.remask_lowest(tokens, confidence, n_mask, 26),
            f"with n_mask={n_mask}, mask the positions of LOWEST confidence in each row "
            "and keep the rest.",
            "confidence.topk(n_mask, dim=1, largest=False).indices, then scatter mask_id.",
        )
    ex.passed("the least confident letters are masked again")


def check_01_4(speculative_parts: Callable) -> None:
    """1.4 — ``speculative_parts(p, q) -> (accept, residual)``: the speculative acceptance rule.

    Five random pairs (p, q): both parts against :mod:`gptbook.speculative`, and that the
    output of draft-then-verify is distributed as p.
    """
    ex = Exercise("1.4")
    for _ in range(5):
        p = torch.softmax(torch.randn(9, generator=ex.random) * 2, -1)
        q = torch.softmax(torch.randn(9, generator=ex.random) * 2, -1)
        accept, resid = ex.tensors(
            speculative_parts, p, q, names=("accept", "residual"), dtype=torch.float64
        )
        ex.expect_close(
            accept,
            speculative.acceptance(p, q),
            "accept is not the acceptance probability.",
            "the draft's token x is accepted with probability min(1, p(x) / q(x)).",
            what="accept",
        )
        ex.expect_close(
            resid,
            speculative.residual(p, q),
            "residual is not the distribution to sample from after a rejection.",
            "the residual is max(p - q, 0), normalised to sum to 1.",
            what="residual",
        )
        # What makes the rule exact: P(output = x) = q(x) accept(x) + P(reject) residual(x) = p(x).
        rejected = 1 - (q.double() * accept).sum()
        ex.expect_close(
            q.double() * accept + rejected * resid,
            p,
            "the output is not distributed as p.",
            "P(output = x) = q(x) · accept(x) + P(reject) · residual(x) must equal p(x).",
        )
    ex.passed("draft-then-verify samples exactly from the target p")
