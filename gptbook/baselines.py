"""Baselines a GPT has to beat (chapter 6): a classifier that sees only which words occur.

A bag of words ignores order and context entirely. When a fine-tuned transformer does no better
than this, the transformer has not yet learned anything a word list does not already know.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def words(text: str) -> list[str]:
    """The lower-cased, whitespace-separated words of ``text``."""
    return text.lower().split()


class BagOfWords:
    """Logistic regression on which words occur (each word counted once per text).

    ``BagOfWords().fit(texts, labels).predict(other_texts)``; words seen in fewer than
    ``min_count`` training texts are left out, and so are words never seen in training.
    """

    def __init__(self, min_count: int = 2, weight_decay: float = 1e-3, max_iter: int = 100):
        if min_count < 1:
            raise ValueError(f"min_count must be ≥ 1, got {min_count}")
        self.min_count, self.weight_decay, self.max_iter = min_count, weight_decay, max_iter
        self.vocab: dict[str, int] = {}

    def features(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, V): 1.0 where a text contains the vocabulary's word, else 0."""
        rows, cols = [], []
        for r, text in enumerate(texts):
            found = {self.vocab[w] for w in words(text) if w in self.vocab}
            rows += [r] * len(found)
            cols += sorted(found)
        x = torch.zeros(len(texts), len(self.vocab))
        x[rows, cols] = 1.0
        return x

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> BagOfWords:
        """Learn the vocabulary and the weights (L-BFGS on the cross-entropy + L2 penalty)."""
        if len(texts) != len(labels) or not texts:
            raise ValueError(
                f"fit needs as many labels as texts, and at least one: got {len(texts)} texts "
                f"and {len(labels)} labels"
            )
        counts = Counter(w for text in texts for w in set(words(text)))
        kept = sorted(w for w, c in counts.items() if c >= self.min_count)
        self.vocab = {w: i for i, w in enumerate(kept)}
        x, y = self.features(texts), torch.as_tensor(labels)  # (N, V), (N,)
        n_classes = int(y.max()) + 1
        self.weight = torch.zeros(len(kept), n_classes, requires_grad=True)  # (V, K)
        self.bias = torch.zeros(n_classes, requires_grad=True)  # (K,)
        optimizer = torch.optim.LBFGS(
            [self.weight, self.bias], max_iter=self.max_iter, line_search_fn="strong_wolfe"
        )

        def loss() -> torch.Tensor:
            optimizer.zero_grad()
            value = F.cross_entropy(x @ self.weight + self.bias, y)
            value = value + self.weight_decay * self.weight.pow(2).sum()
            value.backward()
            return value

        optimizer.step(loss)
        return self

    @torch.no_grad()
    def predict(self, texts: Sequence[str]) -> torch.Tensor:
        """The most likely class of each text, (N,)."""
        if not self.vocab:
            raise RuntimeError("this BagOfWords has not been fitted: call fit(texts, labels) first")
        return (self.features(texts) @ self.weight + self.bias).argmax(-1)
