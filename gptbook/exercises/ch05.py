"""Graders for chapter 5, *GPT-1: the model and pretraining*."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..model import GPT, Block, GPTConfig
from ..train import TrainConfig, lr_at
from ._grading import Exercise


def check_05_1(post_ln_block: Callable) -> None:
    """5.1 — ``post_ln_block(x, block)``: GPT-1's block, from the block's parts.

    A post-LN block of width 16 on x of shape (2, 6, 16): the shape, then the output.
    """
    ex = Exercise("5.1")
    torch.manual_seed(5)
    block = Block(GPTConfig(n_embd=16, n_head=2, dropout=0.0, norm="post")).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        got = ex.tensor(post_ln_block, x, block)
        want = block(x)
    ex.expect_shape(
        got,
        x.shape,
        "the block's output",
        "attention, the MLP and LayerNorm all keep (B, T, n_embd); add the residuals, "
        "do not concatenate them.",
    )
    ex.expect_close(
        got,
        want,
        "the output differs from LN2(h + MLP(h)) with h = LN1(x + Attention(x)).",
        "use block.attn, block.ln1, block.mlp and block.ln2 in that order, "
        "adding the residual before each LayerNorm.",
        atol=1e-5,
    )
    ex.passed("post-LN: add the residual, then normalise")


def check_05_2(schedule: Callable) -> None:
    """5.2 — ``schedule(step, max_steps, warmup_steps, lr, min_lr_ratio)``: warmup, then cosine.

    Three schedules, with and without warmup, at the steps around the warmup's end,
    halfway and at the end, against :func:`gptbook.train.lr_at`.
    """
    ex = Exercise("5.2")
    for max_steps, warmup, lr, ratio in [
        (100, 10, 1.0, 0.1),
        (50, 0, 3e-4, 0.0),
        (1000, 200, 6e-4, 0.1),
    ]:
        cfg = TrainConfig(max_steps=max_steps, warmup_steps=warmup, lr=lr, min_lr_ratio=ratio)
        middle = (warmup + max_steps) // 2
        for step in sorted(
            {0, 1, warmup // 2, max(warmup - 1, 0), warmup, middle, max_steps - 1, max_steps}
        ):
            got = ex.scalar(schedule, step, max_steps, warmup, lr, ratio)
            want = lr_at(step, cfg)
            ex.expect(
                abs(got - want) <= 1e-9 + 1e-6 * lr,
                f"at step {step} (max_steps={max_steps}, warmup={warmup}, lr={lr}, "
                f"min_lr_ratio={ratio}) expected {want:.6g}, got {got:.6g}.",
                "warmup: lr · (step + 1) / warmup; after: "
                "min + (lr - min) · (1 + cos(π · progress)) / 2, with min = lr · min_lr_ratio.",
            )
    ex.passed("linear warmup, cosine decay to the floor")


def check_05_3(count_parameters: Callable) -> None:
    """5.3 — ``count_parameters(vocab_size, block_size, n_layer, n_embd)``: a post-LN, tied GPT.

    Three sizes, GPT-1's own (40,478, 512, 12, 768) among them, against ``GPT.num_params``.
    """
    ex = Exercise("5.3")
    for dims in [(84, 64, 2, 64), (40_478, 512, 12, 768), (1000, 128, 3, 96)]:
        got = ex.scalar(count_parameters, *dims)
        ex.expect(
            got.is_integer(),
            f"a number of parameters is a whole number, got {got}.",
            "count with integers: no division, no ** 0.5.",
        )
        got = int(got)
        vocab_size, block_size, n_layer, n_embd = dims
        config = GPTConfig(
            vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_embd=n_embd, n_head=4
        )
        with torch.device("meta"):
            want = GPT(config).num_params()
        ex.expect(
            got == want,
            f"for (V, T, L, d) = {dims}: expected {want:,}, got {got:,} (off by {got - want:+,}).",
            "V·d + T·d + L·(attention 4d² + 4d, MLP 8d² + 5d, two LayerNorms 4d); "
            "the head is tied.",
        )
    ex.passed("every parameter accounted for")


def check_05_4(batch_loss: Callable) -> None:
    """5.4 — ``batch_loss(logits, targets)``: the mean cross-entropy of a batch, in nats.

    Random logits (3, 5, 11) and targets: one number, equal to ``F.cross_entropy``.
    """
    ex = Exercise("5.4")
    logits, targets = (
        torch.randn(3, 5, 11, generator=ex.random) * 3,
        torch.randint(11, (3, 5), generator=ex.random),
    )
    got = ex.tensor(batch_loss, logits, targets, dtype=torch.float32)
    ex.expect(
        got.numel() == 1,
        f"return one number (the mean over all B·T positions), got shape {tuple(got.shape)}.",
        "average the per-position losses: .mean() over every position of every sequence.",
    )
    want = F.cross_entropy(logits.view(-1, 11), targets.view(-1))
    ex.expect_close(
        got.reshape(()),
        want,
        "the loss is not the mean cross-entropy in nats.",
        "log_softmax over the last dimension, pick each target's entry (gather), negate, average.",
        atol=1e-5,
    )
    ex.passed("the loss is the mean surprise at every position")
