"""gptbook.hf: GPT-2 checkpoints from and to Hugging Face, with the same logits as transformers.

Offline, the checkpoints are tiny random GPT-2s that ``transformers`` itself writes.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import transformers  # the reference implementation (requirements.txt installs it)

from gptbook import hf
from gptbook.model import GPT, GPTConfig

TINY = dict(vocab_size=99, n_positions=32, n_embd=32, n_layer=2, n_head=4)


#: Random tiny GPT-2 shapes the parity tests run on.
CONFIGS = [
    TINY,
    dict(vocab_size=257, n_positions=16, n_embd=48, n_layer=3, n_head=3),
    dict(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=1),
]
#: How far the book's logits may be from transformers' (float32).
MAX_LOGIT_GAP = 1e-4


def save_reference(folder, shape: dict):
    """A random GPT-2 of ``shape`` written by transformers' save_pretrained, and the model."""
    torch.manual_seed(0)
    reference = transformers.GPT2LMHeadModel(transformers.GPT2Config(**shape)).eval()
    reference.save_pretrained(folder)
    return folder, reference


@pytest.fixture
def hf_checkpoint(tmp_path):
    return save_reference(tmp_path / "tiny-gpt2", TINY)


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def ids(n: int = 3, T: int = 32) -> torch.Tensor:
    return torch.randint(TINY["vocab_size"], (n, T), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("shape", CONFIGS, ids=lambda c: f"{c['n_layer']}x{c['n_embd']}")
def test_from_hf_gives_transformers_logits(shape, tmp_path):
    folder, reference = save_reference(tmp_path / "gpt2", shape)
    model = GPT.from_hf(folder)
    assert not model.training
    assert model.config.norm == "pre" and model.config.block_size == shape["n_positions"]
    x = torch.randint(shape["vocab_size"], (3, shape["n_positions"]))
    with torch.no_grad():
        ours, theirs = model(x)[0], reference(x).logits
    assert ours.shape == theirs.shape == (3, shape["n_positions"], shape["vocab_size"])
    assert gap(ours, theirs) < MAX_LOGIT_GAP
    assert model.num_params() == reference.num_parameters()


def test_from_hf_reads_the_hubs_unprefixed_names(hf_checkpoint, tmp_path):
    """The hub's original GPT-2 files name weights "h.0..." where save_pretrained writes
    "transformer.h.0..."; both load to the same model."""
    from safetensors.torch import load_file, save_file

    folder, reference = hf_checkpoint
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((folder / "config.json").read_text())
    state = load_file(str(folder / "model.safetensors"))
    save_file({k.removeprefix("transformer."): v for k, v in state.items()}, bare / hf.FILES[1])
    with torch.no_grad():
        assert gap(GPT.from_hf(bare)(ids())[0], reference(ids()).logits) < MAX_LOGIT_GAP


def test_to_hf_writes_what_transformers_loads_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=99, block_size=32, n_layer=2, n_head=4, n_embd=32, norm="pre")
    model = GPT(config).eval()
    folder = model.to_hf(tmp_path / "ours")
    assert sorted(p.name for p in folder.iterdir()) == sorted(hf.FILES)
    loaded = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    with torch.no_grad():
        assert gap(loaded(ids()).logits, model(ids())[0]) < MAX_LOGIT_GAP
    again = GPT.from_hf(folder)  # and back: every weight the same
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_to_hf_names_end_of_text_only_in_gpt2s_vocabulary(tmp_path):
    for vocab_size, expected in [(50_257, hf.END_OF_TEXT), (99, None)]:
        config = GPTConfig(vocab_size=vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8)
        written = hf.config_to_hf(dataclasses.replace(config, norm="pre"))
        assert written["bos_token_id"] == written["eos_token_id"] == expected
    model = GPT(GPTConfig(vocab_size=99, block_size=8, n_layer=1, n_head=1, n_embd=8, norm="pre"))
    loaded = transformers.GPT2Config.from_pretrained(model.to_hf(tmp_path / "m"))
    assert loaded.bos_token_id is None and loaded.eos_token_id is None


def test_to_hf_drops_the_padding_rows_of_a_padded_vocabulary(tmp_path):
    shape = dict(vocab_size=99, block_size=16, n_layer=1, n_head=2, n_embd=16, norm="pre")
    model = GPT(GPTConfig(**shape, pad_vocab_to=64)).eval()
    assert model.wte.weight.shape[0] == 128
    loaded = transformers.GPT2LMHeadModel.from_pretrained(model.to_hf(tmp_path / "m")).eval()
    x = ids(2, 16)
    with torch.no_grad():
        assert gap(loaded(x).logits, model(x)[0]) < MAX_LOGIT_GAP


def test_to_hf_refuses_a_banded_model(tmp_path):
    config = GPTConfig(vocab_size=99, block_size=8, n_layer=2, n_head=1, n_embd=8, norm="pre")
    model = GPT(dataclasses.replace(config, local_window=4))
    with pytest.raises(ValueError, match="local_window=4: build it with local_window=0"):
        model.to_hf(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_to_hf_refuses_a_post_ln_model(tmp_path):
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="norm='pre'"):
        model.to_hf(tmp_path / "gpt1")
    assert not (tmp_path / "gpt1").exists()


def test_from_hf_refuses_what_the_book_does_not_compute(hf_checkpoint):
    folder, _ = hf_checkpoint
    config = json.loads((folder / "config.json").read_text())
    for change, message in [
        ({"activation_function": "relu"}, "activation_function='relu'"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
        ({"n_inner": 100}, "n_inner=100"),
        ({"model_type": "llama"}, "reads GPT-2 checkpoints"),
    ]:
        with pytest.raises(ValueError, match=message):
            hf.config_from_hf({**config, **change})


def test_from_hf_names_what_is_missing(hf_checkpoint, tmp_path):
    folder, _ = hf_checkpoint
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        GPT.from_hf(empty)
    from safetensors.torch import save_file

    save_file({"wte.weight": torch.zeros(99, 32)}, empty / "model.safetensors")
    with pytest.raises(ValueError, match="has no 'wpe.weight'"):
        GPT.from_hf(empty)


def test_from_hf_names_both_shapes_when_weights_and_config_disagree(tmp_path):
    folder, _ = save_reference(tmp_path / "a", TINY)
    other, _ = save_reference(tmp_path / "b", {**TINY, "n_embd": 64})
    (other / "config.json").write_text((folder / "config.json").read_text())  # n_embd 32
    with pytest.raises(ValueError, match=r"'wte.weight' has shape \(99, 64\).*makes it \(99, 32\)"):
        GPT.from_hf(other)


def test_from_hf_refuses_an_untied_output_layer(hf_checkpoint):
    from safetensors.torch import load_file, save_file

    folder, _ = hf_checkpoint
    state = load_file(str(folder / "model.safetensors"))
    state["lm_head.weight"] = torch.randn_like(state["transformer.wte.weight"])
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ValueError, match="not tied"):
        GPT.from_hf(folder)


def test_from_hf_offline_says_how_to_go_on(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="pass a folder with config.json and model.safetensors"):
        GPT.from_hf("gpt2")


@pytest.mark.parametrize(
    "name, count",
    [
        ("gpt2", 124_439_808),
        ("gpt2-medium", 354_823_168),
        ("gpt2-large", 774_030_080),
        ("gpt2-xl", 1_557_611_200),
    ],
)
def test_gpt2_presets_have_the_published_parameter_counts(name, count):
    with torch.device("meta"):  # shapes only: no memory
        model = GPT(GPTConfig.preset(name))
        reference = transformers.GPT2LMHeadModel(
            transformers.GPT2Config.from_dict(hf.config_to_hf(model.config))
        )
    assert model.num_params() == count == reference.num_parameters()


def test_from_hf_downloads_only_the_config_and_the_safetensors(hf_checkpoint, monkeypatch):
    """Online, a hub name is fetched with huggingface_hub (here a stand-in that records the
    call): the four sizes map to their repositories, and no pickle file is ever fetched."""
    import huggingface_hub

    from gptbook import book

    folder, reference = hf_checkpoint
    calls = []

    def snapshot_download(repo, allow_patterns):
        calls.append((repo, allow_patterns))
        return str(folder)

    monkeypatch.setattr(book, "online", lambda: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    model = GPT.from_hf("gpt2")
    assert calls == [("openai-community/gpt2", ["config.json", "model.safetensors"])]
    with torch.no_grad():
        assert gap(model(ids())[0], reference(ids()).logits) < MAX_LOGIT_GAP
