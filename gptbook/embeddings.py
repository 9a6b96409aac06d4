"""Embeddings: token ids to vectors, and weight tying.

Introduced in chapter 2. A token id i is a one-hot vector e_i of length V, and
multiplying it by the embedding matrix W_E (V, d) selects row i: an embedding
layer is a matrix product that is computed as a lookup. GPT-2 *ties* the output
layer to the same matrix, so scoring the next token compares the model's vector
with every token's embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .lm import cross_entropy


def one_hot_embed(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Embed ``ids`` (...) as one-hot vectors times ``weight`` (V, d): (..., d). Slow on purpose."""
    V = weight.shape[0]
    if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < V):
        raise ValueError(
            f"token ids must lie in 0..{V - 1}, got {int(ids.min())}..{int(ids.max())}"
        )
    return F.one_hot(ids, V).to(weight.dtype) @ weight  # (..., V) @ (V, d)


def tie_weights(embedding: nn.Embedding, head: nn.Linear) -> None:
    """Make ``head`` score tokens with the embedding matrix itself (GPT-2's weight tying)."""
    if head.weight.shape != embedding.weight.shape:
        raise ValueError(
            f"cannot tie a head of shape {tuple(head.weight.shape)} to embeddings "
            f"{tuple(embedding.weight.shape)}: the head must map n_embd to the vocabulary, "
            "nn.Linear(n_embd, vocab_size, bias=False)"
        )
    head.weight = embedding.weight


class EmbeddingBigram(nn.Module):
    """A bigram that goes through a d-dimensional embedding: ids -> E -> mix -> head -> logits.

    With ``tied=True`` the head is the embedding matrix (V·d parameters saved). Small d
    forces similar tokens to share directions, which is what makes the learned
    embedding space worth looking at.
    """

    def __init__(self, vocab_size: int, n_embd: int, tied: bool = True):
        super().__init__()
        self.block_size = 1
        self.embed = nn.Embedding(vocab_size, n_embd)
        self.mix = nn.Linear(n_embd, n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        nn.init.normal_(self.embed.weight, std=0.02)
        if tied:
            tie_weights(self.embed, self.head)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        h = torch.tanh(self.mix(self.embed(idx)))  # (B, T, d)
        logits = self.head(h)  # (B, T, V)
        return logits, None if targets is None else cross_entropy(logits, targets)
