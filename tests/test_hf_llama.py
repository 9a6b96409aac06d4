"""Llama and Qwen2 checkpoints in the book's GPT (chapter 10): the same logits as transformers'
LlamaForCausalLM and Qwen2ForCausalLM on tiny random checkpoints it writes, both ways."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import transformers

from gptbook import sampling
from gptbook.hf_llama import config_to_llama, to_interleaved, to_rotate_half
from gptbook.model import GPT, GPTConfig

SHAPES = [  # (layers, heads, key/value heads, width, hidden, tied, rope base)
    (2, 4, 4, 32, 88, False, 10_000.0),
    (2, 4, 2, 32, 64, True, 10_000.0),  # grouped-query attention
    (3, 6, 1, 48, 96, False, 500_000.0),  # multi-query attention, Llama 3's RoPE base
]


def write(tmp_path, cls, config_cls, shape, seed=0, **extra):
    """A random ``cls`` of ``shape`` (and ``extra`` config fields), saved by transformers."""
    L, H, Hkv, d, h, tied, base = shape
    config = config_cls(
        **extra,
        vocab_size=37,
        hidden_size=d,
        intermediate_size=h,
        num_hidden_layers=L,
        num_attention_heads=H,
        num_key_value_heads=Hkv,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tied,
        rope_theta=base,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(seed)
    theirs = cls(config).eval()
    with torch.no_grad():  # RMSNorm weights start at 1: make them matter
        for name, p in theirs.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    folder = tmp_path / f"{config.model_type}-{seed}"
    theirs.save_pretrained(folder)
    return theirs, folder


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "kind",
    [
        (transformers.LlamaForCausalLM, transformers.LlamaConfig),
        (transformers.Qwen2ForCausalLM, transformers.Qwen2Config),
    ],
)
def test_same_logits_as_transformers(tmp_path, shape, kind):
    theirs, folder = write(tmp_path, *kind, shape)
    ours = GPT.from_hf(folder)
    idx = torch.randint(0, 37, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = theirs(idx).logits
    got, _ = ours(idx)
    assert (got - want).abs().max() < 1e-4
    assert ours.config.qkv_bias == (kind[0] is transformers.Qwen2ForCausalLM)
    assert ours.num_params() == theirs.num_parameters()


@pytest.mark.parametrize("experts, top_k", [(4, 2), (3, 1)])
def test_mixtral_same_logits_as_transformers(tmp_path, experts, top_k):
    theirs, folder = write(
        tmp_path,
        transformers.MixtralForCausalLM,
        transformers.MixtralConfig,
        (2, 4, 2, 32, 40, False, 10_000.0),
        num_local_experts=experts,
        num_experts_per_tok=top_k,
    )
    ours = GPT.from_hf(folder)
    assert (ours.config.n_expert, ours.config.expert_top_k) == (experts, top_k)
    # the balancing loss's weight is the checkpoint's (transformers' 0.001 when it names none)
    assert ours.config.aux_loss_weight == theirs.config.router_aux_loss_coef
    assert ours.num_params() == theirs.num_parameters()
    idx = torch.randint(0, 37, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = theirs(idx).logits
    assert (ours(idx)[0] - want).abs().max() < 1e-4
    assert ours.blocks[0].mlp.counts.sum() == 3 * 20 * top_k  # every token, k experts
    prompt = idx[:1, :5]
    with torch.no_grad():
        greedy = theirs.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False
        )
    assert torch.equal(sampling.generate(ours, prompt, 20, temperature=0), greedy)
    with pytest.raises(ValueError, match="n_expert=0"):
        ours.to_hf(tmp_path / "back")


def test_cached_generation_equals_transformers(tmp_path):
    theirs, folder = write(
        tmp_path, transformers.LlamaForCausalLM, transformers.LlamaConfig, SHAPES[1]
    )
    ours = GPT.from_hf(folder)
    prompt = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        want = theirs.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=30,
            do_sample=False,
            pad_token_id=0,
        )
    assert torch.equal(sampling.generate(ours, prompt, 30, temperature=0), want)


@pytest.mark.parametrize("shape", SHAPES)
def test_to_hf_round_trip(tmp_path, shape):
    L, H, Hkv, d, h, tied, base = shape
    config = GPTConfig.preset(
        "llama-tiny", n_layer=L, n_head=H, n_kv_head=Hkv, n_embd=d, mlp_hidden=h,
        tie_embeddings=tied, rope_base=base, dropout=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    ours = GPT(config).eval()
    path = ours.to_hf(tmp_path / "ours")
    theirs = transformers.LlamaForCausalLM.from_pretrained(path).eval()
    idx = torch.randint(0, config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(idx)[0] - theirs(idx).logits).abs().max() < 1e-4
    assert GPT.from_hf(path).state_dict().keys() == ours.state_dict().keys()


def test_the_rope_layout_by_hand():
    rows = torch.arange(8.0)[:, None]  # two heads of 4: halves (0, 1 | 2, 3), (4, 5 | 6, 7)
    assert to_interleaved(rows, 4).flatten().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert torch.equal(to_rotate_half(to_interleaved(rows, 4), 4), rows)


def test_refusals(tmp_path):
    with pytest.raises(ValueError, match="only for a Llama-style GPT"):
        config_to_llama(GPTConfig.preset("llama-tiny", bias=True))
    theirs, folder = write(
        tmp_path, transformers.LlamaForCausalLM, transformers.LlamaConfig, SHAPES[0]
    )
    hf = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**hf, "hidden_act": "gelu"}))
    with pytest.raises(ValueError, match="hidden_act \\(the book computes silu\\)"):
        GPT.from_hf(folder)
    (folder / "config.json").write_text(json.dumps({**hf, "intermediate_size": 90}))
    with pytest.raises(ValueError, match="the weights and the configuration differ"):
        GPT.from_hf(folder)


def test_linear_rope_scaling_equals_transformers_both_ways(tmp_path):
    """Position interpolation (rope_scaling 'linear', factor 2) read from a checkpoint and
    written back: transformers computes the same logits, past the trained context too."""
    config = GPTConfig.preset(
        "llama-tiny", rope_scaling="linear", rope_factor=2.0, dropout=0.0, block_size=128
    )
    torch.manual_seed(0)
    ours = GPT(config).eval()
    path = ours.to_hf(tmp_path / "scaled")
    theirs = transformers.LlamaForCausalLM.from_pretrained(path).eval()
    idx = torch.randint(0, config.vocab_size, (1, 120), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (ours(idx)[0] - theirs(idx).logits).abs().max() < 1e-4
    again = GPT.from_hf(path)
    assert (again.config.rope_scaling, again.config.rope_factor) == ("linear", 2.0)
    unscaled = GPT(dataclasses.replace(config, rope_scaling="none", rope_factor=1.0)).eval()
    unscaled.load_state_dict(ours.state_dict())
    with torch.no_grad():  # the scaling changes what the model computes
        assert (unscaled(idx)[0] - ours(idx)[0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="rope_scaling 'none' or 'linear'"):
        GPT(dataclasses.replace(config, rope_scaling="ntk")).to_hf(tmp_path / "ntk")
