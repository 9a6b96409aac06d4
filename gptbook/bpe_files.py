"""A BPE tokenizer's files: gptbook's JSON, and GPT-2's ``vocab.json`` + ``merges.txt``.

Introduced in chapter 2. OpenAI released GPT-2's tokenizer as two files, a format that
Hugging Face's tokenizers still read: ``vocab.json`` maps each token to its id, and
``merges.txt`` lists the merges in the order they were learned, one pair a line. Tokens
are bytes, but these are text files, so each byte is written as a printable character
(:func:`bytes_to_unicode`, from OpenAI's ``encoder.py``): printable ASCII and Latin-1 stand
for themselves, the other bytes move to U+0100 and up, so a space is "Ġ", a newline "Ċ".
Neither file holds the pre-tokeniser: GPT-2's is assumed. Every file is written atomically,
and a damaged file raises a ``ValueError`` that names it and says what is wrong.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path

import regex

from .bpe import GPT2_PATTERN, ByteBPE, bpe_parts
from .files import write_text

__all__ = ["bytes_to_unicode", "load", "load_json", "merge_list", "save", "save_json"]


def save_json(tokenizer: ByteBPE, path: str | Path) -> None:
    """Write ``tokenizer`` as one JSON file (ranks in base64, as in tiktoken's files)."""
    ranks = sorted(tokenizer.ranks.items(), key=lambda x: x[1])
    state = {
        "pattern": tokenizer.pattern,
        "special_tokens": tokenizer.special_tokens,
        "ranks": [[base64.b64encode(b).decode("ascii"), i] for b, i in ranks],
        "merges": tokenizer.merges,
    }
    write_text(path, json.dumps(state))


def load_json(path: str | Path) -> ByteBPE:
    """Read a file written by :func:`save_json`."""
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
        ranks = {base64.b64decode(b, validate=True): int(i) for b, i in state["ranks"]}
        tokenizer = ByteBPE(ranks, state["pattern"], state["special_tokens"])
        tokenizer.merges = [tuple(m) for m in state.get("merges", [])]
    except (ValueError, KeyError, TypeError, AttributeError, regex.error) as err:
        raise ValueError(
            f"{path} is not a tokenizer written by ByteBPE.save "
            f"({type(err).__name__}: {err}); write it again with ByteBPE.save"
        ) from err
    return tokenizer


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable character for each byte (OpenAI's encoder.py)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    kept += range(ord("®"), ord("ÿ") + 1)
    moved = [b for b in range(256) if b not in kept]
    return {**{b: chr(b) for b in kept}, **{b: chr(256 + k) for k, b in enumerate(moved)}}


def merge_list(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merges that build ``ranks``, in rank order: every token longer than a byte, split
    in two the way BPE with the earlier tokens alone splits it.

    Refuses a table that is not a merge sequence: a token not made of two earlier tokens.
    """
    pairs = []
    for token, rank in sorted(ranks.items(), key=lambda x: x[1]):
        if len(token) > 1:
            parts = bpe_parts(token, ranks, max_rank=rank)
            if len(parts) != 2:
                raise ValueError(
                    f"token {token!r} (id {rank}) is not made of two earlier tokens (the earlier "
                    f"ones give {[p.decode('utf-8', 'replace') for p in parts]}): these ranks "
                    "are not a sequence of merges, which merges.txt needs"
                )
            pairs.append((parts[0], parts[1]))
    return pairs


def save(tokenizer: ByteBPE, vocab_file: str | Path, merges_file: str | Path) -> None:
    """Write ``tokenizer`` as GPT-2's ``vocab.json`` and ``merges.txt`` (merges in rank order)."""
    pairs = merge_list(tokenizer.ranks)  # checked before anything is written
    char = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(char[b] for b in token)

    vocab = {text(b): i for b, i in sorted(tokenizer.ranks.items(), key=lambda x: x[1])}
    clash = set(vocab) & set(tokenizer.special_tokens)
    if clash:
        raise ValueError(f"special tokens {sorted(clash)} are spelled like ordinary tokens")
    vocab.update(tokenizer.special_tokens)  # as GPT-2's vocab.json holds <|endoftext|>
    write_text(vocab_file, json.dumps(vocab, ensure_ascii=False, indent=0))
    lines = [f"{text(a)} {text(b)}\n" for a, b in pairs]
    write_text(merges_file, "#version: 0.2\n" + "".join(lines))


def _read_vocab(path: Path) -> dict[str, int]:
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a vocab.json file: {err}") from err
    if not isinstance(vocab, dict) or not all(type(i) is int for i in vocab.values()):
        raise ValueError(f"{path} must hold one JSON object of token -> integer id")
    return vocab


def _read_merges(path: Path, vocab: dict[str, int], vocab_file: Path) -> list[str]:
    """The tokens the merges make, in order; checks each against the vocabulary."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a merges.txt file (not UTF-8 text: {err})") from err
    made, previous = [], -1
    for n, line in enumerate(lines, start=1):
        if not line or (n == 1 and line.startswith("#version")):
            continue
        where = f"{path}, line {n}"
        pair = line.split(" ")
        if len(pair) != 2 or not all(pair):
            raise ValueError(f"{where}: expected two tokens separated by a space, got {line!r}")
        missing = [t for t in (*pair, pair[0] + pair[1]) if t not in vocab]
        if missing:
            raise ValueError(f"{where}: {missing[0]!r} has no id in {vocab_file}")
        new = vocab[pair[0] + pair[1]]
        if not max(vocab[pair[0]], vocab[pair[1]], previous) < new:
            raise ValueError(
                f"{where}: {pair[0] + pair[1]!r} (id {new}) must come after its two parts and "
                f"the merge before it (id {previous}): merges must be listed in rank order"
            )
        made.append(pair[0] + pair[1])
        previous = new
    return made


def load(vocab_file: str | Path, merges_file: str | Path, pattern: str = GPT2_PATTERN) -> ByteBPE:
    """Read GPT-2's ``vocab.json`` and ``merges.txt``; entries that are neither a byte nor
    made by a merge (GPT-2's ``<|endoftext|>``) become special tokens."""
    vocab_file, merges_file = Path(vocab_file), Path(merges_file)
    vocab = _read_vocab(vocab_file)
    made = _read_merges(merges_file, vocab, vocab_file)
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    missing = [b for c, b in byte_of.items() if c not in vocab]
    if missing:
        raise ValueError(f"{vocab_file} has no id for the byte(s) {missing[:5]}")
    ranks = {bytes([b]): vocab[c] for c, b in byte_of.items()}
    for token in made:
        odd = [c for c in token if c not in byte_of]
        if odd:
            raise ValueError(f"{merges_file}: the token {token!r} has {odd[0]!r}, not a byte")
        ranks[bytes(byte_of[c] for c in token)] = vocab[token]
    made_set = set(made)
    specials = {s: i for s, i in vocab.items() if s not in byte_of and s not in made_set}
    try:
        return ByteBPE(ranks, pattern, specials)
    except ValueError as err:
        raise ValueError(f"{vocab_file} and {merges_file}: {err}") from err
