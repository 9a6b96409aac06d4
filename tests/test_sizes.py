"""gptbook.sizes: parameter, FLOP and memory formulas, checked against models on the meta device."""

from __future__ import annotations

import pytest
import torch

from gptbook import measure, sizes
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


def test_non_embedding_parameters_are_the_blocks_and_the_final_layernorm():
    config = GPTConfig.preset("gpt2")
    assert sizes.non_embedding(config) == 12 * (12 * 768**2 + 13 * 768) + 2 * 768
    assert (
        sizes.non_embedding(config)
        == GPT(config).num_params(non_embedding=True) - config.vocab_size * config.n_embd
    )
