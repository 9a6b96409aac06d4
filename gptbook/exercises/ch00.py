"""Graders for chapter 0, *The corpus and the tools*."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from .. import data
from ._grading import call, expect, passed


def check_00_1(longest_work: Callable) -> None:
    """0.1 — ``longest_work(dataset) -> title``: the title of the longest work, in characters."""
    corpus = data.shakespeare()
    for split in ("train", "val"):
        rows = list(corpus[split])
        want = max(rows, key=lambda r: len(r["text"]))["title"]
        got = call("0.1", longest_work, corpus[split])
        expect(
            got == want,
            "0.1",
            f"on the {split!r} split you returned {got!r}, but the longest work is {want!r}.",
            "compare len(row['text']) over the rows of the dataset and return the row's 'title'.",
        )
    passed("0.1", "the longest works are found on both splits")


def check_00_2(top_chars: list[tuple[str, int]]) -> None:
    """0.2 — the 5 most frequent characters of the training text with their counts."""
    want = Counter(data.text("train")).most_common(5)
    expect(
        isinstance(top_chars, list | tuple) and len(top_chars) == 5,
        "0.2",
        f"expected a list of 5 (character, count) pairs, got {top_chars!r:.80}.",
        "collections.Counter(text).most_common(5) returns exactly that shape.",
    )
    got = [(c, int(n)) for c, n in top_chars]
    expect(
        {c for c, _ in got} == {c for c, _ in want},
        "0.2",
        f"your characters are {[c for c, _ in got]!r}; they should be those of the training split.",
        "count every character of data.text('train'), spaces and newlines included.",
    )
    expect(
        sorted(got) == sorted(want),
        "0.2",
        "the characters are right but some counts are not: count the whole training split.",
    )
    share = want[0][1] / len(data.text("train"))
    passed("0.2", f"the most frequent character, {want[0][0]!r}, is {share:.1%} of the text")


def check_00_3(eval_windows: Callable) -> None:
    """0.3 — ``eval_windows(ids, block_size) -> (X, Y)``: consecutive, non-overlapping windows."""
    ids = torch.randperm(53)
    for block in (1, 5, 13, 52):
        got = call("0.3", eval_windows, ids, block)
        expect(
            isinstance(got, tuple) and len(got) == 2,
            "0.3",
            f"return a pair (X, Y), got {type(got).__name__}.",
        )
        x, y = (torch.as_tensor(t) for t in got)
        n = (len(ids) - 1) // block
        expect(
            x.shape == (n, block) and y.shape == (n, block),
            "0.3",
            f"with {len(ids)} ids and block_size={block}, X and Y must have shape ({n}, {block}); "
            f"got {tuple(x.shape)} and {tuple(y.shape)}.",
            "every window needs block_size inputs plus one more token for its last target: "
            "n = (len(ids) - 1) // block_size.",
        )
        want_x = ids[: n * block].view(n, block)
        want_y = ids[1 : n * block + 1].view(n, block)
        expect(
            torch.equal(x, want_x),
            "0.3",
            f"X is wrong for block_size={block}: row i must be ids[i*T : (i+1)*T].",
        )
        expect(
            torch.equal(y, want_y),
            "0.3",
            f"Y is wrong for block_size={block}: it must be X shifted left by one token.",
            "each target is the token that follows the input at the same position.",
        )
    passed("0.3", "the windows tile the ids in order, and Y is X shifted by one")
