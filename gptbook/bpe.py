"""Byte-level byte-pair encoding (BPE), from scratch: how GPT-2 and GPT-3 tokenise.

Introduced in chapter 2. Text is UTF-8 bytes, so any string is a sequence over 256
symbols and nothing is ever unknown. Training repeatedly finds the most frequent
adjacent pair of tokens (:func:`best_pair`) and merges it into a new token; the vocabulary
is the 256 bytes, one token per merge, then the special tokens. Before counting, a regular
expression (the *pre-tokeniser*) splits text into words, numbers, punctuation and spaces,
so that merges never cross those boundaries (no token for "dog." or "dog!").

A tokenizer is a table ``ranks``: token bytes -> id, where a lower id was merged
earlier. Encoding a piece of text starts from its single bytes and keeps merging the
adjacent pair whose concatenation has the lowest rank (:func:`bpe_parts`): exactly
tiktoken's algorithm, so :meth:`ByteBPE.from_tiktoken` reproduces GPT-2's ids.
GPT-2's own file format (``vocab.json`` + ``merges.txt``) is in :mod:`gptbook.bpe_files`.
"""

from __future__ import annotations

import functools
import heapq
import warnings
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import regex

from .checks import token_ids, whole
from .tokenizers import END_OF_TEXT, GPT2_PATTERN

__all__ = ["ByteBPE", "best_pair", "bpe_parts", "merge", "pair_counts", "valid_text"]
__all__ += ["END_OF_TEXT", "GPT2_PATTERN"]

Pair = tuple[int, int]
_REVERSED = bytes(range(255, -1, -1))  # byte b -> 255 - b
_HELD_BACK = 3  # encode_iterable: pre-tokens kept until more text shows they are final


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


def best_pair(counts: Mapping[Pair, int], vocab: Mapping[int, bytes]) -> Pair:
    """The pair to merge next: the most frequent; a tie goes to the greater pair of byte strings.

    Chapter 2. Comparing ``(count, vocab[a], vocab[b])`` makes training independent of
    the order in which pairs were counted, as in widely used reference trainers.
    """
    return max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))


def _reverse_key(token: bytes) -> str:
    """A string that sorts byte strings in reverse order, for a min-heap: 255 - b per byte,
    then a terminator above every byte (so that a prefix sorts after the longer string)."""
    return token.translate(_REVERSED).decode("latin-1") + "\u0100"


def _learn_merges(words: Counter, n_merges: int) -> tuple[list, list[bytes], list[int]]:
    """The merges learned from ``words`` (bytes -> frequency), the vocabulary, and the tokens
    left after each merge.

    Chapter 2. The same merges as recounting with :func:`pair_counts` and choosing with
    :func:`best_pair` every time, but incremental: a merge only revisits the words that contain
    the pair, and a heap (with entries dropped lazily once their count is stale) finds the best.
    """
    tokens = [list(w) for w in words]  # word index -> its current tokens
    freqs = list(words.values())
    counts: Counter = Counter()  # pair -> occurrences in the text
    where: dict[Pair, set[int]] = {}  # pair -> indices of the words that contain it
    for w, word in enumerate(tokens):
        for pair in zip(word, word[1:]):
            counts[pair] += freqs[w]
            where.setdefault(pair, set()).add(w)
    vocab = [bytes([i]) for i in range(256)]
    key = [_reverse_key(b) for b in vocab]
    heap = [(-c, key[a], key[b], a, b) for (a, b), c in counts.items()]
    heapq.heapify(heap)  # the top is best_pair(counts, vocab), once stale entries are dropped
    merges, history = [], [sum(len(w) * f for w, f in zip(tokens, freqs))]
    while len(merges) < n_merges and heap:
        neg_count, _, _, a, b = heapq.heappop(heap)
        if counts.get((a, b)) != -neg_count:
            continue  # stale: this pair's count changed after the entry was pushed
        new_id = len(vocab)
        vocab.append(vocab[a] + vocab[b])
        key.append(_reverse_key(vocab[-1]))
        merges.append((a, b, new_id))
        delta: Counter = Counter()  # pair -> change of its count
        saved = 0  # tokens saved: the count, less overlaps ("aaa" has 2 "aa" but one merge)
        for w in where.pop((a, b)):  # (a word whose pair has gone since is merged to itself)
            old, new = tokens[w], merge(tokens[w], (a, b), new_id)
            saved += (len(old) - len(new)) * freqs[w]
            for p in zip(old, old[1:]):
                delta[p] -= freqs[w]
            for p in zip(new, new[1:]):
                delta[p] += freqs[w]
                where.setdefault(p, set()).add(w)
            tokens[w] = new
        history.append(history[-1] - saved)
        for p, d in delta.items():
            if d:
                counts[p] += d
                if counts[p]:
                    heapq.heappush(heap, (-counts[p], key[p[0]], key[p[1]], *p))
                else:
                    del counts[p]  # as pair_counts would: only pairs that occur
    return merges, vocab, history


def bpe_parts(piece: bytes, ranks: Mapping[bytes, int], max_rank: int | None = None) -> list[bytes]:
    """Split one pre-token into tokens: merge the adjacent pair of lowest rank until none is left.

    Chapter 2. Ties go to the leftmost pair, as in tiktoken. A heap holds the candidate
    merges and a linked list the parts, so a merge costs O(log n), not a rescan of the
    piece: O(n log n) for a piece of n bytes. Ranks ``>= max_rank``, if given, are ignored.
    """

    def rank(start: int, stop: int) -> int | None:
        r = ranks.get(piece[start:stop])
        return r if r is None or max_rank is None or r < max_rank else None

    n = len(piece)
    end = array("q", range(1, n + 1))  # end[i]: where the part starting at byte i ends (0: gone)
    before = array("q", range(-1, n - 1))  # before[i]: where the part before it starts
    # A candidate merge, rank r of the parts starting at i and end[i], is the one number
    # r * n + i: it sorts by rank then leftmost first, as (r, i) would, in a third of the memory.
    heap = [r * n + i for i in range(n - 1) if (r := rank(i, i + 2)) is not None]
    heapq.heapify(heap)
    while heap:
        r, i = divmod(heapq.heappop(heap), n)
        j = end[i]  # the right part starts here
        if not 0 < j < n or rank(i, end[j]) != r:
            continue  # stale: one of the two parts has changed since
        end[i], end[j] = end[j], 0  # the two parts become one
        if end[i] < n:
            before[end[i]] = i
            if (r := rank(i, end[end[i]])) is not None:
                heapq.heappush(heap, r * n + i)
        if before[i] >= 0 and (r := rank(before[i], end[i])) is not None:
            heapq.heappush(heap, r * n + before[i])
    parts, i = [], 0
    while i < n:
        parts.append(piece[i : end[i]])
        i = end[i]
    return parts


def valid_text(text: str) -> str:
    """``text`` with lone surrogates (such as "\\ud800") replaced by U+FFFD, as tiktoken does.

    Chapter 2. Surrogates are the only code points UTF-8 cannot encode; a pair of them
    written as two code points becomes the one character it stands for.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


@functools.lru_cache(maxsize=64)
def _special_splitter(tokens: frozenset[str]) -> regex.Pattern:
    """A regex that finds these special tokens, the longest first where several match."""
    return regex.compile("|".join(regex.escape(s) for s in sorted(tokens, key=len, reverse=True)))


class ByteBPE:
    """A byte-level BPE tokenizer: ``ranks`` (bytes -> id), a pre-tokeniser, special tokens.

    Chapter 2. Encoded pieces are cached, at most ``cache_size`` of them (the cache starts
    afresh when full), and only pieces of up to 256 characters.
    """

    def __init__(
        self,
        ranks: dict[bytes, int],
        pattern: str = GPT2_PATTERN,
        special_tokens: dict[str, int] | None = None,
        cache_size: int = 100_000,
    ):
        if len({len(ranks), len(set(ranks.values()))}) != 1:
            raise ValueError("ranks must give every token a different id")
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise ValueError(f"ranks must hold all 256 single bytes; missing {missing[:5]}")
        self.ranks, self.pattern = dict(ranks), pattern
        self.special_tokens = dict(special_tokens or {})
        if "" in self.special_tokens:
            raise ValueError("a special token cannot be the empty string")
        self.decoder = {i: b for b, i in self.ranks.items()}
        clash = set(self.special_tokens.values()) & set(self.decoder)
        if clash:
            raise ValueError(f"special token ids {sorted(clash)} are already ordinary tokens")
        self._split = regex.compile(pattern)
        specials = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        self._bytes_of = {**self.decoder, **specials}  # id -> its bytes, for decode
        self._cache: dict[str, list[int]] = {}
        self.cache_size = cache_size
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
        special_tokens: Sequence[str] = (),
    ) -> ByteBPE:
        """Learn a vocabulary of ``vocab_size`` tokens from ``text``: the 256 bytes (ids 0..255),
        ``vocab_size - 256 - len(special_tokens)`` merges, then the special tokens, in order.

        The text is cut at the special tokens before pre-tokenisation, so no merge crosses
        or contains one. Pair counts are kept up to date as words change and ties go to
        the greater pair of byte strings (:func:`best_pair`). GPT-2: 256 + 50,000 + 1.
        """
        if isinstance(special_tokens, (str, Mapping)):
            raise ValueError(
                "train takes special_tokens as a list of strings, e.g. [END_OF_TEXT]; they get "
                "the last ids. To choose ids, pass a dict to ByteBPE(ranks, special_tokens=...)"
            )
        specials = list(special_tokens)
        if len(set(specials)) != len(specials) or "" in specials:
            raise ValueError(f"special tokens must be distinct, non-empty strings: {specials}")
        whole("vocab_size", vocab_size)
        if vocab_size < 256 + len(specials):
            raise ValueError(
                f"vocab_size must be ≥ 256 (the bytes) + {len(specials)} (the special tokens), "
                f"got {vocab_size}"
            )
        text = valid_text(text)
        parts = _special_splitter(frozenset(specials)).split(text) if specials else [text]
        split = regex.compile(pattern)
        words = Counter(w.encode("utf-8") for part in parts for w in split.findall(part))
        merges, vocab, history = _learn_merges(words, vocab_size - 256 - len(specials))
        if len(merges) < vocab_size - 256 - len(specials):
            warnings.warn(
                f"the text has only {len(merges)} merges to learn, not the "
                f"{vocab_size - 256 - len(specials)} vocab_size={vocab_size} asks for: the "
                f"vocabulary has {len(vocab) + len(specials)} tokens; train on more text",
                stacklevel=2,
            )
        ids = {s: len(vocab) + k for k, s in enumerate(specials)}  # right after the merges
        tokenizer = cls({b: i for i, b in enumerate(vocab)}, pattern, ids)
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
        """The number of ids, as tiktoken counts them: one more than the largest id in use."""
        return max([*self.decoder, *self.special_tokens.values()]) + 1

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, treating special tokens as plain text."""
        ids, cache = [], self._cache
        for piece in self._split.findall(valid_text(text)):
            if piece not in cache:
                b = piece.encode("utf-8")  # a whole token is taken as is, as tiktoken does
                parts = [b] if b in self.ranks else bpe_parts(b, self.ranks)
                piece_ids = [self.ranks[p] for p in parts]
                if len(piece) > 256:
                    ids.extend(piece_ids)
                    continue
                if len(cache) >= self.cache_size:
                    cache.clear()  # bounded memory: start afresh rather than grow
                cache[piece] = piece_ids
            ids.extend(cache[piece])
        return ids

    def _allowed(self, allowed_special: set[str] | str) -> frozenset[str]:
        """The special tokens to encode as such; refuses names this tokenizer does not have."""
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(
                f"unknown special tokens {sorted(unknown)}; "
                f"this tokenizer has {sorted(self.special_tokens)}"
            )
        return frozenset(allowed)

    def _refuse_disallowed(self, text: str, allowed: frozenset[str]) -> None:
        found = [s for s in self.special_tokens if s in text and s not in allowed]
        if found:
            raise ValueError(
                f"the text contains the special token(s) {found}: pass allowed_special={{...}} "
                "to encode them as special tokens, or encode_ordinary() to treat them as text."
            )

    def _encode_with(self, text: str, allowed: frozenset[str]) -> list[int]:
        """Ids of ``text`` with the ``allowed`` special tokens as single ids (longest first)."""
        if not allowed:
            return self.encode_ordinary(text)
        ids, start = [], 0
        for m in _special_splitter(allowed).finditer(text):
            ids += self.encode_ordinary(text[start : m.start()]) + [self.special_tokens[m[0]]]
            start = m.end()
        return ids + self.encode_ordinary(text[start:])

    def encode(self, text: str, allowed_special: set[str] | str = frozenset()) -> list[int]:
        """Token ids of ``text``. Special tokens in the text must be allowed explicitly."""
        allowed = self._allowed(allowed_special)
        self._refuse_disallowed(text, allowed)
        return self._encode_with(text, allowed)

    def encode_iterable(
        self, texts: Iterable[str], allowed_special: set[str] | str = frozenset()
    ) -> Iterator[int]:
        """Token ids of the concatenated ``texts`` (e.g. an open file, line by line), lazily.

        The same ids as :meth:`encode` on the whole text, in bounded memory: a chunk's text
        is encoded once more text can no longer change its ids. A pre-token or special token
        cut by a chunk boundary waits for the next chunk.
        """
        return self._encode_stream(iter(texts), self._allowed(allowed_special))

    def _encode_stream(self, texts: Iterator[str], allowed: frozenset[str]) -> Iterator[int]:
        pending, high, next_try = "", "", 0
        for chunk in texts:
            text = high + chunk  # a surrogate pair may be cut in two: hold a high surrogate
            high = text[-1:] if "\ud800" <= text[-1:] <= "\udbff" else ""
            pending += valid_text(text[: len(text) - len(high)])
            if len(pending) >= next_try:
                self._refuse_disallowed(pending, allowed)
                cut = self._final_prefix(pending, allowed)
                yield from self._encode_with(pending[:cut], allowed)
                pending = pending[cut:]
                next_try = 2 * len(pending)  # look again once the text has doubled: linear time
        pending += valid_text(high)
        self._refuse_disallowed(pending, allowed)
        yield from self._encode_with(pending, allowed)

    def _final_prefix(self, text: str, allowed: frozenset[str]) -> int:
        """The length of the longest start of ``text`` whose ids no continuation can change."""
        longest = max(map(len, self.special_tokens), default=1)
        stop = max(0, len(text) + 1 - longest)  # what follows may still begin a special token
        found = _special_splitter(allowed).finditer(text) if allowed else ()
        start = max((m.end() for m in found if m.start() < stop), default=0)  # ordinary text
        # A pre-token depends on at most a few characters after it ("x'l" is "x", "'", "l" but
        # "x'll" is "x", "'ll"), so one followed by three more pre-tokens is final.
        ends = [m.end() for m in self._split.finditer(text[start:stop])][:-_HELD_BACK]
        # Nor may the prefix end in whitespace: encoded alone, "\n\n" is one pre-token, but
        # before "by" it is two ("\n", "\n"): whitespace looks ahead at what follows it.
        final = [end for end in ends if not text[start + end - 1].isspace()]
        return start + final[-1] if final else start

    # ------------------------------------------------------------------ decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids``, special tokens as their UTF-8 text."""
        ids = token_ids(ids, self.n_vocab)
        missing = [i for i in ids if i not in self._bytes_of]  # a gap in the id range
        if missing:
            raise ValueError(f"token id {missing[0]} is not in this tokenizer's vocabulary")
        return b"".join(self._bytes_of[i] for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; bytes that are not valid UTF-8 become U+FFFD, like tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write the tokenizer as one JSON file, atomically (GPT-2's files: :mod:`.bpe_files`)."""
        from .bpe_files import save_json

        save_json(self, path)

    @classmethod
    def load(cls, path: str | Path) -> ByteBPE:
        """Read a file written by :meth:`save`; a damaged one raises a ValueError naming it."""
        from .bpe_files import load_json

        return load_json(path)

    def __repr__(self) -> str:
        return f"ByteBPE(n_vocab={self.n_vocab}, special_tokens={sorted(self.special_tokens)})"
