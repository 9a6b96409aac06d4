"""gptbook.files: atomic writes with unique temporary names, and what a failed write leaves."""

from __future__ import annotations

import errno
import stat
import threading

import pytest

from gptbook import files


def test_atomic_write_creates_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    files.write_text(path, "one")
    files.write_text(path, "two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"], "no temporary file is left"
    assert stat.S_IMODE(path.stat().st_mode) == files.FILE_MODE


def test_failed_write_keeps_the_old_file_and_names_the_fix(tmp_path):
    path = files.write_text(tmp_path / "a.txt", "old")

    def full_disk(tmp):
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"could not write .*a\.txt.*free some disk space") as err:
        files.atomic_write(path, full_disk)
    assert err.value.errno == errno.ENOSPC
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_interrupted_write_leaves_no_temporary_file(tmp_path):
    def interrupted(tmp):
        tmp.write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(tmp_path / "a.txt", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_never_collide_and_readers_see_whole_files(tmp_path):
    path = tmp_path / "shared.txt"
    contents = [str(i) * 50_000 for i in range(8)]
    errors, seen = [], set()

    def writer(text):
        try:
            for _ in range(20):
                files.write_text(path, text)
        except Exception as err:  # noqa: BLE001 — collected and asserted below
            errors.append(err)

    def reader():
        for _ in range(200):
            if path.exists():
                seen.add(path.read_text())

    threads = [threading.Thread(target=writer, args=(t,)) for t in contents]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert seen <= set(contents), "a reader saw a partial file"
    assert path.read_text() in contents


def test_sha256_of(tmp_path):
    path = files.write_bytes(tmp_path / "b", b"abc")
    assert (
        files.sha256_of(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "ckpt"
    with files.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
        assert not target.exists(), "the folder appears only when it is complete"
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with files.atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("the writer failed")
    assert (target / "a.txt").read_text() == "one", "a failed write keeps the old folder"
    with files.atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"], "a new folder replaces the old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"], "no temporary folder is left"
    assert stat.S_IMODE(target.stat().st_mode) == files.DIR_MODE


def test_a_lock_makes_its_folder(tmp_path):
    with files.locked(tmp_path / "new" / "entry"):
        assert (tmp_path / "new" / "entry.lock").exists()


def test_a_lock_that_cannot_be_made_says_where_and_what_to_do(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError, match=r"cannot write in .*file.*GPTBOOK_CACHE"):
        with files.locked(tmp_path / "file" / "entry"):
            pass
