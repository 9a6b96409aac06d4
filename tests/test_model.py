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
