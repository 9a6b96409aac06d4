"""Chapter 8's induction heads: the repeated-segment task, the scores, the head ablation, the
attention-only GPT (``mlp="none"``) and the first-block band they need."""

import math

import pytest
import torch

from gptbook import induction, pretrained, sizes
from gptbook.induction import RepeatTask
from gptbook.lm import IGNORE_INDEX
from gptbook.model import GPT, GPTConfig


def segments(targets: torch.Tensor) -> list[tuple[int, int]]:
    """Each row's (start of the second copy, L), read from its targets."""
    found = []
    for row in targets:
        where = (row != IGNORE_INDEX).nonzero()[:, 0]
        L = len(where) + 1  # s₂ … s_L are targets; they sit at positions P+L … P+2L-2
        found.append((int(where[0]), L))
    return found


def test_the_segment_repeats_and_only_its_predictable_tokens_are_targets():
    task = RepeatTask(vocab=20, block_size=24, min_len=3, max_len=8)
    idx, targets = task.batch(64, torch.Generator().manual_seed(0))
    assert idx.shape == targets.shape == (64, 24)
    assert int(idx.max()) < 20 and int(idx.min()) >= 0
    lengths = set()
    for row, target, (first, L) in zip(idx, targets, segments(targets)):
        # the input at the first target is s₁ of the second copy; s₁ … s_L sit L positions back
        assert row[first] == row[first - L]
        assert torch.equal(target[first : first + L - 1], row[first - L + 1 : first])
        assert (target[:first] == IGNORE_INDEX).all()
        assert (target[first + L - 1 :] == IGNORE_INDEX).all()
        lengths.add(L)
    assert min(lengths) >= 3 and max(lengths) <= 8 and len(lengths) > 3  # L varies


def test_the_probe_is_fixed_and_batches_follow_the_generator():
    task = RepeatTask()
    assert all(torch.equal(a, b) for a, b in zip(task.probe(), task.probe()))
    batches = task.batches(8)
    one = batches(0, torch.Generator().manual_seed(5))
    two = batches(7, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(one, two)) and one[0].shape == (8, 48)


def one_hot_on(idx: torch.Tensor, offset: int, H: int = 2) -> torch.Tensor:
    """(B, H, T, T): every query puts all its attention on the key ``offset`` after the one
    whose predecessor matches it (offset 0: an induction head), or on itself if none does."""
    B, T = idx.shape
    w = torch.zeros(B, T, T)
    for b in range(B):
        for t in range(T):
            keys = [s for s in range(1, t + 1) if idx[b, s - 1] == idx[b, t]]
            key = keys[-1] + offset if keys else t
            w[b, t, min(max(key, 0), t)] = 1.0
    return w[:, None].expand(B, H, T, T)


def test_induction_score_of_hand_built_patterns():
    task = RepeatTask(vocab=10**6, block_size=30, min_len=4, max_len=10)  # no chance repeats
    idx, targets = task.batch(8, torch.Generator().manual_seed(1))
    assert torch.allclose(
        induction.induction_scores(one_hot_on(idx, 0), idx, targets), torch.ones(2)
    )
    assert induction.induction_scores(one_hot_on(idx, -1), idx, targets).max() < 1e-6  # the copy
    T = idx.shape[1]
    previous = torch.eye(T).roll(-1, dims=1).tril()[None, None].expand(8, 2, T, T)
    assert induction.induction_scores(previous, idx, targets).max() < 1e-6
    assert torch.allclose(induction.previous_token_scores(previous), torch.ones(2))


def test_phase_change_finds_the_steps_of_the_drop():
    steps = [25, 50, 75, 100, 125]
    assert induction.phase_change(steps, [4.1, 4.0, 3.0, 1.5, 0.2], 4.0) == (50, 100)
    assert induction.phase_change(steps, [1.5, 1.0, 0.9, 0.8, 0.7], 4.0) == (0, 25)  # from step 0
    assert induction.phase_change(steps, [4.1, 3.9, 3.5, 3.2, 3.0], 4.0) is None  # never fell


def test_bag_loss_counts_the_distinct_tokens_seen():
    idx = torch.tensor([[3, 4, 3, 5]])
    targets = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 4, 3]])  # after 3 distinct, then 3
    assert induction.bag_loss(idx, targets) == pytest.approx((math.log(2) + math.log(3)) / 2)


def tiny(n_layer: int = 2, **overrides) -> GPT:
    torch.manual_seed(0)
    shape = dict(vocab_size=30, block_size=19, n_layer=n_layer, n_head=2, n_embd=16)
    config = GPTConfig(**{**shape, "dropout": 0.0, "norm": "pre", "mlp": "none", **overrides})
    return GPT(config).eval()


def test_ablating_a_head_changes_the_output_and_nothing_leaves_it():
    model = tiny()
    idx, _ = RepeatTask(vocab=30, block_size=19, min_len=3, max_len=8).batch(4)
    with torch.no_grad():
        before = model(idx)[0]
        with induction.ablate_head(model, 1, 0):
            ablated = model(idx)[0]
        after = model(idx)[0]
    assert torch.equal(before, after)  # the hook is gone
    assert not torch.allclose(before, ablated)


def test_bad_arguments_say_what_to_fix():
    with pytest.raises(ValueError, match="min_len ≤ max_len"):
        RepeatTask(min_len=9, max_len=8)
    with pytest.raises(ValueError, match="vocab"):
        RepeatTask(vocab=1)
    with pytest.raises(ValueError, match="block_size ≥ 31"):
        RepeatTask(block_size=20, max_len=16)
    model = tiny()
    with pytest.raises(ValueError, match="layers 0..1"):
        with induction.ablate_head(model, 2, 0):
            pass
    with pytest.raises(ValueError, match="heads 0..1"):
        with induction.ablate_head(model, 0, 2):
            pass
    idx, targets = RepeatTask(block_size=40).batch(2)
    with pytest.raises(ValueError, match="same batch"):
        induction.induction_scores(torch.rand(2, 2, 7, 7), idx, targets)
    with pytest.raises(ValueError, match="banded_blocks='last'"):
        GPTConfig(banded_blocks="last")
    with pytest.raises(ValueError, match="mlp='none'"):
        GPTConfig(mlp="none", mlp_hidden=64)
    with pytest.raises(ValueError, match="mlp="):
        GPTConfig(mlp="relu")


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("bias", [True, False])
def test_attention_only_model_has_no_mlp_and_counts_agree(norm, bias):
    model = tiny(norm=norm, bias=bias)
    names = [name for name, _ in model.named_parameters()]
    assert not any(".mlp." in name or ".ln2." in name for name in names)
    counts = sizes.param_counts(model.config)
    assert counts["MLP"] == 0
    assert sum(counts.values()) == model.num_params()
    dense = GPT(GPTConfig(**{**model.config.__dict__, "mlp": "gelu"}))
    assert model.num_params() < dense.num_params()
    assert model.flops_per_token() == sizes.flops_per_token(model.config)
    # 6 per weight but the position table, plus attention's 6·L·T·d
    c = model.config
    weights = model.num_params() - c.block_size * c.n_embd
    assert model.flops_per_token() == 6 * weights + 6 * c.n_layer * c.block_size * c.n_embd


def test_first_block_banded_sees_only_the_previous_token():
    model = tiny(local_window=2, banded_blocks="first")
    idx, _ = RepeatTask(vocab=30, block_size=19, min_len=3, max_len=8).batch(3)
    first, second = model.attention_weights(idx)
    T = idx.shape[1]
    assert (first * ~torch.ones(T, T, dtype=torch.bool).tril().triu(-1)).abs().max() == 0
    assert (second.tril(-2) > 0).any()  # the second block is dense
    assert [model.config.banded(i) for i in range(2)] == [True, False]
    assert sizes.attended(model.config, T) == [2, T]
    gpt3 = GPTConfig(n_layer=4, local_window=2)  # GPT-3's alternation is the default
    assert [gpt3.banded(i) for i in range(4)] == [False, True, False, True]


def test_the_induction_models_learn_their_task_under_their_own_key():
    names = [induction.model_name(2, s) for s in induction.SEEDS]
    names += [
        induction.model_name(1, banded=False),
        induction.model_name(2, banded=False),
    ]
    for name in names:
        model_cfg, cfg = pretrained.spec(name, "quick")
        assert pretrained.task(name, "quick") == induction.TASK
        assert model_cfg.mlp == "none" and model_cfg.vocab_size == induction.TASK.vocab
    assert pretrained.spec(names[0], "quick")[0].banded(0)
    assert not pretrained.spec(names[-1], "quick")[0].banded(0)
    assert len({pretrained.path(name, "quick") for name in names}) == len(names)
    assert pretrained.task("char", "quick") is None


def test_a_short_run_of_the_task_records_its_score(tmp_path):
    from gptbook.train import TrainConfig, Trainer

    task = RepeatTask(vocab=16, block_size=16, min_len=3, max_len=8, probe_rows=32)
    model = tiny(vocab_size=16, block_size=16, local_window=2, banded_blocks="first")
    cfg = TrainConfig(max_steps=4, batch_size=8, warmup_steps=1, eval_interval=2)
    trainer = Trainer(model, cfg, tmp_path, batches=task.batches(8), metrics=task.metrics)
    history = trainer.train(progress=False)
    assert history["eval_step"] == [2, 4] and len(history["score"]) == 2
    assert all(0 <= s <= 1 for s in history["score"]) and all(v > 0 for v in history["val"])


def test_a_pretrained_entry_with_a_task_trains_on_it(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "models_dir", lambda: tmp_path)
    task = RepeatTask(vocab=16, block_size=16, min_len=3, max_len=8, probe_rows=16)
    model = dict(preset="book-tiny", vocab_size=16, block_size=16, n_layer=2, n_head=1)
    model |= dict(n_embd=16, norm="pre", mlp="none", dropout=0.0)
    train = dict(max_steps=4, batch_size=8, warmup_steps=1, eval_interval=2)
    monkeypatch.setitem(
        pretrained.SPECS, "test-task", {"quick": dict(model=model, train=train, task=task)}
    )
    before = pretrained.path("test-task", "quick")
    history = pretrained.history("test-task", "quick", device="cpu")
    assert history["eval_step"] == [2, 4] and len(history["score"]) == 2  # the task's metrics
    assert pretrained.model("test-task", "quick", device="cpu").config.vocab_size == 16
    other = {
        "quick": dict(model=model, train=train, task=RepeatTask(vocab=16, block_size=16, max_len=8))
    }
    monkeypatch.setitem(pretrained.SPECS, "test-task", other)
    assert pretrained.path("test-task", "quick") != before  # the task is part of the key
