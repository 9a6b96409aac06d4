"""Chapter 10's parts: RMSNorm, SwiGLU, grouped-query attention, RoPE inside attention, and the
GPTConfig switches that build a LLaMA-style GPT from them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptbook import sizes
from gptbook.attention import MultiHeadAttention
from gptbook.hf import config_to_hf
from gptbook.layers import MoE, RMSNorm, SwiGLU, load_balancing_loss, swiglu_hidden
from gptbook.model import GPT, GPTConfig
from gptbook.positional import apply_rope


def test_rmsnorm_by_hand_and_against_transformers():
    torch.manual_seed(0)
    norm, x = RMSNorm(6), torch.randn(2, 3, 6) * 4
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    want = x / (x.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt() * norm.weight
    assert torch.allclose(norm(x), want, atol=1e-6)
    layer_norm = torch.nn.LayerNorm(6)
    assert torch.allclose(layer_norm(x + 3), layer_norm(x), atol=1e-5)  # LayerNorm centres
    assert not torch.allclose(norm(x + 3), norm(x), atol=1e-2)  # RMSNorm does not
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    theirs = llama.LlamaRMSNorm(6, eps=1e-6)
    theirs.weight.data.copy_(norm.weight.data)
    assert torch.allclose(norm(x), theirs(x), atol=1e-6)


def test_swiglu_by_hand_and_its_width():
    torch.manual_seed(0)
    layer, x = SwiGLU(8, 12), torch.randn(2, 5, 8)
    h = F.silu(x @ layer.gate.weight.T) * (x @ layer.up.weight.T)
    assert torch.allclose(layer(x), h @ layer.down.weight.T, atol=1e-6)
    assert swiglu_hidden(64) == 176 and swiglu_hidden(384) == 1024  # 2/3 · 4d, up to 16
    for d in (64, 128, 384, 768):  # three matrices of 2/3·4d hold about GPT's two of 4d
        assert abs(3 * d * swiglu_hidden(d) / (8 * d * d) - 1) < 0.1


def test_grouped_query_attention_is_attention_with_shared_heads():
    """GQA with 2 key/value heads for 4 query heads equals full multi-head attention whose key
    and value weights repeat each group's head."""
    torch.manual_seed(0)
    gqa = MultiHeadAttention(16, 4, n_kv_head=2, bias=True)
    full = MultiHeadAttention(16, 4, bias=True)
    q, k, v = gqa.qkv.weight.split([16, 8, 8])  # (16 or 8, 16)
    qb, kb, vb = gqa.qkv.bias.split([16, 8, 8])

    def repeat(w):  # (2 heads × 4, ...) -> (4 heads × 4, ...): heads 0, 0, 1, 1
        return w.unflatten(0, (2, 4)).repeat_interleave(2, dim=0).flatten(0, 1)

    with torch.no_grad():
        full.qkv.weight.copy_(torch.cat([q, repeat(k), repeat(v)]))
        full.qkv.bias.copy_(torch.cat([qb, repeat(kb), repeat(vb)]))
        full.proj.load_state_dict(gqa.proj.state_dict())
    x = torch.randn(2, 7, 16)
    assert torch.allclose(gqa(x), full(x), atol=1e-6)
    assert gqa.qkv.weight.shape == (32, 16)  # queries 16, keys 8, values 8
    assert sizes.kv_cache_bytes(GPTConfig(n_head=4, n_kv_head=2)) * 2 == sizes.kv_cache_bytes(
        GPTConfig(n_head=4)
    )


def test_rope_scores_depend_on_relative_positions_only():
    """Inside attention, RoPE makes q·k depend on the distance between positions: shifting every
    position by 5 leaves the scores as they were. A RoPE model has no position table."""
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 4, 6, 16)
    later = torch.arange(6) + 5
    scores = apply_rope(q) @ apply_rope(k).transpose(-1, -2)
    moved = apply_rope(q, later) @ apply_rope(k, later).transpose(-1, -2)
    assert torch.allclose(scores, moved, atol=1e-4)
    unrotated = q @ k.transpose(-1, -2)
    assert not torch.allclose(scores, unrotated, atol=1e-2)
    assert GPT(GPTConfig.preset("llama-tiny")).wpe is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(norm_type="batchnorm"), "norm_type='batchnorm': use one of"),
        (dict(mlp="relu"), "mlp='relu': use one of"),
        (dict(positions="alibi"), "positions='alibi': use one of"),
        (dict(n_kv_head=3), "n_head=4 is not a multiple of n_kv_head=3.*try n_kv_head in"),
        (dict(n_kv_head=-1), "n_kv_head must be a whole number ≥ 0"),
        (dict(mlp_hidden=100), "GPT's GELU MLP is 4·n_embd = 128 wide"),
        (dict(positions="rope", n_embd=12, n_head=4), "odd number: choose an even head size"),
        (dict(rope_scaling="linear", rope_factor=0.5), "stretches the context by a factor > 1"),
        (dict(rope_factor=2.0), "'none' needs rope_factor=1"),
        (dict(rope_scaling="yarn", rope_factor=2.0), "rope_scaling='yarn': use one of"),
    ],
)
def test_config_switches_refuse_bad_values(overrides, message):
    base = dict(vocab_size=11, block_size=8, n_layer=1, n_head=4, n_embd=32)
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**base, **overrides})


def test_llama_presets_count_by_formula_and_train():
    for name in ("llama-tiny", "llama-small", "llama-medium"):
        config = GPTConfig.preset(name)
        with torch.device("meta"):
            net = GPT(config)
        assert net.num_params() == sum(sizes.param_counts(config).values())
        assert "output layer" in sizes.param_counts(config)  # untied
        assert sizes.param_counts(config)["position embedding"] == 0  # RoPE
    torch.manual_seed(0)
    net = GPT(GPTConfig.preset("llama-tiny", dropout=0.0))
    idx = torch.randint(0, 84, (4, 32))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):  # the same batch: the loss must fall
        loss = net(idx[:, :-1], idx[:, 1:])[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.equal(net.lm_head.weight, net.wte.weight)  # untied: two matrices


def test_gpt2_checkpoints_refuse_chapter_10_parts():
    with pytest.raises(ValueError, match="chapter 10's parts .*'positions': 'rope'"):
        config_to_hf(GPTConfig.preset("llama-tiny", norm_type="layernorm", mlp="gelu", bias=True))


# ---------------------------------------------------------------------- mixture of experts
def moe_config(**overrides) -> GPTConfig:
    return GPTConfig.preset("llama-tiny", **{"n_expert": 4, "dropout": 0.0, **overrides})


def test_moe_routes_every_token_to_exactly_k_experts():
    torch.manual_seed(0)
    experts = [SwiGLU(16, 24) for _ in range(4)]
    moe, x = MoE(experts, 16, top_k=2), torch.randn(3, 5, 16)
    out = moe(x)
    assert out.shape == x.shape and moe.counts.sum() == 3 * 5 * 2
    # by hand, token by token: the two best experts, weighted by the softmax of their scores
    token = x[1, 3]
    scores = moe.router(token)
    best, chosen = scores.topk(2)
    want = sum(w * experts[e](token) for w, e in zip(best.softmax(-1), chosen.tolist()))
    assert torch.allclose(out[1, 3], want, atol=1e-6)
    one = MoE([experts[0]], 16, top_k=1)  # one expert, always chosen: just that expert
    assert torch.allclose(one(x), experts[0](x), atol=1e-6)
    with pytest.raises(ValueError, match="top_k must be between 1 and the 4 experts"):
        MoE(experts, 16, top_k=5)


def test_load_balancing_loss_by_hand_and_against_transformers():
    scores = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 0.0]])
    chosen = scores.topk(1, dim=-1).indices  # experts 0, 1, 2, 0
    probs = scores.softmax(-1)
    share = torch.tensor([2, 1, 1]) / 4  # the tokens each expert took
    want = 3 * (share * probs.mean(0)).sum()
    assert torch.allclose(load_balancing_loss(scores, chosen, 3), want)
    even = torch.zeros(6, 3)  # a router with no preference, tokens spread evenly: the loss is k
    assert torch.allclose(
        load_balancing_loss(even, torch.arange(6)[:, None] % 3, 3), torch.tensor(1.0)
    )
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 8, generator=g)
    theirs = mixtral.load_balancing_loss_func((logits,), num_experts=8, top_k=2)
    ours = load_balancing_loss(logits, logits.topk(2, dim=-1).indices, 8)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_moe_gpt_counts_total_and_active_parameters_and_trains():
    config = moe_config()
    with torch.device("meta"):
        net = GPT(config)
    assert net.num_params() == sum(sizes.param_counts(config).values())
    dense = sizes.param_counts(GPTConfig.preset("llama-tiny"))["MLP"]
    assert sizes.param_counts(config)["MLP"] == 4 * dense + config.n_layer * config.n_embd * 4
    assert sizes.active_params(config) == sum(sizes.param_counts(config).values()) - 2 * dense
    torch.manual_seed(0)
    net = GPT(config)
    idx = torch.randint(0, 84, (4, 32))
    loss = net(idx[:, :-1], idx[:, 1:])[1]  # training: cross-entropy + weight · balance loss
    ce = F.cross_entropy(net(idx[:, :-1])[0].flatten(0, 1), idx[:, 1:].flatten())
    assert torch.allclose(loss, ce + config.aux_loss_weight * net.aux_loss(), atol=1e-5)
    net.eval()
    assert torch.allclose(net(idx[:, :-1], idx[:, 1:])[1], ce, atol=1e-5)  # evaluation: CE only
    with pytest.raises(ValueError, match="expert_top_k=5: each token runs through 1 to"):
        moe_config(expert_top_k=5)


def test_rope_scaling_stretches_positions_or_the_base():
    base = dict(vocab_size=11, block_size=8, n_layer=1, n_head=4, n_embd=32, positions="rope")
    assert GPTConfig(**base).rope == (10_000.0, 1.0)
    assert GPTConfig(**base, rope_scaling="linear", rope_factor=4.0).rope == (10_000.0, 4.0)
    ntk_base, divisor = GPTConfig(**base, rope_scaling="ntk", rope_factor=4.0).rope
    assert divisor == 1.0 and ntk_base == pytest.approx(10_000 * 4 ** (8 / 6))  # D = 8
