"""gptbook.pretrained: every spec builds, and a model trains once, then loads from the cache."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gptbook import pretrained
from gptbook.train import Trainer


def _tiny_spec(tmp_path, monkeypatch, **train):
    monkeypatch.setattr(pretrained, "models_dir", lambda: tmp_path)
    spec = {
        "quick": dict(
            model=dict(preset="book-tiny"),
            train=dict(max_steps=2, batch_size=4, warmup_steps=1, **train),
        )
    }
    monkeypatch.setitem(pretrained.SPECS, "test-tiny", spec)
    return pretrained.path("test-tiny", "quick")


def test_trains_once_then_loads(tmp_path, monkeypatch):
    _tiny_spec(tmp_path, monkeypatch)
    calls = []
    real_train = Trainer.train
    monkeypatch.setattr(
        Trainer, "train", lambda self, *a, **k: calls.append(1) or real_train(self, progress=False)
    )
    first = pretrained.model("test-tiny", "quick", "cpu")
    second = pretrained.model("test-tiny", "quick", "cpu")
    assert calls == [1] and torch.equal(first.wte.weight, second.wte.weight) and not second.training
    assert pretrained.path("test-tiny", "quick").parent == tmp_path


def test_a_fast_dev_runs_models_are_kept_apart_from_the_real_ones(monkeypatch):
    real = pretrained.path("char", "full")
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "2")
    dry = pretrained.path("char", "full")
    assert real.parent.name == "models" and dry.parent.name == "models-fast-dev-run-2"
    assert dry.name == real.name  # the same spec, in a folder no real run reads


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="no pretrained model 'nope'; available: char, bpe"):
        pretrained.model("nope")


def test_every_spec_is_valid():
    for name, scales in pretrained.SPECS.items():
        for scale in scales:
            model_cfg, cfg = pretrained.spec(name, scale)
            task = pretrained.task(name, scale)  # a synthetic task brings its own vocabulary
            vocab = task.vocab if task else 84 if cfg.tokenizer == "char" else 50_257
            assert cfg.tokenizer in ("char", "gpt2") and model_cfg.vocab_size == vocab


def test_the_cache_key_follows_the_config(monkeypatch):
    before = pretrained.path("char", "quick")
    changed = {
        **pretrained.SPECS["char"]["quick"],
        "train": {**pretrained.SPECS["char"]["quick"]["train"], "lr": 1e-4},
    }
    monkeypatch.setitem(pretrained.SPECS, "char", {**pretrained.SPECS["char"], "quick": changed})
    # a changed run trains anew, never loads a stale model
    assert pretrained.path("char", "quick") != before


def test_an_interrupted_run_is_never_cached_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "models_dir", lambda: tmp_path)
    spec = {
        "quick": dict(
            model=dict(preset="book-tiny"),
            train=dict(max_steps=4, batch_size=4, warmup_steps=1, eval_interval=2),
        )
    }
    monkeypatch.setitem(pretrained.SPECS, "test-tiny", spec)
    real_train, started_at = Trainer.train, []

    def interrupted(self, *args, **kwargs):
        real_train(self, steps=2, progress=False)  # checkpoints at step 2, then the user stops it
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrained.model("test-tiny", "quick", "cpu")
    folder = pretrained.path("test-tiny", "quick")
    assert not folder.exists()  # a half-trained model is no pretrained one
    monkeypatch.setattr(
        Trainer,
        "train",
        lambda self, *a, **k: started_at.append(self.step) or real_train(self, progress=False),
    )
    pretrained.model("test-tiny", "quick", "cpu")
    assert started_at == [2] and (folder / "model.safetensors").exists()
    assert not folder.with_name(folder.name + ".run").exists()


def test_a_damaged_cached_model_is_moved_aside_and_trained_again(tmp_path, monkeypatch):
    folder = _tiny_spec(tmp_path, monkeypatch)
    first = pretrained.model("test-tiny", "quick", "cpu")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # cut short
    with pytest.warns(UserWarning, match=r"cannot be used .*model\.safetensors is damaged"):
        again = pretrained.model("test-tiny", "quick", "cpu")
    assert torch.equal(first.wte.weight, again.wte.weight)  # the same run, trained again
    assert (folder.parent / f"{folder.name}.damaged-1" / "model.safetensors").exists()


def test_a_complete_cache_is_read_without_the_lock(tmp_path, monkeypatch):
    _tiny_spec(tmp_path, monkeypatch)
    pretrained.model("test-tiny", "quick", "cpu")

    def no_lock(target):
        raise PermissionError(f"read-only cache: cannot create {target}.lock")

    monkeypatch.setattr(pretrained, "locked", no_lock)
    assert pretrained.model("test-tiny", "quick", "cpu") is not None


def test_the_training_history_is_kept_with_the_model(tmp_path, monkeypatch):
    folder = _tiny_spec(tmp_path, monkeypatch, eval_interval=1, eval_batches=1)
    trainer = pretrained.train("test-tiny", "quick", device="cpu", progress=False)
    kept = pretrained.history("test-tiny", "quick", "cpu")
    assert kept == trainer.history and kept["eval_step"] == [1, 2] and len(kept["val"]) == 2
    pretrained.model("test-tiny", "quick", "cpu").save(folder)  # saved without a history
    with pytest.raises(ValueError, match="without its training history: delete"):
        pretrained.history("test-tiny", "quick", "cpu")


def _tokens(name: str, scale: str) -> tuple[int, int]:
    """(N, D) of a chapter-8 model: its non-embedding parameters and its training tokens."""
    from gptbook.sizes import non_embedding

    model, train = pretrained.spec(name, scale)
    return non_embedding(model), train.max_steps * train.batch_size * model.block_size


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_the_ladder_differs_only_in_width_and_reads_the_same_tokens_per_parameter(scale):
    rungs = [pretrained.spec(f"ladder-{i}", scale) for i in range(1, 6)]
    widths = [model.n_embd for model, _ in rungs]
    assert widths == list(pretrained.LADDER_WIDTHS[scale]) == sorted(set(widths))
    first_model, _ = rungs[0]
    for model, _ in rungs[1:]:
        assert dataclasses.replace(model, n_embd=first_model.n_embd) == first_model
    for i in range(1, 6):
        n, d = _tokens(f"ladder-{i}", scale)
        assert d / n == pytest.approx(pretrained.LADDER_TOKENS_PER_PARAMETER, rel=0.1)


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_each_isoflop_model_trains_for_exactly_its_budget(scale):
    for b, budget in enumerate(pretrained.ISOFLOP_BUDGETS[scale], start=1):
        widths = pretrained.ISOFLOP_WIDTHS[scale][b - 1]
        for w, width in enumerate(widths, start=1):
            name = pretrained.isoflop_name(b, w)
            model, train = pretrained.spec(name, scale)
            n, d = _tokens(name, scale)
            assert model.n_embd == width and train.eval_interval == train.max_steps
            assert 6 * n * d == pytest.approx(budget, rel=0.1), "C = 6·N·D, to a step"
            assert 0 < train.warmup_steps < train.max_steps
