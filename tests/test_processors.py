"""gptbook.sampling's logits processors: hand-computed cases, and transformers' warpers."""

from __future__ import annotations

import math

import pytest
import torch
from transformers.generation import logits_process as hf

from gptbook import sampling

INF = float("-inf")


def random_logits(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 50, generator=g) * 3
    logits[0, :5] = logits[0, 5]  # ties
    return logits


def test_hand_computed_examples():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)]])
    assert torch.allclose(sampling.temperature(logits, 2.0), logits / 2)
    assert sampling.temperature(logits, 0).tolist() == [[logits[0, 0].item(), INF, INF, INF]]
    assert sampling.top_k(logits, 2).isinf().tolist() == [[False, False, True, True]]
    assert sampling.top_p(logits, 0.5).isinf().tolist() == [[False, True, True, True]]
    assert sampling.top_p(logits, 0.6).isinf().tolist() == [[False, False, True, True]]
    assert sampling.top_p(logits, 0.8).isinf().tolist() == [[False, False, True, True]]
    assert sampling.top_p(logits, 0.81).isinf().tolist() == [[False, False, False, True]]
    assert sampling.top_p(logits, 1e-9).isinf().tolist() == [[False, True, True, True]]
    assert sampling.min_p(logits, 0.4).isinf().tolist() == [[False, False, True, True]]
    penalised = sampling.repetition_penalty(
        torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[0, 1]]), 2.0
    )
    assert penalised.tolist() == [[1.0, -4.0, 1.0]]


@pytest.mark.parametrize("seed", range(3))
def test_processors_match_transformers(seed):
    logits = random_logits(seed)
    ids = torch.randint(50, (4, 7), generator=torch.Generator().manual_seed(seed))
    cases = [
        (sampling.temperature(logits, 0.7), hf.TemperatureLogitsWarper(0.7)(ids, logits.clone())),
        (sampling.top_k(logits, 5), hf.TopKLogitsWarper(5)(ids, logits.clone())),
        (sampling.top_k(logits, 1), hf.TopKLogitsWarper(1)(ids, logits.clone())),
        (sampling.top_p(logits, 0.9), hf.TopPLogitsWarper(0.9)(ids, logits.clone())),
        (sampling.top_p(logits, 0.3), hf.TopPLogitsWarper(0.3)(ids, logits.clone())),
        (sampling.min_p(logits, 0.1), hf.MinPLogitsWarper(0.1)(ids, logits.clone())),
        (
            sampling.repetition_penalty(logits, ids, 1.3),
            hf.RepetitionPenaltyLogitsProcessor(1.3)(ids, logits.clone()),
        ),
    ]
    for ours, theirs in cases:
        assert torch.equal(ours.isinf(), theirs.isinf())
        assert torch.allclose(ours[~ours.isinf()], theirs[~theirs.isinf()])


def test_every_processor_keeps_at_least_one_token():
    logits = random_logits()
    for kept in (
        sampling.top_k(logits, 1),
        sampling.top_p(logits, 1e-6),
        sampling.min_p(logits, 1.0),
        sampling.temperature(logits, 0),
    ):
        assert (~kept.isinf()).sum(-1).min() >= 1
    assert torch.equal(sampling.top_p(logits, 1.0), logits), "p = 1 keeps everything"


def test_bad_parameters_are_refused():
    logits = random_logits()
    with pytest.raises(ValueError, match="temperature must be a number ≥ 0"):
        sampling.temperature(logits, -1)
    with pytest.raises(ValueError, match="top_k must be a whole number ≥ 1"):
        sampling.top_k(logits, 0)
    for p in (0, 1.5):
        with pytest.raises(ValueError, match=r"top_p must be a number in \(0, 1\]"):
            sampling.top_p(logits, p)
    with pytest.raises(ValueError, match=r"min_p must be in \[0, 1\]"):
        sampling.min_p(logits, -0.1)
    with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
        sampling.repetition_penalty(logits, torch.zeros(4, 1, dtype=torch.long), 0)
