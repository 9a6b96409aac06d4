"""gptbook.sampling: temperature, greedy decoding, the generation loop."""

from __future__ import annotations

import pytest
import torch

from gptbook import bigram, sampling


def _toy() -> bigram.NGram:
    model = bigram.NGram(3, n=2, smoothing=0)
    model.counts.copy_(torch.tensor([[1.0, 8, 1], [2, 1, 7], [6, 3, 1]]))
    model.log_probs = model.probs().log()
    return model


def test_probabilities_and_temperature():
    logits = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(sampling.probabilities(logits), torch.softmax(logits, -1))
    sharp, flat = sampling.probabilities(logits, 0.5), sampling.probabilities(logits, 5.0)
    assert sharp[2] > torch.softmax(logits, -1)[2] > flat[2]
    assert sampling.probabilities(logits, 0).tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="temperature must be a number ≥ 0"):
        sampling.probabilities(logits, -1)


def test_generate_greedy_follows_the_argmax():
    out = sampling.generate(_toy(), torch.tensor([[0]]), 5, temperature=0)
    assert out.tolist() == [[0, 1, 2, 0, 1, 2]]


def test_generate_samples_the_model_distribution():
    model, n = _toy(), 30_000
    out = sampling.generate(
        model, torch.zeros(n, 1, dtype=torch.long), 1, generator=torch.Generator().manual_seed(0)
    )
    freq = torch.bincount(out[:, 1], minlength=3) / n
    assert torch.allclose(freq, model.probs()[0], atol=0.01)


def test_generate_is_reproducible_and_keeps_the_prompt():
    prompt = torch.tensor([[2, 1], [0, 0]])
    a = sampling.generate(_toy(), prompt, 10, generator=torch.Generator().manual_seed(3))
    b = sampling.generate(_toy(), prompt, 10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (2, 12) and torch.equal(a[:, :2], prompt)


def test_generate_feeds_at_most_block_size_tokens():
    seen = []

    class Spy(torch.nn.Module):
        block_size = 3

        def forward(self, idx, targets=None):
            seen.append(idx.shape[1])
            return torch.zeros(*idx.shape, 4), None

    sampling.generate(Spy(), torch.zeros(1, 1, dtype=torch.long), 5)
    assert seen == [1, 2, 3, 3, 3]


def test_generate_bad_input():
    with pytest.raises(ValueError, match="shape \\(B, T\\)"):
        sampling.generate(_toy(), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="at least one token"):
        sampling.generate(_toy(), torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        sampling.generate(_toy(), torch.zeros(1, 1, dtype=torch.long), -1)
