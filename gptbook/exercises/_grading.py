"""What every grader shares: :class:`Exercise`, which calls the reader's answer and checks it.

A grader makes one ``ex = Exercise("3.1")`` and goes through it for every step, so each
failure names the exercise, says what was expected and what came back, and gives a hint::

    ex = Exercise("3.1")
    got = ex.tensor(sinusoidal_table, 10, 4, dtype=torch.float64)
    ex.expect_close(got, want, "the table differs from sin/cos(p ω_i)", hint="feature 2i is ...")
    ex.passed("the sinusoidal table is right")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import torch


class ExerciseFailed(AssertionError):
    """An answer is not right yet; the message says why and gives a hint."""


CALL_HINT = "the traceback above ends at the line of your code that failed."
CALLABLE_HINT = "pass the function itself, not the result of calling it: check(f), not check(f(x))."
TENSOR_HINT = "return a torch.Tensor (a nested list of numbers also works)."


def shorten(value: Any, width: int = 80) -> str:
    """``repr(value)``, cut to ``width`` characters (with "…") so a message stays readable."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _item(value: torch.Tensor) -> str:
    """One entry of a tensor for a message: True, 3, 0.25 (not 3.0 for a float count)."""
    x = value.item()
    return str(x) if isinstance(x, bool | int) else f"{x:.6g}"


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(shape)


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The position of entry ``flat`` of a tensor of ``shape``, as a tuple of indices."""
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), shape)) if shape else ()


class Exercise:
    """The grader of one exercise, numbered like the book (``"3.1"``).

    Every method raises :class:`ExerciseFailed` with ``"Exercise 3.1: <problem>"`` and,
    on its own line, ``"Hint: <hint>"`` when the check does not hold.
    """

    def __init__(self, number: str):
        self.number = number
        # The exercise's own random numbers (seeded by its number, "5.4" -> 54): a grader
        # draws the same inputs every time, whatever the reader's code did to torch's seed.
        self.random = torch.Generator().manual_seed(int(number.replace(".", "")))

    def failure(self, problem: str, hint: str = "") -> ExerciseFailed:
        """The failure to raise: ``Exercise 3.1: problem``, then ``Hint: hint`` on its own line."""
        message = f"Exercise {self.number}: {problem}"
        return ExerciseFailed(message + (f"\nHint: {hint}" if hint else ""))

    def fail(self, problem: str, hint: str = "") -> NoReturn:
        """Stop grading: the answer has ``problem``; ``hint`` says how to fix it."""
        raise self.failure(problem, hint)

    def expect(self, condition: bool, problem: str, hint: str = "") -> None:
        """Fail with ``problem`` (and ``hint``) unless ``condition`` holds."""
        if not condition:
            self.fail(problem, hint)

    def call(self, fn: Any, *args: Any, hint: str = CALL_HINT) -> Any:
        """``fn(*args)``, refusing a non-callable and turning the reader's exceptions into a
        failure that names the exception (its traceback stays attached as the cause)."""
        self.expect(callable(fn), f"expected a function, got {type(fn).__name__}.", CALLABLE_HINT)
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 — any error in the answer is reported
            name = getattr(fn, "__name__", type(fn).__name__)
            problem = f"{name}(...) raised {type(err).__name__}: {err}"
            raise self.failure(problem, hint) from err

    def as_tensor(
        self, value: Any, what: str = "your answer", dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """``value`` as a tensor (of ``dtype`` if given), or a failure naming ``what`` it was."""
        try:
            return torch.as_tensor(value, dtype=dtype)
        except (TypeError, ValueError, RuntimeError) as err:
            self.fail(
                f"{what} should be a tensor, got {type(value).__name__} ({err}).", TENSOR_HINT
            )

    def tensor(
        self, fn: Any, *args: Any, dtype: torch.dtype | None = None, hint: str = CALL_HINT
    ) -> torch.Tensor:
        """``fn(*args)`` as a tensor: :meth:`call`, then :meth:`as_tensor`."""
        name = getattr(fn, "__name__", "your function")
        return self.as_tensor(self.call(fn, *args, hint=hint), f"what {name} returned", dtype)

    def scalar(self, fn: Any, *args: Any) -> float:
        """``fn(*args)`` as one float: a Python number or a one-element tensor."""
        got = self.call(fn, *args)
        try:
            return float(got)
        except (TypeError, ValueError, RuntimeError) as err:
            name = getattr(fn, "__name__", "your function")
            self.fail(
                f"{name} should return one number, got {type(got).__name__} ({err}).",
                "return a Python number (or a tensor with a single element).",
            )

    def tensors(
        self, fn: Any, *args: Any, names: Sequence[str], dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``fn(*args)`` for a function returning one tensor per name, e.g. ``names=("X", "Y")``."""
        got = self.call(fn, *args)
        wanted = f"({', '.join(names)})"
        self.expect(
            isinstance(got, tuple | list) and len(got) == len(names),
            f"return the {len(names)} values {wanted}, got {type(got).__name__}"
            + (f" of length {len(got)}." if isinstance(got, tuple | list) else "."),
            f"end your function with: return {', '.join(names)}",
        )
        return tuple(self.as_tensor(t, name, dtype) for t, name in zip(got, names, strict=True))

    def expect_shape(
        self, got: Any, shape: Sequence[int], what: str = "your answer", hint: str = ""
    ) -> None:
        """Fail unless ``got.shape == shape``, saying both shapes."""
        have, want = _shape(got), tuple(shape)
        self.expect(
            have == want,
            f"{what} should have shape {want}, got "
            + (f"{have}." if have is not None else f"a {type(got).__name__} with no shape."),
            hint or "print the shape after each step of your code to see where it goes wrong.",
        )

    def expect_equal(
        self,
        got: torch.Tensor,
        want: torch.Tensor,
        problem: str,
        hint: str = "",
        what: str = "your answer",
    ) -> None:
        """Shape first, then every entry equal; the message says how many differ and where."""
        self.expect_shape(got, want.shape, what)
        differ = (got != want).flatten()
        if bool(differ.any()):
            summary = f"{int(differ.sum())} of {differ.numel()} entries differ; first"
            self._fail_at(int(differ.nonzero()[0]), got, want, problem, summary, hint)

    def expect_close(
        self,
        got: torch.Tensor,
        want: torch.Tensor,
        problem: str,
        hint: str = "",
        atol: float = 1e-6,
        what: str = "your answer",
    ) -> None:
        """Shape first, then ``allclose`` (in float64); the message gives the largest error."""
        self.expect_shape(got, want.shape, what)
        got, want = got.double(), want.double()
        if not torch.allclose(got, want, atol=atol):
            error = (got - want).abs().flatten()
            error = torch.where(error.isnan(), float("inf"), error)  # a NaN is the worst error
            worst = int(error.argmax())
            summary = f"largest error {error[worst].item():.3g}"
            self._fail_at(worst, got, want, problem, summary, hint)

    def _fail_at(
        self,
        flat: int,
        got: torch.Tensor,
        want: torch.Tensor,
        problem: str,
        summary: str,
        hint: str,
    ) -> NoReturn:
        """Fail, pointing at entry ``flat`` (of the flattened tensors):
        ``problem (summary at (i, j): got x, expected y).``"""
        at = _index(flat, tuple(want.shape))
        where = f" at {at}" if at else ""
        got_x, want_x = _item(got.flatten()[flat]), _item(want.flatten()[flat])
        problem = problem.removesuffix(".")
        self.fail(f"{problem} ({summary}{where}: got {got_x}, expected {want_x}).", hint)

    def passed(self, detail: str = "") -> None:
        """Print the success line: ``✓ Exercise 3.1 passed: detail``."""
        print(f"✓ Exercise {self.number} passed" + (f": {detail}" if detail else "."))
