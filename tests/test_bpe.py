"""gptbook.bpe: byte-level BPE trained from scratch, and exact parity with tiktoken."""

from __future__ import annotations

import random

import pytest

from gptbook import bpe, data
from gptbook.tokenizers import END_OF_TEXT, gpt2_tokenizer

MIXED = "Not all heroes wear capes. 中文也可以！日本語も。🙂🚀👍🏽 def f(x):\n\treturn x**2  # ok\n1234567 + 3.14159 '''\r\n"


def test_pairs_and_merge():
    assert bpe.pair_counts({(1, 2, 1, 2): 3, (2, 1): 1}) == {(1, 2): 6, (2, 1): 4}
    assert bpe.merge([5, 5, 5, 5, 5], (5, 5), 9) == [9, 9, 5]
    assert bpe.merge([1, 2, 3], (3, 1), 9) == [1, 2, 3]


def test_train_learns_frequent_pairs_first():
    tok = bpe.ByteBPE.train("low lower lowest low low", 260)
    first = [tok.decoder[new] for *_, new in tok.merges]
    assert first[0] in (b"lo", b" l") and len(tok.merges) == 4
    assert tok.train_tokens[0] == len(b"low lower lowest low low")
    assert all(a > b for a, b in zip(tok.train_tokens, tok.train_tokens[1:]))


@pytest.fixture(scope="module")
def trained():
    return bpe.ByteBPE.train(data.text("train")[:300_000], 400, special_tokens={END_OF_TEXT: 400})


def test_round_trip_on_random_unicode(trained):
    rng = random.Random(0)
    for _ in range(20):
        text = "".join(
            chr(
                rng.choice(
                    [
                        rng.randrange(32, 127),
                        rng.randrange(0x4E00, 0x9FFF),
                        rng.randrange(0x1F300, 0x1FAFF),
                    ]
                )
            )
            for _ in range(rng.randrange(0, 80))
        )
        assert trained.decode(trained.encode(text)) == text


def test_merges_compress_the_text(trained):
    text = data.text("val")[:50_000]
    assert len(trained.encode(text)) < 0.7 * len(text.encode())


def test_special_tokens(trained):
    assert trained.encode(f"a{END_OF_TEXT}b", allowed_special="all")[1] == 400
    assert trained.decode([400]) == END_OF_TEXT
    with pytest.raises(ValueError, match="contains the special token"):
        trained.encode(f"a{END_OF_TEXT}")
    as_text = trained.encode_ordinary(END_OF_TEXT)  # special tokens as plain text
    assert 400 not in as_text and trained.decode(as_text) == END_OF_TEXT
    with pytest.raises(ValueError, match="unknown special tokens"):
        trained.encode("x", allowed_special={"<|pad|>"})


def test_bad_ids_and_vocabularies(trained):
    with pytest.raises(ValueError, match="not in this tokenizer's vocabulary"):
        trained.decode([0, 401])
    with pytest.raises(ValueError, match="256 single bytes"):
        bpe.ByteBPE({b"a": 0})
    with pytest.raises(ValueError, match="vocab_size must be ≥ 256"):
        bpe.ByteBPE.train("abc", 100)
    ranks = {bytes([i]): i for i in range(256)}
    with pytest.raises(ValueError, match="already ordinary tokens"):
        bpe.ByteBPE(ranks, special_tokens={END_OF_TEXT: 3})


def test_save_and_load(trained, tmp_path):
    trained.save(tmp_path / "tok.json")
    again = bpe.ByteBPE.load(tmp_path / "tok.json")
    assert again.ranks == trained.ranks and again.merges == trained.merges
    assert again.encode(MIXED) == trained.encode(MIXED)


def test_gpt2_parity_on_the_whole_corpus_and_mixed_text():
    enc = gpt2_tokenizer()
    ours = bpe.ByteBPE.from_tiktoken(enc)
    assert ours.n_vocab == enc.n_vocab == 50257
    assert ours.encode(data.text("all")) == enc.encode(data.text("all"))
    assert ours.encode(MIXED) == enc.encode(MIXED)
    both = f"{MIXED}{END_OF_TEXT}again"
    assert ours.encode(both, allowed_special="all") == enc.encode(both, allowed_special="all")
    assert ours.decode(enc.encode(MIXED)) == MIXED


def test_published_pattern_gives_the_same_ids():
    enc = gpt2_tokenizer()
    published = bpe.ByteBPE(enc._mergeable_ranks, bpe.GPT2_PATTERN, enc._special_tokens)
    assert published.encode(data.text("val")) == enc.encode(data.text("val"))
    assert published.encode(MIXED) == enc.encode(MIXED)
