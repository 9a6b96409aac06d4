"""gptbook.tokenizers: the character tokenizer and GPT-2's tokenizer, offline."""

from __future__ import annotations

import hashlib
import random
import shutil

import pytest
import tiktoken

from gptbook import assets, data
from gptbook.tokenizers import END_OF_TEXT, CharTokenizer, gpt2_tokenizer

MIXED = "Not all heroes wear capes. 中文也可以 🙂🚀 def f(x):\n\treturn x**2  # ok\n1234567 + 89"
R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"


def test_char_round_trip_and_vocab():
    tok = CharTokenizer.from_text("hello world")
    assert tok.vocab_size == 8 and tok.itos == sorted(set("hello world"))
    ids = tok.encode("hello world")
    assert ids[0] == tok.stoi["h"] and tok.decode(ids) == "hello world"
    assert tok.decode(tok.encode("")) == ""


def test_char_random_unicode_round_trip():
    rng = random.Random(0)
    text = "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(2000))
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


def test_char_bad_input_names_the_fix():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['z'\].*from_text"):
        tok.encode("abz")
    with pytest.raises(ValueError, match=r"token id 3 is not in the vocabulary 0..2"):
        tok.decode([0, 3, -1])
    with pytest.raises(ValueError, match="single character"):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer(["a", "a"])


def test_gpt2_known_ids():
    enc = gpt2_tokenizer()
    assert enc.encode("Not all heroes wear capes") == [3673, 477, 10281, 5806, 1451, 274]
    assert enc.n_vocab == 50257 and enc.eot_token == 50256
    assert enc.encode(END_OF_TEXT, allowed_special="all") == [50256]
    with pytest.raises(ValueError):  # special tokens in text must be allowed explicitly
        enc.encode(END_OF_TEXT)
    assert enc.decode(enc.encode(MIXED)) == MIXED


def test_gpt2_ranks_are_tiktokens_published_file():
    # tiktoken's own r50k_base loader pins this hash for the file it downloads.
    assert assets.manifest()["gpt2-bpe"].sha256 == (
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
    )


@pytest.fixture
def tiktoken_offline(tmp_path, monkeypatch):
    """tiktoken's own r50k_base (the same encoding as "gpt2"), its download served from our
    cache."""
    cached = assets.fetch("gpt2-bpe", quiet=True)
    shutil.copy(cached, tmp_path / hashlib.sha1(R50K_URL.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    from tiktoken_ext import openai_public

    return tiktoken.Encoding(**openai_public.r50k_base())


def test_gpt2_matches_tiktoken_exactly(tiktoken_offline):
    ours = gpt2_tokenizer()
    for text in (MIXED, data.text("val"), data.text("train")[:500_000]):
        assert ours.encode(text) == tiktoken_offline.encode(text)
    assert ours.encode_ordinary(" ".join(["  x", "\n\n\n", "don't", "I'll"])) == (
        tiktoken_offline.encode_ordinary(" ".join(["  x", "\n\n\n", "don't", "I'll"]))
    )


def test_gpt2_pattern_as_published_splits_like_tiktokens(tiktoken_offline):
    """GPT2_PATTERN is GPT-2's regex as published; tiktoken spells it differently, same splits."""
    from gptbook.tokenizers import GPT2_PATTERN

    published = tiktoken.Encoding(
        name="gpt2-published-regex",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=tiktoken_offline._mergeable_ranks,
        special_tokens={END_OF_TEXT: 50256},
    )
    for text in (MIXED, data.text("val"), "trailing spaces   \n  ", "a\n\n  b"):
        assert published.encode(text) == tiktoken_offline.encode(text)
