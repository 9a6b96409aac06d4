"""gptbook.embeddings: one-hot products are lookups; tied heads share one matrix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gptbook import embeddings


def test_one_hot_product_is_a_lookup():
    weight = torch.randn(10, 3, dtype=torch.float64)
    ids = torch.tensor([[0, 9, 4], [4, 4, 1]])
    assert torch.equal(embeddings.one_hot_embed(ids, weight), weight[ids])
    assert torch.equal(nn.functional.embedding(ids, weight), weight[ids])
    with pytest.raises(ValueError, match="0..9"):
        embeddings.one_hot_embed(torch.tensor([10]), weight)


def test_tied_model_shares_and_saves_parameters():
    tied, untied = (
        embeddings.EmbeddingBigram(50, 8, tied=True),
        embeddings.EmbeddingBigram(50, 8, tied=False),
    )
    assert tied.head.weight is tied.embed.weight
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) - count(tied) == 50 * 8
    logits, loss = tied(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]]))
    assert logits.shape == (1, 3, 50) and loss.item() == pytest.approx(
        torch.log(torch.tensor(50.0)).item(), abs=0.05
    )
    with pytest.raises(ValueError, match="nn.Linear\\(n_embd, vocab_size"):
        embeddings.tie_weights(nn.Embedding(5, 3), nn.Linear(5, 3))


def test_embedding_gradient_is_sparse():
    embed = nn.Embedding(100, 4)
    embed(torch.tensor([3, 3, 7])).sum().backward()
    assert set(embed.weight.grad.abs().sum(1).nonzero().flatten().tolist()) == {3, 7}
