"""Graders for chapter 0, *The corpus and the tools*."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from .. import data
from ._grading import Exercise, shorten


def check_00_1(longest_work: Callable) -> None:
    """0.1 — ``longest_work(dataset) -> title``: the title of the longest work, in characters.

    Compares the answer with the longest work of the 'train' and the 'val' split.
    """
    ex = Exercise("0.1")
    corpus = data.shakespeare()
    for split in ("train", "val"):
        want = max(corpus[split], key=lambda row: len(row["text"]))["title"]
        got = ex.call(longest_work, corpus[split])
        ex.expect(
            got == want,
            f"on the {split!r} split you returned {shorten(got)}, "
            f"but the longest work is {want!r}.",
            "compare len(row['text']) over the rows of the dataset and return the row's 'title'.",
        )
    ex.passed("the longest works are found on both splits")


def check_00_2(top_chars: list[tuple[str, int]]) -> None:
    """0.2 — the 5 most frequent characters of the training text with their counts.

    Checks the shape of the answer, then the characters, then their counts.
    """
    ex = Exercise("0.2")
    want = Counter(data.text("train")).most_common(5)
    ex.expect(
        isinstance(top_chars, list | tuple)
        and len(top_chars) == 5
        and all(isinstance(pair, list | tuple) and len(pair) == 2 for pair in top_chars),
        f"expected a list of 5 (character, count) pairs, got {shorten(top_chars)}.",
        "collections.Counter(text).most_common(5) returns exactly that shape.",
    )
    got = dict((c, int(n)) for c, n in top_chars)
    ex.expect(
        set(got) == {c for c, _ in want},
        f"your characters are {list(got)!r}; they should be those of the training split.",
        "count every character of data.text('train'), spaces and newlines included.",
    )
    wrong = [(c, got[c], n) for c, n in want if got[c] != n]
    ex.expect(
        not wrong,
        "the characters are right but some counts are not: "
        + ", ".join(f"{c!r} has {n:,}, not {g:,}" for c, g, n in wrong)
        + ".",
        "count the whole training split, data.text('train'), not a part of it.",
    )
    share = want[0][1] / len(data.text("train"))
    ex.passed(f"the most frequent character, {want[0][0]!r}, is {share:.1%} of the text")


def check_00_3(eval_windows: Callable) -> None:
    """0.3 — ``eval_windows(ids, block_size) -> (X, Y)``: consecutive, non-overlapping windows.

    Windows of 53 ids with block_size 1, 5, 13 and 52: the shapes, then X, then Y.
    """
    ex = Exercise("0.3")
    ids = torch.randperm(53)
    for block in (1, 5, 13, 52):
        x, y = ex.tensors(eval_windows, ids, block, names=("X", "Y"))
        n = (len(ids) - 1) // block
        ex.expect(
            x.shape == (n, block) and y.shape == (n, block),
            f"with {len(ids)} ids and block_size={block}, X and Y must have shape ({n}, {block}); "
            f"got {tuple(x.shape)} and {tuple(y.shape)}.",
            "every window needs block_size inputs plus one more token for its last target: "
            "n = (len(ids) - 1) // block_size.",
        )
        ex.expect_equal(
            x,
            ids[: n * block].view(n, block),
            f"X is wrong for block_size={block}: row i must be ids[i*T : (i+1)*T].",
            "the windows follow each other without overlapping: ids[: n * T].view(n, T).",
        )
        ex.expect_equal(
            y,
            ids[1 : n * block + 1].view(n, block),
            f"Y is wrong for block_size={block}: it must be X shifted left by one token.",
            "each target is the token that follows the input at the same position.",
        )
    ex.passed("the windows tile the ids in order, and Y is X shifted by one")
