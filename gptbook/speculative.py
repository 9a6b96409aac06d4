"""Speculative decoding: a cheap draft proposes, the target verifies in one call.

Introduced in chapter 1 as the bridge between autoregressive and parallel
generation; chapter 9 makes it fast for Transformers (KV cache, batches).

A draft model q proposes ``gamma`` tokens one at a time (cheap calls). The target
model p then scores all of them in **one** call. Each draft token x is accepted
with probability min(1, p(x) / q(x)); at the first rejection, a replacement is
sampled from the residual distribution norm(max(p - q, 0)) and the step ends. If
all are accepted, the target's next distribution gives one extra token for free.
This rule makes every token exactly distributed as the target's would be
(Leviathan et al., 2023; Chen et al., 2023), while the target runs once per step
instead of once per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .sampling import probabilities


def acceptance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The probability of accepting each draft token: min(1, p / q), shape (..., V)."""
    return torch.where(q > 0, (p / q.clamp_min(1e-30)).clamp(max=1.0), torch.ones_like(p))


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Where to sample after a rejection: max(p - q, 0), normalised, shape (..., V).

    If p == q (nothing to correct), the residual is p itself.
    """
    r = (p - q).clamp(min=0)
    total = r.sum(-1, keepdim=True)
    return torch.where(total > 0, r / total.clamp_min(1e-30), p)


@dataclass
class SpeculativeStats:
    """What a speculative run cost: model calls, and how many draft tokens survived."""

    target_calls: int = 0
    draft_calls: int = 0
    proposed: int = 0
    accepted: int = 0
    new_tokens: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / max(self.proposed, 1)

    @property
    def tokens_per_target_call(self) -> float:
        return self.new_tokens / max(self.target_calls, 1)


def _next_probs(model, idx: torch.Tensor, last: int, temperature: float) -> torch.Tensor:
    """The model's next-token probabilities at the last ``last`` positions of idx (1, T):
    (last, V)."""
    context = getattr(model, "block_size", None)
    window = idx if context is None else idx[:, -(context + last - 1) :]
    logits, _ = model(window)  # (1, T', V)
    return probabilities(logits[0, -last:].float(), temperature)


@torch.no_grad()
def speculative_generate(
    target,
    draft,
    idx: torch.Tensor,
    max_new_tokens: int,
    gamma: int = 4,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, SpeculativeStats]:
    """Extend ``idx`` (1, T) by ``max_new_tokens`` tokens distributed exactly as ``target``'s.

    Returns the ids (1, T + max_new_tokens) and the :class:`SpeculativeStats` of the run.
    """
    if idx.ndim != 2 or idx.shape[0] != 1:
        raise ValueError(
            f"speculative_generate decodes one sequence: idx must be (1, T), got {tuple(idx.shape)}"
        )
    if gamma < 1:
        raise ValueError(f"gamma (draft tokens per step) must be ≥ 1, got {gamma}")
    stats, start = SpeculativeStats(), idx.shape[1]
    while idx.shape[1] - start < max_new_tokens:
        # 1. The draft proposes gamma tokens, one call each.
        proposal, qs = idx, []
        for _ in range(gamma):
            q = _next_probs(draft, proposal, 1, temperature)[0]  # (V,)
            token = torch.multinomial(q, 1, generator=generator)  # (1,)
            proposal, qs = torch.cat([proposal, token[None]], dim=1), qs + [q]
        stats.draft_calls += gamma
        # 2. The target scores every proposed position, and one more, in one call.
        ps = _next_probs(target, proposal, gamma + 1, temperature)  # (gamma + 1, V)
        stats.target_calls += 1
        # 3. Accept draft tokens left to right; the first rejection is resampled from the residual.
        drafted = proposal[0, idx.shape[1] :]  # (gamma,)
        n_ok = 0
        for i, token in enumerate(drafted.tolist()):
            if torch.rand(1, generator=generator).item() >= acceptance(ps[i], qs[i])[token]:
                break
            n_ok += 1
        fix = residual(ps[n_ok], qs[n_ok]) if n_ok < gamma else ps[gamma]
        extra = torch.multinomial(fix, 1, generator=generator)  # (1,)
        idx = torch.cat([idx, drafted[None, :n_ok], extra[None]], dim=1)
        stats.proposed += gamma
        stats.accepted += n_ok
    idx = idx[:, : start + max_new_tokens]
    stats.new_tokens = max_new_tokens
    return idx, stats
