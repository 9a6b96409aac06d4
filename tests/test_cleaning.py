"""gptbook.cleaning: chapter 8's near-duplicates, quality filter and mixture sampler."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter

import pytest

from gptbook import cleaning, data
from gptbook.cleaning import (
    BOILERPLATE,
    CORRUPTIONS,
    FEATURES,
    REPEATS,
    MixtureSampler,
    QualityFilter,
    corrupt,
    deduplicate,
    jaccard,
    minhash,
    mixture_epochs,
    near_duplicates,
    precision_recall,
    quality_features,
    quality_filter,
    shingles,
    with_near_duplicates,
)

#: With 5% of the words replaced, about 0.95³ of the 3-word shingles survive: Jaccard ≈ 0.75.
N, THRESHOLD, EDIT_RATE = 3, 0.5, 0.05


@pytest.fixture(scope="module")
def paragraphs() -> dict[str, list[str]]:
    """The paragraphs of ≥ MIN_WORDS words of each held-out play."""
    found = cleaning.documents("val")
    works = data.shakespeare()["val"]
    assert set(found) == set(works["id"])
    assert all(len(p.split()) >= cleaning.MIN_WORDS for ps in found.values() for p in ps)
    return found


@pytest.fixture(scope="module")
def distinct(paragraphs) -> list[str]:
    """All the held-out paragraphs, near-duplicates among them removed."""
    texts = [p for ps in paragraphs.values() for p in ps]
    return [texts[i] for i in deduplicate(texts, THRESHOLD, n=N)]


@pytest.fixture(scope="module")
def injected(distinct) -> tuple[list[str], list[tuple[int, int]]]:
    """The distinct paragraphs and 100 near-copies of them, with the true pairs."""
    return with_near_duplicates(distinct, 100, EDIT_RATE, seed=0)


def test_import_does_not_need_datasketch(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasketch", None)  # importing it now fails
    # named inside the package, so that its relative imports (gptbook.checks) resolve
    spec = importlib.util.spec_from_file_location("gptbook.cleaning_copy", cleaning.__file__)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    with pytest.raises(ImportError):
        minhash("a text")


# ---------------------------------------------------------------------- shingles and Jaccard
def test_shingles_are_lower_cased_word_n_grams():
    assert shingles("The cat sat, on the MAT.", n=2) == {
        "the cat",
        "cat sat",
        "sat on",
        "on the",
        "the mat",
    }
    assert shingles("Don't stop: 42 times", n=1) == {"don't", "stop", "42", "times"}


def test_short_and_empty_texts_give_one_or_no_shingle():
    assert shingles("Hello, world!", n=5) == {"hello world"}
    assert shingles(" ... -- ", n=5) == set()
    assert shingles("") == set()


def test_exact_jaccard_on_hand_made_sets():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard({"a"}, {"a"}) == 1.0
    assert jaccard({"a"}, {"b"}) == 0.0
    assert jaccard(set(), set()) == 0.0
    assert jaccard(set(), {"a"}) == 0.0


def test_minhash_estimates_the_jaccard_similarity(distinct):
    texts = distinct[:1]
    for rate in (0.02, 0.1, 0.3):
        texts += with_near_duplicates(distinct[:1], 1, rate, seed=1)[0][1:]
    texts.append(distinct[1])  # unrelated: Jaccard near 0
    exact = [jaccard(shingles(texts[0], N), shingles(t, N)) for t in texts[1:]]
    estimated = [minhash(texts[0], 256, N).jaccard(minhash(t, 256, N)) for t in texts[1:]]
    assert exact[0] > 0.8 and 0.1 < exact[2] < 0.6 and exact[3] < 0.05  # a spread of values
    assert all(abs(e - x) <= 0.1 for e, x in zip(estimated, exact)), (estimated, exact)


def test_minhash_is_deterministic_for_a_seed():
    text = "one two three four five six seven"
    assert (minhash(text).hashvalues == minhash(text).hashvalues).all()
    assert (minhash(text, seed=2).hashvalues != minhash(text).hashvalues).any()


# ---------------------------------------------------------------------- near-duplicates
def test_near_duplicates_finds_injected_copies_and_nothing_else(injected):
    texts, truth = injected
    found = near_duplicates(texts, THRESHOLD, n=N)
    assert found == sorted(found) and all(i < j for i, j in found)
    hits = len(set(found) & set(truth))
    recall, precision = hits / len(truth), hits / len(found)
    print(f"near_duplicates: recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.9
    assert precision >= 0.95


def test_near_duplicates_checks_the_candidates_of_lsh(distinct):
    # Copies with a fifth of their words replaced are near the threshold: LSH proposes pairs
    # whose estimate is below it (14 candidates, 1 kept, when this was written).
    texts, truth = with_near_duplicates(distinct[:200], 100, 0.2, seed=0)
    found = near_duplicates(texts, 0.5, n=N)
    assert found and set(found) <= set(truth)
    hashes = {i: minhash(texts[i], n=N) for pair in truth for i in pair}
    assert all(hashes[i].jaccard(hashes[j]) >= 0.5 for i, j in found)
    assert len(found) < sum(hashes[i].jaccard(hashes[j]) >= 0.3 for i, j in truth)


def test_copies_jaccard_follows_the_edit_rate(injected):
    texts, truth = injected
    exact = [jaccard(shingles(texts[i], N), shingles(texts[j], N)) for i, j in truth]
    kept = (1 - EDIT_RATE) ** N
    assert sum(exact) / len(exact) == pytest.approx(kept / (2 - kept), abs=0.05)


def test_deduplicate_removes_the_injected_copies(distinct, injected):
    texts, truth = injected
    kept = set(deduplicate(texts, THRESHOLD, n=N))
    removed = [i not in kept for i in range(len(texts))]
    is_copy = [i >= len(distinct) for i in range(len(texts))]
    precision, recall = precision_recall(removed, is_copy)
    print(f"deduplicate: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.95 and recall >= 0.9
    assert all(i in kept for i, _ in truth)  # the originals stay


def test_identical_texts_are_found_and_the_first_of_each_group_kept():
    a = "to be or not to be that is the question whether tis nobler in the mind"
    b = "now is the winter of our discontent made glorious summer by this sun of york"
    texts = [a, b, a, "something else entirely, not like the others at all", b, a, "", ""]
    assert near_duplicates(texts) == [(0, 2), (0, 5), (1, 4), (2, 5)]
    assert deduplicate(texts) == [0, 1, 3, 6, 7]  # empty texts are never duplicates


def test_deduplicate_keeps_one_of_a_chain():
    words = [f"w{i}" for i in range(120)]
    first, second, third = (" ".join(words[k : k + 100]) for k in (0, 10, 20))
    # Jaccard: 90/110 = 0.82 for neighbours, 80/120 = 0.67 from first to third
    texts = [third, first, second]
    assert near_duplicates(texts, 0.75, num_perm=256, n=1) == [(0, 2), (1, 2)]
    assert deduplicate(texts, 0.75, num_perm=256, n=1) == [0]


def test_with_near_duplicates_edits_the_share_of_words_asked():
    texts = [" ".join(f"t{t}w{i}" for i in range(40)) for t in range(10)]
    out, pairs = with_near_duplicates(texts, 4, edit_rate=0.1, seed=3)
    assert out[:10] == texts and len(out) == 14
    assert [j for _, j in pairs] == [10, 11, 12, 13]
    assert len({i for i, _ in pairs}) == 4  # distinct originals
    for i, j in pairs:
        changed = sum(x != y for x, y in zip(out[i].split(), out[j].split()))
        assert changed == 4
    assert with_near_duplicates(texts, 4, edit_rate=0.1, seed=3) == (out, pairs)
    assert with_near_duplicates(texts, 4, edit_rate=0.1, seed=4) != (out, pairs)
    exact, _ = with_near_duplicates(texts, 3, edit_rate=0.0)
    assert set(exact[10:]) <= set(texts)


# ---------------------------------------------------------------------- the quality filter
def noisy(texts: list[str], seed: int) -> list[str]:
    """Each text corrupted, the kinds in turn."""
    kinds = CORRUPTIONS * len(texts)
    return [corrupt(t, kind, seed + k) for k, (t, kind) in enumerate(zip(texts, kinds))]


@pytest.fixture(scope="module")
def quality_data(paragraphs):
    """A filter trained on two plays, and held-out texts of the other two with their labels."""
    train = paragraphs["hamlet"] + paragraphs["henry_v"]
    test = paragraphs["tempest"] + paragraphs["twelfth_night"]
    model = QualityFilter().fit(train[::2], noisy(train[1::2], seed=0))
    texts = test[::2] + noisy(test[1::2], seed=1000)
    return model, texts, [i < len(test[::2]) for i in range(len(texts))]


def test_quality_filter_separates_held_out_text_from_corruptions(quality_data):
    model, texts, actual = quality_data
    precision, recall = precision_recall(model.keep(texts), actual)
    print(f"quality filter: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.9 and recall >= 0.9
    scores = model.score(texts)
    assert scores.shape == (len(texts),) and ((scores >= 0) & (scores <= 1)).all()


def test_keep_pareto_keeps_more_good_than_noisy_texts(quality_data):
    model, texts, actual = quality_data
    kept = model.keep_pareto(texts, seed=0)
    good = sum(k for k, a in zip(kept, actual) if a) / sum(actual)
    bad = sum(k for k, a in zip(kept, actual) if not a) / (len(actual) - sum(actual))
    print(f"keep_pareto: kept {good:.3f} of good texts, {bad:.3f} of noisy ones")
    assert good > 0.5 > bad
    assert model.keep_pareto(texts, seed=0) == kept
    assert model.keep_pareto(texts, seed=1) != kept
    assert model.keep(texts, threshold=0.0) == [True] * len(texts)


def test_quality_filter_function_fits_then_keeps(paragraphs):
    good = paragraphs["hamlet"][:40]
    bad = noisy(paragraphs["hamlet"][40:80], seed=0)
    texts = paragraphs["tempest"][:10]
    expected = QualityFilter().fit(good, bad).keep(texts, 0.7)
    assert quality_filter(texts, good, bad, threshold=0.7) == expected


def test_quality_features_have_one_value_per_feature():
    x = quality_features("The cat\nThe cat\nsat on a mat")
    assert x.shape == (len(FEATURES),)
    value = dict(zip(FEATURES, x.tolist()))
    assert value["repeated_lines"] == pytest.approx(1 / 3)
    assert value["function_words"] == pytest.approx(4 / 8)  # the, the, on, a
    assert value["distinct_words"] == pytest.approx(6 / 8)
    assert value["capitals_at_starts"] == 1.0
    assert quality_features("").shape == (len(FEATURES),)


def test_quality_filter_refuses_bad_use():
    with pytest.raises(RuntimeError, match="fit"):
        QualityFilter().score(["text"])
    with pytest.raises(ValueError, match="fit needs good and noisy texts: got 0 and 1"):
        QualityFilter().fit([], ["noise"])
    model = QualityFilter().fit(["The cat sat on the mat."], ["x9$ 3k!"])
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got 1.5"):
        model.keep(["text"], threshold=1.5)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        model.keep_pareto(["text"], alpha=0)


def test_precision_recall_on_a_hand_example():
    assert precision_recall([True, True, True, False], [True, False, False, True]) == (1 / 3, 0.5)
    assert precision_recall([False, False], [True, False]) == (0.0, 0.0)  # nothing predicted
    assert precision_recall([True, False], [False, False]) == (0.0, 0.0)  # nothing to find
    assert precision_recall([], []) == (0.0, 0.0)
    with pytest.raises(ValueError, match="predicted has 1 values, actual 2"):
        precision_recall([True], [True, False])


def test_corruptions_do_what_they_say(paragraphs):
    text = paragraphs["hamlet"][10]
    shuffled = corrupt(text, "shuffled", seed=1)
    assert shuffled != text and sorted(shuffled.split()) == sorted(text.split())
    assert [len(line.split()) for line in shuffled.splitlines()] == [
        len(line.split()) for line in text.splitlines()
    ]
    chars = corrupt(text, "characters", seed=1)
    assert len(chars) == len(text)
    assert all(a == b for a, b in zip(text, chars) if not a.isalpha())
    assert sum(a != b for a, b in zip(text, chars)) > 0.5 * sum(c.isalpha() for c in text)
    lines = corrupt(text, "boilerplate", seed=1).splitlines()
    assert sum(line in BOILERPLATE for line in lines) >= len(lines) / 2
    assert set(lines) - set(BOILERPLATE) <= set(text.split())
    repeated = corrupt(text, "repeated", seed=1).splitlines()
    assert len(repeated) == REPEATS and len(set(repeated)) == 1
    assert repeated[0] in text.splitlines()
    assert all(corrupt(text, kind, seed=1) == corrupt(text, kind, seed=1) for kind in CORRUPTIONS)


def test_corrupt_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="kind='typos': use one of shuffled, characters"):
        corrupt("text", "typos")


# ---------------------------------------------------------------------- the mixture
SIZES = {"web": 410, "books": 12, "wiki": 3}
WEIGHTS = {"web": 0.6, "books": 0.3, "wiki": 0.1}


def test_mixture_epochs_are_weight_times_total_over_size():
    epochs = mixture_epochs(SIZES, WEIGHTS, total_tokens=300)
    assert epochs == pytest.approx({"web": 0.6 * 300 / 410, "books": 7.5, "wiki": 10.0})
    assert epochs["web"] < 1 < epochs["books"]


def test_mixture_sampler_draws_sources_by_weight():
    sampler = MixtureSampler({k: range(s) for k, s in SIZES.items()}, WEIGHTS, seed=0)
    draws = sampler.sample(20_000)
    counts = Counter(name for name, _ in draws)
    for name, weight in WEIGHTS.items():
        assert counts[name] / len(draws) == pytest.approx(weight, abs=0.02)
    assert sampler.epochs() == pytest.approx({k: counts[k] / SIZES[k] for k in SIZES})


def test_mixture_sampler_draws_every_item_once_before_any_twice():
    sampler = MixtureSampler({"a": "abcdefg", "b": list(range(50))}, {"a": 0.5, "b": 0.5})
    draws = sampler.sample(1_000)
    for name, size in (("a", 7), ("b", 50)):
        indices = [i for n, i in draws if n == name]
        passes = [indices[k : k + size] for k in range(0, len(indices) - size + 1, size)]
        assert len(passes) >= 3
        assert all(sorted(p) == list(range(size)) for p in passes)
        if size == 50:
            assert passes[0] != passes[1]  # shuffled again for each pass
    assert sampler.epochs()["a"] == sum(n == "a" for n, _ in draws) / 7


def test_mixture_sampler_is_deterministic_for_a_seed():
    sources = {k: range(s) for k, s in SIZES.items()}
    one = MixtureSampler(sources, WEIGHTS, seed=3)
    two = MixtureSampler(sources, WEIGHTS, seed=3)
    assert one.sample(100) + one.sample(50) == two.sample(150)  # however the draws are split
    assert MixtureSampler(sources, WEIGHTS, seed=4).sample(150) != two.sample(150)
    assert MixtureSampler(sources, WEIGHTS).sample(0) == []


# ---------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: shingles("a b", n=0), r"n \(words per shingle\) must be a whole number ≥ 1"),
        (lambda: near_duplicates(["a"], threshold=0), r"threshold must be in \(0, 1\], got 0"),
        (lambda: near_duplicates(["a"], threshold=1.1), r"threshold must be in \(0, 1\]"),
        (lambda: near_duplicates(["a"], num_perm=8), "num_perm must be a whole number ≥ 16, got 8"),
        (lambda: near_duplicates(["a"], n=0), r"n \(words per shingle\) must be a whole number"),
        (lambda: deduplicate(["a"], threshold=2), r"threshold must be in \(0, 1\]"),
        (lambda: with_near_duplicates(["a"], 2), r"n_copies must be in \[0, 1\].*got 2"),
        (lambda: with_near_duplicates(["a"], -1), r"n_copies must be in \[0, 1\]"),
        (lambda: with_near_duplicates(["a"], 1, 1.5), r"edit_rate must be in \[0, 1\], got 1.5"),
        (lambda: mixture_epochs(SIZES, {**WEIGHTS, "web": 0.5}, 1), "must sum to 1, got 0.9"),
        (
            lambda: mixture_epochs(SIZES, {"web": 1.2, "books": -0.2, "wiki": 0.0}, 1),
            r"weights must be finite and ≥ 0, got \{'books': -0.2\}",
        ),
        (
            lambda: mixture_epochs(SIZES, {"web": 0.7, "books": 0.3, "news": 0.0}, 1),
            r"missing \['wiki'\], unknown \['news'\]",
        ),
        (lambda: mixture_epochs({**SIZES, "wiki": 0}, WEIGHTS, 1), "sizes must be > 0"),
        (lambda: mixture_epochs(SIZES, WEIGHTS, -1), "total_tokens must be ≥ 0, got -1"),
        (lambda: MixtureSampler({"a": [1]}, {"b": 1.0}), r"missing \['a'\]"),
        (lambda: MixtureSampler({"a": [1]}, {"a": 0.5}), "must sum to 1"),
        (lambda: MixtureSampler({"a": [1], "b": []}, {"a": 1, "b": 0}), r"\['b'\]"),
        (lambda: MixtureSampler({"a": [1]}, {"a": 1.0}).sample(-1), "n must be ≥ 0, got -1"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_module_lists_its_corruptions():
    assert cleaning.CORRUPTIONS == ("shuffled", "characters", "boilerplate", "repeated")
    assert len(cleaning.FUNCTION_WORDS) == 20
