"""Nothing lost, nothing silent: runs killed at any instant resume from their last good
checkpoint, and a full disk fails loudly without touching the checkpoints already written."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from gptbook import checkpoint
from gptbook.lm import IGNORE_INDEX
from gptbook.model import GPT, GPTConfig
from gptbook.train import TrainConfig, Trainer

RUN = "--preset book-tiny --max-steps 80 --batch-size 2 --warmup-steps 2 --eval-interval 1"
RUN += " --eval-batches 1 --device cpu --keep-checkpoints 2"
#: A model of the book's characters, as small as a model goes: for runs that must fail fast.
TINY_CHAR = GPTConfig(vocab_size=84, block_size=8, n_layer=1, n_head=2, n_embd=8)


def _newest(out) -> int:
    """The step of the newest checkpoint in ``out`` (0: none yet)."""
    folders = sorted((out / "checkpoints").glob("step-*"))
    return int(folders[-1].name[5:]) if folders else 0


def _train(out, *extra: str, kill_within: float | None = None, rng=None) -> None:
    """Run the CLI to the end; or, with ``kill_within``, SIGKILL it at a random moment of that
    many seconds after its next checkpoint appears (mid-step, or mid-save)."""
    cmd = [sys.executable, "-m", "gptbook.train", *RUN.split(), "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_within is not None:
        before, deadline = _newest(out), time.monotonic() + 120
        while _newest(out) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, kill_within))
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert kill_within is not None or proc.returncode == 0, err.decode()[-2000:]


def test_killed_at_random_moments_the_run_resumes_to_the_same_model(tmp_path):
    _train(tmp_path / "straight")
    straight = GPT.load(tmp_path / "straight" / "model")
    rng, out, newest = random.Random(0), tmp_path / "killed", []
    for _ in range(8):
        resume = ["--resume"] if _newest(out) else []
        _train(out, *resume, kill_within=0.1, rng=rng)  # a step and its checkpoint: ~0.03 s
        for folder in (out / "checkpoints").glob("step-*"):
            checkpoint.verify_checkpoint(folder)  # every visible checkpoint is complete
        newest.append(_newest(out))
    assert 0 < newest[0] and newest == sorted(newest) and newest[-1] < 80, newest  # mid-run
    _train(out, "--resume")
    resumed = GPT.load(out / "model")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs from the uninterrupted run's"
    assert not list((out / "checkpoints").glob(".*")), "temporary folders were left behind"


def test_a_full_disk_fails_loudly_and_keeps_the_checkpoints(tmp_path, monkeypatch):
    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=9, batch_size=4, warmup_steps=1, eval_interval=3, eval_batches=1)
    trainer = Trainer(GPT(GPTConfig.preset("book-tiny")), cfg, tmp_path)
    trainer.train(steps=6, progress=False)  # checkpoints at steps 3 and 6
    real_save = checkpoint.save_file

    def no_space(tensors, filename, *args, **kwargs):
        real_save(tensors, filename, *args, **kwargs)
        with open(filename, "ab") as f:
            f.write(b"\0" * 1000)  # the disk fills up while writing
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", no_space)
    with pytest.raises(OSError, match=r"could not write .*step-00000009.*free some disk space"):
        trainer.train(progress=False)
    monkeypatch.undo()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000003", "step-00000006"], "nothing half-written is left"
    for name in names:
        checkpoint.verify_checkpoint(tmp_path / "checkpoints" / name)
    assert Trainer(GPT(GPTConfig.preset("book-tiny")), cfg, tmp_path, resume=True).step == 6


def test_a_kill_while_dropping_an_old_checkpoint_leaves_none_half_deleted(tmp_path, monkeypatch):
    import gptbook.train as train_module

    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=9, batch_size=4, warmup_steps=1, eval_interval=3, eval_batches=1)
    trainer = Trainer(GPT(GPTConfig.preset("book-tiny")), cfg, tmp_path)
    trainer.train(steps=6, progress=False)  # checkpoints at steps 3 and 6

    def killed_midway(folder, ignore_errors=False):
        (folder / checkpoint.MANIFEST).unlink()  # the deletion has begun ...
        raise KeyboardInterrupt  # ... and the process dies

    monkeypatch.setattr(train_module.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(progress=False)  # step 9 is saved, step 3 is being dropped
    monkeypatch.undo()
    for folder in (tmp_path / "checkpoints").glob("step-*"):
        checkpoint.verify_checkpoint(folder)
    assert Trainer(GPT(GPTConfig.preset("book-tiny")), cfg, tmp_path, resume=True).step == 9


TINY_OVERRIDES = dict(n_layer=1, n_embd=32, n_head=4, block_size=16, vocab_size=64)


@pytest.mark.parametrize("preset", ["book-tiny", "gpt2", "llama-tiny", "mixtral-8x7b"])
def test_every_kind_of_preset_round_trips_with_equal_logits(preset, tmp_path):
    overrides = dict(TINY_OVERRIDES)
    if GPTConfig.preset(preset).n_kv_head:  # grouped-query presets: keep a divisor of n_head
        overrides["n_kv_head"] = 2
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset(preset, dropout=0.0, **overrides)).eval()
    model.save(tmp_path / "m")
    again = GPT.load(tmp_path / "m").eval()
    idx = torch.randint(64, (2, 16))
    assert torch.equal(model(idx)[0], again(idx)[0])  # an untied lm_head is saved, not refilled
    assert (again.lm_head.weight is again.wte.weight) == model.config.tie_embeddings


def test_a_save_that_fails_leaves_the_previous_model(tmp_path, monkeypatch):
    import safetensors.torch

    torch.manual_seed(0)
    old, new = (GPT(GPTConfig.preset("book-tiny", **TINY_OVERRIDES)) for _ in range(2))
    old.save(tmp_path / "m")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        new.save(tmp_path / "m")
    kept = GPT.load(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(old.parameters(), kept.parameters()))
    assert [p.name for p in tmp_path.iterdir()] == ["m"], "the temporary folder was left behind"


def test_save_refuses_a_folder_with_other_files_and_deletes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    model = GPT(GPTConfig.preset("book-tiny", **TINY_OVERRIDES))
    with pytest.raises(FileExistsError, match=r"notes\.txt.*a folder of its own"):
        model.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_decoding_runs_in_eval_mode_and_restores_the_mode():
    from gptbook import sampling, speculative

    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("book-tiny", dropout=0.5, **TINY_OVERRIDES)).train()
    idx = torch.zeros(1, 1, dtype=torch.long)
    runs = [sampling.generate(model, idx, 8, temperature=0.0) for _ in range(2)]
    assert torch.equal(*runs) and model.training  # no dropout while decoding, mode given back
    assert torch.equal(sampling.beam_search(model, idx, 8, 1), runs[0]) and model.training
    fast, _ = speculative.speculative_generate(model, model, idx, 8, temperature=0.0)
    assert torch.equal(fast, runs[0]) and model.training


def test_hugging_face_folder_points_to_from_hf(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ValueError, match=r"GPT\.from_hf\(path\)"):
        GPT.load(tmp_path)


def test_a_diverged_run_writes_no_checkpoint(tmp_path):
    """An exploding learning rate: the first evaluation finds the loss (and weights) not finite,
    and the run stops before writing a checkpoint that resume would start from."""
    torch.manual_seed(0)
    cfg = TrainConfig(
        max_steps=5, batch_size=4, lr=1e30, warmup_steps=0, grad_clip=0.0, eval_interval=1
    )
    trainer = Trainer(GPT(TINY_CHAR), cfg, tmp_path)
    with pytest.raises(FloatingPointError, match="no checkpoint was written for this step"):
        trainer.train(progress=False)
    assert trainer.checkpoints() == []


def test_a_loss_that_is_nan_before_any_update_is_not_called_divergence(tmp_path):
    """Targets all ignored: the mean loss over no token is NaN from the first step."""
    x = torch.zeros(4, 8, dtype=torch.long)
    y = torch.full_like(x, IGNORE_INDEX)
    cfg = TrainConfig(max_steps=2, batch_size=4, warmup_steps=0, eval_interval=1)
    trainer = Trainer(GPT(TINY_CHAR), cfg, batches=lambda step, g: (x, y))
    with pytest.raises(FloatingPointError, match="before any update: not a divergence"):
        trainer.train(progress=False)


def test_a_nan_after_falling_losses_names_the_batch_as_well_as_divergence(tmp_path):
    """A batch with nothing to average, late in a run: the message shows the losses before it and
    names both causes, so a falling run is not told to lower its learning rate only."""
    x = torch.zeros(4, 8, dtype=torch.long)
    ignored = torch.full_like(x, IGNORE_INDEX)
    cfg = TrainConfig(max_steps=6, batch_size=4, warmup_steps=0, eval_interval=10)
    trainer = Trainer(GPT(TINY_CHAR), cfg, batches=lambda step, g: (x, ignored if step == 4 else x))
    with pytest.raises(FloatingPointError, match=r"at step 4 \(the steps before it: [\d.]+, ") as e:
        trainer.train(progress=False)
    assert "targets are all IGNORE_INDEX" in str(e.value) and "lower lr" in str(e.value)


def _tiny_run(out, **overrides) -> Trainer:
    torch.manual_seed(0)
    settings = dict(max_steps=4, batch_size=4, warmup_steps=1, eval_interval=2, eval_batches=1)
    return Trainer(GPT(TINY_CHAR), TrainConfig(**{**settings, **overrides}), out)


def test_a_folder_holds_one_run(tmp_path):
    """A new run in an old run's folder would prune its own checkpoints (the old ones sort
    newer) and a later resume would continue the old run: it is refused, and resume works."""
    _tiny_run(tmp_path).train(progress=False)
    with pytest.raises(ValueError, match=r"checkpoints of another run \(the newest: step-00000004"):
        _tiny_run(tmp_path, lr=1e-4)
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert before == ["step-00000002", "step-00000004"]  # nothing touched


def test_a_second_run_in_a_busy_folder_fails_and_names_the_first(tmp_path):
    from gptbook.files import InUse, claimed

    trainer = _tiny_run(tmp_path)
    with claimed(tmp_path / "run", "held by the test"):  # as a first run in progress would
        with pytest.raises(InUse, match=rf"in use by another process \(pid {os.getpid()}\)"):
            trainer.train(progress=False)
    assert trainer.checkpoints() == []
    trainer.train(progress=False)  # free again: the run goes ahead
    assert len(trainer.checkpoints()) == 2


def test_resuming_with_another_model_names_the_settings(tmp_path):
    _tiny_run(tmp_path).train(progress=False)
    wider = GPTConfig(vocab_size=84, block_size=8, n_layer=1, n_head=2, n_embd=16)
    cfg = TrainConfig(max_steps=4, batch_size=4, warmup_steps=1, eval_interval=2, eval_batches=1)
    with pytest.raises(ValueError, match=r"another model \(n_embd: 8 → 16\)") as err:
        Trainer(GPT(wider), cfg, tmp_path, resume=True)
    assert "delete" not in str(err.value)


def test_cli_mistakes_are_usage_errors(tmp_path, capsys):
    from gptbook.train import main

    run = ["--out", str(tmp_path / "run"), "--max-steps", "2", "--eval-interval", "1"]
    run += ["--batch-size", "2", "--warmup-steps", "0", "--device", "cpu", "--preset", "book-tiny"]
    mistakes = {
        "--lr -1": "lr must be a positive number",
        "--preset book-huge": "book-huge",
        "--device tpu": "tpu",
        "--resume": "nothing to resume",
    }
    for extra, message in mistakes.items():
        with pytest.raises(SystemExit) as stop:
            main(run + extra.split())
        assert stop.value.code == 2 and message in capsys.readouterr().err, extra
    assert main(run) == 0
    with pytest.raises(SystemExit):  # a second run in the first one's folder
        main(run)
    assert "--resume" in capsys.readouterr().err


def test_a_pretrained_run_whose_checkpoints_are_all_damaged_is_trained_again(tmp_path, monkeypatch):
    from gptbook import pretrained

    monkeypatch.setattr(pretrained, "models_dir", lambda: tmp_path)
    spec = dict(model=dict(preset="book-tiny", n_layer=1, n_embd=16, block_size=16))
    spec["train"] = dict(max_steps=4, batch_size=4, warmup_steps=1, eval_interval=2)
    monkeypatch.setitem(pretrained.SPECS, "test-damaged", {"quick": spec})
    run = pretrained.path("test-damaged", "quick")
    run = run.with_name(run.name + ".run")
    _ = Trainer(
        GPT(pretrained.spec("test-damaged", "quick")[0]),
        pretrained.spec("test-damaged", "quick")[1],
        run,
    ).train(steps=2, progress=False)  # an interrupted run ...
    for weights in run.glob("checkpoints/*/model.safetensors"):
        weights.write_bytes(b"damaged")  # ... whose checkpoints are all damaged
    with pytest.warns(UserWarning, match="cannot be resumed"):
        model = pretrained.model("test-damaged", "quick", "cpu")
    assert model.config.n_embd == 16
    assert run.with_name(run.name + ".damaged-1").is_dir()  # kept aside, not deleted


def test_a_damaged_model_in_a_read_only_cache_says_what_to_do(tmp_path, monkeypatch):
    from gptbook import pretrained

    monkeypatch.setattr(pretrained, "models_dir", lambda: tmp_path)
    spec = dict(model=dict(preset="book-tiny", n_layer=1, n_embd=16, block_size=16))
    spec["train"] = dict(max_steps=2, batch_size=4, warmup_steps=1, eval_interval=2)
    monkeypatch.setitem(pretrained.SPECS, "test-read-only", {"quick": spec})
    pretrained.model("test-read-only", "quick", "cpu")
    weights = pretrained.path("test-read-only", "quick") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])

    def read_only(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pretrained.os, "rename", read_only)
    with pytest.raises(OSError, match=r"damaged .* cannot be moved aside .*GPTBOOK_CACHE"):
        pretrained.model("test-read-only", "quick", "cpu")


def test_an_asset_file_outside_the_cache_is_refused(tmp_path, monkeypatch):
    from gptbook import assets

    monkeypatch.setattr(assets, "cache_dir", lambda: tmp_path / "cache")
    for file in ["../outside", "/tmp/abs", ".."]:
        asset = assets.Asset("x", file, "0" * 64, "MIT", "a test", ({"url": "file:///dev/null"},))
        with pytest.raises(ValueError, match="never ../x or /x"):
            assets.fetch("x", assets={"x": asset})
    assert not (tmp_path / "outside").exists()


SAVER = """
import sys
from pathlib import Path
from gptbook.model import GPT

here = Path(sys.argv[1])
models = [GPT.load(here / "a"), GPT.load(here / "b")]
for i in range(int(sys.argv[2])):
    models[i % 2].save(here / "shared")
"""


def test_a_model_loads_whole_while_another_process_saves_over_it(tmp_path):
    """One process saves two different models over one folder, again and again, while this one
    loads it: every load gives one model or the other, whole, never an error or a mixture."""
    torch.manual_seed(0)
    wide = GPTConfig(vocab_size=84, block_size=8, n_layer=2, n_head=2, n_embd=16)
    references = {1: GPT(TINY_CHAR), 2: GPT(wide)}  # told apart by their n_layer
    references[1].save(tmp_path / "a")
    references[2].save(tmp_path / "b")
    references[1].save(tmp_path / "shared")
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), "300"])
    loads = 0
    while saver.poll() is None:
        model = GPT.load(tmp_path / "shared")
        reference = references[model.config.n_layer].state_dict()
        assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
        loads += 1
    assert saver.returncode == 0 and loads >= 10, (saver.returncode, loads)
