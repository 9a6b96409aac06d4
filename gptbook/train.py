"""The training loop: AdamW, warmup + cosine, clipping, mixed precision, checkpoints, DDP.

Introduced in chapter 5 (pretraining GPT-1). One :class:`Trainer` serves the notebooks
and the command line (``python -m gptbook.train --preset book-small --out runs/small``).

- Optimiser: AdamW, weight decay on matrices only (not on biases, LayerNorm gains or
  the position table), fused on CUDA.
- Schedule: linear warmup, then cosine decay to ``min_lr_ratio × lr`` (GPT-1's shape, which
  decayed to 0; the floor is GPT-3's).
- Mixed precision (``precision="auto"``): bfloat16 autocast on GPUs that have it (Ampere and
  newer), float16 autocast with loss scaling on older ones (T4, V100), TF32 for the float32
  products that remain; float32 on the CPU.
- The loop never waits for the GPU to report a loss: losses are read in batches, at
  evaluations and every ``LOSS_READ_EVERY`` steps.
- Checkpoints, at every evaluation: ``model.safetensors`` + ``config.json`` (:meth:`GPT.save`)
  and ``trainer.pt`` (optimiser state, step, random-number states, loss history), each
  written atomically and stamped with the step, so that resuming refuses a torn pair.
  ``resume=True`` continues from the last checkpoint: on the CPU the losses after resuming
  equal an uninterrupted run's.
- Data parallel: under ``torchrun --nproc_per_node=N`` each process trains a replica
  (DistributedDataParallel). Every process draws the same global batch and keeps its
  slice, so N processes compute the same update as one process with the whole batch.
- Gradient accumulation: ``micro_batch_size`` splits a process's slice into micro-batches
  whose gradients add up before the step, for global batches larger than memory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import safe_open

from . import data
from .lm import model_device
from .model import GPT, GPTConfig


@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 32  # sequences per optimiser step, across all processes
    micro_batch_size: int | None = (
        None  # sequences per forward pass (None: a process's whole slice)
    )
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_batches: int = 10
    tokenizer: str = "char"
    seed: int = 0
    compile: bool = False
    precision: str = "auto"  # or "float32", "bfloat16", "float16" (see autocast_dtype)

    def __post_init__(self):
        if self.max_steps < 1 or self.batch_size < 1:
            raise ValueError("max_steps and batch_size must be ≥ 1")
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise ValueError(f"warmup_steps must be between 0 and max_steps={self.max_steps}")
        if self.eval_interval < 1 or self.eval_batches < 1:
            raise ValueError(
                "eval_interval and eval_batches must be ≥ 1 (evaluate rarely with a large eval_interval)"
            )
        if self.micro_batch_size is not None and not (
            1 <= self.micro_batch_size <= self.batch_size
        ):
            raise ValueError(
                f"micro_batch_size must be between 1 and batch_size={self.batch_size} (or None)"
            )
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(
                f"precision={self.precision!r}: choose one of auto, {', '.join(PRECISIONS)}"
            )


#: Training precisions: the autocast dtype of each (None: plain float32).
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast_dtype(device: str | torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype the forward pass autocasts to, or None for float32.

    ``"auto"`` picks bfloat16 on GPUs with native support (compute capability 8.0 and newer),
    float16 on older GPUs such as Colab's T4 (the Trainer then scales the loss so that small
    gradients do not underflow), and float32 on the CPU.
    """
    if precision != "auto":
        return PRECISIONS[precision]
    if torch.device(device).type != "cuda":
        return None
    return (
        torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    )


def autocast(device: str | torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision to ``dtype`` for a forward pass on ``device`` (a no-op for None: float32)."""
    return torch.autocast(
        torch.device(device).type, dtype=dtype or torch.bfloat16, enabled=dtype is not None
    )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup from 0 to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr_ratio·lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on 2-D weights only; fused kernels on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "wpe" not in n]
    no_decay = [p for p in params if all(p is not q for q in decay)]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = model_device(model).type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2), fused=fused)


#: How often the loop reads its losses back from the device (reading makes the CPU wait for the GPU).
LOSS_READ_EVERY = 50


class Trainer:
    """Trains a :class:`GPT` on the corpus; ``train()`` runs to ``max_steps`` and returns the history."""

    def __init__(
        self, model: GPT, cfg: TrainConfig, out_dir: str | Path | None = None, resume: bool = False
    ):
        self.cfg, self.out_dir = cfg, Path(out_dir) if out_dir else None
        self.rank, self.world = (
            (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        )
        if cfg.batch_size % self.world:
            raise ValueError(
                f"batch_size={cfg.batch_size} must be divisible by the {self.world} processes"
            )
        self.micro = cfg.micro_batch_size or cfg.batch_size // self.world
        if (cfg.batch_size // self.world) % self.micro:
            raise ValueError(
                f"micro_batch_size={self.micro} must divide each process's {cfg.batch_size // self.world} sequences"
            )
        self.model = model
        self.device = model_device(model)
        self.optimizer = make_optimizer(model, cfg)
        self.dtype = autocast_dtype(self.device, cfg.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # the same on every process
        if self.world > 1:
            torch.manual_seed(cfg.seed + self.rank)  # but each process its own dropout masks
        self.step, self.history = 0, {"step": [], "train": [], "lr": [], "eval_step": [], "val": []}
        self.seconds = 0.0  # wall time in training steps (not evaluations, checkpoints or on_eval)
        if resume:
            self.load_checkpoint()
        self.replica = self.ddp = model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.replica = self.ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=ids
            )
        if cfg.compile:
            self.replica = torch.compile(self.replica)
        if self.device.type == "cuda" and cfg.precision != "float32":  # float32 asked for: no TF32
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's slice of the next global batch: (B / world, T) inputs and targets."""
        x, y = data.get_batch(
            "train",
            self.cfg.batch_size,
            self.model.config.block_size,
            tokenizer=self.cfg.tokenizer,
            generator=self.generator,
        )
        part = slice(self.rank * len(x) // self.world, (self.rank + 1) * len(x) // self.world)
        x, y = x[part], y[part]
        if (
            self.device.type == "cuda"
        ):  # from page-locked memory the copy is asynchronous: no CPU wait
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def autocast(self) -> torch.autocast:
        """Mixed precision for the forward pass (a no-op in float32)."""
        return autocast(self.device, self.dtype)

    def train_step(self) -> torch.Tensor:
        """One optimiser step on the next batch; returns the loss, still on the device."""
        x, y = self.batch()  # (B / world, T)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        self.optimizer.zero_grad(set_to_none=True)
        micro_batches = list(zip(x.split(self.micro), y.split(self.micro)))
        total = torch.zeros((), device=self.device)
        for i, (xb, yb) in enumerate(micro_batches):
            # DDP averages the gradients across processes once: after the last micro-batch
            sync = i == len(micro_batches) - 1 or self.world == 1
            with contextlib.nullcontext() if sync else self.ddp.no_sync():
                with self.autocast():
                    _, loss = self.replica(xb, yb)
                # each micro-batch's share: the gradients add up to the slice's mean
                loss = loss / len(micro_batches)
                # float16: the loss is scaled up so that small gradients survive
                self.scaler.scale(loss).backward()
            total += loss.detach()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)  # float16: skipped if a gradient overflowed
        self.scaler.update()
        return total

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean validation loss over ``eval_batches`` fixed batches (the same ones every time)."""
        self.model.eval()
        g = torch.Generator().manual_seed(1234)
        losses = []
        for _ in range(self.cfg.eval_batches):
            x, y = data.get_batch(
                "val", 16, self.model.config.block_size, tokenizer=self.cfg.tokenizer, generator=g
            )
            with self.autocast():
                losses.append(self.model(x.to(self.device), y.to(self.device))[1])
        self.model.train()
        return torch.stack(losses).mean().item()

    def train(self, steps: int | None = None, progress: bool = True, on_eval=None) -> dict:
        """Train to ``max_steps`` (or ``steps`` more); evaluate and checkpoint every ``eval_interval``.

        ``on_eval(trainer)``, if given, runs after each evaluation (e.g. to print a sample).
        """
        from tqdm.auto import tqdm

        end = self.cfg.max_steps if steps is None else min(self.cfg.max_steps, self.step + steps)
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
                self.seconds += (
                    time.perf_counter() - start
                )  # the device has finished: read_losses waited
                self.history["eval_step"].append(self.step)
                self.history["val"].append(self.evaluate())
                self.save_checkpoint()
                if on_eval is not None and self.rank == 0:
                    on_eval(self)
                start = time.perf_counter()
        self.seconds += time.perf_counter() - start
        bar.close()
        return self.history

    def read_losses(self, losses: list[torch.Tensor]) -> list[float]:
        """The losses of the last steps, over the global batch: one wait for the device, not one a step."""
        losses = torch.stack(losses)
        if self.world > 1:  # each process saw its slice: average them (SUM, as gloo has no AVG)
            dist.all_reduce(losses)
            losses /= self.world
        return losses.tolist()

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        if self.out_dir is None or self.rank != 0:
            return
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda"
            else torch.empty(0),
            "scaler": self.scaler.state_dict(),
            "history": json.dumps(self.history),
            "train_config": json.dumps(dataclasses.asdict(self.cfg)),
        }
        self.model.save(self.out_dir, metadata={"step": str(self.step)})
        tmp = self.out_dir / "trainer.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.out_dir / "trainer.pt")

    def load_checkpoint(self) -> None:
        path = self.out_dir / "trainer.pt" if self.out_dir else None
        if path is None or not path.exists():
            raise FileNotFoundError(
                f"nothing to resume: {path} does not exist (train without resume first)"
            )
        # tensors and plain types only, no pickled code; onto the CPU first, whichever GPU saved them
        state = torch.load(path, weights_only=True, map_location="cpu")
        with safe_open(self.out_dir / "model.safetensors", "pt") as f:
            model_step = (f.metadata() or {}).get("step")
        if model_step != str(state["step"]):
            raise ValueError(
                f"the checkpoint in {self.out_dir} is torn: the model is from step {model_step}, the trainer "
                f"state from step {state['step']} (the run stopped while saving); start it again without resume, or delete the folder"
            )
        saved = GPT.load(self.out_dir, device=self.device)
        if saved.config != self.model.config:
            raise ValueError(
                f"the checkpoint's model config differs from this model's:\n{saved.config}\n{self.model.config}"
            )
        self.model.load_state_dict(saved.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng", torch.empty(0)).numel():
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.history = state["step"], json.loads(state["history"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gptbook.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--preset", default="book-small", help="a GPTConfig preset")
    parser.add_argument(
        "--out", required=True, help="folder for the model and the trainer checkpoint"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, ... (default: the best available)"
    )
    types = {"int": int, "int | None": int, "float": float, "str": str}
    for field in dataclasses.fields(TrainConfig):
        if field.type in types:
            parser.add_argument(
                f"--{field.name.replace('_', '-')}", type=types[field.type], default=field.default
            )
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if distributed and device.startswith("cuda"):  # one GPU per process, NCCL between them
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=torch.device(device))
    elif distributed:
        dist.init_process_group("gloo")
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig.preset(args.preset)).to(device)
    trainer = Trainer(model, cfg, args.out, resume=args.resume)
    history = trainer.train()
    if trainer.rank == 0 and history["val"]:
        print(
            f"step {trainer.step}: train {history['train'][-1]:.4f} · val {history['val'][-1]:.4f}"
        )
    if distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
