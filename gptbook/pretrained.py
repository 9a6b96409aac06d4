"""The models later chapters build on, trained by the book itself and cached.

Introduced in chapter 5, which trains the ``"char"`` model in view and saves it to
:func:`path`; later chapters call :func:`model` and get it back without training again.
Each model is keyed by everything that shapes it (its configs and its data), so a change
to any of them trains a new one instead of loading a stale one.

    from gptbook import pretrained
    gpt = pretrained.model("char")   # trains on first use (under a lock), loads afterwards
    trainer = pretrained.train("char", on_eval=print_sample)   # chapter 5: train in view
    pretrained.history("ladder-3")   # the losses of its training run, kept with the model

Chapter 8 adds its scaling models, one shape at many widths: IsoFLOP profiles,
``isoflop-<budget>-<width>``, each trained for exactly its compute budget
(:data:`ISOFLOP_BUDGETS`, :data:`ISOFLOP_WIDTHS`), and a ladder, ``ladder-1`` … ``ladder-5``
(:data:`LADDER_WIDTHS`), each trained on the same tokens per parameter. Chapter 9
adds ``draft``, a shallow, narrow model of the same characters: the cheap draft of speculative
decoding, with the ``char`` model as its target.

An entry may name a synthetic ``task`` to learn instead of the corpus: a dataclass with
``batches(batch_size)`` and ``metrics(model)`` for the :class:`~gptbook.train.Trainer`, part of
the model's key. Chapter 8's :mod:`gptbook.induction` adds its models so, when imported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import torch

from . import book, data
from .assets import cache_dir
from .checkpoint import CheckpointError
from .files import DamagedFile, locked
from .model import GPT, GPTConfig
from .sizes import FLOPS_PER_PARAMETER_TOKEN
from .train import TrainConfig, Trainer, checkpoints

#: The models later chapters reuse: per scale, a model (a preset and overrides) and a training run.
SPECS = {
    "char": {
        "quick": dict(
            model=dict(preset="book-tiny", dropout=0.0),
            train=dict(max_steps=1500, batch_size=32, lr=3e-3, warmup_steps=100, eval_interval=250),
        ),
        "full": dict(
            model=dict(preset="book-medium", dropout=0.2),
            train=dict(max_steps=5000, batch_size=64, lr=1e-3, warmup_steps=200, eval_interval=500),
        ),
    },
    "bpe": {  # GPT-2's tokenizer: the vocabulary is padded to a multiple of 64 for the GPU
        "quick": dict(
            model=dict(preset="book-tiny", vocab_size=50_257, pad_vocab_to=64, dropout=0.0),
            train=dict(
                max_steps=200,
                batch_size=16,
                lr=3e-3,
                warmup_steps=20,
                eval_interval=100,
                tokenizer="gpt2",
            ),
        ),
        "full": dict(
            model=dict(preset="book-medium", vocab_size=50_257, pad_vocab_to=64, dropout=0.2),
            train=dict(
                max_steps=5000,
                batch_size=64,
                lr=6e-4,
                warmup_steps=200,
                eval_interval=500,
                tokenizer="gpt2",
                micro_batch_size=16,
            ),
        ),  # 4 micro-batches: fits a 16 GB T4
    },
    "target": {  # chapter 9's target for speculative decoding: six pre-LN blocks, whose call
        # costs about a millisecond on a CPU at batch 1; at full scale, the char model's own run
        "quick": dict(
            model=dict(
                preset="book-medium", block_size=64, n_head=4, n_embd=256, norm="pre", dropout=0.0
            ),
            train=dict(max_steps=900, batch_size=32, lr=2e-3, warmup_steps=60, eval_interval=300),
        ),
        "full": dict(
            model=dict(preset="book-medium", dropout=0.2),
            train=dict(max_steps=5000, batch_size=64, lr=1e-3, warmup_steps=200, eval_interval=500),
        ),
    },
}


#: Chapter 8's models share one shape, GPT-2's pre-LN blocks, and differ in width.
SCALING_SHAPE = {
    "quick": dict(preset="book-tiny", n_layer=2, n_head=2, norm="pre", scaled_residual_init=True),
    "full": dict(preset="book-medium", n_layer=4, n_head=4, norm="pre"),
}
#: Their batches: (sequences per step, block size), at each scale.
SCALING_BATCH = {"quick": (16, 64), "full": (64, 256)}
#: Peak learning rate at the reference width; a model of width w uses lr·√(reference / w).
SCALING_LR = {"quick": (1e-2, 16), "full": (3e-3, 128)}
#: Share of each run spent warming up; the cosine decay ends at the run's last step.
SCALING_WARMUP = 0.1
#: Validation batches of every evaluation: enough that a loss is sure to about ±0.005.
SCALING_EVAL_BATCHES = 40
#: Chapter 8's IsoFLOP budgets (training FLOPs, C = 6·N·D), ~3.3× apart, at each scale.
ISOFLOP_BUDGETS = {"quick": (1e10, 3e10, 1e11), "full": (3e13, 1e14, 3e14)}
#: The five widths trained on each budget: from too small (capacity-limited) to too large
#: (too few tokens), moving up with the budget.
ISOFLOP_WIDTHS = {
    "quick": ((4, 6, 8, 12, 16), (8, 12, 16, 24, 32), (12, 16, 24, 32, 48)),
    "full": ((24, 32, 48, 64, 96), (32, 48, 64, 96, 128), (48, 64, 96, 128, 192)),
}
#: Chapter 8's scaling ladder: five widths, each trained on the same tokens per parameter.
LADDER_WIDTHS = {"quick": (16, 24, 32, 48, 64), "full": (64, 96, 128, 192, 256)}
#: The ladder's tokens per parameter: Chinchilla's ratio.
LADDER_TOKENS_PER_PARAMETER = 20


def _scaling_spec(scale: str, width: int, tokens: float) -> dict:
    """A chapter-8 model of ``width`` trained on about ``tokens`` tokens: its steps are the
    tokens over the tokens of a batch, its schedule warms up and decays over exactly those."""
    batch_size, block_size = SCALING_BATCH[scale]
    lr, reference = SCALING_LR[scale]
    steps = max(1, round(tokens / (batch_size * block_size)))
    return dict(
        model={**SCALING_SHAPE[scale], "n_embd": width, "block_size": block_size, "dropout": 0.0},
        train=dict(
            max_steps=steps,
            batch_size=batch_size,
            lr=lr * (reference / width) ** 0.5,
            warmup_steps=max(1, round(SCALING_WARMUP * steps)),
            eval_interval=steps,
            eval_batches=SCALING_EVAL_BATCHES,
        ),
    )


def _non_embedding(scale: str, width: int) -> int:
    """N of a chapter-8 model of ``width``: its parameters without the embedding tables."""
    from .sizes import non_embedding

    overrides = {**SCALING_SHAPE[scale], "n_embd": width}
    overrides["block_size"] = SCALING_BATCH[scale][1]
    return non_embedding(GPTConfig.preset(overrides.pop("preset"), **overrides))


def isoflop_name(budget: int, width: int) -> str:
    """The pretrained name of the IsoFLOP model of budget index ``budget`` and width index
    ``width`` (both from 1): its width is ``ISOFLOP_WIDTHS[scale][budget - 1][width - 1]``."""
    return f"isoflop-{budget}-{width}"


for _b in range(len(ISOFLOP_BUDGETS["quick"])):
    for _w in range(len(ISOFLOP_WIDTHS["quick"][_b])):
        SPECS[isoflop_name(_b + 1, _w + 1)] = {
            scale: _scaling_spec(
                scale,
                ISOFLOP_WIDTHS[scale][_b][_w],
                ISOFLOP_BUDGETS[scale][_b]
                / (
                    FLOPS_PER_PARAMETER_TOKEN * _non_embedding(scale, ISOFLOP_WIDTHS[scale][_b][_w])
                ),
            )
            for scale in ISOFLOP_BUDGETS
        }
for _rung in range(len(LADDER_WIDTHS["quick"])):
    SPECS[f"ladder-{_rung + 1}"] = {
        scale: _scaling_spec(
            scale,
            LADDER_WIDTHS[scale][_rung],
            LADDER_TOKENS_PER_PARAMETER * _non_embedding(scale, LADDER_WIDTHS[scale][_rung]),
        )
        for scale in LADDER_WIDTHS
    }


def task(name: str = "char", scale: str | None = None):
    """The synthetic task the pretrained model ``name`` learns (its entry's ``task``); None: it
    learns the corpus."""
    spec(name, scale)  # checks the name and the scale
    return SPECS[name][scale or book.scale()].get("task")


def spec(name: str = "char", scale: str | None = None) -> tuple[GPTConfig, TrainConfig]:
    """The model and training configurations of a pretrained model at a scale (default: this
    machine's)."""
    if name not in SPECS:
        raise ValueError(f"no pretrained model {name!r}; available: {', '.join(SPECS)}")
    scale = scale or book.scale()
    if scale not in SPECS[name]:
        scales = ", ".join(SPECS[name])
        raise ValueError(f"scale={scale!r}: use one of {scales} (or None: GPTBOOK_SCALE's)")
    entry = SPECS[name][scale]
    overrides = dict(entry["model"])
    return GPTConfig.preset(overrides.pop("preset"), **overrides), TrainConfig(**entry["train"])


def models_dir() -> Path:
    """Where the pretrained models are kept: ``models/`` in the data cache. A fast dev run's
    models (a few steps: see :func:`gptbook.book.fast_dev_run`) are kept apart, in
    ``models-fast-dev-run-N/``, where no real run looks."""
    steps = book.fast_dev_run()
    return cache_dir() / (f"models-fast-dev-run-{steps}" if steps else "models")


def path(name: str = "char", scale: str | None = None) -> Path:
    """The cache folder of a pretrained model, keyed by everything that shapes it."""
    model_cfg, cfg = spec(name, scale)
    shaped_by = [dataclasses.asdict(model_cfg), dataclasses.asdict(cfg)]
    learns = task(name, scale)
    shaped_by.append(dataclasses.asdict(learns) if learns else data._fingerprint(cfg.tokenizer))
    key = hashlib.sha256(json.dumps(shaped_by, sort_keys=True).encode()).hexdigest()[:12]
    return models_dir() / f"{name}-{scale or book.scale()}-{key}"


def train(
    name: str = "char",
    scale: str | None = None,
    on_eval=None,
    device: str | None = None,
    progress: bool = True,
) -> Trainer:
    """Train the pretrained model ``name`` into the cache and return its
    :class:`~gptbook.train.Trainer` (its ``model``, ``history`` and ``seconds``). The one way a
    named model is trained.

    Chapter 5 calls it to train in view (``on_eval(trainer)`` runs after each evaluation, e.g.
    to print a sample); :func:`model` calls it when the cache has no model yet. It holds the
    cache's lock, so other notebooks wait for it; the cached model is replaced only once the run
    is complete, and a run that was interrupted resumes from its last checkpoint.
    """
    folder = path(name, scale)
    with locked(folder):
        return _train(name, scale, folder, device or book.device(), on_eval, progress)


def model(
    name: str = "char", scale: str | None = None, device: str | None = None, progress: bool = True
) -> GPT:
    """The pretrained model ``name``, in eval mode: trained once per machine (with a progress
    bar unless ``progress`` is False), then loaded.

    Safe when several notebooks ask at once: the first trains under a lock, the others wait
    and load its result. A complete, verified model is read without the lock (so a read-only
    cache works); a damaged or incomplete one is moved aside, with a warning, and trained again.
    """
    folder = path(name, scale)
    device = device or book.device()
    cached = _load(folder, device)
    if cached is not None:
        return cached
    with locked(folder):
        cached = _load(folder, device)  # another process may have trained it meanwhile
        if cached is None:
            _train(name, scale, folder, device, progress=progress)
            cached = GPT.load(folder, device=device).eval()
    return cached


def history(
    name: str = "char", scale: str | None = None, device: str | None = None, progress: bool = True
) -> dict:
    """The losses of the run that trained the pretrained model ``name`` (its Trainer's
    ``history``: steps, training losses, evaluations), kept with the model; trains it first if
    the cache has none. A notebook cell that trains many models passes ``progress=False`` and
    shows one bar over the models: a bar a model floods the notebook's output channel."""
    from safetensors import safe_open

    model(name, scale, device, progress)  # trained if missing
    with safe_open(str(path(name, scale) / "model.safetensors"), "pt") as f:
        kept = (f.metadata() or {}).get(HISTORY)
    if kept is None:
        raise ValueError(
            f"the cached {name!r} model was saved without its training history: delete "
            f"{path(name, scale)} to train it again"
        )
    return json.loads(kept)


#: The metadata key under which the cached model keeps its training run's history.
HISTORY = "history"


def _load(folder: Path, device: str) -> GPT | None:
    """The model cached in ``folder``; None if there is none, or if it is damaged (then moved
    aside to ``<folder>.damaged-N`` so that nothing is lost and the next writer starts clean)."""
    if not folder.exists():
        return None
    try:
        return GPT.load(folder, device=device).eval()
    except DamagedFile as err:
        aside = _aside(folder)
        try:
            os.rename(folder, aside)
        except FileNotFoundError:  # another process moved it already
            return None
        except OSError as moving:  # a read-only cache: nothing can be moved, nor trained there
            raise OSError(
                moving.errno,
                f"the cached model in {folder} is damaged ({err}) and cannot be moved aside "
                f"({moving.strerror or moving}): point GPTBOOK_CACHE at a folder you may write "
                "to, or ask the cache's owner to delete that folder",
            ) from moving
        warnings.warn(
            f"the cached model in {folder} cannot be used ({err}); moved it to {aside.name} "
            "and training it again",
            stacklevel=3,
        )
        return None


def _aside(folder: Path) -> Path:
    n = 1
    while folder.with_name(f"{folder.name}.damaged-{n}").exists():
        n += 1
    return folder.with_name(f"{folder.name}.damaged-{n}")


def _train(
    name: str, scale: str | None, folder: Path, device: str, on_eval=None, progress: bool = True
) -> Trainer:
    """Train in a side folder whose model becomes ``folder`` only when the run is complete: an
    interrupted run is never taken for a pretrained model, and the next call resumes it."""
    model_cfg, cfg = spec(name, scale)
    run = folder.with_name(folder.name + ".run")
    learns = task(name, scale)  # a synthetic task's batches and measures, or the corpus's
    on_task = dict(batches=learns.batches(cfg.batch_size), metrics=learns.metrics) if learns else {}

    def trainer_for(resume: bool) -> Trainer:
        torch.manual_seed(cfg.seed)
        return Trainer(GPT(model_cfg).to(device), cfg, run, resume=resume, **on_task)

    try:
        trainer = trainer_for(resume=bool(checkpoints(run)))
    except CheckpointError as err:  # every checkpoint damaged: keep them aside, start again
        aside = _aside(run)
        warnings.warn(
            f"the interrupted run in {run} cannot be resumed ({err}); moved it to {aside.name} "
            "and training from the start",
            stacklevel=3,
        )
        os.rename(run, aside)
        trainer = trainer_for(resume=False)
    trainer.train(progress=progress, on_eval=on_eval)
    trainer.model.save(folder, {HISTORY: json.dumps(trainer.history)})  # whole or not at all
    shutil.rmtree(run)
    return trainer
