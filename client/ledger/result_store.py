"""A content-addressed, size-capped store of result files exactly as downloaded.

A reused result must be bit-identical to the paid one, so files are kept as
their original bytes under their SHA-256: ``<folder>/ab/<digest>.<ext>``.
The store is a cache, never a reason for a run to fail: a full disk, an
unwritable folder or any other OS error is logged once and ``put`` returns
None, and the run goes on with the images it already holds.

- Writes are atomic (temp file in the same folder, then ``os.replace``), so a
  kill at any moment leaves no half file under a digest name; stale temp
  files are swept later. Files are not fsynced: a power cut may leave a
  damaged file, which the hash check on read finds and deletes.
- Reads verify the hash; a file that does not match is deleted and reported
  missing, and the caller collects the job again (status and downloads are free).
- Bounded by ``max_bytes``: after each new file, least recently used files
  go first (a read counts as a use and refreshes the file's time).
- Safe for several processes at once: names are content, writes are atomic, and
  a file evicted by another process between ``has`` and ``get`` is just missing.

Calls block on disk I/O; call them from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from ..formats import FORMATS, image_digest, is_digest, sniff

log = logging.getLogger("runcomfy.store")

DEFAULT_MAX_BYTES = 2 * 1024**3
_OTHER_EXTENSION = "bin"
_ALL_EXTENSIONS = (*(f.extension for f in FORMATS), _OTHER_EXTENSION)
_STORED_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z]+$")
_TEMP_PREFIX = ".tmp-"
# A temp file this old belongs to a writer that died; a live write takes well under a second.
_STALE_TEMP_SECONDS = 3600


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte to ``fd`` (the one place file data is written; tests fail it on purpose)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise ValueError(f"{digest!r} is not a lowercase hex SHA-256 digest")


class ResultStore:
    """Result files by content digest, under ``folder``, using at most about ``max_bytes``.

    ``max_bytes <= 0`` turns the store off: nothing is kept, nothing is found.
    """

    def __init__(self, folder: Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ public API

    def put(self, data: bytes) -> str | None:
        """Keep ``data``; return its digest, or None if it could not be kept (already logged)."""
        if self.max_bytes <= 0:
            return None
        if len(data) > self.max_bytes:
            self._warn_once(
                "too-big",
                "A %d-byte result is larger than the result store's cap of %d bytes; it is not kept",
                len(data),
                self.max_bytes,
            )
            return None
        digest = image_digest(data)
        kind = sniff(data)
        extension = kind.extension if kind else _OTHER_EXTENSION
        target = self._shard(digest) / f"{digest}.{extension}"
        try:
            if self._same_size_exists(target, len(data)):
                self._touch(target)
                return digest
            target.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomically(target, data)
            self._touch(target)
            self._evict(keep=target)
        except OSError as exc:
            self._warn_os_error("write", exc)
            return None
        self._warned.discard("write")  # a later failure (e.g. disk full again) is news again
        return digest

    def get(self, digest: str) -> bytes | None:
        """The stored bytes for ``digest``, verified, or None if missing or damaged."""
        _check_digest(digest)
        path = self._find(digest)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # evicted by another process meanwhile
            return None
        except OSError as exc:
            self._warn_os_error("read", exc)
            return None
        if image_digest(data) != digest:
            log.warning("Stored result %s was damaged; deleted it, the job's files will be collected again", path)
            self._unlink(path)
            return None
        self._touch(path)
        return data

    def has(self, digest: str) -> bool:
        """Whether a file for ``digest`` is present (not hash-checked: ``get`` does that)."""
        _check_digest(digest)
        return self._find(digest) is not None

    # ------------------------------------------------------------ internals

    def _shard(self, digest: str) -> Path:
        return self.folder / digest[:2]

    def _find(self, digest: str) -> Path | None:
        if self.max_bytes <= 0:
            return None
        shard = self._shard(digest)
        for extension in _ALL_EXTENSIONS:
            path = shard / f"{digest}.{extension}"
            if path.is_file():
                return path
        return None

    @staticmethod
    def _same_size_exists(path: Path, size: int) -> bool:
        try:
            return path.stat().st_size == size
        except FileNotFoundError:
            return False

    @staticmethod
    def _write_atomically(target: Path, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    @staticmethod
    def _touch(path: Path) -> None:
        """Mark ``path`` as just used, with a fine clock (file systems' own stamps are coarse)."""
        now = time.time_ns()
        with contextlib.suppress(OSError):
            os.utime(path, ns=(now, now))

    @staticmethod
    def _unlink(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()

    def _evict(self, *, keep: Path) -> None:
        """Delete least recently used files until the store fits its cap; sweep dead temp files."""
        files: list[tuple[int, str, int, Path]] = []
        total = 0
        stale_before = time.time() - _STALE_TEMP_SECONDS
        for shard in _scan(self.folder):
            if not shard.is_dir(follow_symlinks=False) or len(shard.name) != 2:
                continue
            for entry in _scan(Path(shard.path)):
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.name.startswith(_TEMP_PREFIX):
                    if info.st_mtime < stale_before:
                        self._unlink(Path(entry.path))
                    continue
                if _STORED_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                    files.append((info.st_mtime_ns, entry.name, info.st_size, Path(entry.path)))
                    total += info.st_size
        if total <= self.max_bytes:
            return
        files.sort()
        for _, _, size, path in files:
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            self._unlink(path)
            total -= size

    def _warn_os_error(self, kind: str, exc: OSError) -> None:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else f"{type(exc).__name__}: {exc.strerror or exc}"
        self._warn_once(
            kind,
            "Cannot %s the result store at %s (%s); results are still returned but not kept for reuse",
            kind,
            self.folder,
            reason,
        )

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        with self._lock:
            first = kind not in self._warned
            self._warned.add(kind)
        log.log(logging.WARNING if first else logging.DEBUG, message, *args)


def _scan(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:
        return []

