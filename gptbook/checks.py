"""Argument checks every module shares, so that bad input fails early with a message that
names the argument, the value and what is allowed.

Introduced in chapter 0. A size given as ``2.5`` or ``"64"``, or a count of ``0``, is refused
where it is passed, not three calls later inside PyTorch.
"""

from __future__ import annotations

import math
import numbers


def whole(name: str, value: object, least: int = 1) -> int:
    """``value`` if it is a whole number ≥ ``least`` (``True``/``False`` and ``2.0`` are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{name} must be a whole number ≥ {least}, got {value!r}")
    return int(value)


def number(name: str, value: object, least: float | None = None) -> float:
    """``value`` if it is a finite number (≥ ``least`` if given): not NaN, not infinite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if least is not None and value < least:
        raise ValueError(f"{name} must be ≥ {least}, got {value!r}")
    return float(value)


def flag(name: str, value: object) -> bool:
    """``value`` if it is ``True`` or ``False``: the string ``'False'`` and ``0`` are not (a
    string read from a file or a command line is truthy whatever it says)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def token_ids(ids, vocab_size: int) -> list[int]:
    """``ids`` (a list, a tensor or an array) as a list of ints, each in 0..vocab_size-1.

    Floats are refused, even whole ones: a float where a token id belongs is a bug upstream.
    """
    if hasattr(ids, "tolist"):  # a tensor or an array: its dtype says whether it holds integers
        floating = getattr(ids, "is_floating_point", None)
        if floating() if floating else getattr(ids.dtype, "kind", "") not in "iu":
            raise ValueError(f"token ids must be integers, got a tensor of {ids.dtype}")
        ids = ids.tolist()
    ids = [ids] if isinstance(ids, numbers.Number) else list(ids)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise ValueError(f"token ids must be whole numbers, got {i!r}")
        if not 0 <= i < vocab_size:
            raise ValueError(f"token id {i} is not in the vocabulary 0..{vocab_size - 1}")
    return [int(i) for i in ids]


def id_batch(idx) -> None:
    """Refuse anything but a batch of token ids: a tensor of shape (B, T) of an integer dtype."""
    shape, dtype = tuple(getattr(idx, "shape", ())), getattr(idx, "dtype", None)
    integer = dtype is not None and not dtype.is_floating_point and not dtype.is_complex
    if len(shape) != 2 or not integer or str(dtype) == "torch.bool":
        raise ValueError(
            f"idx must be token ids of shape (B, T) and an integer dtype (torch.long), got "
            f"{type(idx).__name__} of shape {shape} and dtype {dtype}; for one sequence use "
            "ids[None] (shape (1, T))"
        )
    if 0 in shape:
        raise ValueError(
            f"idx is empty, of shape {shape}: a batch needs at least one sequence of at least "
            "one token (a loss averaged over no token is NaN)"
        )
