"""Language modelling as next-token prediction: the loss every chapter reports.

Introduced in chapter 1. A language model factorises the probability of a text as
p(x_1..x_N) = prod_t p(x_t | x_<t), so its quality is the mean negative
log-likelihood of each next token, in nats: the cross-entropy. A model that knows
nothing spreads probability evenly over the V tokens and scores ln V.

Every model of the book follows one contract: ``model(idx, targets=None)`` takes
token ids (B, T) and returns ``(logits, loss)``, logits (B, T, V) scoring the token
that follows each position, and the mean cross-entropy when targets are given.
"""

from __future__ import annotations

import itertools
import math
import numbers

import torch
import torch.nn.functional as F

from . import book
from .checks import whole

#: The target that the loss skips: positions with no answer (a copy task's first steps; a
#: prompt's tokens when only the answer is trained, chapter 11). PyTorch's own default.
IGNORE_INDEX = -100


def uniform_loss(vocab_size: int) -> float:
    """The cross-entropy of the uniform distribution over ``vocab_size`` tokens: ln V nats."""
    return math.log(whole("vocab_size", vocab_size))


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log softmax over the last dimension, written out with the log-sum-exp trick.

    log p_i = z_i - log Σ_j exp(z_j). Subtracting the largest logit m first changes nothing
    mathematically (log Σ exp(z_j) = m + log Σ exp(z_j - m)) but keeps every exp ≤ 1, so logits
    of ±10⁴ neither overflow to inf nor underflow to a log of 0 (chapter 5).
    """
    m = logits.amax(dim=-1, keepdim=True).detach()  # (..., 1): a constant shift, no gradient
    shifted = logits - m
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """softmax over the last dimension, stable for large logits: exp(z - max) / Σ exp(z - max)."""
    e = (logits - logits.amax(dim=-1, keepdim=True).detach()).exp()
    return e / e.sum(dim=-1, keepdim=True)


def nll_loss(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of -log p(target) over the positions whose target is not :data:`IGNORE_INDEX`.

    ``nll_loss(log_softmax(logits), targets)`` is :func:`cross_entropy` written out (chapter 5).
    """
    keep = targets != IGNORE_INDEX
    picked = log_probs[keep].gather(-1, targets[keep][:, None])  # (N, 1): log p of each target
    return -picked.mean()


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (nats) of ``targets`` (B, T) under ``logits`` (B, T, V).

    Positions whose target is :data:`IGNORE_INDEX` are left out of the mean. This is PyTorch's
    fused kernel; chapter 5 writes it out as ``nll_loss(log_softmax(logits), targets)``.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} must be targets' shape {tuple(targets.shape)} plus V"
        )
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=IGNORE_INDEX)


def windows(ids: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive, non-overlapping windows of ``ids`` and their next tokens, each (n, T).

    Every token but the first is a target exactly once in the first ``n * T + 1`` ids.
    """
    if ids.ndim != 1:
        raise ValueError(f"expected a 1-D tensor of ids, got shape {tuple(ids.shape)}")
    whole("block_size", block_size)
    n = (len(ids) - 1) // block_size
    if n < 1:
        raise ValueError(f"{len(ids)} ids hold no window of {block_size} tokens plus a target")
    x = ids[: n * block_size].view(n, block_size)  # (n, T)
    y = ids[1 : n * block_size + 1].view(n, block_size)  # (n, T)
    return x, y


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's parameters (or, for count models, its buffers) live."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate(model, ids: torch.Tensor, block_size: int = 256, batch_size: int = 64) -> float:
    """The model's mean cross-entropy (nats per token) over all of ``ids``, in windows (a fast
    dev run reads its first few batches only)."""
    whole("batch_size", batch_size)
    x, y = windows(ids, block_size)
    device = model_device(model)
    total, count = 0.0, 0
    for start in range(0, book.cap(len(x), per=batch_size), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        _, loss = model(xb, yb)
        total += loss.item() * yb.numel()
        count += yb.numel()
    return total / count


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p of each target under ``logits``: (..., V) and (...) give (...), computed in
    float32. Chapter 11's preference losses take gradients through it."""
    return log_softmax(logits.float()).gather(-1, targets[..., None]).squeeze(-1)


@torch.no_grad()
def token_logprobs(model, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids[:, t] | ids[:, :t]) for t = 1 … T-1, from one forward pass: (B, T - 1).

    Chapter 9 scores generated samples with it (how likely the model finds its own text);
    ``ids`` (B, T) must fit in the model's context."""
    logits, _ = model(ids[:, :-1])  # (B, T - 1, V): position t - 1 predicts token t
    return target_logprobs(logits, ids[:, 1:])


def fit(
    model: torch.nn.Module, batches, steps: int, lr: float = 3e-3, weight_decay: float = 0.0
) -> list[float]:
    """A minimal training loop: ``steps`` AdamW updates on batches from ``batches()`` -> (x, y),
    on the model's device; returns the loss of every step.

    Chapters 1-4 train small models with it; chapter 5's :mod:`gptbook.train` adds the
    schedule, clipping, mixed precision, evaluation and checkpoints. A fast dev run
    (:func:`gptbook.book.fast_dev_run`) stops it after that many steps.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    device, losses = model_device(model), []
    model.train()
    for _ in range(book.cap(steps)):  # a fast dev run stops early
        x, y = batches()
        _, loss = model(x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def pad(rows, value: int = 0) -> torch.Tensor:
    """Sequences of different lengths as one (B, T) tensor, right-padded with ``value``.
    Padding on the right never changes what the real tokens see (attention is causal);
    chapters 6, 7 and 11 batch their examples with it."""
    if not isinstance(value, numbers.Integral):  # bool is one: masks are padded with False
        raise ValueError(f"value must be a token id, IGNORE_INDEX or False, got {value!r}")
    T = max(len(row) for row in rows)
    return torch.tensor([[*row, *[value] * (T - len(row))] for row in rows], dtype=torch.long)
