"""Baselines a GPT has to beat: bags of words, which know which words occur and nothing of order.

Chapter 6's :class:`BagOfWords` classifies a text by the words it contains; chapter 7's
:class:`WordCounts` scores an answer by how often its words occur, in the corpus and in the
question. When a transformer does no better than these, it has not yet learned anything a word
list does not already know.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def words(text: str) -> list[str]:
    """The lower-cased, whitespace-separated words of ``text`` (Pang & Lee's sentences come
    split into words, punctuation included)."""
    return text.lower().split()


def letter_words(text: str) -> list[str]:
    """The lower-cased words of ``text`` made of letters and apostrophes, punctuation dropped:
    words of running text such as the plays', where a comma sticks to the word before it."""
    return re.findall(r"[a-z']+", text.lower())


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


class WordCounts:
    """A bag-of-words language model for zero-shot scoring (chapter 7): a word's probability
    mixes its frequency in ``texts`` (add-one smoothed) with its share of the prompt's words,
    ``p(w | prompt) = (1 - cache)·p(w) + cache·n_prompt(w) / |prompt|`` — a word that the prompt
    already uses is likelier again (a "cache" model). Order and grammar play no part.

    ``score_options(prompt, options)`` returns each option's summed log-probability; with
    ``pmi=True`` it subtracts the option's log-probability without a prompt, as
    :func:`gptbook.prompting.pmi_scores` does for a language model.
    """

    def __init__(self, texts: Sequence[str], cache: float = 0.5, pmi: bool = False):
        if not 0 <= cache < 1:
            raise ValueError(f"cache must be in [0, 1), got {cache}")
        self.counts = Counter(w for text in texts for w in letter_words(text))
        if not self.counts:
            raise ValueError("WordCounts needs texts with words in them")
        self.total, self.cache, self.pmi = sum(self.counts.values()), cache, pmi

    def log_prob(self, word: str, prompt: Counter, prompt_len: int) -> float:
        """log p(``word`` | a prompt of ``prompt_len`` words counted in ``prompt``)."""
        unigram = (self.counts[word] + 1) / (self.total + len(self.counts) + 1)
        if not prompt_len:
            return math.log(unigram)
        return math.log((1 - self.cache) * unigram + self.cache * prompt[word] / prompt_len)

    def score_options(self, prompt: str, options: Sequence[str]) -> list[float]:
        """Each option's words' log-probabilities after ``prompt``, summed (minus their sum
        without the prompt when ``pmi``)."""
        context = letter_words(prompt)
        bag = Counter(context)
        scores = []
        for option in options:
            ws = letter_words(option)
            score = sum(self.log_prob(w, bag, len(context)) for w in ws)
            if self.pmi:
                score -= sum(self.log_prob(w, Counter(), 0) for w in ws)
            scores.append(score)
        return scores
