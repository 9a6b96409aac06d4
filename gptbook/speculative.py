"""Speculative decoding: a cheap draft proposes, the target verifies in one call.

Introduced in chapter 1 as the bridge between autoregressive and parallel
generation; chapter 9 makes it fast for Transformers (a KV cache in each model) and measures
it.

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

from .checks import whole
from .sampling import Decoder, evaluating, probabilities, prompt_context


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
    rejected: int = 0  # steps that ended on a rejected draft token
    new_tokens: int = 0

    @property
    def acceptance_rate(self) -> float:
        """The share of draft tokens kept."""
        return self.accepted / max(self.proposed, 1)

    @property
    def alpha(self) -> float:
        """The chance that a draft token is accepted, α, estimated from the tokens tested: a step
        tests its drafts up to the first rejection, and those after it are never tested."""
        return self.accepted / max(self.accepted + self.rejected, 1)

    @property
    def tokens_per_target_call(self) -> float:
        """New tokens per call of the target model: 1 without speculation, more with it."""
        return self.new_tokens / max(self.target_calls, 1)


def expected_tokens(alpha: float, gamma: int) -> float:
    """Tokens per target call that γ drafts give when each is accepted with chance α
    (Leviathan et al., 2023): 1 + α + … + α^γ = (1 - α^(γ+1)) / (1 - α)."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha is a chance of acceptance, in [0, 1]; got {alpha}")
    whole("gamma", gamma, least=0)
    return sum(alpha**i for i in range(gamma + 1))


def expected_speedup(alpha: float, gamma: int, cost: float) -> float:
    """The wall-time speed-up over plain decoding when a draft call costs ``cost`` target
    calls: expected tokens per step over the step's cost, γ·cost + 1 (Leviathan et al.)."""
    return expected_tokens(alpha, gamma) / (gamma * cost + 1)


def verify(
    ps: torch.Tensor, qs: torch.Tensor, drafted: torch.Tensor, uniforms: torch.Tensor
) -> tuple[int, torch.Tensor]:
    """One verification step (chapter 9): how many of the ``drafted`` tokens (γ,) survive, and
    the distribution (V,) of the token that comes after them.

    ``ps`` (γ + 1, V) are the target's probabilities at each drafted position and one more,
    ``qs`` (γ, V) the draft's, ``uniforms`` (γ,) one number in [0, 1) per draft token. Token i
    is accepted if its number is below min(1, p/q); the first one that is not ends the step,
    and the next token is drawn from the residual there. If all γ pass, it is drawn from the
    target's own last row: a bonus token.
    """
    gamma = len(drafted)
    p_x = ps[:gamma].gather(-1, drafted[:, None])[:, 0]  # (γ,): p of each draft token
    q_x = qs.gather(-1, drafted[:, None])[:, 0]  # (γ,): q of each draft token
    passed = uniforms < acceptance(p_x, q_x)  # (γ,): each token's own test
    n = int(passed.int().cumprod(0).sum())  # the tests passed before the first failure
    return n, residual(ps[n], qs[n]) if n < gamma else ps[n]


def chi_square(
    counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0
) -> tuple[float, int, float]:
    """Pearson's chi-square test that ``counts`` (K,) were drawn from ``probs`` (K,): the
    statistic, its degrees of freedom and the p-value (chapter 9 checks that speculative
    decoding samples the target's distribution).

    Outcomes expected fewer than ``min_expected`` times are pooled into one, as the test's
    approximation needs; outcomes that are impossible and never seen are left out.
    """
    counts, probs = counts.double().flatten(), probs.double().flatten()
    if counts.shape != probs.shape:
        raise ValueError(
            f"counts and probs need one entry per outcome: {counts.shape}, {probs.shape}"
        )
    if not (probs.isfinite().all() and (probs >= 0).all() and probs.sum() > 0):
        raise ValueError("probs must be finite and ≥ 0, with a positive sum")
    if not (counts.isfinite().all() and (counts >= 0).all()):
        raise ValueError("counts must be finite and ≥ 0")
    expected = probs / probs.sum() * counts.sum()
    small = expected < min_expected
    observed = torch.cat([counts[~small], counts[small].sum()[None]])
    expected = torch.cat([expected[~small], expected[small].sum()[None]])
    seen = (expected > 0) | (observed > 0)
    observed, expected = observed[seen], expected[seen]
    statistic = ((observed - expected) ** 2 / expected).sum()  # inf if the impossible happened
    dof = len(observed) - 1
    if dof < 1:
        raise ValueError(
            f"the test needs two outcomes or more expected {min_expected:g} times or more: draw "
            f"more than {int(counts.sum())} samples"
        )
    p = torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), statistic / 2)
    return statistic.item(), dof, p.item()


def speculative_generate(
    target,
    draft,
    idx: torch.Tensor,
    max_new_tokens: int,
    gamma: int = 4,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> tuple[torch.Tensor, SpeculativeStats]:
    """Extend ``idx`` (1, T) by ``max_new_tokens`` tokens distributed exactly as ``target``'s.

    Both models keep KV caches (``use_cache``, chapter 9): the draft's rejected tokens are
    dropped from them after each step. At temperature 0 the output is the target's greedy one.
    Returns the ids (1, T + max_new_tokens) and the :class:`SpeculativeStats` of the run.
    """
    if idx.ndim != 2 or idx.shape[0] != 1:
        raise ValueError(
            f"speculative_generate decodes one sequence: idx must be (1, T), got {tuple(idx.shape)}"
        )
    if isinstance(gamma, bool) or not isinstance(gamma, int) or gamma < 1:
        raise ValueError(f"gamma (draft tokens per step) must be a whole number ≥ 1, got {gamma!r}")
    probabilities(idx.new_zeros(1).float(), temperature)  # checks the temperature
    whole("max_new_tokens", max_new_tokens, least=0)
    length = idx.shape[1] + max_new_tokens + gamma  # the longest proposal, and one more
    for name, model in (("target", target), ("draft", draft)):
        context = prompt_context(model, idx, max_new_tokens)
        if hasattr(model, "new_cache") and length - 1 > context:
            raise ValueError(
                f"the {name} reads {context} tokens, and a step scores the prompt, the new tokens "
                f"and gamma drafts: {idx.shape[1]} + {max_new_tokens} + {gamma} do not fit; crop "
                "the prompt or ask for fewer tokens"
            )
    with torch.inference_mode(), evaluating(target, draft):  # no autograd bookkeeping, no dropout
        target_step = Decoder(target, use_cache, length)
        draft_step = Decoder(draft, use_cache, length)
        stats, start = SpeculativeStats(), idx.shape[1]
        while idx.shape[1] - start < max_new_tokens:
            # 1. The draft proposes gamma tokens, one call each.
            proposal, qs = idx, []
            for _ in range(gamma):
                q = probabilities(draft_step(proposal)[0, -1].float(), temperature)  # (V,)
                token = torch.multinomial(q, 1, generator=generator)  # (1,)
                proposal, qs = torch.cat([proposal, token[None]], dim=1), qs + [q]
            stats.draft_calls += gamma
            # 2. The target scores every proposed position, and one more, in one call.
            logits = target_step(proposal, gamma + 1)[0].float()  # (γ + 1, V)
            ps = probabilities(logits, temperature)
            stats.target_calls += 1
            # 3. Accept drafts left to right; the first rejection is resampled from the residual.
            drafted = proposal[0, idx.shape[1] :]  # (gamma,)
            uniforms = torch.rand(gamma, generator=generator, device=idx.device)  # (gamma,)
            n_ok, fix = verify(ps, torch.stack(qs), drafted, uniforms)
            extra = torch.multinomial(fix, 1, generator=generator)  # (1,)
            kept = idx.shape[1] + n_ok  # the tokens both caches may keep
            idx = torch.cat([idx, drafted[None, :n_ok], extra[None]], dim=1)
            target_step.rewind(kept)
            draft_step.rewind(kept)
            stats.proposed += gamma
            stats.accepted += n_ok
            stats.rejected += n_ok < gamma
    stats.new_tokens = max_new_tokens
    return idx[:, : start + max_new_tokens].clone(), stats  # an ordinary tensor, as generate's
