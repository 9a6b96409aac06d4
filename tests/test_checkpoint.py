"""gptbook.checkpoint: any module and optimiser round-trip, and damage is named, never loaded."""

from __future__ import annotations

import json
import random

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
    from gptbook.files import SELF_HASH, _content_hash

    entry = {"format": 99, "files": {}}
    (path / MANIFEST).write_text(json.dumps({**entry, SELF_HASH: _content_hash(entry)}))
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


def test_every_bit_flip_in_the_manifest_is_detected(tmp_path):
    """A flipped bit anywhere in checkpoint.json is named, never loaded as another state (the
    manifest carries the hash of its own content): one flip a byte, at a bit chosen by seed."""
    model, optimizer = _trained(0)
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer, step=3, extra={"lr": 0.01})
    original = (path / MANIFEST).read_bytes()
    meaning = json.loads(original)
    rng = random.Random(0)
    loaded_otherwise = []
    for i in range(len(original)):
        flipped = bytearray(original)
        flipped[i] ^= 1 << rng.randrange(8)
        (path / MANIFEST).write_bytes(bytes(flipped))
        try:
            same = json.loads(bytes(flipped)) == meaning
        except ValueError:
            same = False
        try:
            load_checkpoint(path, _trained(1)[0], _trained(1)[1])
            load_extra(path)
        except CheckpointError:
            continue
        if not same:
            loaded_otherwise.append(i)
    assert not loaded_otherwise, f"flips at bytes {loaded_otherwise[:10]} loaded another state"


def test_manifest_names_outside_the_folder_are_refused_before_reading(tmp_path, monkeypatch):
    from gptbook import files

    folder = tmp_path / "ckpt"
    folder.mkdir()
    hashed = []
    monkeypatch.setattr(files, "sha256_of", lambda p: hashed.append(p) or "0" * 64)
    for name in ["../outside", "/etc/passwd", ".."]:
        entry = {"files": {name: "0" * 64}}
        entry[files.SELF_HASH] = files._content_hash(entry)  # well signed, but not confined
        (folder / MANIFEST).write_text(json.dumps(entry))
        with pytest.raises(files.DamagedFile, match="which is not a file beside it"):
            files.read_manifest(folder / MANIFEST)
    assert hashed == []


def test_a_manifest_without_its_own_hash_is_refused(tmp_path):
    """An older gptbook's manifest (or one stripped of its hash) is not trusted: any field of it
    could have been changed."""
    model, optimizer = _trained(0)
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer)
    entry = json.loads((path / MANIFEST).read_text())
    del entry["manifest_sha256"]
    entry["step"] = 7
    (path / MANIFEST).write_text(json.dumps(entry))
    with pytest.raises(CheckpointError, match="has no hash of its own"):
        verify_checkpoint(path)


def test_a_file_of_the_wrong_size_is_named_before_it_is_hashed(tmp_path, monkeypatch):
    from gptbook import files

    model, optimizer = _trained(0)
    path = save_checkpoint(tmp_path / "ckpt", model, optimizer)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0" * 100)  # as a huge sparse file would be
    monkeypatch.setattr(files, "sha256_of", lambda p: pytest.fail(f"hashed {p}"))
    with pytest.raises(CheckpointError, match=r"holds [\d,]+ bytes, not the [\d,]+ recorded"):
        verify_checkpoint(path)


def test_tensors_whose_names_collide_are_refused(tmp_path):
    model, _ = _trained(0)
    for extra in (
        {"a.b": torch.zeros(1), "a": {"b": torch.ones(1)}},
        {1: torch.zeros(1), "1": torch.ones(1)},
    ):
        with pytest.raises(ValueError, match="flatten to the name"):
            save_checkpoint(tmp_path / "ckpt", model, extra=extra)
    assert not (tmp_path / "ckpt").exists()


def test_a_damaged_newest_checkpoint_is_skipped_on_resume(tmp_path):
    from gptbook.train import TrainConfig, Trainer

    def run() -> Trainer:
        torch.manual_seed(0)
        config = GPTConfig(vocab_size=84, block_size=8, n_layer=1, n_head=2, n_embd=8)
        cfg = TrainConfig(
            max_steps=4, batch_size=2, warmup_steps=1, eval_interval=2, eval_batches=1
        )
        return Trainer(
            GPT(config), cfg, tmp_path, resume=bool(list(tmp_path.glob("checkpoints/*")))
        )

    run().train(progress=False)
    newest = tmp_path / "checkpoints" / "step-00000004" / MANIFEST
    entry = json.loads(newest.read_text())
    del entry["extra"]  # valid JSON, one field gone
    newest.write_text(json.dumps(entry))
    with pytest.warns(UserWarning, match="skipping a checkpoint that cannot be used"):
        assert run().step == 2


def test_concurrent_saves_of_one_path_all_succeed(tmp_path):
    """Eight threads save different models to one path at once: none fails, and the folder
    left is one whole checkpoint that verifies."""
    from concurrent.futures import ThreadPoolExecutor

    models = [_trained(seed)[0] for seed in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda m: save_checkpoint(tmp_path / "ckpt", m), models * 4))
    verify_checkpoint(tmp_path / "ckpt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # nothing left aside


def test_a_full_disk_inside_safetensors_is_the_os_error_with_a_fix(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from gptbook import checkpoint

    def full(*args, **kwargs):
        raise SafetensorError('IoError(Os { code: 28, message: "No space left on device" })')

    monkeypatch.setattr(checkpoint, "save_model", full)
    with pytest.raises(OSError, match="No space left on device.*free some disk space"):
        save_checkpoint(tmp_path / "ckpt", _trained(0)[0])
    assert list(tmp_path.iterdir()) == []
