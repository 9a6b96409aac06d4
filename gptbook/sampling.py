"""Generating text one token at a time: the autoregressive sampling loop.

Introduced in chapter 1 in its first form: temperature sampling (temperature 0 is
greedy decoding). Chapter 9 extends it with top-k, top-p, beam search and a KV
cache, keeping this signature.
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
