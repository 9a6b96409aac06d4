"""The models later chapters build on, trained by the book itself and cached.

Introduced in chapter 5, which trains the ``"char"`` model in view and saves it to
:func:`path`; later chapters call :func:`model` and get it back without training again.
Each model is keyed by everything that shapes it (its configs and its data), so a change
to any of them trains a new one instead of loading a stale one.

    from gptbook import pretrained
    gpt = pretrained.model("char")   # trains on first use (under a lock), loads afterwards
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import torch

from . import book, data
from .assets import cache_dir
from .files import locked
from .model import GPT, GPTConfig
from .train import TrainConfig, Trainer

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
}


def spec(name: str = "char", scale: str | None = None) -> tuple[GPTConfig, TrainConfig]:
    """The model and training configurations of a pretrained model at a scale (default: this machine's)."""
    if name not in SPECS:
        raise ValueError(f"no pretrained model {name!r}; available: {', '.join(SPECS)}")
    entry = SPECS[name][scale or book.scale()]
    overrides = dict(entry["model"])
    return GPTConfig.preset(overrides.pop("preset"), **overrides), TrainConfig(**entry["train"])


def models_dir() -> Path:
    """Where the pretrained models are kept: ``models/`` in the data cache."""
    return cache_dir() / "models"


def path(name: str = "char", scale: str | None = None) -> Path:
    """The cache folder of a pretrained model, keyed by everything that shapes it."""
    model_cfg, cfg = spec(name, scale)
    key = json.dumps(
        [dataclasses.asdict(model_cfg), dataclasses.asdict(cfg), data._fingerprint(cfg.tokenizer)],
        sort_keys=True,
    )
    return (
        models_dir()
        / f"{name}-{scale or book.scale()}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    )


def model(name: str = "char", scale: str | None = None, device: str | None = None) -> GPT:
    """The pretrained model ``name``, in eval mode: trained once per machine and cached, then reused.

    Safe when several notebooks ask at once: the first trains under a lock, the others wait
    and load its result.
    """
    model_cfg, cfg = spec(name, scale)
    folder = path(name, scale)
    folder.parent.mkdir(parents=True, exist_ok=True)
    device = device or book.device()
    with locked(folder):
        if not (folder / "model.safetensors").exists():
            _train(model_cfg, cfg, folder, device)
    return GPT.load(folder, device=device).eval()


def _train(model_cfg: GPTConfig, cfg: TrainConfig, folder: Path, device: str) -> None:
    """Train in a side folder, which becomes ``folder`` only when the run is complete: an interrupted
    run is never taken for a pretrained model, and the next call resumes it."""
    run = folder.with_name(folder.name + ".run")
    torch.manual_seed(cfg.seed)
    trainer = Trainer(GPT(model_cfg).to(device), cfg, run, resume=(run / "trainer.pt").exists())
    trainer.train()
    trainer.model.save(folder)
    shutil.rmtree(run)
