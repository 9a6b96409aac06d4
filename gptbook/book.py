"""Notebook support: seeding, device, scale, and showing package code in the book.

Introduced in chapter 0 (*The corpus and the tools*). Every chapter starts with
``from gptbook import book; book.setup()``.

Two scales run every chapter:

- ``quick``: small configurations that finish in about two minutes on a 2-core CPU
  with no network. CI runs this scale.
- ``full``: the configurations whose results the text talks about, on one GPU.

The scale comes from the environment variable ``GPTBOOK_SCALE`` (``quick`` or
``full``); when it is unset, it is ``full`` on a CUDA GPU and ``quick`` elsewhere.
Notebooks choose their settings with :func:`pick`.

A *fast dev run* (the name is PyTorch Lightning's) checks a path without paying for it:
with ``GPTBOOK_FAST_DEV_RUN=2``, every training and evaluation loop stops after two steps or
batches, while every model, batch and code path keeps the size its scale gives it. The tests
run the full path this way on a CPU. See :func:`fast_dev_run`.
"""

from __future__ import annotations

import inspect
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ._version import __version__

T = TypeVar("T")

SCALES = ("quick", "full")
DEVICE_KINDS = ("cpu", "cuda", "mps")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def scale() -> str:
    """The scale notebooks run at: ``GPTBOOK_SCALE``, or full on CUDA and quick elsewhere."""
    value = os.environ.get("GPTBOOK_SCALE", "").strip().lower()
    if not value:
        return "full" if _cuda_available() else "quick"
    if value not in SCALES:
        raise ValueError(
            f"GPTBOOK_SCALE={value!r} is not a scale; set it to one of {', '.join(SCALES)} "
            "(or unset it: full on a CUDA GPU, quick elsewhere)."
        )
    return value


def device(name: str | None = None) -> str:
    """The device to compute on: ``name`` if given, else ``GPTBOOK_DEVICE`` if set, else cuda,
    then mps, then cpu. A device that is not there is refused with a message saying why."""
    import torch

    source = "device" if name else "GPTBOOK_DEVICE"
    wanted = (name or os.environ.get("GPTBOOK_DEVICE", "")).strip().lower()
    if not wanted:
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    kind, _, index = wanted.partition(":")
    if kind not in DEVICE_KINDS or (index and not index.isdigit()):
        raise ValueError(
            f"{source}={wanted!r} is not a device; use one of {', '.join(DEVICE_KINDS)} "
            "(optionally with an index, e.g. cuda:1)."
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{source}={wanted!r} but PyTorch sees no CUDA GPU; choose cpu (or unset "
            "GPTBOOK_DEVICE), or install a CUDA build of PyTorch."
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"{source}={wanted!r} but there are {torch.cuda.device_count()} GPUs.")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{source}={wanted!r} but MPS is not available here.")
    return wanted


def allow_tf32() -> None:
    """Let float32 matrix products use TF32 tensor cores on NVIDIA GPUs (Ampere and newer).

    TF32 keeps float32's range with a 10-bit mantissa: several times faster, and accurate
    enough for training. A process-wide setting, which :func:`setup` makes; to compare with
    true float32, set ``torch.backends.cuda.matmul.allow_tf32 = False`` afterwards.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


#: The host of the Hugging Face hub, where the online-only paths load from.
HUB_HOST = "huggingface.co"


def online(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub can be reached: False at once when ``HF_HUB_OFFLINE`` or
    ``HF_DATASETS_OFFLINE`` is set, else whether a connection to ``host`` opens within
    ``timeout`` seconds. Chapters guard their online-only cells with it."""
    import socket

    if any(
        os.environ.get(v, "0") not in ("", "0") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    ):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


#: The environment variable that turns a fast dev run on: a number of steps, or 0 for off.
FAST_DEV_RUN_VARIABLE = "GPTBOOK_FAST_DEV_RUN"


def fast_dev_run() -> int:
    """How many steps and batches each loop runs in a fast dev run; 0 when there is none.

    ``GPTBOOK_FAST_DEV_RUN=n`` (n ≥ 1) caps every training run, evaluation and counted loop
    of the book at ``n`` steps or batches: the package's loops through :func:`cap` (the
    Trainer through :meth:`gptbook.train.TrainConfig.capped`), a chapter's own counts through
    :func:`pick` with ``dry=``. A chapter at ``GPTBOOK_SCALE=full`` then runs in minutes on a
    CPU, with numbers that mean nothing: it answers only "does every cell of the full path
    run?". Pretrained models of a fast dev run are kept apart (:func:`gptbook.pretrained.path`).
    """
    value = os.environ.get(FAST_DEV_RUN_VARIABLE, "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise ValueError(
            f"{FAST_DEV_RUN_VARIABLE}={value!r} is not a number of steps; set it to a whole "
            "number, e.g. 2 (each loop stops after 2 steps), or to 0 (or unset it) for a real run."
        )
    return int(value)


def cap(n: int, per: int = 1) -> int:
    """``n``, or in a fast dev run at most its few steps' worth, ``per`` items a step: how far a
    loop of the package goes (``range(book.cap(steps))``, ``book.cap(len(x), per=batch_size)``)."""
    steps = fast_dev_run()
    return min(n, steps * per) if steps else n


def pick(*, quick: T, full: T, dry: T | None = None) -> T:
    """Choose a setting by scale: ``steps = book.pick(quick=200, full=5000)``.

    ``dry``, if given, is what a fast dev run takes instead (see :func:`fast_dev_run`): counts
    of loops the package does not cap itself, such as how many examples to score.
    """
    if dry is not None and fast_dev_run():
        return dry
    return quick if scale() == "quick" else full


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (all devices) with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def plot_style() -> None:
    """The book's matplotlib style: readable sizes, light grid, no top/right spines."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.figsize": (7.0, 3.6),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "font.size": 10,
        }
    )


def setup(seed: int = 0) -> None:
    """Prepare a chapter: seed everything, pick device and scale, allow TF32, set the plot style.

    Prints one line that says what was chosen, e.g.
    ``gptbook 0.1.0 · device cpu · scale quick · seed 0``.
    """
    line = f"gptbook {__version__} · device {device()} · scale {scale()} · seed {seed}"
    if fast_dev_run():
        line += f" · fast dev run: {fast_dev_run()} steps a loop, results meaningless"
    seed_everything(seed)
    allow_tf32()
    plot_style()
    # Without ipywidgets, tqdm.auto falls back to text bars and warns; text bars are fine.
    warnings.filterwarnings("ignore", message="IProgress not found")
    print(line)


#: What separates a lesson's claim from its evidence; the tests' sanitizer masks what follows.
LESSON_SEPARATOR = " — "


def lesson(number: str, claim: str, holds: bool, evidence: str) -> None:
    """State a measured result of a chapter as one line (the book's convention, chapter 0).

    ``holds`` is computed in the cell from the measured numbers against a threshold written
    before the result is known; ``evidence`` gives those numbers with their noise (an
    interval, the seeds, n). Prints ``✓ Lesson 6.a: <claim> — <evidence>``, or
    ``✗ Lesson 6.a not shown: <claim> — <evidence>`` when ``holds`` is False. The cell is
    output-checked with the evidence masked, so a re-run that flips a lesson fails the tests.
    """
    if not isinstance(holds, bool):
        raise TypeError(
            f"lesson {number}: holds must be True or False, got {type(holds).__name__} "
            f"{holds!r}; compare the measured numbers with the threshold and pass "
            "bool(...) of that comparison, e.g. holds=bool(low > 0)."
        )
    for name, text in (("number", number), ("claim", claim), ("evidence", evidence)):
        if not isinstance(text, str) or not text.strip() or "\n" in text:
            raise ValueError(f"lesson {number!r}: {name} must be one non-empty line of text")
    if LESSON_SEPARATOR in claim:
        raise ValueError(
            f"lesson {number}: the claim may not contain {LESSON_SEPARATOR!r}, which separates "
            "it from the evidence; use a comma or a colon"
        )
    mark, shown = ("✓", "") if holds else ("✗", " not shown")
    print(f"{mark} Lesson {number}{shown}: {claim}{LESSON_SEPARATOR}{evidence}")


@dataclass(frozen=True)
class Source:
    """Source code of a gptbook object, shown in a notebook as a highlighted block."""

    name: str
    path: str
    first_line: int
    code: str

    def _header(self) -> str:
        return f"{self.name} — {self.path}, line {self.first_line}"

    def __str__(self) -> str:
        return f"# {self._header()}\n{self.code}"

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        header = f"**`{self.name}`** — `{self.path}`, line {self.first_line}"
        return f"{header}\n\n```python\n{self.code}```\n"


def show(obj: Any) -> Source:
    """Show the source of a gptbook function, class or module, as the package defines it.

    The book never copies package code into a notebook: it calls ``book.show(thing)``,
    which renders the code that actually runs. A property shows its getter.
    """
    if isinstance(obj, property):  # e.g. book.show(GPTConfig.rope)
        obj = obj.fget
    obj = inspect.unwrap(obj)  # decorated functions (e.g. @torch.no_grad) show their own code
    module = inspect.getmodule(obj)
    if module is None or not module.__name__.startswith("gptbook"):
        raise ValueError(
            f"book.show() displays gptbook's own code; {obj!r} is not from gptbook. "
            "Pass a gptbook function, class or module, e.g. book.show(gptbook.data.get_batch)."
        )
    try:
        lines, first = inspect.getsourcelines(obj)
    except (OSError, TypeError) as err:
        raise ValueError(f"book.show() could not find the source of {obj!r}: {err}") from err
    package_root = Path(inspect.getfile(__import__("gptbook"))).parent.parent
    path = Path(inspect.getfile(obj)).resolve().relative_to(package_root.resolve())
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", str(obj))
    return Source(name=name, path=path.as_posix(), first_line=max(first, 1), code="".join(lines))
