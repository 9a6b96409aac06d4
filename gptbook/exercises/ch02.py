"""Graders for chapter 2, *Tokens and embeddings*."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .. import bpe
from ._grading import call, expect, passed

_CASES = [[1, 2, 3, 1, 2], [5, 5, 5, 5], [7], [], [1, 2, 1, 2, 1]]


def check_02_1(get_pair_counts: Callable) -> None:
    """2.1 — ``get_pair_counts(ids) -> {(a, b): count}``: adjacent pairs, counted."""
    for ids in _CASES:
        got = dict(call("2.1", get_pair_counts, list(ids)))
        want = dict(bpe.pair_counts({tuple(ids): 1}))
        expect(
            got == want,
            "2.1",
            f"for ids {ids} expected {want}, got {got}.",
            "pairs are (ids[i], ids[i + 1]) for every i; overlapping pairs all count (5, 5, 5 has two).",
        )
    passed("2.1", "every adjacent pair is counted, overlaps included")


def check_02_2(merge_pair: Callable) -> None:
    """2.2 — ``merge_pair(ids, pair, new_id) -> ids``: one BPE merge."""
    for ids, pair in [
        ([1, 2, 3, 1, 2], (1, 2)),
        ([5, 5, 5], (5, 5)),
        ([5, 5, 5, 5], (5, 5)),
        ([1, 2], (2, 1)),
        ([], (1, 2)),
    ]:
        got = list(call("2.2", merge_pair, list(ids), pair, 99))
        want = bpe.merge(ids, pair, 99)
        expect(
            got == want,
            "2.2",
            f"merging {pair} in {ids} should give {want}, got {got}.",
            "scan left to right; after a merge, skip both tokens (so 5 5 5 becomes 99 5).",
        )
    passed("2.2", "pairs are merged left to right without overlaps")


def check_02_3(one_hot_lookup: Callable) -> None:
    """2.3 — ``one_hot_lookup(ids, weight)``: embed by one-hot matrix product."""
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(11, 4, generator=g, dtype=torch.float64)
    for shape in [(5,), (2, 3)]:
        ids = torch.randint(11, shape, generator=g)
        got = torch.as_tensor(call("2.3", one_hot_lookup, ids, weight))
        expect(
            got.shape == (*shape, 4),
            "2.3",
            f"ids of shape {shape} embed to shape {(*shape, 4)}, got {tuple(got.shape)}.",
        )
        expect(
            torch.allclose(got.double(), weight[ids]),
            "2.3",
            "the product of one-hot rows with the weight must equal the rows weight[ids].",
            "torch.nn.functional.one_hot(ids, V) has shape (..., V); convert it to the weight's dtype, then @ weight.",
        )
    passed("2.3", "one-hot times W_E is a row lookup")


def check_02_4(tie: Callable) -> None:
    """2.4 — ``tie(embedding, head)``: share the embedding matrix with the output layer."""
    embedding, head = nn.Embedding(13, 6), nn.Linear(6, 13, bias=False)
    model = nn.ModuleDict({"embedding": embedding, "head": head})
    before = sum(p.numel() for p in model.parameters())
    call("2.4", tie, embedding, head)
    expect(
        head.weight is embedding.weight,
        "2.4",
        "head.weight must be the very same Parameter as embedding.weight, not a copy.",
        "assign the Parameter: head.weight = embedding.weight.",
    )
    after = sum(p.numel() for p in model.parameters())
    expect(
        after == before - 13 * 6,
        "2.4",
        f"tying should save 13 × 6 = 78 parameters; saved {before - after}.",
    )
    logits = head(embedding(torch.tensor([1, 2])))
    logits.sum().backward()
    expect(
        embedding.weight.grad is not None,
        "2.4",
        "gradients from the head must reach the shared matrix.",
    )
    passed(
        "2.4",
        f"the head and the embedding share one (13, 6) matrix: {before - after} parameters saved",
    )
