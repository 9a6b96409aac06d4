"""Graders for chapter 2, *Tokens and embeddings*."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from .. import bpe
from ._grading import Exercise

_CASES = [[1, 2, 3, 1, 2], [5, 5, 5, 5], [7], [], [1, 2, 1, 2, 1]]


def check_02_1(get_pair_counts: Callable) -> None:
    """2.1 — ``get_pair_counts(ids) -> {(a, b): count}``: adjacent pairs, counted.

    Five short lists, overlaps and the empty list among them, against ``bpe.pair_counts``.
    """
    ex = Exercise("2.1")
    for ids in _CASES:
        got = ex.call(get_pair_counts, list(ids))
        ex.expect(
            isinstance(got, Mapping),
            f"return a dict {{(a, b): count}}, got {type(got).__name__}.",
            "start from counts = {} and add 1 to counts[pair] for every pair.",
        )
        want = dict(bpe.pair_counts({tuple(ids): 1}))
        ex.expect(
            dict(got) == want,
            f"for ids {ids} expected {want}, got {dict(got)}.",
            "pairs are (ids[i], ids[i + 1]) for every i; "
            "overlapping pairs all count (5, 5, 5 has two).",
        )
    ex.passed("every adjacent pair is counted, overlaps included")


def check_02_2(merge_pair: Callable) -> None:
    """2.2 — ``merge_pair(ids, pair, new_id) -> ids``: one BPE merge.

    Five lists, runs of the pair (5 5 5) and the empty list among them, against ``bpe.merge``.
    """
    ex = Exercise("2.2")
    for ids, pair in [
        ([1, 2, 3, 1, 2], (1, 2)),
        ([5, 5, 5], (5, 5)),
        ([5, 5, 5, 5], (5, 5)),
        ([1, 2], (2, 1)),
        ([], (1, 2)),
    ]:
        got = ex.call(merge_pair, list(ids), pair, 99)
        ex.expect(
            isinstance(got, list | tuple),
            f"return the new list of ids, got {type(got).__name__}.",
            "build a new list: out = [] and append a token (or new_id) at each step.",
        )
        want = bpe.merge(ids, pair, 99)
        ex.expect(
            list(got) == want,
            f"merging {pair} in {ids} should give {want}, got {list(got)}.",
            "scan left to right; after a merge, skip both tokens (so 5 5 5 becomes 99 5).",
        )
    ex.passed("pairs are merged left to right without overlaps")


def check_02_3(one_hot_lookup: Callable) -> None:
    """2.3 — ``one_hot_lookup(ids, weight)``: embed by one-hot matrix product.

    ids of shape (5,) and (2, 3) with a (11, 4) weight: the shape, then the rows.
    """
    ex = Exercise("2.3")
    weight = torch.randn(11, 4, generator=ex.random, dtype=torch.float64)
    for shape in [(5,), (2, 3)]:
        ids = torch.randint(11, shape, generator=ex.random)
        got = ex.tensor(
            one_hot_lookup,
            ids,
            weight,
            hint="torch.nn.functional.one_hot(ids, V) gives integers of shape (..., V): "
            "give it V = weight.shape[0] and convert it to the weight's dtype before the product.",
        )
        ex.expect_shape(
            got,
            (*shape, 4),
            f"the embeddings of ids of shape {shape}",
            "one-hot rows (..., V) @ weight (V, d) give (..., d): one d-vector per id.",
        )
        ex.expect_close(
            got,
            weight[ids],
            "the product of one-hot rows with the weight must equal the rows weight[ids].",
            "torch.nn.functional.one_hot(ids, V) has shape (..., V); "
            "convert it to the weight's dtype, then @ weight.",
        )
    ex.passed("one-hot times W_E is a row lookup")


def check_02_4(tie: Callable) -> None:
    """2.4 — ``tie(embedding, head)``: share the embedding matrix with the output layer.

    Checks that head.weight is embedding.weight, that 13 × 6 parameters are saved, and
    that the head's gradient reaches the shared matrix.
    """
    ex = Exercise("2.4")
    embedding, head = nn.Embedding(13, 6), nn.Linear(6, 13, bias=False)
    model = nn.ModuleDict({"embedding": embedding, "head": head})
    before = sum(p.numel() for p in model.parameters())
    ex.call(tie, embedding, head)
    ex.expect(
        head.weight is embedding.weight,
        "head.weight must be the very same Parameter as embedding.weight, not a copy.",
        "assign the Parameter: head.weight = embedding.weight.",
    )
    after = sum(p.numel() for p in model.parameters())
    ex.expect(
        after == before - 13 * 6,
        f"tying should save 13 × 6 = 78 parameters; saved {before - after}.",
        "model.parameters() counts a shared Parameter once; "
        "leave exactly one (13, 6) matrix behind both modules.",
    )
    logits = head(embedding(torch.tensor([1, 2])))
    logits.sum().backward()
    ex.expect(
        embedding.weight.grad is not None,
        "gradients from the head must reach the shared matrix.",
        "share the Parameter itself (not its .data or a detached copy), so autograd sees it.",
    )
    ex.passed(
        f"the head and the embedding share one (13, 6) matrix: {before - after} parameters saved"
    )
