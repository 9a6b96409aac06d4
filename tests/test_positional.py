"""gptbook.positional and gptbook.tinylm: the three encodings, their properties, their errors."""

from __future__ import annotations

import math

import pytest
import torch

from gptbook import lm, positional, tinylm


def test_sinusoidal_formula_and_shape():
    table = positional.sinusoidal(50, 8)
    assert table.shape == (50, 8)
    p, i = 7, 2  # feature pair 2: features 4 (sin) and 5 (cos)
    w = 10_000 ** (-2 * i / 8)
    assert table[p, 4].item() == pytest.approx(math.sin(p * w), abs=1e-6)
    assert table[p, 5].item() == pytest.approx(math.cos(p * w), abs=1e-6)
    with pytest.raises(ValueError, match="must be even"):
        positional.sinusoidal(5, 7)


def test_sinusoidal_offset_is_a_rotation():
    d, k = 16, 5
    table = positional.sinusoidal(40, d).double()
    angles = k * positional.frequencies(d)  # (d/2,)
    rotation = torch.block_diag(
        *[torch.tensor([[a.cos(), -a.sin()], [a.sin(), a.cos()]]) for a in angles]
    )
    assert torch.allclose(table[:-k] @ rotation, table[k:], atol=1e-5)  # PE(p + k) = PE(p) M_k


def test_learned_table_and_its_limit():
    learned = positional.LearnedPositional(10, 4)
    assert learned(6).shape == (6, 4) and learned(10).shape == (10, 4)
    with pytest.raises(
        ValueError, match="position 10 is beyond the learned table \\(block_size=10\\)"
    ):
        learned(11)


def test_rope_keeps_norms_and_matches_rotation_matrices():
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    out = positional.apply_rope(x)
    assert out.shape == x.shape and torch.allclose(out.norm(dim=-1), x.norm(dim=-1))
    assert torch.allclose(out[..., 0, :], x[..., 0, :])  # position 0 is not rotated
    m = 4
    angles = m * positional.frequencies(8)
    R = torch.block_diag(*[torch.tensor([[a.cos(), -a.sin()], [a.sin(), a.cos()]]) for a in angles])
    assert torch.allclose(out[..., m, :], x[..., m, :] @ R.T)


def test_rope_dot_products_depend_only_on_the_distance():
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    T = 40
    rq = positional.apply_rope(q.expand(T, 16).clone())  # q at every position
    rk = positional.apply_rope(k.expand(T, 16).clone())
    scores = rq @ rk.T  # (T, T): query position m, key position n
    for offset in (0, 3, 17):
        diagonal = torch.diagonal(scores, offset=offset)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-9)
    assert not torch.allclose(scores[0, 3], scores[0, 4])


def test_rope_bad_input():
    with pytest.raises(ValueError, match="head dimension must be even"):
        positional.apply_rope(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="positions must have shape \\(5,\\)"):
        positional.apply_rope(torch.randn(2, 5, 8), torch.arange(4))
    with pytest.raises(ValueError, match="last dimension of 8"):
        positional.RoPE(8)(torch.randn(5, 6))
    shifted = positional.RoPE(8)(torch.randn(1, 5, 8), torch.arange(10, 15))
    assert shifted.shape == (1, 5, 8)


def test_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    x, perm = torch.randn(1, 7, 16), torch.randperm(7)
    out, _ = attention(x, x, x)
    out_perm, _ = attention(x[:, perm], x[:, perm], x[:, perm])
    assert torch.allclose(out[:, perm], out_perm, atol=1e-6)


def test_tinylm_is_causal_and_validates():
    for encoding in tinylm.ENCODINGS:
        model = tinylm.TinyLM(11, encoding, block_size=12).eval()
        x = torch.randint(11, (2, 12))
        y = x.clone()
        y[:, 8] = (y[:, 8] + 1) % 11
        a, b = model(x)[0], model(y)[0]
        assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6) and not torch.allclose(
            a[:, 8:], b[:, 8:]
        )
    with pytest.raises(ValueError, match="use one of"):
        tinylm.TinyLM(5, "alibi")
    with pytest.raises(ValueError, match="divisible"):
        tinylm.TinyLM(5, n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="beyond the learned table"):
        tinylm.TinyLM(5, "learned", block_size=8)(torch.zeros(1, 9, dtype=torch.long))


def test_lag_task_needs_positions():
    g = torch.Generator().manual_seed(0)
    x, y = tinylm.lag_batch(4, 10, 7, 3, g)
    assert torch.equal(y[:, 3:], x[:, :-3]) and (y[:, :3] == lm.IGNORE_INDEX).all()
    torch.manual_seed(0)
    rope, none = tinylm.TinyLM(8, "rope", n_layer=1), tinylm.TinyLM(8, "none", n_layer=1)
    for model in (rope, none):
        lm.fit(model, lambda: tinylm.lag_batch(32, 16, 8, 3, g), steps=200, lr=1e-2)
    test = tinylm.lag_batch(128, 16, 8, 3, torch.Generator().manual_seed(1))
    assert tinylm.accuracy(rope, *test) > 0.9 > 0.5 > tinylm.accuracy(none, *test)
