"""gptbook.baselines: chapter 6's bag of words and chapter 7's word counts."""

from __future__ import annotations

import math
import random

import pytest
import torch

from gptbook.baselines import BagOfWords, WordCounts, letter_words, words


def word_task(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Texts of filler words plus one word that gives the class away: good → 1, bad → 0."""
    rng = random.Random(seed)
    filler = [f"w{i}" for i in range(50)]
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(2)
        text = rng.sample(filler, 6) + ["good" if label else "bad"]
        rng.shuffle(text)
        texts.append(" ".join(text))
        labels.append(label)
    return texts, labels


def test_words_lower_cases_and_splits_on_whitespace():
    assert words("A  Fine\tFilm .") == ["a", "fine", "film", "."]


def test_bag_of_words_learns_the_word_that_decides_the_class():
    texts, labels = word_task(200, seed=0)
    test_texts, test_labels = word_task(100, seed=1)
    model = BagOfWords().fit(texts, labels)
    predicted = model.predict(test_texts)
    assert predicted.tolist() == test_labels
    weight = model.weight.detach()
    assert weight[model.vocab["good"], 1] > weight[model.vocab["good"], 0]
    assert weight[model.vocab["bad"], 0] > weight[model.vocab["bad"], 1]


def test_bag_of_words_ignores_order_and_unseen_words():
    texts, labels = word_task(200, seed=0)
    model = BagOfWords().fit(texts, labels)
    assert torch.equal(model.predict(["w1 good w2"]), model.predict(["w2 w1 good"]))
    assert torch.equal(model.predict(["good"]), model.predict(["good never-seen words"]))
    assert "never-seen" not in model.vocab


def test_bag_of_words_keeps_only_words_seen_min_count_times():
    model = BagOfWords(min_count=2).fit(["a b", "a c", "a b"], [0, 1, 0])
    assert set(model.vocab) == {"a", "b"}


def test_bag_of_words_handles_more_than_two_classes():
    texts = ["red x", "green x", "blue x"] * 10
    model = BagOfWords().fit(texts, [0, 1, 2] * 10)
    assert model.predict(["blue y", "red y", "green y"]).tolist() == [2, 0, 1]


def test_bag_of_words_refuses_bad_input():
    with pytest.raises(ValueError, match="as many labels as texts"):
        BagOfWords().fit(["a", "b"], [0])
    with pytest.raises(ValueError, match="at least one"):
        BagOfWords().fit([], [])
    with pytest.raises(ValueError, match="min_count"):
        BagOfWords(min_count=0)
    with pytest.raises(RuntimeError, match="call fit"):
        BagOfWords().predict(["a"])


def test_letter_words_drop_punctuation_and_keep_apostrophes():
    assert letter_words("O, 'tis Time's fool!") == ["o", "'tis", "time's", "fool"]


def test_word_counts_are_add_one_unigrams_without_a_prompt():
    model = WordCounts(["the cat the dog", "The end."], cache=0.5)
    # counts: the 3, cat 1, dog 1, end 1: 6 words, 4 kinds; an unseen word gets one share too
    assert model.score_options("", ["the", "cat", "zebra"]) == pytest.approx(
        [math.log(4 / 11), math.log(2 / 11), math.log(1 / 11)]
    )
    assert model.score_options("", ["the cat"])[0] == pytest.approx(math.log(4 / 11 * 2 / 11))


def test_word_counts_favour_words_the_prompt_uses():
    model = WordCounts(["the cat the dog"], cache=0.5)
    cat, dog = model.score_options("a cat sat", [" cat", " dog"])
    unigram = 2 / 8  # (1 + 1) / (4 words + 3 kinds + 1)
    assert cat == pytest.approx(math.log(0.5 * unigram + 0.5 * 1 / 3))
    assert dog == pytest.approx(math.log(0.5 * unigram))
    assert (
        WordCounts(["the cat the dog"], cache=0.0).score_options("a cat", ["cat", "dog"])
        == [pytest.approx(math.log(unigram))] * 2
    ), "no cache: the prompt changes nothing"


def test_word_counts_pmi_removes_what_a_word_scores_anyway():
    texts = ["the " * 50 + "king queen"]
    plain, pmi = WordCounts(texts), WordCounts(texts, pmi=True)
    prompt, options = "long live the queen", [" the", " queen"]
    assert plain.score_options(prompt, options)[0] > plain.score_options(prompt, options)[1]
    assert pmi.score_options(prompt, options)[1] > pmi.score_options(prompt, options)[0]
    given, alone = plain.score_options(prompt, options), plain.score_options("", options)
    assert pmi.score_options(prompt, options) == pytest.approx(
        [g - a for g, a in zip(given, alone)]
    )


def test_word_counts_refuse_bad_input():
    with pytest.raises(ValueError, match="cache must be in"):
        WordCounts(["a"], cache=1.0)
    with pytest.raises(ValueError, match="texts with words"):
        WordCounts(["... !"])
