"""Tokenizers: text to integer ids and back.

Introduced in chapter 0 (characters, and GPT-2's tokenizer as a tool); chapter 2
builds byte-level BPE from scratch in :mod:`gptbook.bpe`.

- :class:`CharTokenizer`: one id per character, the vocabulary of a given text.
- :func:`gpt2_tokenizer`: GPT-2's byte-level BPE as a ``tiktoken.Encoding`` with ids
  identical to ``tiktoken.get_encoding("gpt2")``; its ranks file is an asset of the
  manifest, so it works offline once fetched (or from a package index when
  tiktoken's own download is out of reach).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .checks import token_ids

if TYPE_CHECKING:
    import tiktoken

#: GPT-2's pre-tokenisation regex, as published: contractions, letters, numbers,
#: other symbols (each optionally after one space), then runs of whitespace. A run of
#: digits stays one piece (later encodings such as cl100k split it into 1-3 digits).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
#: GPT-2's one special token, which separates documents.
END_OF_TEXT = "<|endoftext|>"

__all__ = [
    "END_OF_TEXT",
    "GPT2_PATTERN",
    "CharTokenizer",
    "gpt2_tokenizer",
    "read_tiktoken_ranks",
]


class CharTokenizer:
    """One token per character; ids are positions in the sorted vocabulary (chapter 0)."""

    def __init__(self, vocab: Sequence[str]):
        chars = list(vocab)
        if any(len(c) != 1 for c in chars):
            raise ValueError("every vocabulary entry must be a single character")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary has repeated characters")
        self.itos: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose vocabulary is the sorted set of characters in ``text``."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        """The number of characters, which is the number of ids."""
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """The id of each character of ``text``; unknown characters are refused, named."""
        if not isinstance(text, str):
            raise ValueError(f"encode takes a string, got {type(text).__name__} {text!r}")
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self.stoi})
            raise ValueError(
                f"characters not in the vocabulary: {unknown!r}; build the tokenizer from a "
                "text that contains them (CharTokenizer.from_text)."
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``."""
        return "".join(self.itos[i] for i in token_ids(ids, self.vocab_size))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def read_tiktoken_ranks(path: str | Path) -> dict[bytes, int]:
    """Read a ``.tiktoken`` file: one ``base64(token) rank`` pair per line."""
    ranks = {}
    for line in Path(path).read_text(encoding="ascii").splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _tiktoken_pattern() -> str:
    """tiktoken's own spelling of :data:`GPT2_PATTERN` (same splits, faster), if it has one."""
    try:
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError:
        return GPT2_PATTERN
    return r50k_pat_str


@functools.lru_cache(maxsize=1)
def gpt2_tokenizer() -> tiktoken.Encoding:
    """GPT-2's tokenizer (50,257 ids; ``<|endoftext|>`` is 50256), as a ``tiktoken.Encoding``."""
    import tiktoken

    from .assets import fetch

    ranks = read_tiktoken_ranks(fetch("gpt2-bpe", quiet=True))
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=_tiktoken_pattern(),
        mergeable_ranks=ranks,
        special_tokens={END_OF_TEXT: len(ranks)},
        explicit_n_vocab=len(ranks) + 1,
    )
