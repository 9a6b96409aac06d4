"""gptbook.sizes: parameter, FLOP and memory formulas, checked against models on the meta device."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gptbook import measure, sizes
from gptbook.config import LLM_TABLE
from gptbook.model import GPT, PRESETS, GPTConfig


def meta_model(config: GPTConfig) -> GPT:
    with torch.device("meta"):  # every shape, no memory
        return GPT(config)


@pytest.mark.parametrize("name", list(PRESETS))
def test_param_counts_add_up_to_the_models_parameters(name):
    config = GPTConfig.preset(name)
    assert sum(sizes.param_counts(config).values()) == meta_model(config).num_params()


@pytest.mark.parametrize(
    "changes", [dict(bias=False), dict(norm="pre", bias=False), dict(pad_vocab_to=64)]
)
def test_param_counts_follow_biases_norms_and_padding(changes):
    config = GPTConfig(vocab_size=99, block_size=32, n_layer=3, n_head=4, n_embd=32, **changes)
    counts = sizes.param_counts(config)
    assert sum(counts.values()) == meta_model(config).num_params()
    assert counts["token embedding"] == config.padded_vocab_size * 32


@pytest.mark.parametrize("name", ["gpt1", "gpt2", "book-tiny"])
def test_flops_per_token_counts_six_per_counted_weight_plus_attention(name):
    config = GPTConfig.preset(name)
    model = meta_model(config)
    attention = 6 * config.n_layer * config.block_size * config.n_embd
    assert sizes.flops_per_token(config) == 6 * model.num_params(non_embedding=True) + attention
    assert (
        model.flops_per_token(64)
        == 6 * model.num_params(non_embedding=True) + attention * 64 // config.block_size
    )
    assert sizes.flops_per_token(config) == 3 * sizes.flops_per_token(config, training=False)


def test_training_memory_is_sixteen_bytes_per_parameter():
    config = GPTConfig.preset("gpt2")
    memory = sizes.training_memory(config)
    assert sum(memory.values()) == 16 * 124_439_808
    assert memory["AdamW moments"] == 2 * memory["weights"]


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize(
    "shape",
    [  # n_layer, n_embd, n_head, T, batch, vocabulary
        (1, 64, 4, 32, 2, 100),
        (2, 128, 4, 32, 2, 100),
        (2, 64, 8, 64, 1, 100),
        (3, 32, 2, 16, 4, 77),
    ],
)
@pytest.mark.parametrize("window", [0, 8])
def test_activation_memory_is_what_autograd_keeps(norm, shape, window):
    L, d, h, T, B, V = shape
    config = GPTConfig(
        vocab_size=V,
        block_size=T,
        n_layer=L,
        n_head=h,
        n_embd=d,
        norm=norm,
        dropout=0.0,
        local_window=window,
    )
    torch.manual_seed(0)
    model = GPT(config).train()
    idx = torch.randint(V, (B, T))
    kept = measure.saved_tensor_bytes(model, idx, idx)
    assert sum(sizes.activation_memory(config, batch_size=B).values()) == kept


def test_activation_memory_grows_with_tokens_and_layers():
    config = GPTConfig.preset("gpt2")
    one = sizes.activation_memory(config, batch_size=1, T=512)
    assert sizes.activation_memory(config, batch_size=2, T=512)["blocks"] == 2 * one["blocks"]
    deeper = GPTConfig.preset("gpt2", n_layer=24)
    assert sizes.activation_memory(deeper, 1, 512)["blocks"] == 2 * one["blocks"]


@pytest.mark.parametrize(
    "part", [dict(norm_type="rmsnorm"), dict(mlp="swiglu"), dict(n_kv_head=2), dict(n_expert=4)]
)
def test_activation_memory_refuses_chapter_10s_blocks(part):
    """Its count is GPT's block; a block with chapter 10's parts keeps other tensors."""
    config = GPTConfig.preset("book-tiny", n_head=4, **part)
    with pytest.raises(ValueError, match="chapter 10's parts"):
        sizes.activation_memory(config)


def test_non_embedding_parameters_are_the_blocks_and_the_final_layernorm():
    config = GPTConfig.preset("gpt2")
    assert sizes.non_embedding(config) == 12 * (12 * 768**2 + 13 * 768) + 2 * 768
    assert (
        sizes.non_embedding(config)
        == GPT(config).num_params(non_embedding=True) - config.vocab_size * config.n_embd
    )


#: The parameter counts of the released checkpoints (their safetensors files' tensors added up).
RELEASED = {
    "llama2-7b": 6_738_415_616,
    "llama2-70b": 68_976_648_192,
    "llama3-8b": 8_030_261_248,
    "llama3-70b": 70_553_706_496,
    "mixtral-8x7b": 46_702_792_704,
}


def test_every_published_llm_preset_has_its_released_count_checked():
    assert set(RELEASED) == set(LLM_TABLE)


@pytest.mark.parametrize("name", list(RELEASED))
def test_published_llm_presets_have_the_released_parameter_counts(name):
    assert sum(sizes.param_counts(GPTConfig.preset(name)).values()) == RELEASED[name]


def test_mixtral_runs_about_13b_of_its_47b_parameters_per_token():
    config = GPTConfig.preset("mixtral-8x7b")
    # the paper: "each token has access to 47B parameters, but only uses 13B active parameters"
    assert round(sum(sizes.param_counts(config).values()) / 1e9) == 47
    assert round(sizes.active_params(config) / 1e9) == 13
    # its KV cache: 8 key/value heads of 128 instead of 32, a quarter of multi-head attention's
    full = sizes.kv_cache_bytes(GPTConfig.preset("mixtral-8x7b", n_kv_head=0))
    assert sizes.kv_cache_bytes(config) * 4 == full == 16 * 2**30


@pytest.mark.parametrize(
    "changes", [dict(), dict(positions="rope", bias=False, n_kv_head=2), dict(n_expert=4)]
)
def test_matched_width_brings_the_count_closest_to_the_target(changes):
    gpt2 = GPTConfig(n_layer=2, n_head=4, n_embd=64, norm="pre")
    target = sum(sizes.param_counts(gpt2).values())
    config = sizes.matched_width(GPTConfig(**{**vars(gpt2), "mlp": "swiglu", **changes}), target)
    count = sizes.active_params(config)
    below, above = (
        sizes.active_params(dataclasses.replace(config, mlp_hidden=config.mlp_hidden + step))
        for step in (-1, 1)
    )
    assert below < count < above
    assert abs(count - target) <= min(abs(below - target), abs(above - target))
    assert abs(count - target) <= (above - count) / 2  # within half a hidden unit's weights


def test_matched_width_refuses_what_it_cannot_match():
    with pytest.raises(ValueError, match="only mlp='swiglu' has a width"):
        sizes.matched_width(GPTConfig(), 10**6)
    with pytest.raises(ValueError, match="below this config's"):
        sizes.matched_width(GPTConfig(mlp="swiglu"), 1000)
