"""gptbook.tasks: the sentiment data, complete, balanced and split the same way every time."""

from __future__ import annotations

from gptbook import tasks


def test_sentiment_has_every_sentence_once_in_a_stable_split():
    data = tasks.sentiment()
    train, test = data["train"], data["test"]
    assert len(train) + len(test) == 4_000
    assert 700 < len(test) < 900  # about a fifth
    assert not set(train["text"]) & set(test["text"])
    labels = list(train["label"]) + list(test["label"])
    assert labels.count(1) == labels.count(0) == 2_000
    for split in (train, test):
        share = sum(split["label"]) / len(split)
        assert 0.45 < share < 0.55, "each split keeps the balance of the classes"
    assert all(text and text == text.strip() for text in test["text"])
    assert test[0]["text"] == data["test"][0]["text"]  # the same every time
