"""Generating text one token at a time: the autoregressive sampling loop.

Introduced in chapter 1 in its first form: temperature sampling (temperature 0 is
greedy decoding). Chapter 9 adds the logits processors (temperature, top-k, top-p, min-p,
repetition penalty), each a function of the logits.
"""

from __future__ import annotations

import torch

from .checks import id_batch, whole


def probabilities(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / temperature) over the last dimension; temperature 0 puts all the mass on
    the argmax."""
    if not temperature >= 0 or temperature == float("inf"):  # NaN fails every comparison
        raise ValueError(f"temperature must be a number ≥ 0 (0 = greedy), got {temperature}")
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / temperature, dim=-1)


def sample_next(
    logits: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One token per row from logits (B, V): returns ids (B, 1). Temperature 0 takes the argmax."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    return torch.multinomial(probabilities(logits.float(), temperature), 1, generator=generator)


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    block_size: int | None = None,
) -> torch.Tensor:
    """Extend each row of ``idx`` (B, T) by ``max_new_tokens`` tokens sampled from ``model``.

    Each step runs the model on (at most ``block_size``, default ``model.block_size``)
    last tokens, takes the logits of the last position, samples one token and
    appends it: one model call per new token, each waiting for the one before.
    Returns (B, T + max_new_tokens).
    """
    id_batch(idx)
    if idx.shape[1] == 0:
        raise ValueError("idx needs at least one token per row to condition on (e.g. a newline)")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
    largest = getattr(model, "block_size", None)
    if block_size is not None:
        whole("block_size", block_size)
        if largest is not None and block_size > largest:
            raise ValueError(
                f"block_size={block_size} is more than the model's context, {largest}: "
                "leave it out to use the model's own"
            )
    context = block_size or largest
    for _ in range(max_new_tokens):
        window = idx if context is None else idx[:, -context:]  # (B, ≤ block_size)
        logits, _ = model(window)  # (B, T, V)
        next_id = sample_next(logits[:, -1, :], temperature, generator)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)
    return idx


# ---------------------------------------------------------------------- logits processors
# Chapter 9: each takes logits (..., V) and returns new logits, the removed tokens at -inf, with
# the conventions of Hugging Face transformers' logits warpers (tested against them).
REMOVED = float("-inf")


def temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    """Logits divided by ``t``: below 1 sharper, above 1 flatter; 0 keeps only the argmax
    (greedy decoding as a distribution)."""
    if not t >= 0 or t == float("inf"):
        raise ValueError(f"temperature must be a number ≥ 0 (0 = greedy), got {t}")
    if t == 0:
        best = logits.argmax(-1, keepdim=True)
        return torch.full_like(logits, REMOVED).scatter(-1, best, logits.gather(-1, best))
    return logits / t


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Only the ``k`` largest logits (and any tied with the k-th) survive."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be a whole number ≥ 1, got {k!r}")
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, REMOVED)


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling: the smallest set of the likeliest tokens whose probabilities add up to
    at least ``p`` survives (always at least one token). Sort, add up, cut."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    ordered, order = logits.sort(dim=-1)  # ascending: the unlikeliest first
    below = ordered.softmax(-1).cumsum(-1) <= 1 - p  # (..., V): mass that can go
    below[..., -1] = False  # the likeliest token always stays
    return logits.masked_fill(below.scatter(-1, order, below), REMOVED)


def min_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Tokens at least ``p`` times as likely as the likeliest survive: the cut follows the
    model's confidence (Nguyen et al., 2024)."""
    if not 0 <= p <= 1:
        raise ValueError(f"min_p must be in [0, 1], got {p}")
    probs = logits.softmax(-1)
    return logits.masked_fill(probs < p * probs.amax(-1, keepdim=True), REMOVED)


def repetition_penalty(logits: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Tokens already in ``ids`` (..., T) made less likely: a positive logit divided by
    ``penalty``, a negative one multiplied (Keskar et al., 2019); 1 changes nothing."""
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1: none), got {penalty}")
    seen = logits.gather(-1, ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(-1, ids, seen)
