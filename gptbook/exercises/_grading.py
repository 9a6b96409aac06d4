"""What every grader shares: a failure type with a helpful message, and the success line."""

from __future__ import annotations

from typing import Any


class ExerciseFailed(AssertionError):
    """An answer is not right yet; the message says why and gives a hint."""


def expect(condition: bool, exercise: str, problem: str, hint: str = "") -> None:
    """Fail exercise ``exercise`` with ``problem`` (and ``hint``) unless ``condition`` holds."""
    if not condition:
        message = f"Exercise {exercise}: {problem}"
        raise ExerciseFailed(message + (f"\nHint: {hint}" if hint else ""))


def call(exercise: str, fn: Any, *args: Any) -> Any:
    """Call the reader's function, turning its exceptions into a clear failure."""
    expect(callable(fn), exercise, f"expected a function, got {type(fn).__name__}.")
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 — any error in the answer is reported
        raise ExerciseFailed(
            f"Exercise {exercise}: your function raised {type(err).__name__}: {err}"
        ) from err


def passed(exercise: str, detail: str = "") -> None:
    print(f"✓ Exercise {exercise} passed" + (f": {detail}" if detail else "."))
