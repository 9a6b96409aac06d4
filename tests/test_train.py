"""gptbook.train: the schedule, a loss that falls, exact resume, and DDP matching one process."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gptbook.model import GPT, GPTConfig
from gptbook.train import TrainConfig, Trainer, autocast_dtype, lr_at, main

TINY = dict(vocab_size=84, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.1)


def _trainer(tmp_path=None, resume=False, dropout=0.1, **overrides) -> Trainer:
    torch.manual_seed(0)
    cfg = TrainConfig(
        **{
            "max_steps": 12,
            "batch_size": 8,
            "warmup_steps": 3,
            "eval_interval": 6,
            "eval_batches": 2,
            **overrides,
        }
    )
    return Trainer(GPT(GPTConfig(**{**TINY, "dropout": dropout})), cfg, tmp_path, resume=resume)


def test_warmup_then_cosine():
    cfg = TrainConfig(max_steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(100, cfg) == pytest.approx(0.1) and lr_at(55, cfg) == pytest.approx(0.55)


def test_warmup_then_linear_decay():
    cfg = TrainConfig(max_steps=110, warmup_steps=10, lr=1.0, min_lr_ratio=0.0, schedule="linear")
    assert lr_at(9, cfg) == pytest.approx(1.0) and lr_at(60, cfg) == pytest.approx(0.5)
    assert lr_at(35, cfg) == pytest.approx(0.75) and lr_at(110, cfg) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="schedule='step': choose cosine or linear"):
        TrainConfig(schedule="step")


def test_any_model_trains_on_its_own_batches_and_metrics():
    """The Trainer needs only ``model(*batch) -> (output, loss)``: here a line through points."""
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64)[:, None]
    y = 3 * x - 1

    class Line(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fit, self.frozen = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
            self.frozen.requires_grad_(False)

        def forward(self, x, y):
            out = self.fit(x) + 0 * self.frozen(x)
            return out, torch.nn.functional.mse_loss(out, y)

    model = Line()
    frozen = model.frozen.weight.clone()
    cfg = TrainConfig(
        max_steps=200, batch_size=16, lr=0.05, warmup_steps=0, eval_interval=100, weight_decay=0
    )
    trainer = Trainer(
        model,
        cfg,
        batches=lambda step, g: (x[(step % 4) * 16 :][:16], y[(step % 4) * 16 :][:16]),
        metrics=lambda m: {"val": m(x, y)[1].item(), "slope": m.fit.weight.item()},
    )
    history = trainer.train(progress=False)
    assert history["slope"][-1] == pytest.approx(3.0, abs=0.05) and history["val"][-1] < 1e-3
    assert torch.equal(model.frozen.weight, frozen), "frozen weights are not in the optimiser"
    with pytest.raises(ValueError, match="metrics must include 'val'"):
        Trainer(model, cfg, batches=trainer.batches, metrics=lambda m: {"loss": 0.0}).evaluate()


def test_loss_falls_and_history_is_kept():
    trainer = _trainer(max_steps=60, lr=3e-3, warmup_steps=5, eval_interval=30)
    history = trainer.train(progress=False)
    assert len(history["train"]) == 60 and history["eval_step"] == [30, 60]
    assert sum(history["train"][-10:]) / 10 < sum(history["train"][:10]) / 10 - 0.5


def test_resume_continues_the_same_run(tmp_path):
    straight = _trainer(tmp_path / "a").train(progress=False)
    first = _trainer(tmp_path / "b")
    first.train(steps=6, progress=False)  # stops at the checkpoint of step 6
    resumed = _trainer(tmp_path / "b", resume=True)
    assert resumed.step == 6
    history = resumed.train(progress=False)
    assert history["train"] == straight["train"] and history["val"] == straight["val"]


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        _trainer(tmp_path / "empty", resume=True)


def test_checkpoints_are_folders_and_the_last_k_are_kept(tmp_path):
    trainer = _trainer(tmp_path, eval_interval=3, keep_checkpoints=2)
    trainer.train(progress=False)
    names = [p.name for p in trainer.checkpoints()]
    assert names == ["step-00000012", "step-00000009"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(names)


def test_resume_skips_a_damaged_checkpoint_and_says_so(tmp_path):
    straight = _trainer(tmp_path / "a").train(progress=False)
    first = _trainer(tmp_path / "b", eval_interval=3)
    first.train(steps=9, progress=False)  # checkpoints at steps 6 and 9
    weights = tmp_path / "b" / "checkpoints" / "step-00000009" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the newest checkpoint
    weights.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"step-00000009.*model\.safetensors is damaged"):
        resumed = _trainer(tmp_path / "b", resume=True, eval_interval=3)
    assert resumed.step == 6
    with pytest.warns(UserWarning, match="changed TrainConfig: eval_interval: 3 → 6"):
        resumed = _trainer(tmp_path / "b", resume=True)
    assert resumed.train(progress=False)["train"] == straight["train"]


def test_resume_refuses_another_batch_size_and_another_model(tmp_path):
    _trainer(tmp_path).train(steps=6, progress=False)
    with pytest.raises(ValueError, match="cannot resume .*batch_size: 8 → 4"):
        _trainer(tmp_path, resume=True, batch_size=4)
    with pytest.raises(ValueError, match=r"cannot resume .* another model \(n_embd: 32 → 64\)"):
        torch.manual_seed(0)
        other = GPT(GPTConfig(**{**TINY, "n_embd": 64}))
        cfg = TrainConfig(
            max_steps=12, batch_size=8, warmup_steps=3, eval_interval=6, eval_batches=2
        )
        Trainer(other, cfg, tmp_path, resume=True)


def test_a_diverged_run_stops_before_its_checkpoint(tmp_path):
    trainer = _trainer(
        tmp_path, lr=1e3, warmup_steps=0, grad_clip=0.0, max_steps=40, eval_interval=20
    )
    with torch.no_grad():
        trainer.model.wte.weight.mul_(1e30)  # overflows at once
    with pytest.raises(FloatingPointError, match="is (nan|inf) at the first step, before any"):
        trainer.train(progress=False)
    assert trainer.checkpoints() == []


def test_timing_leaves_out_evaluation():
    import time

    trainer = _trainer(max_steps=4, eval_interval=2)
    start = time.perf_counter()
    trainer.train(progress=False, on_eval=lambda t: time.sleep(0.5))  # 2 evaluations: 1 s
    assert 0 < trainer.seconds < time.perf_counter() - start - 1.0


def test_bad_train_configs():
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(max_steps=10, warmup_steps=20)
    with pytest.raises(ValueError, match="batch_size must be a whole number ≥ 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="max_steps must be a whole number ≥ 1, got 10.5"):
        TrainConfig(max_steps=10.5)
    for field, value in [("grad_clip", -1.0), ("weight_decay", -0.1)]:
        with pytest.raises(ValueError, match=f"{field} must be ≥ 0"):
            TrainConfig(**{field: value})
    with pytest.raises(ValueError, match="eps must be a finite number, got nan"):
        TrainConfig(eps=float("nan"))
    with pytest.raises(ValueError, match="lr must be a finite number, got inf"):
        TrainConfig(lr=float("inf"))
    with pytest.raises(ValueError, match="lr must be a positive number, got -0.1"):
        TrainConfig(lr=-0.1)
    with pytest.raises(ValueError, match="min_lr_ratio must be in \\[0, 1\\]"):
        TrainConfig(min_lr_ratio=1.5)
    with pytest.raises(ValueError, match="betas must be two numbers in \\[0, 1\\)"):
        TrainConfig(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="choose auto, float32, bfloat16, float16"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="eval_interval must be a whole number ≥ 1"):
        TrainConfig(eval_interval=0)
    with pytest.raises(ValueError, match="micro_batch_size must be between 1 and batch_size=8"):
        TrainConfig(batch_size=8, micro_batch_size=16)
    with pytest.raises(ValueError, match="must divide each process's 8 sequences"):
        _trainer(micro_batch_size=3)


def test_accumulated_micro_batches_equal_one_batch():
    whole, accumulated = _trainer(dropout=0.0), _trainer(dropout=0.0, micro_batch_size=2)
    losses = [whole.train(progress=False)["train"], accumulated.train(progress=False)["train"]]
    assert losses[1] == pytest.approx(losses[0], abs=1e-5)
    for p, q in zip(whole.model.parameters(), accumulated.model.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_precision_follows_the_device(monkeypatch):
    assert autocast_dtype("cpu") is None and autocast_dtype("cpu", "bfloat16") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert autocast_dtype("cuda") is torch.bfloat16  # Ampere and newer
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert autocast_dtype("cuda") is torch.float16  # a T4: bf16 only emulated, so float16
    assert autocast_dtype("cuda", "float32") is None


def test_mixed_precision_paths_train():
    # The GPU's precisions, run on the CPU: bfloat16 autocast, and float16 with loss scaling.
    fp32 = _trainer().train(progress=False)["train"]
    bf16 = _trainer(precision="bfloat16").train(progress=False)["train"]
    trainer = _trainer(precision="float16")
    assert trainer.dtype is torch.float16 and trainer.scaler.is_enabled()
    fp16 = trainer.train(progress=False)["train"]
    for losses in (bf16, fp16):
        assert losses != fp32  # the products really ran in 16 bits
        assert losses[0] == pytest.approx(fp32[0], abs=0.05) and losses[-1] < losses[0] - 0.1


def test_float16_resume_restores_the_loss_scale(tmp_path):
    straight = _trainer(tmp_path / "a", precision="float16")
    straight_history = straight.train(progress=False)
    first = _trainer(tmp_path / "b", precision="float16")
    first.train(steps=6, progress=False)
    resumed = _trainer(tmp_path / "b", resume=True, precision="float16")
    assert resumed.scaler.get_scale() == first.scaler.get_scale()
    assert resumed.train(progress=False)["train"] == straight_history["train"]


def test_float16_overflows_are_skipped_and_counted_not_errors():
    trainer = _trainer(precision="float16", max_steps=20)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**30)  # overflows at first
    history = trainer.train(progress=False)
    assert trainer.skipped >= 1 and all(math.isfinite(loss) for loss in history["train"])
    assert trainer.scaler.get_scale() < 2.0**30


def test_compiled_training_matches_eager():
    # (no dropout: compiled kernels draw their dropout masks from another random stream)
    eager = _trainer(dropout=0.0, max_steps=4, eval_interval=4).train(progress=False)
    compiled = _trainer(dropout=0.0, max_steps=4, eval_interval=4, compile=True).train(
        progress=False
    )
    assert compiled["train"] == pytest.approx(eager["train"], abs=1e-4)
    assert compiled["val"] == pytest.approx(eager["val"], abs=1e-4)


CLI_ARGS = "--preset book-tiny --max-steps 4 --warmup-steps 1 --eval-interval 2 --eval-batches 1"
CLI_ARGS += " --batch-size 4 --device cpu"


def test_cli_trains_resumes_and_writes_the_model(tmp_path, capsys):
    args = [*CLI_ARGS.split(), "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert "step 4: train" in capsys.readouterr().out
    assert GPT.load(tmp_path / "run" / "model").config == GPTConfig.preset("book-tiny")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-00000004")  # as if stopped at step 3
    with pytest.warns(UserWarning, match="micro_batch_size: None → 2"):
        assert main([*args, "--resume", "--micro-batch-size", "2"]) == 0
    assert "step 4: train" in capsys.readouterr().out


def test_cli_refuses_junk_from_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not a whole number"):
        main([*CLI_ARGS.split(), "--out", str(tmp_path / "run")])
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, message in [("x", "RANK='x' is not a whole number"), ("2", "RANK=2 but WORLD")]:
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(ValueError, match=message):
            main([*CLI_ARGS.split(), "--out", str(tmp_path / "run")])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, micro_batch_size: int | None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**TINY, "dropout": 0.0}))
    cfg = TrainConfig(
        max_steps=5,
        batch_size=8,
        warmup_steps=1,
        eval_interval=100,
        micro_batch_size=micro_batch_size,
    )
    history = Trainer(model, cfg).train(progress=False)
    if rank == 0:
        torch.save({"state": model.state_dict(), "losses": history["train"]}, out)
    dist.destroy_process_group()


# micro_batch_size 2: each process accumulates two micro-batches
@pytest.mark.parametrize("micro_batch_size", [None, 2])
def test_ddp_two_processes_match_one(tmp_path, micro_batch_size):
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), out, micro_batch_size), nprocs=2, join=True)
    torch.manual_seed(0)
    single = GPT(GPTConfig(**{**TINY, "dropout": 0.0}))
    history = Trainer(
        single, TrainConfig(max_steps=5, batch_size=8, warmup_steps=1, eval_interval=100)
    ).train(progress=False)
    ddp = torch.load(out, weights_only=True)
    for name, p in single.state_dict().items():
        assert torch.allclose(p, ddp["state"][name], atol=1e-5), name
    # what is logged is the global batch's loss
    assert ddp["losses"] == pytest.approx(history["train"], abs=1e-5)


def test_each_process_takes_its_slice_of_the_global_batch():
    full = _trainer().batch()
    half = _trainer()
    half.rank, half.world = 1, 2  # as process 1 of 2 would
    x, y = half.batch()
    assert x.shape == (4, 32) and torch.equal(x, full[0][4:]) and torch.equal(y, full[1][4:])


def test_training_on_gpt2_tokens():
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(
            vocab_size=50_257,
            pad_vocab_to=64,
            block_size=16,
            n_layer=1,
            n_head=2,
            n_embd=16,
            dropout=0.0,
        )
    )
    trainer = Trainer(
        model,
        TrainConfig(
            max_steps=3,
            batch_size=4,
            warmup_steps=1,
            eval_interval=3,
            eval_batches=1,
            tokenizer="gpt2",
        ),
    )
    history = trainer.train(progress=False)
    assert (
        history["train"][0] == pytest.approx(math.log(50_257), abs=0.5) and len(history["val"]) == 1
    )


def test_torchrun_runs_the_cli_on_two_processes(tmp_path):
    # The chapter's command, on the CPU: torchrun starts two processes, which meet over gloo.
    args = [*CLI_ARGS.split(), "--out", str(tmp_path / "run")]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port",
            str(_free_port()),
            "-m",
            "gptbook.train",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("step 4: train") == 1  # printed by rank 0 only
    assert GPT.load(tmp_path / "run" / "model").config == GPTConfig.preset("book-tiny")


def test_processes_can_check_the_same_output_folder_at_once(tmp_path):
    """torchrun's processes all check that --out is writable; a shared test file name let one
    process delete another's before it could (a run failed with "cannot write there")."""
    from concurrent.futures import ThreadPoolExecutor

    from gptbook.train import writable_folder

    folder = tmp_path / "run"
    with ThreadPoolExecutor(8) as pool:
        checked = list(pool.map(lambda _: writable_folder(folder), range(400)))
    assert checked == [folder] * 400 and list(folder.iterdir()) == []


def test_a_fast_dev_run_trains_and_evaluates_a_few_steps(monkeypatch):
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "2")
    trainer = _trainer(max_steps=500, eval_interval=100, eval_batches=10, warmup_steps=50)
    assert (trainer.cfg.max_steps, trainer.cfg.eval_batches, trainer.cfg.warmup_steps) == (2, 2, 2)
    measured = []
    real = trainer.corpus_metrics
    monkeypatch.setattr(trainer, "metrics", lambda model: measured.append(1) or real(model))
    history = trainer.train(progress=False)
    assert history["step"] == [0, 1] and history["eval_step"] == [1, 2] and measured == [1, 1]


def test_capped_keeps_a_short_run_as_it_is():
    cfg = TrainConfig(max_steps=3, warmup_steps=1, eval_interval=1, eval_batches=1)
    assert cfg.capped(2) == TrainConfig(
        max_steps=2, warmup_steps=1, eval_interval=1, eval_batches=1
    )
    assert cfg.capped(10) == cfg
