"""Graders for chapter 5, *GPT-1: the model and pretraining*."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..model import GPT, Block, GPTConfig
from ..train import TrainConfig, lr_at
from ._grading import call, expect, passed


def check_05_1(post_ln_block: Callable) -> None:
    """5.1 — ``post_ln_block(x, block)``: GPT-1's block, from the block's parts."""
    torch.manual_seed(5)
    block = Block(GPTConfig(n_embd=16, n_head=2, dropout=0.0, norm="post")).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        got = torch.as_tensor(call("5.1", post_ln_block, x, block))
        want = block(x)
    expect(
        got.shape == x.shape,
        "5.1",
        f"a block keeps the shape {tuple(x.shape)}, got {tuple(got.shape)}.",
    )
    expect(
        torch.allclose(got, want, atol=1e-5),
        "5.1",
        "the output differs from LN2(h + MLP(h)) with h = LN1(x + Attention(x)).",
        "use block.attn, block.ln1, block.mlp and block.ln2 in that order, adding the residual before each LayerNorm.",
    )
    passed("5.1", "post-LN: add the residual, then normalise")


def check_05_2(schedule: Callable) -> None:
    """5.2 — ``schedule(step, max_steps, warmup_steps, lr, min_lr_ratio)``: warmup, then cosine."""
    for max_steps, warmup, lr, ratio in [
        (100, 10, 1.0, 0.1),
        (50, 0, 3e-4, 0.0),
        (1000, 200, 6e-4, 0.1),
    ]:
        cfg = TrainConfig(max_steps=max_steps, warmup_steps=warmup, lr=lr, min_lr_ratio=ratio)
        for step in sorted(
            {
                0,
                1,
                warmup // 2,
                max(warmup - 1, 0),
                warmup,
                (warmup + max_steps) // 2,
                max_steps - 1,
                max_steps,
            }
        ):
            got = float(call("5.2", schedule, step, max_steps, warmup, lr, ratio))
            want = lr_at(step, cfg)
            expect(
                abs(got - want) <= 1e-9 + 1e-6 * lr,
                "5.2",
                f"at step {step} (max_steps={max_steps}, warmup={warmup}, lr={lr}) expected {want:.6g}, got {got:.6g}.",
                "warmup: lr · (step + 1) / warmup; after: min + (lr - min) · (1 + cos(π · progress)) / 2.",
            )
    passed("5.2", "linear warmup, cosine decay to the floor")


def check_05_3(count_parameters: Callable) -> None:
    """5.3 — ``count_parameters(vocab_size, block_size, n_layer, n_embd)`` of a post-LN, tied GPT."""
    for dims in [(84, 64, 2, 64), (40_478, 512, 12, 768), (1000, 128, 3, 96)]:
        got = int(call("5.3", count_parameters, *dims))
        with torch.device("meta"):
            want = GPT(
                GPTConfig(
                    vocab_size=dims[0],
                    block_size=dims[1],
                    n_layer=dims[2],
                    n_embd=dims[3],
                    n_head=4,
                )
            ).num_params()
        expect(
            got == want,
            "5.3",
            f"for (V, T, L, d) = {dims}: expected {want:,}, got {got:,} (off by {got - want:+,}).",
            "V·d + T·d + L·(attention 4d² + 4d, MLP 8d² + 5d, two LayerNorms 4d); the head is tied.",
        )
    passed("5.3", "every parameter accounted for")


def check_05_4(batch_loss: Callable) -> None:
    """5.4 — ``batch_loss(logits, targets)``: the mean cross-entropy of a batch, in nats."""
    g = torch.Generator().manual_seed(54)
    logits, targets = torch.randn(3, 5, 11, generator=g) * 3, torch.randint(11, (3, 5), generator=g)
    got = torch.as_tensor(call("5.4", batch_loss, logits, targets)).float()
    want = F.cross_entropy(logits.view(-1, 11), targets.view(-1))
    expect(
        got.numel() == 1,
        "5.4",
        f"return one number (the mean over all B·T positions), got shape {tuple(got.shape)}.",
    )
    expect(
        torch.allclose(got, want, atol=1e-5),
        "5.4",
        f"expected {want.item():.5f} nats, got {got.item():.5f}.",
        "log_softmax over the last dimension, pick each target's entry (gather), negate, average.",
    )
    passed("5.4", "the loss is the mean surprise at every position")
