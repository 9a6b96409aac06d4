"""gptbook.model: shapes, loss at init, causality, presets, save/load, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from gptbook.files import DamagedFile
from gptbook.model import GPT, GPTConfig


@pytest.fixture(params=["post", "pre"])
def model(request):
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32, norm=request.param)
    ).eval()


def test_forward_shapes_and_initial_loss(model):
    idx, targets = torch.randint(50, (3, 16)), torch.randint(50, (3, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 16, 50)
    assert loss.item() == pytest.approx(math.log(50), abs=0.15)  # N(0, 0.02) init: nearly uniform
    assert model(idx)[1] is None


def test_causal(model):
    x = torch.randint(50, (1, 16))
    y = x.clone()
    y[0, 10] = (y[0, 10] + 1) % 50
    a, b = model(x)[0], model(y)[0]
    assert torch.allclose(a[:, :10], b[:, :10], atol=1e-5) and not torch.allclose(
        a[:, 10:], b[:, 10:]
    )


def test_tied_and_counted_once(model):
    assert model.lm_head.weight is model.wte.weight
    c = model.config
    per_block = 4 * c.n_embd**2 + 4 * c.n_embd + 8 * c.n_embd**2 + 5 * c.n_embd + 4 * c.n_embd
    final_ln = 2 * c.n_embd if c.norm == "pre" else 0
    expected = c.vocab_size * c.n_embd + c.block_size * c.n_embd + c.n_layer * per_block + final_ln
    assert model.num_params() == expected
    assert model.num_params(non_embedding=True) == expected - c.block_size * c.n_embd


def test_gpt1_preset_has_the_papers_size():
    c = GPTConfig.preset("gpt1")
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size) == (12, 12, 768, 512)
    with torch.device("meta"):
        n = GPT(c).num_params()
    assert 116e6 < n < 118e6  # 116.5 M parameters


def test_padded_vocabulary_is_cut_from_the_logits():
    model = GPT(
        GPTConfig(vocab_size=50, pad_vocab_to=64, n_layer=1, n_head=2, n_embd=16, block_size=8)
    )
    assert model.wte.weight.shape[0] == 64
    assert model(torch.zeros(1, 4, dtype=torch.long))[0].shape[-1] == 50


def test_save_and_load_round_trip(model, tmp_path):
    model.save(tmp_path / "ckpt")
    again = GPT.load(tmp_path / "ckpt").eval()
    assert again.config == model.config and again.lm_head.weight is again.wte.weight
    idx = torch.randint(50, (2, 16))
    assert torch.equal(model(idx)[0], again(idx)[0])
    assert not list(tmp_path.glob("ckpt/*.tmp"))
    for file in (tmp_path / "ckpt").iterdir():  # readable by all: a cache may be shared
        assert file.stat().st_mode & 0o777 == 0o644, file.name
    with pytest.raises(FileNotFoundError, match="is not a folder written by GPT.save"):
        GPT.load(tmp_path / "nothing")


def test_a_damaged_saved_model_is_named_not_loaded(model, tmp_path):
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x40  # inside the last tensor: it would load, with one wrong weight
    weights.write_bytes(bytes(data))
    with pytest.raises(DamagedFile, match=r"model\.safetensors is damaged"):
        GPT.load(tmp_path / "m")
    model.save(tmp_path / "m")
    (tmp_path / "m" / "manifest.json").unlink()  # as if the save had stopped before the end
    with pytest.raises(DamagedFile, match="manifest.json is missing"):
        GPT.load(tmp_path / "m")


def test_bad_configs_and_inputs(model):
    with pytest.raises(ValueError, match="n_embd=100 is not divisible by n_head=3"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="norm='middle'"):
        GPTConfig(norm="middle")
    with pytest.raises(ValueError, match="n_layer must be a whole number ≥ 1"):
        GPTConfig(n_layer=0)
    with pytest.raises(ValueError, match="no preset 'gpt5'"):
        GPTConfig.preset("gpt5")
    with pytest.raises(ValueError, match="17 tokens but the context is block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids must lie in 0..49"):
        model(torch.tensor([[3, 50]]))


def test_flops_per_token_counts_parameters_and_attention(model):
    c = model.config
    assert (
        model.flops_per_token()
        == 6 * model.num_params(non_embedding=True) + 6 * c.n_layer * c.block_size * c.n_embd
    )


#: GPT-3's Table 2.1: the parameters each model is given (the table rounds them).
GPT3_PAPER = {
    "gpt3-small": 125e6,
    "gpt3-medium": 350e6,
    "gpt3-large": 760e6,
    "gpt3-xl": 1.3e9,
    "gpt3-2.7b": 2.7e9,
    "gpt3-6.7b": 6.7e9,
    "gpt3-13b": 13.0e9,
    "gpt3-175b": 175.0e9,
}


@pytest.mark.parametrize("name", GPT3_PAPER)
def test_gpt3_presets_are_within_two_percent_of_the_papers_counts(name):
    config = GPTConfig.preset(name)
    assert (config.block_size, config.vocab_size, config.norm) == (2048, 50_257, "pre")
    assert config.n_embd // config.n_head in (64, 80, 96, 128)  # Table 2.1's d_head
    with torch.device("meta"):
        n = GPT(config).num_params()
    assert n == pytest.approx(GPT3_PAPER[name], rel=0.02)


def test_gpt3_rows_that_do_not_multiply_out_keep_heads_of_128():
    config = GPTConfig.preset("gpt3-13b")
    assert (config.n_layer, config.n_head, config.n_embd) == (40, 40, 5120)  # the table: 5140
    with pytest.raises(ValueError, match="n_embd=5140 is not divisible by n_head=40"):
        GPTConfig.preset("gpt3-13b", n_embd=5140)
    xl = GPTConfig.preset("gpt3-xl")  # the table: 24 heads of 128, d_model 2048
    assert (xl.n_layer, xl.n_embd, xl.n_embd // xl.n_head) == (24, 2048, 128)


def banded_model(window: int, n_layer: int = 2) -> GPT:
    torch.manual_seed(0)
    shape = dict(vocab_size=50, block_size=16, n_head=2, n_embd=32, dropout=0.0, norm="pre")
    return GPT(GPTConfig(**shape, n_layer=n_layer, local_window=window)).eval()


def test_local_window_bands_every_other_block_dense_first():
    model = banded_model(4, n_layer=4)
    assert [block.band is not None for block in model.blocks] == [False, True, False, True]
    assert [model.config.banded(i) for i in range(4)] == [False, True, False, True]
    assert all(block.band is None for block in banded_model(0, n_layer=4).blocks)
    assert "band" not in "".join(model.state_dict()), "the masks are not weights"


def test_a_banded_block_sees_only_its_window():
    block = banded_model(4).blocks[1]
    x = torch.randn(1, 16, 32)
    y = x.clone()
    y[0, 5] += torch.randn(32)  # changes what positions 5..8 may see, not 9 and later
    with torch.no_grad():
        a, b = block(x), block(y)
    moved = (a - b).abs().amax(-1)[0]
    assert (moved[5:9] > 1e-4).all() and (moved[9:] < 1e-6).all() and (moved[:5] < 1e-6).all()
    weights = block.attention_weights(x)  # (1, H, T, T)
    i = torch.arange(16)
    outside = (i[:, None] - i[None, :] >= 4) | (i[None, :] > i[:, None])
    assert (weights[..., outside] == 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(1, 2, 16))


def test_attention_weights_are_what_the_forward_pass_uses(model):
    idx = torch.randint(50, (2, 16))
    weights = model.attention_weights(idx)
    assert len(weights) == model.config.n_layer and weights[0].shape == (2, 2, 16, 16)
    x = model.embed(idx)
    block = model.blocks[0]
    h = block.ln1(x) if block.pre_ln else x
    q, k, _ = block.attn.qkv(h).split(32, dim=-1)
    q, k = block.attn.split_heads(q), block.attn.split_heads(k)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(16)).masked_fill(
        ~torch.ones(16, 16, dtype=torch.bool).tril(), float("-inf")
    )
    assert torch.allclose(weights[0], scores.softmax(-1), atol=1e-5)


def test_banded_blocks_attend_to_fewer_keys_in_the_flop_count():
    from gptbook import sizes

    dense, banded = banded_model(0, n_layer=4).config, banded_model(4, n_layer=4).config
    assert sizes.attended(banded) == [16, 4, 16, 4] and sizes.attended(dense) == [16] * 4
    saved = sizes.flops_per_token(dense) - sizes.flops_per_token(banded)
    assert saved == 6 * 2 * (16 - 4) * 32  # two banded blocks, 12 keys fewer each
    with pytest.raises(ValueError, match="local_window must be a whole number ≥ 0"):
        GPTConfig(local_window=-1)
