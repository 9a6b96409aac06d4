"""In-context learning you can watch: every sequence carries a task of its own.

Introduced in chapter 8. Each sequence is a fresh random one-to-one mapping f of ``n_symbols``
symbols, shown as ``n_pairs`` examples x₁ f(x₁) x₂ f(x₂) …; the inputs x are drawn at random,
so they repeat. Nothing about f can be learnt into the weights, since every sequence has another
one: the only way to predict f(x_i) better than chance is to find x_i among the earlier examples
of the same sequence and copy the answer given there. A model that lowers the loss has learnt
to learn from its context.

Two ways to write an answer:

- ``tagged=True``: the answer token names its question too, one token per pair (x, f(x)), so one
  attention layer can look the answer up: the query x attends to the earlier answers tagged x.
- ``tagged=False``: the answer token is f(x) alone. Finding it takes two attention layers working
  together, a head that writes each token's predecessor into it and an *induction head* that
  attends to the token after an earlier copy of the current one (Olsson et al., 2022).

Layout of a sequence of K pairs (2K tokens, the model reads the first 2K - 1)::

    position  0    1      2    3      …   2K-2   2K-1
    token     x₁   a₁     x₂   a₂     …   x_K    a_K
    target    a₁   (x₂)   a₂   (x₃)   …   a_K

Only the answers are targets: the next x is random, and is not predicted (IGNORE_INDEX).
"""

from __future__ import annotations

import torch

from .checks import whole
from .lm import IGNORE_INDEX


def vocab_size(n_symbols: int, tagged: bool = True) -> int:
    """Tokens the task needs: the ``n_symbols`` inputs, then the answers (one per (x, y) pair
    when ``tagged``, one per y otherwise)."""
    n_symbols = whole("n_symbols", n_symbols)
    return n_symbols + (n_symbols * n_symbols if tagged else n_symbols)


def task_batch(
    batch_size: int,
    n_pairs: int,
    n_symbols: int,
    generator: torch.Generator | None = None,
    tagged: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` sequences of ``n_pairs`` examples of a fresh mapping each: inputs and
    targets (B, 2·n_pairs - 1), with targets only at the answers (see the module's notes)."""
    whole("batch_size", batch_size), whole("n_pairs", n_pairs), whole("n_symbols", n_symbols)
    if n_symbols < 2 or n_pairs < 2:
        raise ValueError(
            f"need n_symbols ≥ 2, n_pairs ≥ 2 and batch_size ≥ 1, got {n_symbols}, {n_pairs} and "
            f"{batch_size}"
        )
    x = torch.randint(n_symbols, (batch_size, n_pairs), generator=generator)  # (B, K)
    mapping = torch.rand(batch_size, n_symbols, generator=generator).argsort(dim=1)  # (B, S)
    y = mapping.gather(1, x)  # (B, K): f(x), a different f in every row
    answers = n_symbols + (x * n_symbols + y if tagged else y)
    tokens = torch.stack([x, answers], dim=2).view(batch_size, 2 * n_pairs)  # x₁ a₁ x₂ a₂ …
    targets = tokens[:, 1:].clone()
    targets[:, 1::2] = IGNORE_INDEX  # the next question is random: not a target
    return tokens[:, :-1], targets


def seen_before(inputs: torch.Tensor) -> torch.Tensor:
    """(B, K) boolean: whether pair i's question appeared in an earlier pair of its sequence,
    the only case in which its answer can be known."""
    x = inputs[:, 0::2]  # (B, K)
    earlier = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril(-1)  # j < i
    return ((x[:, :, None] == x[:, None, :]) & earlier).any(-1)


@torch.no_grad()
def answer_accuracy(model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, K) boolean: whether the model's most likely token at each question is the answer."""
    logits, _ = model(inputs)  # (B, 2K - 1, V)
    return logits[:, 0::2].argmax(-1) == targets[:, 0::2]


def lookup_attention(weights: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """(H,): for each head of one layer's attention ``weights`` (B, H, T, T), the mean weight
    that a question puts on the earlier answers to the same question, over the questions seen
    before. Near 1: the head looks the answer up."""
    x = inputs[:, 0::2]  # (B, K)
    K = x.shape[1]
    same = (x[:, :, None] == x[:, None, :]) & torch.ones(K, K, dtype=torch.bool).tril(-1)
    on_answers = weights[:, :, 0::2, 1::2]  # (B, H, K, K'): from question i to answer j
    on_answers = on_answers[..., : min(K, on_answers.shape[-1])]
    same = same[..., : on_answers.shape[-1]]  # (B, K, K')
    mass = (on_answers * same[:, None]).sum(-1)  # (B, H, K)
    seen = seen_before(inputs)[:, None].expand_as(mass)  # (B, H, K)
    return (mass * seen).sum((0, 2)) / seen.sum((0, 2)).clamp_min(1)
