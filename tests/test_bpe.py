"""gptbook.bpe and gptbook.bpe_files: byte-level BPE trained from scratch, parity with tiktoken."""

from __future__ import annotations

import io
import itertools
import json
import random
from collections import Counter

import pytest
import regex

from gptbook import bpe, bpe_files, data
from gptbook.tokenizers import END_OF_TEXT, gpt2_tokenizer

MIXED = (
    "Not all heroes wear capes. 中文也可以！日本語も。🙂🚀👍🏽 def f(x):\n\treturn x**2  # ok\n"
    "1234567 + 3.14159 '''\r\n"
)
ONE_PIECE = r"(?s).+"  # no pre-tokenisation: the whole text is one piece
# Later OpenAI pre-tokenisers (cl100k_base, o200k_base), as tiktoken spells them.
CL100K = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
    r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
UPPER, LOWER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
SUFFIX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
O200K = "|".join(
    [
        rf"[^\r\n\p{{L}}\p{{N}}]?{UPPER}*{LOWER}+{SUFFIX}",
        rf"[^\r\n\p{{L}}\p{{N}}]?{UPPER}+{LOWER}*{SUFFIX}",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def ours(gpt2):
    return bpe.ByteBPE.from_tiktoken(gpt2)


@pytest.fixture(scope="module")
def trained():
    return bpe.ByteBPE.train(data.text("train")[:300_000], 401, special_tokens=[END_OF_TEXT])


def naive_train(text, vocab_size, pattern=bpe.GPT2_PATTERN, specials=()):
    """The reference: recount every pair after every merge (slow, obviously right)."""
    parts = regex.split("|".join(map(regex.escape, specials)), text) if specials else [text]
    words = Counter(tuple(w.encode()) for p in parts for w in regex.findall(pattern, p))
    vocab = {i: bytes([i]) for i in range(256)}
    merges, history = [], [sum(len(w) * f for w, f in words.items())]
    for new_id in range(256, vocab_size - len(specials)):
        counts = bpe.pair_counts(words)
        if not counts:
            break
        pair = bpe.best_pair(counts, vocab)
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        merges.append((*pair, new_id))
        merged: Counter = Counter()
        for word, freq in words.items():
            merged[tuple(bpe.merge(word, pair, new_id))] += freq
        words = merged
        history.append(sum(len(w) * f for w, f in words.items()))
    return merges, history


def random_text(rng, n):
    """Text that stresses pre-tokens and chunk boundaries: words, contractions, whitespace
    runs, digits, CJK, emoji (surrogate pairs too), lone surrogates and special tokens."""
    pieces = ["the", " cat", "'ll", "'s", "'", "  ", "\n\n  ", " \n", "\r\n", "\t", "123456"]
    pieces += ["!!", " ?!", "中文", "🙂", "\ud83d\ude00", "\ud800", "Ab", "DON'T", "x/y"]
    pieces += [END_OF_TEXT, END_OF_TEXT * 2, "<|", "endoftext", "  <|endoftext|>"]
    return "".join(rng.choice(pieces) for _ in range(n))


def random_chunks(rng, text):
    cuts = sorted(rng.sample(range(1, len(text)), rng.randrange(1, len(text))))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]


# --------------------------------------------------------------------------- training
def test_pairs_and_merge():
    assert bpe.pair_counts({(1, 2, 1, 2): 3, (2, 1): 1}) == {(1, 2): 6, (2, 1): 4}
    assert bpe.merge([5, 5, 5, 5, 5], (5, 5), 9) == [9, 9, 5]
    assert bpe.merge([1, 2, 3], (3, 1), 9) == [1, 2, 3]


def test_ties_go_to_the_greater_pair_of_byte_strings():
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab", 257: b"zz"}
    a, b, h, e = b"abhe"
    counts = {(a, b): 2, (h, e): 2, (e, a): 1}
    assert min(counts, key=lambda p: (-counts[p], p)) == (a, b)  # the old rule: lowest ids
    assert bpe.best_pair(counts, vocab) == (h, e)  # b"h" > b"a"
    assert bpe.best_pair({(a, h): 1, (a, e): 1}, vocab) == (a, h)  # the second token decides
    assert bpe.best_pair({(256, 98): 1, (97, 257): 1}, vocab) == (256, 98)  # b"ab" > b"a"
    assert bpe.best_pair({(257, 97): 1, (97, 98): 5}, vocab) == (97, 98)  # counts come first
    # Training breaks ties the same way: every pair of "abcd" occurs once, and "cd" wins.
    assert bpe.ByteBPE.train("abcd", 257, pattern=ONE_PIECE).merges == [(99, 100, 256)]


def test_train_learns_frequent_pairs_first():
    tok = bpe.ByteBPE.train("low lower lowest low low", 260)
    first = [tok.decoder[new] for *_, new in tok.merges]
    # "lo" and "ow" both occur 5 times: the tie goes to b"ow" > b"lo"; then "low" (5), " low" (4).
    assert first == [b"ow", b"low", b" low", b" lowe"] and tok.n_vocab == 260
    assert tok.train_tokens[0] == len(b"low lower lowest low low")
    assert tok.train_tokens == [24, 19, 14, 10, 8]  # each merge saves one token per occurrence


def test_train_gives_the_same_merges_as_recounting_every_time():
    rng = random.Random(0)
    for trial in range(40):
        alphabet = rng.choice(["ab", "abc ", "ab c\n", "xyz  \n'"])
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 1500)))
        if trial % 4 == 0:
            text = text.replace("c", END_OF_TEXT)
        pattern = rng.choice([bpe.GPT2_PATTERN, ONE_PIECE])
        specials = [END_OF_TEXT] if trial % 2 == 0 else []
        size = 256 + len(specials) + rng.randrange(1, 120)
        tok = bpe.ByteBPE.train(text, size, pattern, special_tokens=specials)
        merges, history = naive_train(text, size, pattern, specials)
        assert tok.merges == merges, (trial, text[:50])
        assert tok.train_tokens == history
        assert len(set(tok.ranks)) == len(tok.ranks) == 256 + len(merges)


def test_special_tokens_at_training_time():
    text = ("xy" + END_OF_TEXT + "yx" + "<|pad|>") * 30
    tok = bpe.ByteBPE.train(text, 300, ONE_PIECE, special_tokens=[END_OF_TEXT, "<|pad|>"])
    assert tok.special_tokens == {
        END_OF_TEXT: 256 + len(tok.merges),
        "<|pad|>": 257 + len(tok.merges),
    }
    learned = [tok.decoder[new] for *_, new in tok.merges]
    assert learned and all(set(t) <= set(b"xy") for t in learned)  # none crosses a special token
    gpt2_style = bpe.ByteBPE.train(text, 300, special_tokens=[END_OF_TEXT, "<|pad|>"])
    assert not any(b"endoftext" in t or b"|>" in t for t in gpt2_style.ranks)
    assert gpt2_style.encode(text, allowed_special="all").count(gpt2_style.n_vocab - 2) == 30
    # vocab_size counts everything: bytes + merges + special tokens (GPT-2: 256 + 50,000 + 1).
    big = bpe.ByteBPE.train(data.text("val")[:20_000], 400, special_tokens=[END_OF_TEXT, "<|a|>"])
    assert big.n_vocab == 400 and len(big.merges) == 142
    assert big.special_tokens == {END_OF_TEXT: 398, "<|a|>": 399}


def test_train_refuses_bad_special_tokens():
    with pytest.raises(ValueError, match="list of strings"):
        bpe.ByteBPE.train("abc", 300, special_tokens={END_OF_TEXT: 299})
    with pytest.raises(ValueError, match="list of strings"):
        bpe.ByteBPE.train("abc", 300, special_tokens=END_OF_TEXT)
    with pytest.raises(ValueError, match="distinct, non-empty"):
        bpe.ByteBPE.train("abc", 300, special_tokens=["<|a|>", "<|a|>"])
    with pytest.raises(ValueError, match=r"vocab_size must be ≥ 256 \(the bytes\) \+ 1"):
        bpe.ByteBPE.train("abc", 256, special_tokens=[END_OF_TEXT])
    with pytest.raises(ValueError, match="vocab_size must be ≥ 256"):
        bpe.ByteBPE.train("abc", 100)


# --------------------------------------------------------------------------- encoding
def test_round_trip_on_random_unicode(trained):
    rng = random.Random(0)
    for _ in range(20):
        ranges = [(32, 127), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF)]
        chars = [chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randrange(0, 80))]
        text = "".join(chars)
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


def test_the_longest_special_token_wins(trained):
    both = {END_OF_TEXT: 500, END_OF_TEXT * 2: 501}  # the book's constructor: chosen ids
    tok = bpe.ByteBPE(trained.ranks, special_tokens=both)
    assert tok.encode(END_OF_TEXT * 2, allowed_special="all") == [501]
    assert tok.encode(END_OF_TEXT * 3, allowed_special="all") == [501, 500]
    assert tok.encode_ordinary(END_OF_TEXT * 2) == trained.encode_ordinary(END_OF_TEXT * 2)
    with pytest.raises(ValueError, match="contains the special token"):  # as tiktoken
        tok.encode(END_OF_TEXT * 2, allowed_special={END_OF_TEXT * 2})


def test_bad_ids_and_vocabularies(trained):
    with pytest.raises(ValueError, match="token id 401 is not in the vocabulary 0..400"):
        trained.decode([0, 401])
    with pytest.raises(ValueError, match="256 single bytes"):
        bpe.ByteBPE({b"a": 0})
    ranks = {bytes([i]): i for i in range(256)}
    with pytest.raises(ValueError, match="already ordinary tokens"):
        bpe.ByteBPE(ranks, special_tokens={END_OF_TEXT: 3})


def test_a_piece_that_is_a_token_is_taken_whole_as_tiktoken_does():
    import tiktoken

    ranks = {bytes([i]): i for i in range(256)} | {b"xyz": 256}  # no merge leads to "xyz"
    enc = tiktoken.Encoding(
        "toy", pat_str=bpe.GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
    assert bpe.ByteBPE(ranks).encode("xyz xyz") == enc.encode("xyz xyz") == [256, 32, 120, 121, 122]


class CountingRanks(dict):
    lookups = 0

    def get(self, key, default=None):
        CountingRanks.lookups += 1
        return super().get(key, default)


def test_one_piece_takes_n_log_n_not_n_squared(gpt2, ours):
    ranks = CountingRanks(gpt2._mergeable_ranks)
    for piece in [b"a" * 16_000, bytes(range(256)) * 20, "中文🙂".encode() * 2_000]:
        CountingRanks.lookups = 0
        parts = bpe.bpe_parts(piece, ranks)
        assert CountingRanks.lookups < 10 * len(piece)  # a rescan per merge: ~n²/2 lookups
        assert [gpt2._mergeable_ranks[p] for p in parts] == gpt2._encode_single_piece(piece)
    assert ours.encode("a" * 16_000) == gpt2.encode("a" * 16_000)
    text = "".join(random.Random(0).choice("abc+-=") for _ in range(100_000))  # no whitespace
    assert ours.encode(text) == gpt2.encode(text)


def test_the_piece_cache_is_bounded(gpt2):
    tok = bpe.ByteBPE.from_tiktoken(gpt2)
    tok.cache_size = 100
    words = [f" w{i}" for i in range(1_000)] + [" " + "x" * 300]
    assert tok.encode("".join(words)) == gpt2.encode("".join(words))
    assert 0 < len(tok._cache) <= 100 and all(len(piece) <= 256 for piece in tok._cache)


def test_lone_surrogates_are_encoded_as_tiktoken_does(gpt2, ours):
    for text in ["\ud800", "a\ud800b", " \udfff", "x\ud83d\ude00", "\ud800\udc00", "\udc00\ud800"]:
        assert ours.encode(text) == gpt2.encode(text), ascii(text)
        assert ours.encode_ordinary(text) == gpt2.encode_ordinary(text)
    both = f"{END_OF_TEXT}\ud800"
    assert ours.encode(both, allowed_special="all") == gpt2.encode(both, allowed_special="all")
    assert bpe.valid_text("a\ud800") == "a\ufffd" and bpe.valid_text("\ud83d\ude00") == "😀"
    bpe.ByteBPE.train("a\ud800b " * 10, 260)  # trains on such text too


def test_encode_iterable_equals_encode_wherever_the_chunks_are_cut(trained):
    tok = bpe.ByteBPE(trained.ranks, special_tokens={END_OF_TEXT: 400, END_OF_TEXT * 2: 401})
    rng = random.Random(0)
    for trial in range(150):
        text = random_text(rng, rng.randrange(2, 60))
        whole = tok.encode(text, allowed_special="all")
        chunks = random_chunks(rng, text) if trial % 10 else list(text)  # or every character
        assert list(tok.encode_iterable(chunks, allowed_special="all")) == whole, ascii(chunks)
        plain = text.replace("<|", "<")  # no special tokens
        chunks = random_chunks(rng, plain) if len(plain) > 1 else [plain]
        assert list(tok.encode_iterable(chunks)) == tok.encode(plain), ascii(chunks)


@pytest.mark.parametrize(
    "pattern", [bpe.GPT2_PATTERN, CL100K, O200K], ids=["gpt2", "cl100k", "o200k"]
)
def test_encode_iterable_with_later_pre_tokenisers(gpt2, pattern):
    tok = bpe.ByteBPE(gpt2._mergeable_ranks, pattern, gpt2._special_tokens)
    # A pre-token can depend on up to three characters after it ("abc'l" + "l" is one o200k piece).
    for chunks in [["x'l", "l"], ["abc'l", "l"], ["we'", "ve"], ["a \n\n  ", "  b"], ["1234", "5"]]:
        assert list(tok.encode_iterable(chunks)) == tok.encode("".join(chunks)), chunks
    rng = random.Random(1)
    for _ in range(100):
        text = random_text(rng, rng.randrange(2, 40)).replace(END_OF_TEXT, "I'LL we'Ve ")
        chunks = random_chunks(rng, text)
        assert list(tok.encode_iterable(chunks)) == tok.encode(text), ascii(chunks)


def test_encode_iterable_is_lazy_and_reads_files(trained, tmp_path):
    endless = itertools.cycle(["To be, or not ", "to be:", " that is\n", "\n  the question"])
    first = list(itertools.islice(trained.encode_iterable(endless), 1_000))
    assert len(first) == 1_000  # an endless text yields ids as it goes
    text = data.text("val")[:100_000] + END_OF_TEXT + "\n\n  end  "
    (tmp_path / "val.txt").write_text(text, encoding="utf-8")
    with open(tmp_path / "val.txt", encoding="utf-8", newline="") as f:
        ids = list(trained.encode_iterable(f, allowed_special={END_OF_TEXT}))
    assert ids == trained.encode(text, allowed_special={END_OF_TEXT})


def test_encode_iterable_refuses_special_tokens_like_encode(trained):
    cut = [f"a{END_OF_TEXT[:5]}", f"{END_OF_TEXT[5:]}b"]  # across a chunk boundary
    with pytest.raises(ValueError, match="contains the special token"):
        list(trained.encode_iterable(cut))
    with pytest.raises(ValueError, match="unknown special tokens"):
        trained.encode_iterable(["x"], allowed_special={"<|pad|>"})  # at once, not when read
    assert list(trained.encode_iterable(cut, allowed_special="all"))[1] == 400


# --------------------------------------------------------------------------- parity
def test_gpt2_parity_on_the_whole_corpus_and_mixed_text(gpt2, ours):
    assert ours.n_vocab == gpt2.n_vocab == 50257
    assert ours.encode(data.text("all")) == gpt2.encode(data.text("all"))
    assert ours.encode(MIXED) == gpt2.encode(MIXED)
    both = f"{MIXED}{END_OF_TEXT}again"
    assert ours.encode(both, allowed_special="all") == gpt2.encode(both, allowed_special="all")
    assert ours.decode(gpt2.encode(MIXED)) == MIXED


def test_published_pattern_gives_the_same_ids(gpt2):
    published = bpe.ByteBPE(gpt2._mergeable_ranks, bpe.GPT2_PATTERN, gpt2._special_tokens)
    assert published.encode(data.text("val")) == gpt2.encode(data.text("val"))
    assert published.encode(MIXED) == gpt2.encode(MIXED)


# --------------------------------------------------------------------------- files
def test_save_and_load(trained, tmp_path):
    trained.save(tmp_path / "tok.json")
    again = bpe.ByteBPE.load(tmp_path / "tok.json")
    assert again.ranks == trained.ranks and again.merges == trained.merges
    assert again.special_tokens == trained.special_tokens
    assert again.encode(MIXED) == trained.encode(MIXED)
    for damaged in ["{not json", '{"ranks": [["!!", 0]]}', "[1, 2]"]:
        (tmp_path / "bad.json").write_text(damaged)
        with pytest.raises(ValueError, match=r"bad\.json is not a tokenizer written by"):
            bpe.ByteBPE.load(tmp_path / "bad.json")


def test_gpt2_files_load_in_hugging_face_with_tiktokens_ids(gpt2, ours, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import GPT2Tokenizer

    vocab, merges = tmp_path / "vocab.json", tmp_path / "merges.txt"
    bpe_files.save(ours, vocab, merges)
    lines = merges.read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["#version: 0.2", "Ġ t", "Ġ a"] and len(lines) == 50_001
    assert json.loads(vocab.read_text(encoding="utf-8"))["Ġthe"] == 262
    hf = GPT2Tokenizer(str(vocab), str(merges))
    text = MIXED + data.text("val")[:30_000]
    assert hf.encode(text) == gpt2.encode(text)
    again = bpe_files.load(vocab, merges)
    assert again.ranks == ours.ranks and again.special_tokens == {END_OF_TEXT: 50256}


def test_trained_tokenizer_round_trips_through_gpt2_files(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import GPT2Tokenizer

    vocab, merges = tmp_path / "vocab.json", tmp_path / "merges.txt"
    bpe_files.save(trained, vocab, merges)
    pairs = [(trained.decoder[a], trained.decoder[b]) for a, b, _ in trained.merges]
    assert bpe_files.merge_list(trained.ranks) == pairs  # the merges training made, in order
    again = bpe_files.load(vocab, merges)
    assert again.ranks == trained.ranks and again.special_tokens == trained.special_tokens
    text = MIXED + data.text("val")[:20_000]
    assert (
        again.encode(text)
        == trained.encode(text)
        == GPT2Tokenizer(str(vocab), str(merges)).encode(text)
    )


def test_ranks_that_are_not_merges_are_refused(tmp_path):
    ranks = {bytes([i]): i for i in range(256)} | {b"ab": 256, b"xyz": 257}
    with pytest.raises(ValueError, match=r"token b'xyz' \(id 257\) is not made of two earlier"):
        bpe_files.save(bpe.ByteBPE(ranks), tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert not (tmp_path / "vocab.json").exists()


def test_damaged_gpt2_files_are_named(trained, tmp_path):
    vocab, merges = tmp_path / "vocab.json", tmp_path / "merges.txt"
    bpe_files.save(trained, vocab, merges)
    good_vocab, good_merges = vocab.read_text(encoding="utf-8"), merges.read_text(encoding="utf-8")

    def refused(vocab_text, merges_text, match):
        vocab.write_text(vocab_text, encoding="utf-8")
        merges.write_text(merges_text, encoding="utf-8")
        with pytest.raises(ValueError, match=match):
            bpe_files.load(vocab, merges)

    refused("{oops", good_merges, r"vocab\.json is not a vocab\.json file")
    refused('["a"]', good_merges, r"vocab\.json must hold one JSON object")
    lines = good_merges.split("\n")
    refused(
        good_vocab,
        "\n".join([*lines[:3], "a b c", *lines[3:]]),
        r"merges\.txt, line 4: expected two",
    )
    refused(
        good_vocab, "\n".join([lines[0], lines[2], lines[1], *lines[3:]]), r"line 3: .*rank order"
    )
    refused(good_vocab, good_merges + "Ġ qqq\n", r"line \d+: 'qqq' has no id in .*vocab\.json")
    merges.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match=r"merges\.txt is not a merges\.txt file \(not UTF-8"):
        bpe_files.load(vocab, merges)
    del_a = json.loads(good_vocab)
    del del_a["a"]
    refused(json.dumps(del_a), "#version: 0.2\n", r"vocab\.json has no id for the byte\(s\) \[97\]")


def test_encode_iterable_never_cuts_after_whitespace(gpt2, ours):
    # "\n\nby": before "by" the two newlines are two pre-tokens, at the end of a text one; a
    # stream must not encode a prefix that ends in whitespace on its own.
    text = data.text("val")[:20_000]
    assert list(ours.encode_iterable(io.StringIO(text))) == gpt2.encode(text)
    rng = random.Random(2)
    for _ in range(50):
        pieces = ["word", " and", "\n", "\n\n", "  ", " \n ", "x'", "ll", "12"]
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(20, 80)))
        assert list(ours.encode_iterable(random_chunks(rng, text))) == gpt2.encode(text)
