"""gptbook.exercises: graders accept right answers and explain wrong ones."""

from __future__ import annotations

from collections import Counter

import pytest

from gptbook import data, exercises
from gptbook.exercises import ExerciseFailed


def _longest(dataset):
    return max(dataset, key=lambda row: len(row["text"]))["title"]


def _windows(ids, block_size):
    n = (len(ids) - 1) // block_size
    return ids[: n * block_size].view(n, block_size), ids[1 : n * block_size + 1].view(
        n, block_size
    )


def test_00_1(capsys):
    exercises.check_00_1(_longest)
    assert "✓ Exercise 0.1 passed" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="longest work is 'King Richard III'.*\nHint:"):
        exercises.check_00_1(lambda d: min(d, key=lambda r: len(r["text"]))["title"])
    with pytest.raises(ExerciseFailed, match="raised ZeroDivisionError"):
        exercises.check_00_1(lambda d: 1 / 0)
    with pytest.raises(ExerciseFailed, match="expected a function"):
        exercises.check_00_1("Hamlet")


def test_00_2(capsys):
    right = Counter(data.text("train")).most_common(5)
    exercises.check_00_2(right)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="list of 5"):
        exercises.check_00_2(right[:4])
    with pytest.raises(ExerciseFailed, match="training split"):
        exercises.check_00_2(Counter(data.text("val")).most_common(6)[1:])
    with pytest.raises(ExerciseFailed, match="some counts are not"):
        exercises.check_00_2([(c, n + 1) for c, n in right])


def test_00_3(capsys):
    exercises.check_00_3(_windows)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="must have shape"):
        exercises.check_00_3(lambda ids, t: (ids[:t][None], ids[1 : t + 1][None]))
    with pytest.raises(ExerciseFailed, match="Y is wrong.*shifted"):
        exercises.check_00_3(lambda ids, t: (_windows(ids, t)[0], _windows(ids, t)[0]))
    assert isinstance(ExerciseFailed("x"), AssertionError)
