"""Labelled data for fine-tuning, offline: the tasks chapter 6 fine-tunes GPT-1 on.

Introduced in chapter 6. :func:`sentiment` is Pang & Lee's sentence polarity data
(Pang & Lee, 2005): 4,000 sentences from movie reviews, half of them from positive reviews
and half from negative ones, lowercased and split into words by their authors. It is an
asset of the manifest, so it works offline once fetched.

Splits are decided by each sentence's own text (a hash), not by its position, so they do not
change when the file is read in another order.
"""

from __future__ import annotations

import csv
import functools
import hashlib
from typing import TYPE_CHECKING

from .assets import fetch

if TYPE_CHECKING:
    import datasets

#: One sentence in TEST_SHARE goes to the test split.
TEST_SHARE = 5
#: Sentiment labels: the class index of each polarity.
SENTIMENT_LABELS = {"-1": 0, "1": 1}  # negative, positive


def _is_test(text: str) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % TEST_SHARE == 0


@functools.lru_cache(maxsize=1)
def sentiment() -> datasets.DatasetDict:
    """Pang & Lee's 4,000 polarity sentences as a ``DatasetDict`` with splits ``train`` and
    ``test`` (about a fifth), columns ``text`` and ``label`` (1 positive, 0 negative)."""
    import datasets

    path = fetch("sentiment", quiet=True)
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = [(label, text.strip()) for label, text in csv.reader(f)]
    unknown = {label for label, _ in rows} - set(SENTIMENT_LABELS)
    if unknown:
        raise ValueError(f"{path}: unknown labels {sorted(unknown)}; expected 1 and -1")
    splits = {"train": [], "test": []}
    for label, text in rows:
        splits["test" if _is_test(text) else "train"].append(
            {"text": text, "label": SENTIMENT_LABELS[label]}
        )
    return datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
