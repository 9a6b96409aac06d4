"""Graders for chapter 11, *From a language model to an assistant: instruction tuning, reward
models and preference optimisation*."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..align import bradley_terry_loss, dpo_loss, sft_loss
from ._grading import Exercise

#: The loss of a pair whose two rewards are equal: -log σ(0) = log 2, a coin flip's.
LOG_2 = math.log(2)


def _answer_mask(B: int, T: int, generator: torch.Generator) -> torch.Tensor:
    """(B, T) masks whose answers start at a random position after the first few tokens."""
    starts = torch.randint(2, T - 2, (B, 1), generator=generator)
    return torch.arange(T)[None, :] >= starts


def _expect_log_2(ex: Exercise, value: float, problem: str, hint: str) -> None:
    ex.expect(abs(value - LOG_2) < 1e-5, f"{problem} {value:.6g}, expected log 2 = 0.693.", hint)


def check_11_1(answer_loss: Callable) -> None:
    """11.1 — ``answer_loss(logits, ids, mask)``: the mean cross-entropy of the answer tokens
    alone. ``logits`` (B, T, V) come from the model run on ``ids`` (B, T); position t predicts
    token t + 1; ``mask`` (B, T) is True on the answer's tokens."""
    ex = Exercise("11.1")
    B, T, V = 3, 9, 7
    logits = torch.randn(B, T, V, generator=ex.random, dtype=torch.float64)
    ids = torch.randint(V, (B, T), generator=ex.random)
    mask = _answer_mask(B, T, ex.random)
    want = sft_loss(logits, ids, mask)
    got = ex.scalar(answer_loss, logits.clone(), ids.clone(), mask.clone())
    hint = "targets = ids[:, 1:] where mask[:, 1:], else ignored; cross-entropy of logits[:, :-1]."
    unshifted = F.cross_entropy(logits[mask], ids[mask])
    everything = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    summed = F.cross_entropy(logits[:, :-1][mask[:, 1:]], ids[:, 1:][mask[:, 1:]], reduction="sum")
    if abs(got - unshifted.item()) < 1e-6:
        hint = "shift by one: the logits at position t score token t + 1, so use mask[:, 1:]."
    elif abs(got - everything.item()) < 1e-6:
        hint = "that is the loss on every token: leave out the prompt's (where mask is False)."
    elif abs(got - summed.item()) < 1e-6:
        hint = "take the mean over the answer tokens, not their sum."
    ex.expect(
        abs(got - want.item()) < 1e-6,
        f"the loss is {got:.6g}, expected {want.item():.6g}.",
        hint,
    )
    ex.passed("the loss counts the answer tokens and nothing else")


def check_11_2(preference_loss: Callable) -> None:
    """11.2 — ``preference_loss(chosen, rejected)``: the rewards (N,) of the chosen and the
    rejected reply of N pairs; the mean of -log σ(r_chosen - r_rejected)."""
    ex = Exercise("11.2")
    chosen = torch.randn(6, generator=ex.random, dtype=torch.float64) * 2
    rejected = torch.randn(6, generator=ex.random, dtype=torch.float64) * 2
    want = bradley_terry_loss(chosen, rejected).item()
    got = ex.scalar(preference_loss, chosen.clone(), rejected.clone())
    hint = "-F.logsigmoid(chosen - rejected).mean()."
    if abs(got - bradley_terry_loss(rejected, chosen).item()) < 1e-6:
        hint = "the chosen reply should win: σ(r_chosen - r_rejected), not the other way round."
    elif abs(got - (-torch.sigmoid(chosen - rejected).mean()).item()) < 1e-6:
        hint = "take the log of the probability: -log σ(margin), which F.logsigmoid computes."
    elif abs(got - 6 * want) < 1e-6:
        hint = "the mean over pairs, not the sum."
    ex.expect(abs(got - want) < 1e-6, f"the loss is {got:.6g}, expected {want:.6g}.", hint)
    equal = ex.scalar(preference_loss, torch.zeros(3), torch.zeros(3))
    hint = "with equal rewards σ(0) = 1/2: the loss is -log(1/2), a coin flip's."
    _expect_log_2(ex, equal, "equal rewards give", hint)
    ex.passed("the Bradley–Terry loss: -log σ(r_chosen - r_rejected)")


def check_11_3(dpo_objective: Callable) -> None:
    """11.3 — ``dpo_objective(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)``: the
    log-probabilities (N,) of each pair's chosen and rejected reply under the policy and the
    reference; the mean of -log σ(β · [(π_c - ref_c) - (π_r - ref_r)])."""
    ex = Exercise("11.3")
    pc, pr, rc, rr = (torch.randn(5, generator=ex.random, dtype=torch.float64) * 3 for _ in "abcd")
    beta = 0.3
    want = dpo_loss(pc, pr, rc, rr, beta).item()
    got = ex.scalar(dpo_objective, pc.clone(), pr.clone(), rc.clone(), rr.clone(), beta)
    hint = "-F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()."
    if abs(got - (-F.logsigmoid(beta * (pc - pr)).mean()).item()) < 1e-6:
        hint = "subtract the reference's log-probabilities: DPO rewards the change from it."
    elif abs(got - (-F.logsigmoid((pc - rc) - (pr - rr)).mean()).item()) < 1e-6:
        hint = "multiply the margin by beta."
    elif abs(got - dpo_loss(pr, pc, rr, rc, beta).item()) < 1e-6:
        hint = "the chosen reply's term comes first: (pc - rc) - (pr - rr)."
    ex.expect(abs(got - want) < 1e-6, f"the loss is {got:.6g}, expected {want:.6g}.", hint)
    same = ex.scalar(dpo_objective, pc.clone(), pr.clone(), pc.clone(), pr.clone(), beta)
    hint = "each margin is zero when the policy is the reference."
    _expect_log_2(ex, same, "a policy equal to its reference gives", hint)
    ex.passed("DPO's loss: the Bradley–Terry loss of β times the change in log-probabilities")


def check_11_4(kl_penalty: Callable) -> None:
    """11.4 — ``kl_penalty(logp, ref_logp, mask)``: the log-probabilities (B, T) of each token of
    B sampled sequences under the policy and under the reference model, and ``mask`` (B, T) True
    on the reply's tokens. Return (B,): each reply's sum of logp - ref_logp over its tokens, the
    estimate of KL(policy ‖ reference) that RLHF subtracts from the reward."""
    ex = Exercise("11.4")
    B, T = 4, 8
    logp = -torch.rand(B, T, generator=ex.random, dtype=torch.float64) * 4
    ref_logp = -torch.rand(B, T, generator=ex.random, dtype=torch.float64) * 4
    mask = _answer_mask(B, T, ex.random)
    want = ((logp - ref_logp) * mask).sum(-1)
    got = ex.tensor(kl_penalty, logp.clone(), ref_logp.clone(), mask.clone(), dtype=torch.float64)
    ex.expect_shape(got, (B,), "the penalty", "one number per reply: sum over dim=-1.")
    hint = "((logp - ref_logp) * mask).sum(-1)."
    if torch.allclose(got, -want):
        hint = "log π - log π_ref: the policy's log-probability first."
    elif torch.allclose(got, (logp - ref_logp).sum(-1)):
        hint = "count the reply's tokens only: multiply by the mask."
    elif torch.allclose(got, want / mask.sum(-1)):
        hint = "sum over the reply's tokens (the KL of the whole reply), not the mean."
    ex.expect_close(got, want, "the penalty is not Σ mask · (logp - ref_logp)", hint)
    ex.passed("each reply's log-ratio to the reference, summed over its tokens")
