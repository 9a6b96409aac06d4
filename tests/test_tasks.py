"""gptbook.tasks: the sentiment data, the tasks made from the plays, text for a small vocabulary."""

from __future__ import annotations

import pytest

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


def test_plain_writes_text_in_a_small_alphabet():
    alphabet = set("abcdefghijklmnopqrstuvwxyz .-'")
    assert tasks.plain("café — naïve…", alphabet) == "cafe -- naive..."
    assert tasks.plain("50% off $5", alphabet) == " off ", "what cannot be spelt is left out"
    assert tasks.plain("it’s", alphabet) == "it's"


def test_clip_keeps_whole_words():
    assert tasks.clip("to be or not to be", 9) == "to be or"
    assert tasks.clip("short", 9) == "short"
    assert tasks.clip("unbreakable", 4) == "unbr"
    assert tasks.clip("to be or not to be", 9, keep="end") == "not to be"
    assert tasks.clip("to be or not to be", 10, keep="end") == "not to be"
    assert tasks.clip("unbreakable", 4, keep="end") == "able"


def test_speeches_are_parsed_with_speaker_and_scene():
    play = (
        "HAMLET\n\nScene I. Elsinore.\n\n[Enter Hamlet.]\n\nHam.\nTo be, or not to be,\n"
        "[Aside.]\nthat is the question.\n\nHor.\nMy lord!\n\nScene II. A room.\n\nHam.\nWords."
    )
    assert tasks.speeches(play) == [
        {"speaker": "HAM", "scene": 1, "lines": ["To be, or not to be,", "that is the question."]},
        {"speaker": "HOR", "scene": 1, "lines": ["My lord!"]},
        {"speaker": "HAM", "scene": 2, "lines": ["Words."]},
    ]


def test_the_held_out_plays_give_many_speeches():
    plays = tasks.plays("test")
    assert sorted(plays) == ["hamlet", "henry_v", "tempest", "twelfth_night"]
    for speeches in plays.values():
        assert len(speeches) > 500 and max(s["scene"] for s in speeches) >= 8
        assert len({s["speaker"] for s in speeches}) > 10


def test_next_line_questions_have_one_true_next_line():
    questions = tasks.next_line("test", 50, n_choices=4, max_chars=1000)
    lines = {
        (a, b)
        for play in tasks.plays("test").values()
        for s in play
        for a, b in zip(s["lines"], s["lines"][1:])
    }
    labels = list(questions["label"])
    assert set(labels) == {0, 1, 2, 3}, "the true answer is at every position"
    for q in questions:
        assert len(q["choices"]) == 4 and len(set(q["choices"])) == 4
        assert (q["context"], q["choices"][q["label"]]) in lines
    assert list(tasks.next_line("test", 50, max_chars=1000)["context"]) == list(
        questions["context"]
    ), "the same questions every time"
    short = tasks.next_line("test", 20, max_chars=12)
    assert max(len(t) for q in short for t in [q["context"], *q["choices"]]) <= 12


def test_last_word_questions_end_a_real_speech():
    questions = tasks.last_word("test", 60, n_choices=4, max_chars=10_000)
    speeches = [
        " ".join(" ".join(s["lines"]).split())
        for play in tasks.plays("test").values()
        for s in play
    ]
    assert set(questions["label"]) == {0, 1, 2, 3}, "the true answer is at every position"
    for q in questions:
        choices = q["choices"]
        assert len({c.lower() for c in choices}) == 4 and all(c[0] == " " for c in choices)
        answer = choices[q["label"]]
        whole = " ".join((q["context"] + answer).split())  # a line break read as a space
        rest = [s[len(whole) :] for s in speeches if s.startswith(whole)]
        assert any(not r.strip(".,;:!?'-\" ") for r in rest), f"{answer!r} does not end a speech"
    assert list(tasks.last_word("test", 60, max_chars=10_000)["choices"]) == list(
        questions["choices"]
    ), "the same questions every time"
    assert max(len(q["context"]) for q in tasks.last_word("test", 20, max_chars=50)) <= 50


def test_same_speaker_pairs_are_balanced_and_right():
    pairs = tasks.same_speaker("test", 40, max_chars=10**6)
    assert sum(pairs["label"]) == 20
    by_text = {}
    for play in tasks.plays("test").values():
        for s in play:
            by_text.setdefault(" ".join(s["lines"]), set()).add(s["speaker"])
    for p in pairs:
        same = bool(by_text[p["a"]] & by_text[p["b"]])
        assert same == bool(p["label"]) or len(by_text[p["a"]] | by_text[p["b"]]) > 2


def test_same_scene_has_a_third_of_each_answer():
    pairs = tasks.same_scene("train", 30, max_chars=40)
    assert [list(pairs["label"]).count(k) for k in range(3)] == [10, 10, 10]
    assert max(len(p["premise"]) for p in pairs) <= 40
    assert len(tasks.SCENE_LABELS) == 3


def test_glue_names_the_tasks_it_runs():
    with pytest.raises(ValueError, match="the book runs sst2, rte, stsb"):
        tasks.glue("cola")
    assert {name: spec[:2] for name, spec in tasks.GLUE.items()} == {
        "sst2": ("classification", 2),
        "rte": ("entailment", 2),
        "stsb": ("similarity", 1),
    }


#: GLUE's columns on the hub, a row each (the download itself needs the network).
HUB_ROWS = {
    "sst2": {"sentence": "a gorgeous film", "label": 1, "idx": 0},
    "rte": {"sentence1": "The king is dead.", "sentence2": "The king lives.", "label": 1, "idx": 0},
    "stsb": {"sentence1": "A man sings.", "sentence2": "A man is singing.", "label": 4.6, "idx": 0},
}


@pytest.mark.parametrize("name", list(HUB_ROWS))
def test_glue_renames_the_hub_columns_for_build_inputs(name, monkeypatch):
    import datasets

    from gptbook import book, finetune

    def load_dataset(repo, config):
        assert (repo, config) == (tasks.GLUE_REPO, name)
        split = datasets.Dataset.from_list([HUB_ROWS[name]])
        return datasets.DatasetDict({"train": split, "validation": split, "test": split})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(book, "online", lambda: True)
    loaded = tasks.glue(name)
    assert set(loaded) == {"train", "test"}, "GLUE's validation split is the book's test split"
    task = tasks.GLUE[name][0]
    special = finetune.SpecialTokens(start=100, delim=101, extract=102)
    inputs = finetune.build_inputs(task, loaded["test"][0], lambda t: [len(t)], special, 16)
    assert all(ids[0] == special.start and ids[-1] == special.extract for ids in inputs)
    assert loaded["train"][0]["label"] == HUB_ROWS[name]["label"]


def test_glue_offline_says_so_at_once(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(OSError, match="cannot be reached.*tasks.sentiment"):
        tasks.glue("sst2")


def test_line_end_texts_end_at_a_line_break_or_inside_a_line_half_each():
    rows = tasks.line_end("test", 60, max_chars=40)
    assert list(rows["label"]) == [0, 1] * 30
    ends = {
        line.split()[-1]
        for play in tasks.plays("test").values()
        for s in play
        for line in s["lines"]
    }
    for row in rows:
        assert 30 <= len(row["text"]) <= 40, "about the same length: the length says nothing"
        assert "\n" not in row["text"]
        if row["label"] == 1:
            assert row["text"].split()[-1] in ends
    assert list(tasks.line_end("test", 60, max_chars=40)["text"]) == list(rows["text"])
    with pytest.raises(ValueError, match="max_chars must be a whole number"):
        tasks.line_end("test", 2, max_chars=0)
