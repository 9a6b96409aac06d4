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
from gptbook.model import GPT, GPTConfig
from gptbook.train import TrainConfig, Trainer

RUN = "--preset book-tiny --max-steps 80 --batch-size 2 --warmup-steps 2 --eval-interval 1"
RUN += " --eval-batches 1 --device cpu --keep-checkpoints 2"


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
    straight = GPT.load(tmp_path / "straight")
    rng, out, newest = random.Random(0), tmp_path / "killed", []
    for _ in range(8):
        resume = ["--resume"] if _newest(out) else []
        _train(out, *resume, kill_within=0.1, rng=rng)  # a step and its checkpoint: ~0.03 s
        for folder in (out / "checkpoints").glob("step-*"):
            checkpoint.verify_checkpoint(folder)  # every visible checkpoint is complete
        newest.append(_newest(out))
    assert 0 < newest[0] and newest == sorted(newest) and newest[-1] < 80, newest  # mid-run
    _train(out, "--resume")
    resumed = GPT.load(out)
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
