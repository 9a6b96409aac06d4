"""Byte-level byte-pair encoding (BPE), from scratch: how GPT-2 and GPT-3 tokenise.

Introduced in chapter 2. Text is UTF-8 bytes, so any string is a sequence over 256
symbols and nothing is ever unknown. Training repeatedly finds the most frequent
adjacent pair of tokens and merges it into a new token; the vocabulary is the 256
bytes plus one token per merge. Before counting, a regular expression (the
*pre-tokeniser*) splits text into words, numbers, punctuation and spaces, so that
merges never cross those boundaries (no token for "dog." or "dog!").

A tokenizer is a table ``ranks``: token bytes -> id, where a lower id was merged
earlier. Encoding a piece of text starts from its single bytes and keeps merging the
adjacent pair whose concatenation has the lowest rank: exactly tiktoken's algorithm,
so :meth:`ByteBPE.from_tiktoken` reproduces GPT-2's ids.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import regex

from .files import write_text
from .tokenizers import END_OF_TEXT, GPT2_PATTERN

__all__ = ["END_OF_TEXT", "GPT2_PATTERN", "ByteBPE", "merge", "pair_counts"]


def pair_counts(words: dict[tuple[int, ...], int]) -> Counter:
    """How often each adjacent pair occurs, over words (token tuples) weighted by frequency."""
    counts: Counter = Counter()
    for word, freq in words.items():
        for pair in zip(word, word[1:]):
            counts[pair] += freq
    return counts


def merge(ids: Iterable[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, left to right."""
    ids, out, i = list(ids), [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class ByteBPE:
    """A byte-level BPE tokenizer: ``ranks`` (bytes -> id), a pre-tokeniser, special tokens."""

    def __init__(
        self,
        ranks: dict[bytes, int],
        pattern: str = GPT2_PATTERN,
        special_tokens: dict[str, int] | None = None,
    ):
        if len({len(ranks), len(set(ranks.values()))}) != 1:
            raise ValueError("ranks must give every token a different id")
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise ValueError(
                f"a byte-level vocabulary needs all 256 single bytes; missing {missing[:5]}"
            )
        self.ranks, self.pattern = dict(ranks), pattern
        self.special_tokens = dict(special_tokens or {})
        self.decoder = {i: b for b, i in self.ranks.items()}
        clash = set(self.special_tokens.values()) & set(self.decoder)
        if clash:
            raise ValueError(f"special token ids {sorted(clash)} are already ordinary tokens")
        self._split = regex.compile(pattern)
        self._cache: dict[bytes, list[int]] = {}
        #: The merges in the order training made them: (left id, right id, new id).
        self.merges: list[tuple[int, int, int]] = []
        #: After training: how many tokens the training text takes after k merges.
        self.train_tokens: list[int] = []

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        pattern: str = GPT2_PATTERN,
        special_tokens: dict[str, int] | None = None,
    ) -> ByteBPE:
        """Learn ``vocab_size - 256`` merges from ``text``; ids 0..255 are the bytes.

        Pair counts are kept up to date as words change, so each merge only revisits
        the words that contain the merged pair. Ties go to the pair of lowest ids.
        """
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be ≥ 256 (the bytes), got {vocab_size}")
        chunks = Counter(regex.findall(pattern, text))
        words = {tuple(c.encode("utf-8")): f for c, f in chunks.items()}  # word -> frequency
        counts = pair_counts(words)
        where: dict[tuple[int, int], set] = {}  # pair -> the words that contain it
        for word in words:
            for pair in zip(word, word[1:]):
                where.setdefault(pair, set()).add(word)
        vocab = {i: bytes([i]) for i in range(256)}
        merges = []
        history = [sum(len(w) * f for w, f in words.items())]  # tokens in the text: bytes at first
        for new_id in range(256, vocab_size):
            if not counts:
                break  # every word is a single token already
            pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
            history.append(history[-1] - counts[pair])  # each occurrence saves one token
            vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
            merges.append((*pair, new_id))
            for word in where.pop(pair, set()):
                freq = words.pop(word)
                new_word = tuple(merge(word, pair, new_id))
                for p in zip(word, word[1:]):  # forget the old word's pairs ...
                    counts[p] -= freq
                    if counts[p] <= 0:
                        del counts[p]
                    if p in where:
                        where[p].discard(word)
                words[new_word] = words.get(new_word, 0) + freq
                for p in zip(new_word, new_word[1:]):  # ... and count the new one's
                    counts[p] += freq
                    where.setdefault(p, set()).add(new_word)
        tokenizer = cls({b: i for i, b in vocab.items()}, pattern, special_tokens)
        tokenizer.merges = merges
        tokenizer.train_tokens = history  # [k]: tokens the training text takes after k merges
        return tokenizer

    @classmethod
    def from_tiktoken(cls, encoding) -> ByteBPE:
        """Our implementation with a ``tiktoken.Encoding``'s ranks, regex and special tokens."""
        return cls(encoding._mergeable_ranks, encoding._pat_str, encoding._special_tokens)

    # ------------------------------------------------------------------ encoding
    @property
    def n_vocab(self) -> int:
        return max([*self.decoder, *self.special_tokens.values()]) + 1

    def _encode_chunk(self, piece: bytes) -> list[int]:
        """BPE on one pre-token: merge the lowest-ranked adjacent pair until none is left."""
        if piece in self.ranks:
            return [self.ranks[piece]]
        parts = [piece[i : i + 1] for i in range(len(piece))]
        while len(parts) > 1:
            ranked = [
                (self.ranks.get(a + b, None), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))
            ]
            rank, i = min(((r, i) for r, i in ranked if r is not None), default=(None, -1))
            if rank is None:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return [self.ranks[p] for p in parts]

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, treating special tokens as plain text."""
        ids = []
        for chunk in self._split.findall(text):
            piece = chunk.encode("utf-8")
            if piece not in self._cache:
                self._cache[piece] = self._encode_chunk(piece)
            ids.extend(self._cache[piece])
        return ids

    def encode(self, text: str, allowed_special: set[str] | str = frozenset()) -> list[int]:
        """Token ids of ``text``. Special tokens in the text must be allowed explicitly."""
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(
                f"unknown special tokens {sorted(unknown)}; this tokenizer has {sorted(self.special_tokens)}"
            )
        found = [s for s in self.special_tokens if s in text and s not in allowed]
        if found:
            raise ValueError(
                f"the text contains the special token(s) {found}: pass allowed_special={{...}} to encode "
                "them as special tokens, or encode_ordinary() to treat them as text."
            )
        if not allowed:
            return self.encode_ordinary(text)
        splitter = (
            "(" + "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
        )
        ids = []
        for i, part in enumerate(regex.split(splitter, text)):
            ids.extend([self.special_tokens[part]] if i % 2 else self.encode_ordinary(part))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        specials = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        out = []
        for i in ids:
            i = int(i)
            if i in self.decoder:
                out.append(self.decoder[i])
            elif i in specials:
                out.append(specials[i])
            else:
                raise ValueError(
                    f"token id {i} is not in this tokenizer's vocabulary (0..{self.n_vocab - 1})"
                )
        return b"".join(out)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; bytes that are not valid UTF-8 on their own become U+FFFD, like tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write the tokenizer as JSON (ranks as base64, as in tiktoken's files); atomic."""
        path = Path(path)
        state = {
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "ranks": [
                [base64.b64encode(b).decode("ascii"), i]
                for b, i in sorted(self.ranks.items(), key=lambda x: x[1])
            ],
            "merges": self.merges,
        }
        write_text(path, json.dumps(state))

    @classmethod
    def load(cls, path: str | Path) -> ByteBPE:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
        ranks = {base64.b64decode(b): i for b, i in state["ranks"]}
        tokenizer = cls(ranks, state["pattern"], state["special_tokens"])
        tokenizer.merges = [tuple(m) for m in state.get("merges", [])]
        return tokenizer

    def __repr__(self) -> str:
        return f"ByteBPE(n_vocab={self.n_vocab}, special_tokens={sorted(self.special_tokens)})"
