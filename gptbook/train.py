"""The training loop: AdamW, warmup + cosine, clipping, mixed precision, checkpoints, DDP.

Introduced in chapter 5 (pretraining GPT-1). One :class:`Trainer` serves the notebooks
and the command line (``python -m gptbook.train --preset book-small --out runs/small``).
Its parts live in their own modules: :mod:`~gptbook.precision` (bf16/fp16 autocast),
:mod:`~gptbook.checkpoint` (verified checkpoints), :mod:`~gptbook.parallel` (DDP).

- Optimiser: AdamW, weight decay on matrices only (not on biases, LayerNorm gains or
  the position table), fused on CUDA. Chapter 5 writes it out in :mod:`gptbook.optim`.
- Schedule: linear warmup, then cosine decay to ``min_lr_ratio × lr`` (GPT-1's pretraining
  shape, which decayed to 0; the floor is GPT-3's), or linear decay (``schedule="linear"``,
  GPT-1's fine-tuning).
- Mixed precision (``precision="auto"``): bfloat16 autocast on GPUs that have it, float16
  with loss scaling on older ones (T4, V100), float32 on the CPU.
- The loop never waits for the GPU to report a loss: losses are read in batches, at
  evaluations and every ``LOSS_READ_EVERY`` steps. A loss that is not finite stops training
  before any checkpoint is written.
- Checkpoints, at every evaluation: ``out_dir/checkpoints/step-NNNNNNNN/``, each complete or
  absent, the last ``keep_checkpoints`` kept. ``resume=True`` continues from the newest one
  that verifies: on the CPU the losses after resuming equal an uninterrupted run's.
- Data parallel: under ``torchrun --nproc_per_node=N`` each process trains a replica. Every
  process draws the same global batch and keeps its slice, so N processes compute the same
  update as one process with the whole batch.
- Gradient accumulation: ``micro_batch_size`` splits a process's slice into micro-batches
  whose gradients add up before the step, for global batches larger than memory.
- Any model and any data: the Trainer needs only the book's model contract, ``model(*batch)
  -> (output, loss)``. By default it trains a language model on the corpus; ``batches`` and
  ``metrics`` give it other data and other measures (chapter 6 fine-tunes on tasks with them).

The Trainer changes no process-wide setting: :func:`gptbook.book.setup` seeds and turns on
TF32 for the float32 products on GPUs (the command line does the same).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import book, data, parallel
from .checkpoint import CheckpointError, load_checkpoint, load_extra, save_checkpoint
from .checks import flag, number, whole
from .files import claimed
from .lm import model_device
from .model import GPT, GPTConfig
from .precision import PRECISIONS, autocast, autocast_dtype

__all__ = ["TrainConfig", "Trainer", "autocast", "autocast_dtype", "lr_at", "main"]

#: The folder of a CLI run (``--out``) that holds its trained model: ``GPT.load(out / "model")``.
MODEL_FOLDER = "model"
#: The lock a training run holds in its folder (``run.lock``): one run trains there at a time.
RUN_LOCK = "run"
#: Settings whose change would give an old step count another meaning: resuming refuses them.
SAME_RUN = ("batch_size", "max_steps")
#: The shapes of the learning-rate decay after warmup.
SCHEDULES = ("cosine", "linear")

#: ``batches(step, generator)``: the whole global batch of a step, a tuple of tensors whose first
#: dimension is the batch (or a whole multiple of it), each ``model(*batch)``'s arguments.
Batches = Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]
#: ``metrics(model)``: measures of a model in eval mode, by name; ``"val"`` is the loss to watch.
Metrics = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 32  # sequences per optimiser step, across all processes
    micro_batch_size: int | None = None  # sequences per forward pass (None: the whole slice)
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    schedule: str = "cosine"  # or "linear": the decay after warmup
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0: no clipping
    eval_interval: int = 100
    eval_batches: int = 10
    keep_checkpoints: int = 2
    tokenizer: str = "char"
    seed: int = 0
    compile: bool = False
    precision: str = "auto"  # or "float32", "bfloat16", "float16" (see precision.py)

    def __post_init__(self):
        self.betas = tuple(self.betas)
        for name in ("max_steps", "batch_size", "eval_interval", "eval_batches"):
            whole(name, getattr(self, name))
        whole("warmup_steps", self.warmup_steps, least=0)
        whole("keep_checkpoints", self.keep_checkpoints)
        whole("seed", self.seed, least=0)
        if self.micro_batch_size is not None:
            whole("micro_batch_size", self.micro_batch_size)
        for name in ("lr", "min_lr_ratio", "weight_decay", "eps", "grad_clip"):
            number(name, getattr(self, name))
        flag("compile", self.compile)
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise ValueError(f"warmup_steps must be between 0 and max_steps={self.max_steps}")
        if self.micro_batch_size is not None and not 1 <= self.micro_batch_size <= self.batch_size:
            raise ValueError(
                f"micro_batch_size must be between 1 and batch_size={self.batch_size} (or None)"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"min_lr_ratio must be in [0, 1] (a share of lr), got {self.min_lr_ratio}"
            )
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0 (it keeps AdamW from dividing by 0), got {self.eps}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be ≥ 1, got {self.keep_checkpoints}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}: choose {' or '.join(SCHEDULES)}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision={self.precision!r}: choose auto, {', '.join(PRECISIONS)}")

    def capped(self, steps: int) -> TrainConfig:
        """This run cut to at most ``steps`` steps and evaluation batches, evaluating after every
        step (a history with more than one evaluation, as a chapter's curves expect): what a
        fast dev run trains (see :func:`gptbook.book.fast_dev_run`)."""
        return dataclasses.replace(
            self,
            max_steps=min(self.max_steps, steps),
            warmup_steps=min(self.warmup_steps, steps),
            eval_interval=1,
            eval_batches=min(self.eval_batches, steps),
        )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, then cosine (or linear) decay to
    ``min_lr_ratio·lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    left = 1 - progress if cfg.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * left)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable weights, with weight decay on 2-D weights only; fused on CUDA."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.ndim >= 2 and "wpe" not in n]
    no_decay = [p for _, p in trainable if all(p is not q for q in decay)]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = model_device(model).type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused)


#: How often the loop reads its losses back from the device (reading makes the CPU wait).
LOSS_READ_EVERY = 50


class Trainer:
    """Trains a model; ``train()`` runs to ``max_steps`` and returns the history.

    By default the model is a :class:`~gptbook.model.GPT` learning the corpus (random windows,
    the validation loss on fixed ones). ``batches`` and ``metrics`` (see :data:`Batches`,
    :data:`Metrics`) train any model that keeps the contract ``model(*batch) -> (output,
    loss)``. In a fast dev run (:func:`gptbook.book.fast_dev_run`) its config is
    :meth:`TrainConfig.capped`.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        out_dir: str | Path | None = None,
        resume: bool = False,
        batches: Batches | None = None,
        metrics: Metrics | None = None,
    ):
        if book.fast_dev_run():  # a check of the path, not a training run
            cfg = cfg.capped(book.fast_dev_run())
        self.cfg, self.out_dir = cfg, Path(out_dir) if out_dir else None
        self.batches = batches or self.corpus_batch
        self.metrics = metrics or self.corpus_metrics
        self.rank, self.world = parallel.rank_and_world()
        if cfg.batch_size % self.world:
            raise ValueError(
                f"batch_size={cfg.batch_size} must divide among {self.world} processes"
            )
        self.micro = cfg.micro_batch_size or cfg.batch_size // self.world
        if (cfg.batch_size // self.world) % self.micro:
            raise ValueError(
                f"micro_batch_size={self.micro} must divide each process's "
                f"{cfg.batch_size // self.world} sequences"
            )
        self.model, self.device = model, model_device(model)
        self.optimizer = make_optimizer(model, cfg)
        self.dtype = autocast_dtype(self.device, cfg.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # the same on every process
        self.step, self.history = 0, {"step": [], "train": [], "lr": [], "eval_step": [], "val": []}
        self.seconds = 0.0  # wall time in training steps (not evaluations, checkpoints, on_eval)
        self.skipped = 0  # float16: steps skipped because a gradient overflowed (not an error)
        if resume:
            self.resume()
        elif self.checkpoints():
            raise ValueError(
                f"{self.out_dir} holds the checkpoints of another run (the newest: "
                f"{self.checkpoints()[0].name}); a folder holds one run. Pass resume=True "
                "(--resume) to continue it, or give the new run a folder of its own"
            )
        self.ddp = parallel.replicate(model, self.device) if self.world > 1 else model
        self.replica = torch.compile(self.ddp) if cfg.compile else self.ddp

    # ------------------------------------------------------------------ one step
    def corpus_batch(self, step: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """The default batches: random windows of the corpus, inputs and targets (B, T)."""
        T = self.model.config.block_size
        return data.get_batch(
            "train", self.cfg.batch_size, T, tokenizer=self.cfg.tokenizer, generator=generator
        )

    def batch(self) -> tuple[torch.Tensor, ...]:
        """This process's slice of the next global batch (the first dimension / world)."""
        parts = [
            t.tensor_split(self.world)[self.rank] for t in self.batches(self.step, self.generator)
        ]
        if self.device.type == "cuda":  # from page-locked memory the copy is asynchronous
            parts = [t.pin_memory() for t in parts]
        return tuple(t.to(self.device, non_blocking=True) for t in parts)

    def autocast(self) -> torch.autocast:
        """Mixed precision for the forward pass (a no-op in float32)."""
        return autocast(self.device, self.dtype)

    def train_step(self) -> torch.Tensor:
        """One optimiser step on the next batch; returns the loss, still on the device."""
        batch = self.batch()  # e.g. inputs and targets, (B / world, T) each
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        self.optimizer.zero_grad(set_to_none=True)
        n_micro = self.cfg.batch_size // self.world // self.micro
        micro_batches = list(zip(*(t.tensor_split(n_micro) for t in batch)))
        total = torch.zeros((), device=self.device)
        for i, micro_batch in enumerate(micro_batches):
            # DDP averages the gradients across processes once: after the last micro-batch
            sync = i == len(micro_batches) - 1 or self.world == 1
            with contextlib.nullcontext() if sync else self.ddp.no_sync():
                with self.autocast():
                    _, loss = self.replica(*micro_batch)
                # each micro-batch's share: the gradients add up to the slice's mean
                loss = loss / len(micro_batches)
                # float16: the loss is scaled up so that small gradients survive
                self.scaler.scale(loss).backward()
            total += loss.detach()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)  # float16: skipped if a gradient overflowed
        scale = self.scaler.get_scale()  # (1.0 unless float16, whose step has already synced)
        self.scaler.update()
        self.skipped += self.scaler.get_scale() < scale  # an overflow halves the scale
        return total

    # ------------------------------------------------------------------ the loop
    def train(self, steps: int | None = None, progress: bool = True, on_eval=None) -> dict:
        """Train to ``max_steps`` (or ``steps`` more); evaluate and checkpoint every
        ``eval_interval`` steps. ``on_eval(trainer)``, if given, runs after each evaluation.
        Process 0 holds the folder's lock (``run.lock``) meanwhile: a second run there fails."""
        if steps is not None:
            whole("steps (None: up to max_steps)", steps)
        end = self.cfg.max_steps if steps is None else min(self.cfg.max_steps, self.step + steps)
        mine = self.out_dir is not None and self.rank == 0  # process 0 writes the checkpoints
        fix = "wait for it to finish, or train in another folder"
        with claimed(self.out_dir / RUN_LOCK, fix) if mine else contextlib.nullcontext():
            return self._train_to(end, progress, on_eval)

    def _train_to(self, end: int, progress: bool, on_eval) -> dict:
        from tqdm.auto import tqdm

        self.model.train()
        bar = tqdm(total=end - self.step, disable=not progress or self.rank != 0, desc="training")
        losses = []  # on the device, not yet read
        start = time.perf_counter()
        while self.step < end:
            losses.append(self.train_step())
            self.history["step"].append(self.step)
            self.history["lr"].append(lr_at(self.step, self.cfg))
            self.step += 1
            bar.update(1)
            evaluating = self.step % self.cfg.eval_interval == 0 or self.step == self.cfg.max_steps
            if evaluating or self.step == end or len(losses) == LOSS_READ_EVERY:
                self.history["train"] += self.read_losses(losses)
                losses = []
                bar.set_postfix(loss=f"{self.history['train'][-1]:.3f}")
            if evaluating:
                self.seconds += time.perf_counter() - start  # read_losses waited for the device
                self.history["eval_step"].append(self.step)
                for name, value in self.evaluate().items():
                    self.history.setdefault(name, []).append(value)
                self.save()
                if on_eval is not None and self.rank == 0:
                    on_eval(self)
                start = time.perf_counter()
        self.seconds += time.perf_counter() - start
        bar.close()
        return self.history

    def read_losses(self, losses: list[torch.Tensor]) -> list[float]:
        """The last steps' losses over the global batch: one wait for the device, not one a step.
        Stops training if one is not finite: a diverged run must not overwrite a good checkpoint."""
        values = parallel.mean_over_processes(torch.stack(losses)).tolist()
        for i, value in enumerate(values):
            if not math.isfinite(value):
                step = self.step - len(values) + i
                if step == 0:
                    raise FloatingPointError(
                        f"the training loss is {value} at the first step, before any update: not "
                        "a divergence. Check the batch: an empty one, or one whose targets are all "
                        "IGNORE_INDEX, has no loss to average; so does a model whose weights or "
                        "inputs hold NaN"
                    )
                before = (self.history["train"] + values[:i])[-3:]
                raise FloatingPointError(
                    f"the training loss is {value} at step {step} (the steps before it: "
                    + (", ".join(f"{v:.3f}" for v in before) or "not recorded")
                    + "). If those were rising, training diverged: lower lr "
                    f"(now {self.cfg.lr}), keep grad_clip on, or use precision='bfloat16'. If "
                    "they were falling, check that step's batch: one whose targets are all "
                    "IGNORE_INDEX has no loss to average. The checkpoints written so far are "
                    "unchanged (resume=True starts from them)"
                )
        return values

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """The ``metrics`` of the model in eval mode, under the run's precision."""
        self.model.eval()
        with self.autocast():
            measured = self.metrics(self.model)
        self.model.train()
        if "val" not in measured:
            raise ValueError(f"metrics must include 'val', the loss to watch; got {list(measured)}")
        weights_finite = torch.stack([p.isfinite().all() for p in self.model.parameters()]).all()
        if not (math.isfinite(measured["val"]) and weights_finite):
            raise FloatingPointError(
                f"after step {self.step} the validation loss is {measured['val']}"
                + ("" if weights_finite else " and some weights are not finite")
                + f": training diverged. Lower lr (now {self.cfg.lr}), keep grad_clip on, or use "
                "precision='bfloat16'; no checkpoint was written for this step (resume=True "
                "starts from the last good one)"
            )
        return measured

    def corpus_metrics(self, model: nn.Module) -> dict[str, float]:
        """The default measure: the mean validation loss over ``eval_batches`` fixed batches of
        the corpus (the same ones every time)."""
        g, T = torch.Generator().manual_seed(1234), model.config.block_size
        losses = []
        for _ in range(self.cfg.eval_batches):
            x, y = data.get_batch("val", 16, T, tokenizer=self.cfg.tokenizer, generator=g)
            losses.append(model(x.to(self.device), y.to(self.device))[1])
        return {"val": torch.stack(losses).mean().item()}

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[Path]:
        """This run's checkpoint folders, newest first."""
        return checkpoints(self.out_dir) if self.out_dir else []

    def state(self) -> dict:
        """What a checkpoint keeps besides the model and the optimiser."""
        cuda = self.device.type == "cuda"
        return {
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else torch.empty(0),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "seconds": self.seconds,
            "skipped": self.skipped,
            "train_config": dataclasses.asdict(self.cfg),
            "model_config": _config_of(self.model),
        }

    def save(self) -> None:
        """Write a checkpoint of this step (process 0 only), then drop the oldest beyond
        ``keep_checkpoints``; a failed write leaves the earlier ones as they were."""
        if self.out_dir is None or self.rank != 0:
            return
        path = self.out_dir / "checkpoints" / f"step-{self.step:08d}"
        for stale in path.parent.glob(".step-*"):  # half-built by a run that was killed
            shutil.rmtree(stale, ignore_errors=True)
        save_checkpoint(path, self.model, self.optimizer, self.step, self.state())
        for old in self.checkpoints()[self.cfg.keep_checkpoints :]:
            # renamed out of sight first: a kill during the deletion leaves no half checkpoint
            doomed = old.with_name(f".{old.name}.deleting")
            old.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)

    def resume(self) -> Path:
        """Continue from the newest checkpoint that verifies (a damaged one is skipped with a
        warning); returns its folder."""
        found = self.checkpoints()
        if not found:
            raise FileNotFoundError(
                f"nothing to resume: {self.out_dir} has no checkpoint (train without resume first)"
            )
        for path in found:
            try:
                state = load_extra(path)
                self._check_same_run(state, path)
                self.step = load_checkpoint(path, self.model, self.optimizer)
            except CheckpointError as err:
                warnings.warn(f"skipping a checkpoint that cannot be used: {err}", stacklevel=2)
                continue
            self.generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            if self.device.type == "cuda" and state["cuda_rng"].numel():
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
            if state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
            self.history, self.seconds = state["history"], state["seconds"]
            self.skipped = state["skipped"]
            if self.rank == 0:
                print(f"resuming from {path} (step {self.step})")
            return path
        raise CheckpointError(
            f"no checkpoint in {self.out_dir / 'checkpoints'} can be used (see the warnings); "
            "delete the folder, or pass another out_dir, and train without resume"
        )

    def _check_same_run(self, state: dict, path: Path) -> None:
        """Refuse to resume another model, or another run's schedule; warn of other changes."""
        model = _differences(state["model_config"], _config_of(self.model))
        if model:
            raise ValueError(
                f"cannot resume {path}: it is of another model ({_words(model)}). Resume with the "
                "model the run was started with (the same preset), or train this one in another "
                "folder"
            )
        changed = _differences(state["train_config"], dataclasses.asdict(self.cfg))
        if any(k in SAME_RUN for k in changed):
            raise ValueError(
                f"cannot resume {path} with another {' or '.join(SAME_RUN)} ({_words(changed)}): "
                "the steps already taken would mean something else. Resume with the saved values, "
                "or train a new run in another folder"
            )
        if changed:
            warnings.warn(
                f"resuming {path} with a changed TrainConfig: {_words(changed)}", stacklevel=3
            )


def _differences(saved: dict, now: dict) -> dict[str, tuple]:
    """Each setting whose value differs between two configs, as ``{name: (saved, now)}``."""
    names = sorted(set(saved) | set(now))
    return {k: (saved.get(k), now.get(k)) for k in names if saved.get(k) != now.get(k)}


def _words(differences: dict[str, tuple]) -> str:
    """``name: old → new, …`` for a message."""
    return ", ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in differences.items())


def checkpoints(out_dir: str | Path) -> list[Path]:
    """The checkpoint folders of the run in ``out_dir``, newest first (none: an empty list)."""
    folder = Path(out_dir) / "checkpoints"
    return sorted(folder.glob("step-*"), reverse=True) if folder.is_dir() else []


def _config_of(model: nn.Module) -> dict:
    """A model's configuration as a dict (its ``config`` dataclass; empty if it has none)."""
    config = getattr(model, "config", None)
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gptbook.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--preset", default="book-small", help="a GPTConfig preset")
    parser.add_argument("--out", required=True, help="folder for checkpoints and the model")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best)")
    kinds = {"int": int, "int | None": int, "float": float, "str": str}
    for field in dataclasses.fields(TrainConfig):
        flag = f"--{field.name.replace('_', '-')}"
        if field.type in kinds:
            parser.add_argument(flag, type=kinds[field.type], default=field.default)
        elif field.type == "tuple[float, float]":
            parser.add_argument(flag, type=float, nargs=2, default=field.default)
    parser.add_argument("--compile", action="store_true")
    return parser


def writable_folder(folder: Path) -> Path:
    """``folder``, created if need be, after writing and removing a file in it (an OSError
    says why not). The file has a name of its own, so that the processes torchrun starts can
    all check the same folder at once."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder):
        pass
    return folder


def main(argv: list[str] | None = None) -> int:
    """``python -m gptbook.train``: train a preset on the corpus (``torchrun`` for several
    processes); ``--help`` lists the settings, one per field of :class:`TrainConfig`."""
    parser = _parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.out.strip() or (out.exists() and not out.is_dir()):
        parser.error(f"--out {args.out!r} must name a folder (it holds checkpoints and the model)")
    try:
        writable_folder(out)
    except OSError as err:
        parser.error(f"--out {args.out}: cannot write there ({err.strerror or err})")
    try:
        cfg = TrainConfig(
            **{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
        )
        config = GPTConfig.preset(args.preset)
        device = book.device(args.device)
    except (ValueError, RuntimeError) as err:  # a setting the run cannot use: say which
        parser.error(str(err))

    distributed = parallel.world_size_from_env() > 1
    if distributed:
        device = parallel.init_process_group(device)
    book.allow_tf32()
    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    model = GPT(config).to(device)
    rank, _ = parallel.rank_and_world()
    torch.manual_seed(cfg.seed + rank)  # but each process its own dropout masks
    try:
        trainer = Trainer(model, cfg, args.out, resume=args.resume)
    except (ValueError, FileNotFoundError) as err:  # another run's folder, or nothing to resume
        parser.error(str(err))
    history = trainer.train()
    if rank == 0:
        model.save(out / MODEL_FOLDER)  # the trained model: GPT.load(out / "model")
        if history["val"]:
            train, val = history["train"][-1], history["val"][-1]
            print(f"step {trainer.step}: train {train:.4f} · val {val:.4f}")
    if distributed:
        parallel.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
