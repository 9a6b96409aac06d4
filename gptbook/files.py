"""Files written whole or not at all, their hashes, and locks that let processes share a cache.

Introduced in chapter 0, with the data cache. Every file gptbook writes (assets, token files,
tokenizers, models, checkpoints) goes through :func:`atomic_write`: the content goes to a
temporary file with a unique name beside the target, is flushed to the disk, and only then
takes the target's name in one atomic rename. A reader sees the old file or the whole new
one, never a part; a failed write (a full disk, no permission) leaves the old file as it was;
several processes writing the same path never collide.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl  # POSIX file locks
except ImportError:  # Windows: no locks; atomic writes still keep readers safe
    fcntl = None

#: Files are readable by everyone (a shared cache), writable by their owner; folders likewise.
FILE_MODE, DIR_MODE = 0o644, 0o755
_CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in chunks: any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_failed(path: Path, err: OSError) -> OSError:
    """The error to raise when writing ``path`` failed: what happened, and what to do."""
    fix = {
        errno.ENOSPC: "free some disk space, or write somewhere else",
        errno.EDQUOT: "free some of your disk quota, or write somewhere else",
        errno.EACCES: "choose a folder you may write to",
        errno.EROFS: "the file system is read-only: choose a folder you may write to",
    }.get(err.errno, "check the folder and try again")
    message = (
        f"could not write {path}: {err.strerror or err}; any previous file is unchanged ({fix})"
    )
    return OSError(err.errno, message)


def wrapped_os_error(err: BaseException) -> OSError | None:
    """The OSError inside ``err``, for libraries that report one in their own exception type
    (safetensors raises ``SafetensorError: No space left on device``); None if there is none."""
    if isinstance(err, OSError):
        return err
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
        if os.strerror(code) in str(err):
            return OSError(code, os.strerror(code))
    return None


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create or replace ``path`` atomically: ``write(tmp)`` fills a temporary file, which then
    becomes ``path``. Returns ``path``.

    ``write`` receives the temporary file's path (for libraries that write to a path, such as
    safetensors). On any failure the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_failed(path, err) from err
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp (and safetensors) make 0600 files
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if (os_error := wrapped_os_error(err)) is not None:
            raise write_failed(path, os_error) from err
        raise
    fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a folder whole, then put it at ``path`` in one rename::

        with atomic_dir(run / "step-000100") as tmp:
            (tmp / "a.json").write_text(...)

    The body fills a temporary folder beside ``path``; when it ends without error, every file
    is flushed to the disk and the folder takes the name ``path``. If it fails, the temporary
    folder is removed. An existing ``path`` is replaced: it is renamed aside first and deleted
    after, so a crash at that instant leaves ``path`` missing rather than half-written (writers
    that must never lose the old folder, like the Trainer, write a new name each time). Several
    writers of one path at once each finish; the last one's folder stays.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise write_failed(path, err) from err
    old = None
    try:
        yield tmp
        for file in tmp.rglob("*"):
            os.chmod(file, DIR_MODE if file.is_dir() else FILE_MODE)
            if file.is_file():
                with open(file, "rb+") as f:
                    os.fsync(f.fileno())
        os.chmod(tmp, DIR_MODE)
        fsync_dir(tmp)
        olds = _swap_in(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if (os_error := wrapped_os_error(err)) is not None:
            raise write_failed(path, os_error) from err
        raise
    fsync_dir(path.parent)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


#: How often :func:`atomic_dir` moves a folder aside and retries when another writer of the
#: same path put its folder there in between.
SWAP_TRIES = 20


def _swap_in(tmp: Path, path: Path) -> list[Path]:
    """Rename the folder ``tmp`` to ``path``, moving any folder there aside first; returns the
    folders moved aside, to delete. Two processes writing one path at once both succeed, the
    last one's folder stays: if the other's lands between the move and the rename, move again."""
    olds = []
    for attempt in range(SWAP_TRIES):
        old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
        with contextlib.suppress(FileNotFoundError):  # nothing there, or another moved it
            os.rename(path, old)
            olds.append(old)
        try:
            os.rename(tmp, path)
            return olds
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == SWAP_TRIES - 1:
                raise
    return olds


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


class DamagedFile(ValueError):
    """A file is missing, cut short or altered: it is not what its manifest recorded."""


#: A manifest's hash of its own content (every other field): any change to it is detected.
SELF_HASH = "manifest_sha256"


def _content_hash(entry: dict) -> str:
    """The SHA-256 of a manifest's fields but its own hash, in one canonical JSON form."""
    fields = {k: v for k, v in entry.items() if k != SELF_HASH}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def write_manifest(manifest: str | Path, files: Iterable[str | Path], **fields: Any) -> dict:
    """Record the SHA-256 and size of ``files`` (which lie beside it) and ``fields`` in the JSON
    file ``manifest``, atomically, with the hash of its own content. Written after the files,
    it vouches that they are complete; its own hash vouches for it."""
    manifest = Path(manifest)
    names = [Path(f).name for f in files]
    entry = {**fields, "files": {name: sha256_of(manifest.parent / name) for name in names}}
    entry["bytes"] = {name: (manifest.parent / name).stat().st_size for name in names}
    entry[SELF_HASH] = _content_hash(entry)
    write_text(manifest, json.dumps(entry, indent=1))
    return entry


def read_manifest(
    manifest: str | Path, only: Iterable[str] | None = None, fix: str = "write it again"
) -> dict:
    """The fields of ``manifest``, once every file it lists (or those in ``only``) is checked
    against its SHA-256. Raises :class:`DamagedFile` naming the first file that is not right,
    with ``fix``, what to do about it."""
    manifest = Path(manifest)
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))
        recorded, sizes = entry["files"], entry.get("bytes", {})
        if not isinstance(recorded, dict) or not isinstance(sizes, dict):
            raise TypeError("its files are not a mapping")
    except FileNotFoundError:
        message = f"{manifest} is missing, so the files it vouches for may be incomplete; {fix}"
        raise DamagedFile(message) from None
    except (ValueError, KeyError, TypeError, OSError, AttributeError) as err:
        raise DamagedFile(f"{manifest} is damaged ({err}); {fix}") from None
    if SELF_HASH not in entry:  # an older gptbook's manifest, or one altered by hand
        raise DamagedFile(f"{manifest} has no hash of its own ({SELF_HASH}); {fix}")
    if entry[SELF_HASH] != _content_hash(entry):
        raise DamagedFile(f"{manifest} is damaged: its content differs from its own hash; {fix}")
    for name in recorded:  # a plain file name beside the manifest, never ../x or /x
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
            raise DamagedFile(f"{manifest} names {name!r}, which is not a file beside it; {fix}")
    checked = list(recorded if only is None else only)
    for name in checked:  # every size before any hash: a huge file is refused at once
        _check_size(manifest, entry, name, fix)
    for name in checked:
        if sha256_of(manifest.parent / name) != recorded[name]:
            raise _altered(manifest, name, fix)
    return entry


def _check_size(manifest: Path, entry: dict, name: str, fix: str) -> int:
    """The size of the file ``name`` beside ``manifest``, once it is the one recorded."""
    file = manifest.parent / name
    try:
        if name not in entry["files"]:
            raise FileNotFoundError(name)
        size = file.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        raise DamagedFile(f"{file} is missing; {fix}") from None
    recorded = entry.get("bytes", {}).get(name, size)
    if size != recorded:
        raise DamagedFile(
            f"{file} is damaged: it holds {size:,} bytes, not the {recorded:,} recorded in "
            f"{manifest.name}; {fix}"
        )
    return size


def _altered(manifest: Path, name: str, fix: str) -> DamagedFile:
    return DamagedFile(
        f"{manifest.parent / name} is damaged: its SHA-256 differs from the one in "
        f"{manifest.name}; {fix}"
    )


#: How often :func:`read_files` reads a folder again when it changed while being read, and the
#: pause (seconds) before each new try: long enough for another process's swap to finish.
READ_TRIES, READ_PAUSE = 8, 0.05


def read_files(manifest: str | Path, fix: str = "write it again") -> tuple[dict, dict[str, bytes]]:
    """The fields of ``manifest`` and the bytes of every file it lists, each checked against its
    SHA-256 *as read*. A folder another process replaces meanwhile (:func:`atomic_dir`) can never
    give one file of the old folder and one of the new: the bytes would not match the manifest,
    so the folder is read again, up to :data:`READ_TRIES` times, before :class:`DamagedFile`."""
    manifest = Path(manifest)
    for attempt in range(READ_TRIES):
        try:
            entry = read_manifest(manifest, only=[], fix=fix)  # its own hash and names only
            blobs = {}
            for name, digest in entry["files"].items():
                _check_size(manifest, entry, name, fix)
                try:
                    blobs[name] = (manifest.parent / name).read_bytes()
                except (FileNotFoundError, NotADirectoryError):
                    raise DamagedFile(f"{manifest.parent / name} is missing; {fix}") from None
                if hashlib.sha256(blobs[name]).hexdigest() != digest:
                    raise _altered(manifest, name, fix)
            return entry, blobs
        except DamagedFile:
            if attempt == READ_TRIES - 1:
                raise
            time.sleep(READ_PAUSE)
    raise AssertionError("unreachable")


def _lock_file(target: Path, mode: str):
    """``target.lock``, opened (its folder made), or an OSError that names the fix."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return open(target.with_name(target.name + ".lock"), mode)  # closed by the caller's with
    except OSError as err:
        raise OSError(
            err.errno,
            f"cannot write in {target.parent} ({err.strerror or err}), so {target.name} cannot "
            "be made here: choose a folder you may write to (the book's cache: GPTBOOK_CACHE)",
        ) from err


@contextlib.contextmanager
def locked(target: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``target`` (a file ``target.lock`` beside it; POSIX).

    Where locks are not available (Windows), atomic writes still keep readers safe.
    """
    if fcntl is None:
        yield
        return
    with _lock_file(Path(target), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class InUse(RuntimeError):
    """Another process holds the lock of :func:`claimed`."""


@contextlib.contextmanager
def claimed(target: str | Path, fix: str) -> Iterator[None]:
    """Hold ``target.lock`` for this process, or fail at once (:class:`InUse`) naming the process
    that holds it and ``fix``, what to do instead. Unlike :func:`locked`, never waits: a second
    training run in one folder is a mistake to report, not a turn to wait for."""
    if fcntl is None:
        yield
        return
    with _lock_file(Path(target), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise InUse(f"{target} is in use by another process (pid {holder}): {fix}") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
