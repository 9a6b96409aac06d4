"""Checkpoints: a model, its optimiser and any training state, saved whole and verified on load.

Introduced in chapter 5. :func:`save_checkpoint` works for any ``nn.Module`` and any PyTorch
optimiser, and writes one folder::

    model.safetensors      the module's tensors (a tensor shared by two names, like GPT's tied
                           embedding and output layer, is stored once)
    optimizer.safetensors  the optimiser's tensors (AdamW's two running averages)
    extra.safetensors      the tensors of ``extra`` (random-number generator states, ...)
    checkpoint.json        the step, everything else as JSON, and the SHA-256 of each file

The folder is built aside and appears in one rename (:func:`gptbook.files.atomic_dir`), so it
is complete or absent. :func:`load_checkpoint` checks every hash before it reads anything: a
damaged or truncated file is named, never loaded. No pickle is written or read, so loading a
checkpoint cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from .files import DamagedFile, atomic_dir, read_manifest, write_manifest

#: The file that lists a checkpoint's contents; written last, inside the folder.
MANIFEST = "checkpoint.json"
FORMAT = 1


class CheckpointError(DamagedFile):
    """A checkpoint is incomplete, damaged, or does not fit the model; the message says which."""


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``, ``optimizer`` and ``extra`` (tensors, numbers, strings, lists and dicts
    of them) at ``step`` into the folder ``path``, atomically. Returns ``path``."""
    path = Path(path)
    optimizer_tensors, optimizer_rest = _split(optimizer.state_dict() if optimizer else None)
    extra_tensors, extra_rest = _split(extra or {})
    with atomic_dir(path) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        save_file(optimizer_tensors, str(tmp / "optimizer.safetensors"))
        save_file(extra_tensors, str(tmp / "extra.safetensors"))
        files = sorted(tmp.iterdir())
        fields = dict(format=FORMAT, step=int(step), optimizer=optimizer_rest, extra=extra_rest)
        write_manifest(tmp / MANIFEST, files, **fields)
    return path


def load_checkpoint(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> int:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and ``optimizer``);
    returns its step. Every file is verified first; tensors go to the model's device."""
    path = Path(path)
    manifest = verify_checkpoint(path)
    device = next(model.parameters(), torch.empty(0)).device
    try:
        load_model(model, str(path / "model.safetensors"), strict=True, device=str(device))
    except (RuntimeError, SafetensorError) as err:
        raise CheckpointError(f"{path} does not fit this model: {err}") from None
    if optimizer is not None:
        if manifest["optimizer"] is None:
            raise CheckpointError(f"{path} holds no optimiser state (it was saved without one)")
        tensors = load_file(str(path / "optimizer.safetensors"))
        optimizer.load_state_dict(_join(manifest["optimizer"], tensors))
    return manifest["step"]


def load_extra(path: str | Path) -> dict[str, Any]:
    """The ``extra`` state of a checkpoint (its own files verified), with tensors on the CPU."""
    path = Path(path)
    manifest = verify_checkpoint(path, files=["extra.safetensors"])
    return _join(manifest["extra"], load_file(str(path / "extra.safetensors")))


def verify_checkpoint(path: str | Path, files: list[str] | None = None) -> dict[str, Any]:
    """Check that ``path`` is a complete checkpoint whose files (or the ``files`` named) match
    their SHA-256; return its manifest. Raises :class:`CheckpointError` naming what is wrong."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        raise CheckpointError(f"{path} is not a checkpoint: it has no {MANIFEST}")
    fix = "use an earlier checkpoint, or train again without resuming"
    try:
        manifest = read_manifest(path / MANIFEST, only=files, fix=fix)
    except DamagedFile as err:
        raise CheckpointError(str(err)) from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path / MANIFEST} is not a gptbook checkpoint of format {FORMAT}")
    missing = [k for k in ("step", "optimizer", "extra") if k not in manifest]
    if missing or isinstance(manifest["step"], bool) or not isinstance(manifest["step"], int):
        raise CheckpointError(
            f"{path / MANIFEST} is damaged (its step, optimizer or extra is missing or wrong); "
            f"{fix}"
        )
    return manifest


# -------------------------------------------------------------- state <-> tensors + JSON
def _split(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Take the tensors out of a nested state: ({name: tensor}, the rest as JSON-able data).

    A tensor becomes ``{"tensor": name}``; a tuple ``{"tuple": [...]}``; a dict whose keys are
    not all strings (an optimiser's state is keyed by parameter number) ``{"items": [[k, v]]}``.
    """
    tensors: dict[str, torch.Tensor] = {}

    def at(name: str, key: Any) -> str:
        return f"{name}.{key}" if name else str(key)

    def walk(obj: Any, name: str) -> Any:
        if isinstance(obj, torch.Tensor):
            if name in tensors:  # {"a.b": t, "a": {"b": u}}, or {1: t, "1": u}: one would be lost
                raise ValueError(
                    f"cannot checkpoint the state: two of its tensors flatten to the name "
                    f"{name!r} (keys joined with '.'); rename one of them"
                )
            tensors[name] = obj.detach().cpu().contiguous()
            return {"tensor": name}
        if isinstance(obj, tuple):
            return {"tuple": [walk(v, at(name, i)) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [walk(v, at(name, i)) for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            if all(isinstance(k, str) for k in obj):
                return {"dict": {k: walk(v, at(name, k)) for k, v in obj.items()}}
            return {"items": [[k, walk(v, at(name, k))] for k, v in obj.items()]}
        if obj is None or isinstance(obj, bool | int | float | str):
            return obj
        raise TypeError(f"cannot checkpoint {name or 'the state'}: a {type(obj).__name__}")

    return tensors, walk(state, "") if state is not None else None


def _join(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`_split`."""
    if isinstance(data, list):
        return [_join(v, tensors) for v in data]
    if isinstance(data, dict):
        if "tensor" in data:
            return tensors[data["tensor"]]
        if "tuple" in data:
            return tuple(_join(v, tensors) for v in data["tuple"])
        if "dict" in data:
            return {k: _join(v, tensors) for k, v in data["dict"].items()}
        return {k: _join(v, tensors) for k, v in data["items"]}
    return data
