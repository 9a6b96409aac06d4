"""How GPT-3's training data was cleaned and mixed: near-duplicates, a quality filter, a mixture.

Introduced in chapter 8. GPT-3 (Brown et al., 2020, appendix A) kept the Common Crawl documents
that a logistic regression took for curated text (WebText, books, Wikipedia), by the rule
``np.random.pareto(9) > 1 - score`` (:class:`QualityFilter`; GPT-3's features were hashed word
counts, ours a few cheap statistics, :data:`FEATURES`); removed near-duplicate documents with
MinHash LSH (Spark's, 10 hashes; here ``datasketch``: :func:`near_duplicates`,
:func:`deduplicate`); and sampled its sources by weight, not by size (Table 2.2), so small
curated sources are seen several times and Common Crawl less than once (:func:`mixture_epochs`,
:class:`MixtureSampler`). :func:`with_near_duplicates` and :func:`corrupt` make test data.
"""

from __future__ import annotations

import math
import random
import re
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .checks import whole

if TYPE_CHECKING:
    import datasketch

#: A word: a run of letters, digits and apostrophes.
WORD = re.compile(r"(?:[^\W_]|')+")
#: Twenty frequent English function words; curated text is full of them, boilerplate is not.
FUNCTION_WORDS = frozenset(
    "the of and to a in is that it for i you he was with as on be not his".split()
)
#: Punctuation after which a capitalised word starts a sentence or a clause.
SENTENCE_ENDS = ".!?:;"
#: The features of :func:`quality_features`, in order (see there).
FEATURES = (
    "letters",
    "whitespace",
    "digits",
    "punctuation",
    "upper_case",
    "word_length",
    "distinct_words",
    "function_words",
    "repeated_lines",
    "capitals_at_starts",
    "log_words",
)
#: Web boilerplate that :func:`corrupt` puts in place of a text.
BOILERPLATE = (
    "Click here to subscribe",
    "Copyright 2020 All rights reserved",
    "Home | About | Contact",
    "Cookies help us deliver our services",
    "Sign in | Register | Forgot password?",
    "Share on Facebook Twitter Email",
    "Terms of Use | Privacy Policy",
    "Posted by admin at 10:32 PM 0 comments",
)
#: The kinds of :func:`corrupt`.
CORRUPTIONS = ("shuffled", "characters", "boilerplate", "repeated")
#: "characters": the share of letters replaced, and what replaces them.
CHARACTER_NOISE = 0.8
NOISE_CHARACTERS = string.ascii_letters + string.digits + string.punctuation
#: "boilerplate": lines of boilerplate, and how many words of the text are mixed in.
BOILERPLATE_LINES, BOILERPLATE_WORDS = 8, 4
#: "repeated": how many times the line is repeated.
REPEATS = 20
#: Standard deviations below this are taken as this (a feature constant in training).
STD_FLOOR = 1e-6
#: How far from 1 the mixture weights may sum.
WEIGHT_TOLERANCE = 1e-6
#: The fewest permutations :func:`near_duplicates` accepts (fewer give too few LSH bands).
MIN_PERM = 16


#: A paragraph of the plays this long counts as a document: distinct enough from the others.
MIN_WORDS = 30


def documents(split: str = "val", min_words: int = MIN_WORDS) -> dict[str, list[str]]:
    """The corpus as documents, for chapter 8's experiments: each work of ``split`` (a split of
    :func:`gptbook.data.shakespeare`) as its paragraphs of at least ``min_words`` words."""
    from . import data

    works = data.shakespeare()[split]
    return {
        w["id"]: [p for p in w["text"].split("\n\n") if len(p.split()) >= min_words] for w in works
    }


# ---------------------------------------------------------------------- near-duplicates
def shingles(text: str, n: int = 5) -> set[str]:
    """The word ``n``-grams of lower-cased ``text`` (joined by spaces); a text of fewer than
    ``n`` words gives one shingle of all its words, an empty text none."""
    n = whole("n (words per shingle)", n)
    words = WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity ``|a ∩ b| / |a ∪ b|``; 0.0 for two empty sets, not 1.0: an empty
    text shares nothing with anything, so it is never a near-duplicate."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def minhash(text: str, num_perm: int = 128, n: int = 5, seed: int = 1) -> datasketch.MinHash:
    """A ``datasketch.MinHash`` of the text's :func:`shingles`; ``m1.jaccard(m2)`` estimates
    their Jaccard similarity with a standard error of about √(J(1-J)/num_perm). An empty text
    has no shingles and no MinHash (two would estimate 1.0 where :func:`jaccard` says 0.0)."""
    from datasketch import MinHash

    num_perm = whole("num_perm", num_perm)
    if not shingles(text, n):
        raise ValueError(
            "minhash of an empty text: it has no shingles to hash, and two empty MinHashes "
            "would look identical; leave empty texts out (jaccard gives them 0.0)"
        )
    m = MinHash(num_perm=num_perm, seed=seed)
    m.update_batch([s.encode("utf-8") for s in shingles(text, n)])
    return m


def near_duplicates(
    texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128, n: int = 5, seed: int = 1
) -> list[tuple[int, int]]:
    """Sorted pairs (i, j), i < j, whose MinHash estimate of Jaccard similarity is ≥
    ``threshold``. LSH finds the candidates without comparing every pair; since it has false
    positives and negatives, each candidate's estimate is checked. Empty texts pair with none."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    whole("num_perm", num_perm, least=MIN_PERM)
    whole("n (words per shingle)", n)
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes, pairs = {}, set()
    for i, text in enumerate(texts):
        if not shingles(text, n):
            continue
        hashes[i] = minhash(text, num_perm, n, seed)
        for j in lsh.query(hashes[i]):  # candidates: only earlier texts are indexed, j < i
            if hashes[i].jaccard(hashes[j]) >= threshold:
                pairs.add((j, i))
        lsh.insert(i, hashes[i])
    return sorted(pairs)


def deduplicate(texts: Sequence[str], threshold: float = 0.8, **kw) -> list[int]:
    """Indices of the texts to keep: of each group of near-duplicates (connected components
    of :func:`near_duplicates`' pairs; ``kw`` goes to it) the first one, as GPT-3 removed
    documents."""
    root = list(range(len(texts)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i, j in near_duplicates(texts, threshold, **kw):
        a, b = find(i), find(j)
        root[max(a, b)] = min(a, b)  # the lower index stays the group's root
    return [i for i in range(len(texts)) if find(i) == i]


def with_near_duplicates(
    texts: Sequence[str], n_copies: int, edit_rate: float = 0.05, seed: int = 0
) -> tuple[list[str], list[tuple[int, int]]]:
    """``texts`` plus ``n_copies`` near-copies of distinct originals chosen at random, appended,
    each with a share ``edit_rate`` of its words (rounded) replaced by other words of the
    texts; and the true (original, copy) index pairs. Each original is copied at most once, so
    these are all the true pairs. Replacing a share e of the words leaves about (1-e)^n of a
    copy's n-word shingles whole, a Jaccard similarity of about (1-e)^n / (2 - (1-e)^n):
    0.63 for e = 0.05 and n = 5."""
    if not 0 <= n_copies <= len(texts):
        raise ValueError(f"n_copies must be in [0, {len(texts)}] (one per text), got {n_copies}")
    if not 0 <= edit_rate <= 1:
        raise ValueError(f"edit_rate must be in [0, 1], got {edit_rate}")
    rng = random.Random(seed)
    vocab = sorted({w for text in texts for w in text.split()})
    copies, pairs = [], []
    for original in rng.sample(range(len(texts)), n_copies):
        parts = re.split(r"(\s+)", texts[original])  # words at even positions, spaces between
        slots = [k for k in range(0, len(parts), 2) if parts[k]]
        for k in rng.sample(slots, round(edit_rate * len(slots))):
            word = rng.choice(vocab)
            while word == parts[k] and len(vocab) > 1:
                word = rng.choice(vocab)
            parts[k] = word
        pairs.append((original, len(texts) + len(copies)))
        copies.append("".join(parts))
    return [*texts, *copies], pairs


# ---------------------------------------------------------------------- the quality filter
def quality_features(text: str) -> torch.Tensor:
    """The :data:`FEATURES` of ``text``, shape (len(FEATURES),): the shares of its characters
    that are letters, whitespace, digits and punctuation, of its letters that are upper case;
    its words' mean length, share of distinct words, share of :data:`FUNCTION_WORDS`; the share
    of its lines that repeat an earlier one; the share of its capitalised words that start a
    line or follow :data:`SENTENCE_ENDS` (low when words are out of order); log(1 + words)."""
    chars, letters = max(len(text), 1), sum(c.isalpha() for c in text)
    words = WORD.findall(text.lower())
    n_words = max(len(words), 1)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    capitals = starts = 0
    for line in lines:
        previous = ""
        for token in line.split():
            capitals += token[0].isupper()
            starts += token[0].isupper() and (not previous or previous[-1] in SENTENCE_ENDS)
            previous = token
    features = {
        "letters": letters / chars,
        "whitespace": sum(c.isspace() for c in text) / chars,
        "digits": sum(c.isdigit() for c in text) / chars,
        "punctuation": sum(c in string.punctuation for c in text) / chars,
        "upper_case": sum(c.isupper() for c in text) / max(letters, 1),
        "word_length": sum(map(len, words)) / n_words,
        "distinct_words": len(set(words)) / n_words,
        "function_words": sum(w in FUNCTION_WORDS for w in words) / n_words,
        "repeated_lines": (len(lines) - len(set(lines))) / max(len(lines), 1),
        "capitals_at_starts": starts / max(capitals, 1),
        "log_words": math.log1p(len(words)),
    }
    return torch.tensor([features[name] for name in FEATURES])


def _features(texts: Sequence[str]) -> torch.Tensor:
    """(N, len(FEATURES))."""
    if not len(texts):
        return torch.zeros(0, len(FEATURES))
    return torch.stack([quality_features(t) for t in texts])


class QualityFilter:
    """Logistic regression on :data:`FEATURES`: the probability that a text is "good" (like the
    curated ``good`` texts of :meth:`fit`) rather than ``noisy``. Chapter 8.

    ``QualityFilter().fit(good, noisy).keep(texts)``; features are standardised with the
    training mean and standard deviation, weights found by L-BFGS with an L2 penalty."""

    def __init__(self, weight_decay: float = 1e-3, max_iter: int = 100):
        self.weight_decay, self.max_iter = weight_decay, max_iter
        self.weight: torch.Tensor | None = None

    def fit(self, good: Sequence[str], noisy: Sequence[str]) -> QualityFilter:
        """Learn from ``good`` (label 1) and ``noisy`` (label 0) texts; returns self."""
        if not len(good) or not len(noisy):
            raise ValueError(f"fit needs good and noisy texts: got {len(good)} and {len(noisy)}")
        x = _features([*good, *noisy])  # (N, F)
        y = torch.cat([torch.ones(len(good)), torch.zeros(len(noisy))])  # (N,)
        self.mean = x.mean(0)
        self.std = x.std(0, correction=0).clamp_min(STD_FLOOR)
        z = (x - self.mean) / self.std
        weight = torch.zeros(len(FEATURES), requires_grad=True)  # (F,)
        bias = torch.zeros((), requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weight, bias], max_iter=self.max_iter, line_search_fn="strong_wolfe"
        )

        def loss() -> torch.Tensor:
            optimizer.zero_grad()
            value = F.binary_cross_entropy_with_logits(z @ weight + bias, y)
            value = value + self.weight_decay * weight.pow(2).sum()
            value.backward()
            return value

        optimizer.step(loss)
        self.weight, self.bias = weight.detach(), bias.detach()
        return self

    def score(self, texts: Sequence[str]) -> torch.Tensor:
        """(N,): each text's probability of being good."""
        if self.weight is None:
            raise RuntimeError("this QualityFilter has not been fitted: call fit(good, noisy)")
        z = (_features(texts) - self.mean) / self.std  # (N, F)
        return torch.sigmoid(z @ self.weight + self.bias)

    def keep(self, texts: Sequence[str], threshold: float = 0.5) -> list[bool]:
        """Whether each text's score is ≥ ``threshold`` (0 keeps everything)."""
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        return (self.score(texts) >= threshold).tolist()

    def keep_pareto(self, texts: Sequence[str], alpha: float = 9.0, seed: int = 0) -> list[bool]:
        """GPT-3's rule: keep a text when a Pareto(``alpha``) draw is > 1 - score. Most good
        texts are kept, and a few that score low, so the filter does not only keep one kind."""
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
        import numpy as np

        scores = self.score(texts).double().numpy()
        draws = np.random.default_rng(seed).pareto(alpha, size=len(scores))
        return (draws > 1 - scores).tolist()


def quality_filter(
    texts: Sequence[str], good: Sequence[str], noisy: Sequence[str], threshold: float = 0.5
) -> list[bool]:
    """Fit a :class:`QualityFilter` on ``good`` and ``noisy``; which of ``texts`` it keeps."""
    return QualityFilter().fit(good, noisy).keep(texts, threshold)


def precision_recall(predicted: Sequence[bool], actual: Sequence[bool]) -> tuple[float, float]:
    """Precision and recall of the True class. With nothing predicted (or nothing actually)
    True the precision (or recall) is 0/0, taken as 0.0: no evidence counts as none found."""
    if len(predicted) != len(actual):
        raise ValueError(f"predicted has {len(predicted)} values, actual {len(actual)}")
    hits = sum(bool(p) and bool(a) for p, a in zip(predicted, actual))
    n_predicted, n_actual = sum(map(bool, predicted)), sum(map(bool, actual))
    return (hits / n_predicted if n_predicted else 0.0, hits / n_actual if n_actual else 0.0)


def corrupt(text: str, kind: str, seed: int = 0) -> str:
    """``text`` made noisy, one of :data:`CORRUPTIONS`: ``shuffled`` (its words in a random
    order, in the same places), ``characters`` (most letters replaced by random characters,
    same length), ``boilerplate`` (web boilerplate lines with a few of its words), ``repeated``
    (one of its lines, :data:`REPEATS` times)."""
    rng = random.Random(seed)
    parts = re.split(r"(\s+)", text)  # words at even positions
    words = [p for p in parts[::2] if p]
    if kind == "shuffled":
        rng.shuffle(words)
        shuffled = iter(words)
        return "".join(next(shuffled) if k % 2 == 0 and p else p for k, p in enumerate(parts))
    if kind == "characters":
        return "".join(
            rng.choice(NOISE_CHARACTERS) if c.isalpha() and rng.random() < CHARACTER_NOISE else c
            for c in text
        )
    if kind == "boilerplate":
        lines = [rng.choice(BOILERPLATE) for _ in range(BOILERPLATE_LINES)]
        for word in rng.sample(words, min(BOILERPLATE_WORDS, len(words))):
            lines.insert(rng.randrange(len(lines) + 1), word)
        return "\n".join(lines)
    if kind == "repeated":
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join([rng.choice(lines)] * REPEATS) if lines else text
    raise ValueError(f"kind={kind!r}: use one of {', '.join(CORRUPTIONS)}")


# ---------------------------------------------------------------------- the mixture
#: GPT-3's Table 2.2: each source's size in tokens, its weight in the training mix and the
#: epochs it makes over 300 billion tokens, as printed (the weights, rounded, sum to 101%).
GPT3_MIX = {
    "Common Crawl (filtered)": (410e9, 0.60, 0.44),
    "WebText2": (19e9, 0.22, 2.9),
    "Books1": (12e9, 0.08, 1.9),
    "Books2": (55e9, 0.08, 0.43),
    "Wikipedia": (3e9, 0.03, 3.4),
}
#: The tokens GPT-3 trained on: 300 billion.
GPT3_TOKENS = 300e9


def _check_weights(names: Sequence[str], weights: dict[str, float]) -> None:
    if set(weights) != set(names):
        missing, unknown = sorted(set(names) - set(weights)), sorted(set(weights) - set(names))
        raise ValueError(f"weights need the sources' keys: missing {missing}, unknown {unknown}")
    negative = {k: w for k, w in weights.items() if not (w >= 0 and math.isfinite(w))}
    if negative:
        raise ValueError(f"weights must be finite and ≥ 0, got {negative}")
    total = sum(weights.values())
    if abs(total - 1) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights must sum to 1, got {total:.6g}: divide each by their sum")


def mixture_epochs(
    sizes: dict[str, int], weights: dict[str, float], total_tokens: int
) -> dict[str, float]:
    """Passes over each source when ``total_tokens`` are drawn by weight: weight · total / size
    (GPT-3's Table 2.2, "epochs elapsed when training for 300B tokens")."""
    _check_weights(list(sizes), weights)
    small = {k: s for k, s in sizes.items() if s <= 0}
    if small:
        raise ValueError(f"sizes must be > 0, got {small}")
    if total_tokens < 0:
        raise ValueError(f"total_tokens must be ≥ 0, got {total_tokens}")
    return {k: weights[k] * total_tokens / sizes[k] for k in sizes}


class MixtureSampler:
    """Draws (source name, index) pairs: a source chosen by weight, then its next item in a
    shuffled order that is shuffled again after each pass, so every item of a source is drawn
    once before any is drawn twice. Deterministic for a ``seed``; ``sample(a)`` then
    ``sample(b)`` draws what ``sample(a + b)`` would. Chapter 8."""

    def __init__(self, sources: dict[str, Sequence], weights: dict[str, float], seed: int = 0):
        _check_weights(list(sources), weights)
        empty = [k for k, s in sources.items() if not len(s)]
        if empty:
            raise ValueError(f"sources must not be empty: {empty} are")
        self.sources, self.names = sources, list(sources)
        self.weights = [weights[k] for k in self.names]
        self._rng = random.Random(seed)
        self._shufflers = {k: random.Random(f"{seed}/{k}") for k in self.names}
        self._order: dict[str, list[int]] = {k: [] for k in self.names}
        self.draws = dict.fromkeys(self.names, 0)

    def _next(self, name: str) -> int:
        position = self.draws[name] % len(self.sources[name])
        if position == 0:  # a new pass
            self._order[name] = list(range(len(self.sources[name])))
            self._shufflers[name].shuffle(self._order[name])
        self.draws[name] += 1
        return self._order[name][position]

    def sample(self, n: int) -> list[tuple[str, int]]:
        """``n`` draws of (source name, index into that source)."""
        if n < 0:
            raise ValueError(f"n must be ≥ 0, got {n}")
        return [(k, self._next(k)) for k in self._rng.choices(self.names, self.weights, k=n)]

    def epochs(self) -> dict[str, float]:
        """Passes over each source that the draws so far make: draws / len(source)."""
        return {k: self.draws[k] / len(self.sources[k]) for k in self.names}
