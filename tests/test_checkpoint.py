"""gptbook.checkpoint: any module and optimiser round-trip, and damage is named, never loaded."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from gptbook.checkpoint import (
    MANIFEST,
    CheckpointError,
    load_checkpoint,
    load_extra,
    save_checkpoint,
    verify_checkpoint,
)
from gptbook.model import GPT, GPTConfig


def _trained(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 4)).square().mean().backward()
        optimizer.step()
    return model, optimizer


def test_any_module_and_optimizer_round_trip(tmp_path):
    model, optimizer = _trained(0)
    extra = {"rng": torch.get_rng_state(), "history": {"loss": [1.5, 1.25]}, "pair": (1, "a")}
    save_checkpoint(tmp_path / "ckpt", model, optimizer, step=3, extra=extra)
    fresh, fresh_opt = _trained(1)  # other weights, other optimiser state
    assert load_checkpoint(tmp_path / "ckpt", fresh, fresh_opt) == 3
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p, q)
    a, b = optimizer.state_dict(), fresh_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(a["state"][i][key], b["state"][i][key])
    got = load_extra(tmp_path / "ckpt")
    assert torch.equal(got["rng"], extra["rng"]) and got["history"] == extra["history"]
    assert got["pair"] == (1, "a")


def test_the_optimizer_continues_identically(tmp_path):
    model, optimizer = _trained(0)
    save_checkpoint(tmp_path / "ckpt", model, optimizer, step=3)
    fresh, fresh_opt = _trained(1)
    load_checkpoint(tmp_path / "ckpt", fresh, fresh_opt)
    x = torch.randn(5, 4)
    for m, o in ((model, optimizer), (fresh, fresh_opt)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p, q)


def test_tied_weights_stay_tied(tmp_path):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)
    save_checkpoint(tmp_path / "gpt", GPT(config))
    other = GPT(config)
    load_checkpoint(tmp_path / "gpt", other)
    assert other.lm_head.weight is other.wte.weight


@pytest.mark.parametrize(
    "name", ["model.safetensors", "optimizer.safetensors", "extra.safetensors"]
)
def test_flipped_bytes_and_truncation_are_named(tmp_path, name):
    model, optimizer = _trained(0)
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer, extra={"x": torch.ones(3)})
    file = path / name
    original = file.read_bytes()
    for offset in range(0, len(original), max(1, len(original) // 23)):
        damaged = bytearray(original)
        damaged[offset] ^= 0x01
        file.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError, match=f"{name} is damaged"):
            load_checkpoint(path, _trained(1)[0], _trained(1)[1])
    file.write_bytes(original[: len(original) // 2])
    with pytest.raises(CheckpointError, match=f"{name} is damaged"):
        verify_checkpoint(path)
    file.unlink()
    with pytest.raises(CheckpointError, match=f"{name} is missing"):
        verify_checkpoint(path)


def test_a_damaged_checkpoint_leaves_the_model_untouched(tmp_path):
    model, optimizer = _trained(0)
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer)
    (path / "optimizer.safetensors").write_bytes(b"junk")
    fresh, fresh_opt = _trained(1)
    before = [p.clone() for p in fresh.parameters()]
    with pytest.raises(CheckpointError):
        load_checkpoint(path, fresh, fresh_opt)
    assert all(torch.equal(p, q) for p, q in zip(before, fresh.parameters()))


def test_manifest_problems_are_named(tmp_path):
    model, _ = _trained(0)
    path = save_checkpoint(tmp_path / "ckpt", model)
    (path / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="checkpoint.json is damaged"):
        verify_checkpoint(path)
    (path / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="is not a checkpoint: it has no checkpoint.json"):
        load_checkpoint(path, model)
    (path / MANIFEST).write_text(json.dumps({"format": 99, "files": {}}))
    with pytest.raises(CheckpointError, match="not a gptbook checkpoint of format 1"):
        verify_checkpoint(path)


def test_another_model_does_not_fit(tmp_path):
    model, _ = _trained(0)
    path = save_checkpoint(tmp_path / "ckpt", model)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(path, nn.Linear(4, 2))


def test_no_pickle_is_written(tmp_path):
    model, optimizer = _trained(0)
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer, extra={"a": torch.ones(1)})
    names = sorted(p.name for p in path.iterdir())
    tensors = ["extra.safetensors", "model.safetensors", "optimizer.safetensors"]
    assert names == ["checkpoint.json", *tensors]
    with pytest.raises(TypeError, match="cannot checkpoint x: a object"):
        save_checkpoint(tmp_path / "bad", model, extra={"x": object()})
    assert not (tmp_path / "bad").exists()
