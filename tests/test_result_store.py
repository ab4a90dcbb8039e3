"""The result store: bit-identical files by digest, bounded, and never a reason to fail a run."""

from __future__ import annotations

import errno
import hashlib
import logging
import multiprocessing
import os
import signal

import pytest

from packloader import pack_import

result_store = pack_import("client.ledger.result_store")
ResultStore = result_store.ResultStore

PNG = b"\x89PNG\r\n\x1a\n" + b"png body " * 100
STORE_LOG = "runcomfy.store"
fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == STORE_LOG and r.levelno >= logging.WARNING]


def _stored_files(folder) -> list:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_put_then_get_gives_the_same_bytes_under_their_digest(tmp_path):
    store = ResultStore(tmp_path / "results")
    digest = store.put(PNG)
    assert digest == hashlib.sha256(PNG).hexdigest()
    assert (tmp_path / "results" / digest[:2] / f"{digest}.png").is_file()
    assert store.has(digest)
    assert store.get(digest) == PNG
    other = store.put(b"not an image")
    assert (tmp_path / "results" / other[:2] / f"{other}.bin").is_file()


def test_the_same_content_is_kept_once(tmp_path):
    store = ResultStore(tmp_path)
    assert store.put(PNG) == store.put(bytes(PNG))
    assert len(_stored_files(tmp_path)) == 1


def test_unknown_digest_is_missing_and_a_malformed_one_is_refused(tmp_path):
    store = ResultStore(tmp_path)
    assert store.get("0" * 64) is None and not store.has("0" * 64)
    with pytest.raises(ValueError, match="not a lowercase hex SHA-256"):
        store.get("../../etc/passwd")


def test_a_damaged_file_is_deleted_and_reported_missing(tmp_path, caplog):
    store = ResultStore(tmp_path)
    digest = store.put(PNG)
    path = tmp_path / digest[:2] / f"{digest}.png"
    path.write_bytes(PNG[:-3] + b"xyz")
    assert store.get(digest) is None
    assert not path.exists() and not store.has(digest)
    assert any("damaged" in message for message in _warnings(caplog))


def test_least_recently_used_files_leave_first(tmp_path):
    blobs = [bytes([n]) * 1000 for n in range(4)]
    store = ResultStore(tmp_path, max_bytes=3000)
    a, b, c = (store.put(blob) for blob in blobs[:3])
    assert store.get(a) == blobs[0]  # a read counts as a use: b is now the oldest
    d = store.put(blobs[3])
    assert [store.has(x) for x in (a, b, c, d)] == [True, False, True, True]
    e = store.put(bytes([9]) * 1500)  # needs two files' room: c, then a
    assert [store.has(x) for x in (a, c, d, e)] == [False, False, True, True]
    assert sum(p.stat().st_size for p in _stored_files(tmp_path)) <= 3000


def test_a_file_larger_than_the_cap_is_not_kept(tmp_path, caplog):
    store = ResultStore(tmp_path, max_bytes=100)
    assert store.put(b"x" * 101) is None
    assert len(_warnings(caplog)) == 1 and _stored_files(tmp_path) == []


def test_a_zero_cap_turns_the_store_off_quietly(tmp_path, caplog):
    store = ResultStore(tmp_path / "off", max_bytes=0)
    assert store.put(PNG) is None
    assert not store.has(hashlib.sha256(PNG).hexdigest())
    assert _warnings(caplog) == [] and not (tmp_path / "off").exists()


def test_full_disk_warns_once_and_leaves_no_file(tmp_path, monkeypatch, caplog):
    """ENOSPC is simulated by making the store's single write call fail, as a full disk would."""
    store = ResultStore(tmp_path)

    def disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(result_store, "_write_all", disk_full)
    assert store.put(PNG) is None
    assert store.put(PNG + b"2") is None
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "disk is full" in warnings[0]
    assert _stored_files(tmp_path) == []  # neither a half file under a digest name nor a temp file
    monkeypatch.undo()
    assert store.get(store.put(PNG)) == PNG


def test_an_unwritable_folder_warns_once_and_finds_nothing(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    store = ResultStore(blocker / "results")  # its parent is a regular file: every write fails
    assert store.put(PNG) is None and store.put(b"other") is None
    assert store.get(hashlib.sha256(PNG).hexdigest()) is None
    assert len(_warnings(caplog)) == 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through chmod")
def test_a_read_only_folder_warns_once(tmp_path, caplog):
    folder = tmp_path / "results"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        store = ResultStore(folder)
        assert store.put(PNG) is None and store.put(b"other") is None
        assert len(_warnings(caplog)) == 1
    finally:
        folder.chmod(0o700)


def test_dead_writers_temp_files_are_swept(tmp_path):
    store = ResultStore(tmp_path)
    shard = tmp_path / "ab"
    shard.mkdir()
    stale, fresh = shard / ".tmp-dead", shard / ".tmp-live"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (0, 0))
    store.put(PNG)
    assert not stale.exists() and fresh.exists()


def _put_forever(folder: str, ready) -> None:
    store = ResultStore(folder, max_bytes=200_000)
    count = 0
    while True:
        store.put(os.urandom(5000 + count % 7000))
        count += 1
        if count == 20:
            ready.send(True)


@fork
def test_kill_9_while_writing_leaves_only_whole_files(tmp_path):
    context = multiprocessing.get_context("fork")
    for _ in range(3):
        ready, child_end = context.Pipe(duplex=False)
        child = context.Process(target=_put_forever, args=(str(tmp_path), child_end))
        child.start()
        assert ready.poll(30), "the writer never got going"
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
    store = ResultStore(tmp_path, max_bytes=200_000)
    kept = [p for p in _stored_files(tmp_path) if not p.name.startswith(".tmp-")]
    assert len(kept) >= 10  # the cap holds at least 16 of these files
    for path in kept:
        digest = path.name.split(".")[0]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert store.get(digest) is not None
