"""How varied generated text is: distinct-n (chapter 9).

Sampling settings trade likelihood for variety. Greedy decoding and beam search pick the
likeliest continuations and fall into loops; higher temperatures and wider nuclei spread
the choices. distinct-n (Li et al., 2016) counts the variety: the distinct n-grams among
all the n-grams of a set of samples, a number in [0, 1], 1 when no n-gram repeats.
"""

from __future__ import annotations

from collections.abc import Sequence

from .checks import whole


def ngrams(sequence: Sequence, n: int) -> list[tuple]:
    """The n-grams of one sequence (token ids, characters, words), in order."""
    whole("n", n)
    return [tuple(sequence[i : i + n]) for i in range(len(sequence) - n + 1)]


def distinct_n(sequences: Sequence[Sequence], n: int = 2) -> float:
    """Distinct n-grams over all n-grams, across every sequence of ``sequences``: 1.0 when none
    repeats, near 0 when the samples loop (Li et al., 2016, for n = 1 and 2), and 0.0 when they
    hold no n-gram at all (samples of words that are all blank: no variety)."""
    grams = [g for sequence in sequences for g in ngrams(sequence, n)]
    return len(set(grams)) / len(grams) if grams else 0.0
