"""Data parallelism: one process per GPU, each with a replica of the model (chapter 5).

Introduced in chapter 5. ``torchrun --nproc_per_node=N -m gptbook.train ...`` starts N
processes and tells each its place through environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``). Each process joins a process group (NCCL between GPUs, gloo on CPUs), wraps
its model in ``DistributedDataParallel``, which averages the gradients across processes during
the backward pass, and trains on its slice of every global batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside a process group)."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ValueError(
            f"{name}={value!r} is not a whole number ≥ 0; it is set by torchrun: unset it to "
            "train in one process, or start the run with torchrun --nproc_per_node=N"
        )
    return int(value)


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset): how many processes train together."""
    world = _env_int("WORLD_SIZE", 1)
    if world < 1:
        raise ValueError(f"WORLD_SIZE={world}: it must be ≥ 1 (unset it to train in one process)")
    return world


def init_process_group(device: str) -> str:
    """Join the process group torchrun started; returns this process's device.

    On GPUs each process takes the GPU ``LOCAL_RANK`` and talks NCCL; on CPUs, gloo.
    """
    rank, world = _env_int("RANK", 0), world_size_from_env()
    if rank >= world:
        raise ValueError(f"RANK={rank} but WORLD_SIZE={world}: ranks run from 0 to {world - 1}")
    if torch.device(device).type == "cuda":
        device = f"cuda:{_env_int('LOCAL_RANK', 0)}"
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=torch.device(device))
    else:
        dist.init_process_group("gloo")
    return device


def replicate(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model wrapped for data parallelism: gradients are averaged over processes."""
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` across processes (each process computed its slice's)."""
    if not dist.is_initialized():
        return values
    values = values.clone()
    dist.all_reduce(values)  # SUM: gloo has no AVG
    return values / dist.get_world_size()


def destroy_process_group() -> None:
    """Leave the process group at the end of a run."""
    if dist.is_initialized():
        dist.destroy_process_group()
