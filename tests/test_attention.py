"""gptbook.attention: parity with PyTorch, masks, heads, and clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptbook import attention as A

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_matches_pytorch(dtype, masked):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 16, generator=g, dtype=dtype) for _ in range(3))
    mask = A.causal_mask(9) if masked else None
    ours, weights = A.scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ours, ref, atol=TOL[dtype], rtol=0)
    assert torch.allclose(weights.sum(-1), torch.ones((), dtype=dtype))
    if masked:
        assert (weights.triu(1) == 0).all()


def test_cross_attention_shapes():
    q, k, v = torch.randn(4, 5, 8), torch.randn(4, 7, 8), torch.randn(4, 7, 3)
    assert A.scaled_dot_product_attention(q, k, v).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="same feature size"):
        A.scaled_dot_product_attention(q, torch.randn(4, 7, 6), v)
    with pytest.raises(ValueError, match="every key needs a value"):
        A.scaled_dot_product_attention(q, k, torch.randn(4, 6, 3))
    with pytest.raises(ValueError, match="boolean"):
        A.scaled_dot_product_attention(q, k, v, torch.zeros(5, 7))


def test_masks():
    assert A.causal_mask(3).tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
    ]
    band = A.banded_mask(6, 2)
    assert band.sum(1).tolist() == [1, 2, 2, 2, 2, 2] and (band <= A.causal_mask(6)).all()
    strided = A.strided_mask(9, 3)
    assert strided[8].nonzero().flatten().tolist() == [2, 5, 6, 7, 8]
    assert (strided <= A.causal_mask(9)).all()
    with pytest.raises(ValueError, match="width must be a whole number ≥ 1"):
        A.banded_mask(4, 0)
    with pytest.raises(ValueError, match="stride must be a whole number ≥ 1"):
        A.strided_mask(4, 0)


def _copy_into_torch(mha: A.MultiHeadAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(mha.n_embd, mha.n_head, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(mha.qkv.weight)
        ref.in_proj_bias.copy_(mha.qkv.bias)
        ref.out_proj.weight.copy_(mha.proj.weight)
        ref.out_proj.bias.copy_(mha.proj.bias)
    return ref


@pytest.mark.parametrize("backend", A.BACKENDS)
@pytest.mark.parametrize("causal", [False, True])
def test_multihead_matches_pytorch(backend, causal):
    torch.manual_seed(0)
    mha = A.MultiHeadAttention(32, 4, causal=causal, backend=backend).eval()
    ref = _copy_into_torch(mha).eval()
    x = torch.randn(3, 10, 32)
    mask = ~A.causal_mask(10) if causal else None  # PyTorch's module: True = may NOT attend
    want, _ = ref(x, x, x, attn_mask=mask, need_weights=False)
    assert torch.allclose(mha(x), want, atol=1e-5)


def test_backends_agree_with_an_extra_mask_and_give_weights():
    torch.manual_seed(0)
    naive = A.MultiHeadAttention(16, 2, backend="naive")
    fused = A.MultiHeadAttention(16, 2, backend="torch")
    fused.load_state_dict(naive.state_dict())
    x, band = torch.randn(2, 12, 16), A.banded_mask(12, 4)
    assert torch.allclose(naive(x, band), fused(x, band), atol=1e-6)
    out, weights = fused(x, return_weights=True)
    assert weights.shape == (2, 2, 12, 12) and torch.allclose(out, naive(x), atol=1e-6)


def test_causal_outputs_ignore_the_future():
    torch.manual_seed(0)
    mha = A.MultiHeadAttention(16, 4)
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 3, 16)
    assert torch.allclose(mha(x)[:, :5], mha(y)[:, :5], atol=1e-6)
    assert not torch.allclose(mha(x)[:, 5:], mha(y)[:, 5:])


def test_split_and_merge_heads_round_trip():
    mha = A.MultiHeadAttention(12, 3)
    x = torch.randn(2, 5, 12)
    heads = mha.split_heads(x)
    assert heads.shape == (2, 3, 5, 4) and torch.equal(heads[:, 1], x[..., 4:8])
    assert torch.equal(mha.merge_heads(heads), x)


def test_bad_configurations():
    with pytest.raises(ValueError, match="not divisible by n_head=5"):
        A.MultiHeadAttention(32, 5)
    with pytest.raises(ValueError, match="backend='flash'"):
        A.MultiHeadAttention(32, 4, backend="flash")
    with pytest.raises(ValueError, match="expected input \\(B, T, 32\\)"):
        A.MultiHeadAttention(32, 4)(torch.randn(2, 5, 16))
