"""gptbook: the code of the book *Building GPT*, chapter by chapter.

Each chapter of the book adds one or more modules here; later chapters import them.
Submodules load lazily (``gptbook.data`` imports only when first used), so
``import gptbook`` is fast and never touches the network.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

_SUBMODULES = (
    "ablation",
    "align",
    "assets",
    "attention",
    "baselines",
    "bigram",
    "book",
    "bpe",
    "bpe_files",
    "checkpoint",
    "checks",
    "cleaning",
    "config",
    "data",
    "diversity",
    "embeddings",
    "exercises",
    "files",
    "finetune",
    "hf",
    "hf_llama",
    "incontext",
    "induction",
    "layers",
    "lm",
    "measure",
    "model",
    "nar",
    "optim",
    "parallel",
    "plots",
    "positional",
    "precision",
    "pretrained",
    "prompting",
    "sampling",
    "scaling",
    "sizes",
    "speculative",
    "student",
    "tasks",
    "tinylm",
    "tokenizers",
    "train",
)
__all__ = ["__version__", *_SUBMODULES]

if TYPE_CHECKING:  # pragma: no cover
    from . import (  # noqa: F401
        ablation,
        align,
        assets,
        attention,
        baselines,
        bigram,
        book,
        bpe,
        bpe_files,
        checkpoint,
        checks,
        cleaning,
        config,
        data,
        diversity,
        embeddings,
        exercises,
        files,
        finetune,
        hf,
        hf_llama,
        incontext,
        induction,
        layers,
        lm,
        measure,
        model,
        nar,
        optim,
        parallel,
        plots,
        positional,
        precision,
        pretrained,
        prompting,
        sampling,
        scaling,
        sizes,
        speculative,
        student,
        tasks,
        tinylm,
        tokenizers,
        train,
    )


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'gptbook' has no attribute {name!r}")
