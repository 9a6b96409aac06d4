"""gptbook.diversity (distinct-n) and lm.token_logprobs: what chapter 9 measures samples with."""

from __future__ import annotations

import pytest
import torch

from gptbook import lm
from gptbook.diversity import distinct_n, ngrams
from gptbook.model import GPT, GPTConfig


def test_distinct_n_by_hand():
    assert ngrams("abcab", 2) == [("a", "b"), ("b", "c"), ("c", "a"), ("a", "b")]
    assert distinct_n(["abcab"], 2) == 3 / 4
    assert distinct_n(["abcab"], 1) == 3 / 5
    assert distinct_n(["ab", "ab"], 2) == 1 / 2  # counted across samples, not within each
    assert distinct_n([[1, 2, 3], [4, 5, 6]], 2) == 1.0
    assert distinct_n(["aaaaaaaaa"], 3) == 1 / 7  # a loop: one trigram seven times


def test_distinct_n_of_samples_without_an_n_gram_is_no_variety():
    assert distinct_n(["ab", "c"], 3) == 0.0
    assert distinct_n([" ".split(), "  ".split()], 1) == 0.0  # greedy text that is all spaces


def test_distinct_n_bad_input():
    with pytest.raises(ValueError, match="n must be a whole number"):
        distinct_n(["abc"], 0)


def test_token_logprobs_sum_to_the_sequence_loss():
    torch.manual_seed(0)
    net = GPT(GPTConfig(vocab_size=7, block_size=12, n_layer=1, n_head=2, n_embd=8)).eval()
    ids = torch.randint(0, 7, (3, 10))
    got = lm.token_logprobs(net, ids)
    assert got.shape == (3, 9) and (got <= 0).all()
    _, loss = net(ids[:, :-1], ids[:, 1:])
    assert torch.allclose(-got.mean(), loss, atol=1e-6)
    by_hand = net(ids[:1, :4])[0][0, -1].log_softmax(-1)[ids[0, 4]]  # token 4 given 0..3
    assert torch.allclose(got[0, 3], by_hand, atol=1e-6)
