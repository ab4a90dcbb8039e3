"""The durable job journal: every paid job, so the same inputs never cost twice.

One SQLite file per user (see ``storage_paths``), one row per job, shared by
every ComfyUI process and the command line of that user. Before a submit,
``claim`` decides in one write transaction whether the run reuses a stored
result, resumes a job already paid for, or submits (leaving a placeholder so a
second process with the same inputs waits for it instead of paying again).

Durability. WAL mode, ``synchronous=NORMAL`` (a committed write survives a
killed process; only a power cut may lose the last ones), every write one
short transaction, a busy timeout of ``BUSY_TIMEOUT_SECONDS``. A kill at any
moment leaves either the whole write or none of it.

Never in the way. A journal file that SQLite calls corrupt or not a database
is renamed aside (``journal.sqlite3.corrupt-<UTC time>``) with one warning and
a fresh one is started; if the folder cannot be written, the journal turns into
a no-op with one warning (``available`` is then False): ``claim`` says SUBMIT,
records are dropped, lookups find nothing. Generation never stops because of it.

Entries are per account (``fingerprint.account_fingerprint``), never the token.
Every call blocks briefly on the disk: from async code use ``asyncio.to_thread``.
Make one ``Journal`` per process and share it between threads.

A run, in short::

    claim = journal.claim(fp, account, model_id=..., prompt=..., is_stored=store.has, stop=stop)
    REUSE  -> store.get(d) for d in claim.entry.files (any None: follow claim.request_id)
    RESUME -> follow claim.request_id (RunComfy 404/expired: record_state(EXPIRED), claim again)
    SUBMIT -> submit; record_submitted(claim, id) at once; refused: release(claim);
              answer lost: release(claim, maybe_sent=True)
    BUSY   -> do not submit; say another run of the same inputs is submitting
    OVER_LIMIT -> do not submit; the daily limit (claim(daily_limit=...)) would pass
    then record_state(id, QUEUED/RUNNING/COMPLETED/..., cost) as RunComfy reports it,
    and record_files(id, digests) once every result file is in the store.

Entry states (``JobState``)::

    submitting --record_submitted--> submitted -> queued -> running -> completed
        |                                |           |         |          |
        |                                +-----------+---------+--> failed / cancelled / expired
        |                                                                 (completed -> expired too)
        +-- release -------------------------------> row deleted (nothing was sent)
        +-- release(maybe_sent) / owner dead / lease over --> abandoned
            (a late record_submitted still makes it submitted: the job exists)

Duplicate submits. For one account and one request fingerprint, all processes
sharing this journal send at most one submit, except when:

- the process holding the placeholder died (or its submit answer was lost)
  between sending the submit and recording the request id: the job may exist
  and be billed, and the next run submits again (at most one extra job per
  such death); a dead owner on this machine is noticed at once, any other
  placeholder after ``LEASE_SECONDS`` without a request id;
- a live submit took longer than ``LEASE_SECONDS`` to return its request id;
- the journal is unavailable (no-op mode, or locked beyond the busy timeout);
- the caller asked for ``reuse=False``, or an earlier job ended failed,
  cancelled or expired (those are never reused, by design).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

from ..errors import redact
from ..formats import is_digest

log = logging.getLogger("runcomfy.journal")

LEASE_SECONDS = 600.0
"""How long a placeholder without a request id holds off other runs of the same inputs.

A submit carries up to 64 MiB of inline images; with the client's timeouts
(write 120 s per chunk, read 60 s) a slow but live upload ends well within ten
minutes. A placeholder whose owner process is known to be dead is abandoned at once.
"""
POLL_SECONDS = 0.25
"""How often a waiting ``claim`` re-reads the journal for the other process's request id."""
BUSY_TIMEOUT_SECONDS = 10.0
"""How long a write waits for another process's write (each holds the lock for milliseconds)."""
PREVIEW_CHARS = 60
SCHEMA_VERSION = 2
"""2 added ``resolution``, ``num_images`` and ``estimate``: what a job counts against the daily
spend limit until RunComfy reports its cost, and what a reported cost was for (learned prices)."""

_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_SQLITE_HEADER = b"SQLite format 3\0"
_T = TypeVar("_T")
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []


class JobState(str, enum.Enum):
    """Where a journalled job stands, and what that means for a later run of the same inputs.

    The values match ``responses.Phase`` where both exist, so
    ``JobState(phase.value)`` converts a known phase.
    """

    SUBMITTING = "submitting"
    """Placeholder: a process is about to send (or is sending) the submit; no request id yet.
    Other runs wait for its request id, up to the lease."""
    SUBMITTED = "submitted"
    """RunComfy accepted the submit (request id known), no status seen yet: resumed."""
    QUEUED = "queued"
    """Waiting in RunComfy's queue: resumed."""
    RUNNING = "running"
    """Being generated: resumed."""
    COMPLETED = "completed"
    """Finished successfully: reused if all its files are in the store, else resumed
    (collected again from RunComfy, which is free)."""
    FAILED = "failed"
    """RunComfy reported a failure: never reused; the same inputs submit again."""
    CANCELLED = "cancelled"
    """Cancelled (by Stop or by the user on RunComfy): never reused."""
    EXPIRED = "expired"
    """RunComfy no longer knows the request or its files: never reused."""
    ABANDONED = "abandoned"
    """A placeholder that never got a request id (owner died, lease ran out, or the submit
    answer was lost). The job may exist and be billed; check the RunComfy dashboard. Never reused."""


_IN_FLIGHT = (JobState.SUBMITTED, JobState.QUEUED, JobState.RUNNING)
_FINAL = (JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED, JobState.ABANDONED)
_TERMINAL = (JobState.COMPLETED, *_FINAL)
_RANK = {JobState.SUBMITTING: 0, JobState.SUBMITTED: 1, JobState.QUEUED: 2, JobState.RUNNING: 3}


def _may_become(old: JobState, new: JobState) -> bool:
    """A state only moves forward; late or repeated status reports never undo an ending."""
    if old is new:
        return True
    if old is JobState.COMPLETED:
        return new is JobState.EXPIRED  # its files are gone everywhere
    if old in _FINAL or new is JobState.SUBMITTING:
        return False
    return new in _TERMINAL or _RANK[new] >= _RANK[old]


class Action(enum.Enum):
    """What ``claim`` tells a run to do."""

    REUSE = "reuse"
    """A completed job with every file stored: return them; nothing to ask RunComfy."""
    RESUME = "resume"
    """A job already paid for is in flight, or completed but not (fully) collected: follow
    ``claim.request_id`` instead of submitting."""
    SUBMIT = "submit"
    """Nothing usable: submit, then ``record_submitted`` at once (or ``release``)."""
    BUSY = "busy"
    """Another live run holds a fresh placeholder for these inputs and the wait ended
    (``stop`` was set, or ``wait`` passed) before it recorded a request id. Do not submit."""
    OVER_LIMIT = "over_limit"
    """It would submit, but today's counted spend (``claim.spent_today``) plus this job's
    estimate passes the daily limit, or the estimate is unknown while a limit is set.
    Nothing was recorded: do not submit."""


@dataclass(frozen=True)
class Entry:
    """One journalled job. Times are UTC; ``files`` is None until its results were stored."""

    request_id: str | None
    model_id: str
    fingerprint: str
    account: str
    state: JobState
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    cost: float | None
    prompt_preview: str
    files: tuple[str, ...] | None


@dataclass(frozen=True)
class Claim:
    """The outcome of ``claim``; pass it back to ``record_submitted`` or ``release``.

    ``entry`` is the job to reuse or resume, the placeholder inserted for a
    SUBMIT (None when the journal is unavailable), or the other run's
    placeholder for BUSY.
    """

    action: Action
    entry: Entry | None
    # Internal: which placeholder row this SUBMIT claim owns.
    row_id: int | None = field(default=None, repr=False, compare=False)
    token: str | None = field(default=None, repr=False, compare=False)
    spent_today: float | None = None
    """For OVER_LIMIT: the spend counted today when the limit was checked (see ``counted_today``)."""

    @property
    def request_id(self) -> str | None:
        return self.entry.request_id if self.entry else None


@dataclass(frozen=True)
class _Placeholder:
    """What a SUBMIT placeholder records for the daily limit, and the limit to check it against."""

    resolution: str | None
    num_images: int | None
    estimate: float | None
    daily_limit: float | None


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)


def preview_of(prompt: str) -> str:
    """The prompt's first ``PREVIEW_CHARS`` characters on one line, for ``history``."""
    text = " ".join(redact(prompt or "").split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _owner_id() -> str:
    """This process, as other processes on this machine can check it: host, pid namespace, pid."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}|{namespace}|{os.getpid()}"


def _owner_is_dead(owner: str | None) -> bool:
    """True only when the owner is certainly gone: same host and pid namespace, no such pid."""
    if not owner or os.name != "posix":
        return False  # Windows: os.kill(pid, 0) would send CTRL_C_EVENT; rely on the lease
    place, _, pid = owner.rpartition("|")
    if place != _owner_id().rpartition("|")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    return False


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    request_id TEXT UNIQUE,
    model_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    account TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    cost REAL,
    prompt_preview TEXT NOT NULL DEFAULT '',
    files TEXT,
    owner TEXT,
    claim_token TEXT,
    resolution TEXT,
    num_images INTEGER,
    estimate REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_inputs ON jobs (account, fingerprint);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_at);
"""
# Columns added after version 1, as (name, SQL type): added in place to an older journal.
_ADDED_COLUMNS = (("resolution", "TEXT"), ("num_images", "INTEGER"), ("estimate", "REAL"))

_COUNTED_COST = """CASE
    WHEN cost IS NOT NULL THEN cost
    WHEN state = 'cancelled' THEN 0.0
    ELSE COALESCE(estimate, 0.0)
END"""
"""What one journal row counts against the daily limit: the cost RunComfy reported; else, for a
job that may be billed (about to be sent, in flight, finished, failed, expired, abandoned), its
estimate; a job cancelled while queued is not billed. A row without either counts 0: it was
started while no limit was set (under a limit an unknown price is refused)."""


def local_midnight(now: float | None = None) -> float:
    """The start of today on this machine's clock (DST-aware), as a unix time.

    A daily limit is what a person reads off their clock; RunComfy's billing
    day is not documented. A job counts on the day it was submitted.
    """
    today = time.localtime(now)
    return time.mktime((today.tm_year, today.tm_mon, today.tm_mday, 0, 0, 0, 0, 0, -1))


def _counted_since(db: sqlite3.Connection, account: str, since: float) -> float:
    row = db.execute(
        f"SELECT COALESCE(SUM({_COUNTED_COST}), 0.0) FROM jobs WHERE account = ? AND created_at >= ?",
        (account, since),
    ).fetchone()
    return float(row[0])


def _entry(row: sqlite3.Row) -> Entry:
    files = json.loads(row["files"]) if row["files"] is not None else None
    return Entry(
        request_id=row["request_id"],
        model_id=row["model_id"],
        fingerprint=row["fingerprint"],
        account=row["account"],
        state=JobState(row["state"]),
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        finished_at=_utc(row["finished_at"]),
        cost=row["cost"],
        prompt_preview=row["prompt_preview"],
        files=tuple(files) if files is not None else None,
    )


class _Corrupt(Exception):
    """The file is not a usable SQLite database; ``identity`` is (device, inode) when known."""

    def __init__(self, reason: str, identity: tuple[int, int] | None) -> None:
        super().__init__(reason)
        self.identity = identity


class Journal:
    """The job journal in the SQLite file at ``path`` (created, with its folder, if missing)."""

    def __init__(self, path: Path | str, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self._available = False
        self._warned: set[str] = set()
        self._lock = threading.Lock()  # one connection per process, one transaction at a time
        self._db: sqlite3.Connection | None = None
        self._db_pid = 0
        self._db_identity: tuple[int, int] | None = None
        self._open()

    @property
    def available(self) -> bool:
        """False when the journal could not be opened and every call is a no-op."""
        return self._available

    def close(self) -> None:
        """Close this process's connection now (optional: the next call reopens it)."""
        with self._lock:
            self._close()

    # ------------------------------------------------------------ deciding

    def claim(
        self,
        fingerprint: str,
        account: str,
        *,
        model_id: str,
        prompt: str = "",
        is_stored: Callable[[str], bool] | None = None,
        reuse: bool = True,
        wait: float | None = None,
        stop: threading.Event | None = None,
        resolution: str | None = None,
        num_images: int | None = None,
        estimate: float | None = None,
        daily_limit: float | None = None,
    ) -> Claim:
        """Decide, atomically across processes, what a run of these inputs should do.

        REUSE: the newest completed entry whose files all pass ``is_stored`` (e.g.
        ``ResultStore.has``; without it, nothing is reused). Should a file then be
        missing on read (evicted meanwhile), resume ``claim.request_id`` instead.
        RESUME: otherwise a completed entry (preferred) or one still in flight.
        SUBMIT: otherwise; a ``submitting`` placeholder now stands for this run.
        If another live run's fresh placeholder is found, this call waits (polling
        every ``POLL_SECONDS``) for its request id and then resumes it; if that
        run releases or abandons it, this one submits. The wait ends at the
        placeholder's lease (at most ``lease_seconds``), after ``wait`` seconds if
        given, or when ``stop`` is set; BUSY then says: do not submit.
        ``reuse=False`` always submits (still journalled, for history and spend).

        ``resolution``, ``num_images`` and ``estimate`` (USD) are kept with the
        placeholder: the job counts at ``estimate`` until RunComfy reports its cost.
        With ``daily_limit`` (USD), a SUBMIT is decided only if today's counted
        spend plus ``estimate`` stays within it, in the same write transaction as
        the placeholder, so concurrent runs (threads or processes) can never
        all pass one check; otherwise, or when ``estimate`` is None, the answer
        is OVER_LIMIT and nothing is recorded. Reusing and resuming are free and
        never refused.
        """
        deadline = None if wait is None else time.monotonic() + max(0.0, wait)
        preview = preview_of(prompt)

        plan = _Placeholder(resolution, num_images, estimate, daily_limit)

        def decide() -> Claim:
            return self._claim_once(fingerprint, account, model_id, preview, is_stored, reuse, plan)

        while True:
            claim = self._guarded("claim", decide, None)
            if claim is None:
                return Claim(Action.SUBMIT, None)  # journal unusable: today's behaviour
            if claim.action is not Action.BUSY:
                return claim
            lease_left = claim.entry.updated_at.timestamp() + self.lease_seconds - time.time()
            pause = min(POLL_SECONDS, max(0.0, lease_left) + 0.01)
            if deadline is not None:
                if time.monotonic() >= deadline:
                    return claim
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            if stop is not None:
                if stop.wait(pause):
                    return claim
            else:
                time.sleep(pause)

    def _claim_once(
        self,
        fingerprint: str,
        account: str,
        model_id: str,
        preview: str,
        is_stored: Callable[[str], bool] | None,
        reuse: bool,
        plan: "_Placeholder",
    ) -> Claim:
        """One decision in one write transaction (BEGIN IMMEDIATE: no other claim interleaves)."""
        now = time.time()
        usable = (JobState.SUBMITTING, *_IN_FLIGHT, JobState.COMPLETED)
        with self._write() as db:
            marks = ", ".join("?" * len(usable))
            rows = db.execute(
                f"SELECT * FROM jobs WHERE account = ? AND fingerprint = ? AND state IN ({marks}) "
                "ORDER BY created_at DESC, id DESC",
                (account, fingerprint, *(state.value for state in usable)),
            ).fetchall()
            live_placeholder = None
            for row in rows:
                if row["state"] != JobState.SUBMITTING.value:
                    continue
                if now - row["updated_at"] > self.lease_seconds or _owner_is_dead(row["owner"]):
                    db.execute(
                        "UPDATE jobs SET state = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                        (JobState.ABANDONED.value, now, now, row["id"]),
                    )
                elif live_placeholder is None:
                    live_placeholder = _entry(row)
            if reuse:
                candidates = [_entry(row) for row in rows if row["state"] != JobState.SUBMITTING.value]
                for entry in candidates:
                    if entry.state is JobState.COMPLETED and entry.files and is_stored is not None:
                        if all(is_stored(digest) for digest in entry.files):
                            return Claim(Action.REUSE, entry)
                completed_first = sorted(candidates, key=lambda e: e.state is not JobState.COMPLETED)
                if completed_first:
                    return Claim(Action.RESUME, completed_first[0])
                if live_placeholder is not None:
                    return Claim(Action.BUSY, live_placeholder)
            if plan.daily_limit is not None:
                spent = _counted_since(db, account, local_midnight(now))
                if plan.estimate is None or spent + plan.estimate > plan.daily_limit + 1e-9:
                    return Claim(Action.OVER_LIMIT, None, spent_today=round(spent, 6))
            token = secrets.token_hex(8)
            cursor = db.execute(
                "INSERT INTO jobs (model_id, fingerprint, account, state, created_at, updated_at, prompt_preview, "
                "owner, claim_token, resolution, num_images, estimate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (model_id, fingerprint, account, JobState.SUBMITTING.value, now, now, preview, _owner_id(), token,
                 plan.resolution, plan.num_images, plan.estimate),
            )
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (cursor.lastrowid,)).fetchone()
            return Claim(Action.SUBMIT, _entry(row), row_id=cursor.lastrowid, token=token)

    # ------------------------------------------------------------ recording

    def record_submitted(self, claim: Claim, request_id: str) -> None:
        """RunComfy accepted the SUBMIT ``claim``'s job as ``request_id``: record it before waiting.

        Recorded even if the placeholder was meanwhile abandoned: the job exists.
        """
        if claim.action is not Action.SUBMIT:
            raise ValueError(f"record_submitted needs a SUBMIT claim, not {claim.action.value}")
        if not request_id:
            raise ValueError("record_submitted needs the request id RunComfy returned")
        if claim.row_id is None:
            return

        def write() -> None:
            now = time.time()
            with self._write() as db:
                db.execute(
                    "UPDATE jobs SET request_id = ?, state = ?, updated_at = ?, finished_at = NULL "
                    "WHERE id = ? AND claim_token = ?",
                    (request_id, JobState.SUBMITTED.value, now, claim.row_id, claim.token),
                )

        self._guarded("record", write, None)

    def release(self, claim: Claim, *, maybe_sent: bool = False) -> None:
        """Give up a SUBMIT claim that got no request id.

        ``maybe_sent=False`` (refused, or nothing sent): the placeholder is deleted.
        ``maybe_sent=True`` (the submit's answer was lost, so the job may exist):
        it is kept as ABANDONED, visible in ``recent``, and no longer holds others off.
        """
        if claim.action is not Action.SUBMIT or claim.row_id is None:
            return

        def write() -> None:
            now = time.time()
            with self._write() as db:
                if maybe_sent:
                    db.execute(
                        "UPDATE jobs SET state = ?, updated_at = ?, finished_at = ? "
                        "WHERE id = ? AND claim_token = ? AND request_id IS NULL",
                        (JobState.ABANDONED.value, now, now, claim.row_id, claim.token),
                    )
                else:
                    db.execute(
                        "DELETE FROM jobs WHERE id = ? AND claim_token = ? AND request_id IS NULL",
                        (claim.row_id, claim.token),
                    )

        self._guarded("record", write, None)

    def record_state(self, request_id: str, state: JobState, cost: float | None = None) -> bool:
        """Record what RunComfy said about ``request_id`` (and its reported cost, USD).

        States only move forward (queued → running → an ending); a late or
        repeated report never undoes an ending, except completed → expired.
        Returns whether an entry changed (False for an unknown request id).
        """
        state = JobState(state)
        if state is JobState.SUBMITTING:
            raise ValueError("a job with a request id is past 'submitting'")

        def write() -> bool:
            now = time.time()
            with self._write() as db:
                row = db.execute("SELECT state FROM jobs WHERE request_id = ?", (request_id,)).fetchone()
                if row is None or not _may_become(JobState(row[0]), state):
                    return False
                finished = now if state in _TERMINAL and JobState(row[0]) is not state else None
                db.execute(
                    "UPDATE jobs SET state = ?, updated_at = ?, cost = COALESCE(?, cost), "
                    "finished_at = COALESCE(finished_at, ?) WHERE request_id = ?",
                    (state.value, now, cost, finished, request_id),
                )
                return True

        return self._guarded("record", write, False)

    def record_files(self, request_id: str, digests: Sequence[str]) -> bool:
        """Record the store digests of the job's result files, in API order.

        Record only once every file is in the store: an entry with files is reused
        as it is. Returns whether an entry changed.
        """
        digests = list(digests)
        for digest in digests:
            if not is_digest(digest):
                raise ValueError(f"{digest!r} is not a lowercase hex SHA-256 digest")

        def write() -> bool:
            with self._write() as db:
                cursor = db.execute(
                    "UPDATE jobs SET files = ?, updated_at = ? WHERE request_id = ?",
                    (json.dumps(digests), time.time(), request_id),
                )
                return cursor.rowcount > 0

        return self._guarded("record", write, False)

    def adopt(self, request_id: str, account: str, model_id: str = "") -> bool:
        """Start an entry for a request submitted elsewhere (the dashboard, another tool) that
        is being collected, so its files are kept like this pack's own. Its fingerprint
        (``collected:<id>``) matches no inputs, so no run ever reuses it by accident.
        Returns whether an entry was added (False: the id is known already, or no journal)."""

        def write() -> bool:
            now = time.time()
            with self._write() as db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO jobs (request_id, model_id, fingerprint, account, state, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (request_id, model_id, f"collected:{request_id}", account, JobState.SUBMITTED.value, now, now),
                )
                return cursor.rowcount > 0

        return self._guarded("record", write, False)

    def forget(self, request_id: str) -> None:
        """Drop an entry ``adopt`` started, when collecting it failed."""

        def write() -> None:
            with self._write() as db:
                db.execute("DELETE FROM jobs WHERE request_id = ? AND fingerprint = ?", (request_id, f"collected:{request_id}"))

        self._guarded("record", write, None)

    # ------------------------------------------------------------ looking back

    def outlook(self, fingerprint: str, account: str, *, is_stored: Callable[[str], bool] | None = None) -> Action:
        """What ``claim`` would most likely decide for these inputs now, without claiming anything.

        For a price shown before paying (a batch's "already done" count): REUSE or
        RESUME are free, SUBMIT (and BUSY, a run of them being sent elsewhere) may cost.
        """

        def read() -> Action:
            usable = (*_IN_FLIGHT, JobState.COMPLETED)
            with self._read() as db:
                rows = db.execute(
                    f"SELECT * FROM jobs WHERE account = ? AND fingerprint = ? AND state IN ({', '.join('?' * len(usable))})",
                    (account, fingerprint, *(state.value for state in usable)),
                ).fetchall()
            entries = [_entry(row) for row in rows]
            if any(e.state is JobState.COMPLETED and e.files and is_stored and all(map(is_stored, e.files))
                   for e in entries):
                return Action.REUSE
            return Action.RESUME if entries else Action.SUBMIT

        return self._guarded("read", read, Action.SUBMIT)

    def stored_result(self, fingerprint: str, account: str, *, is_stored: Callable[[str], bool]) -> Entry | None:
        """The newest completed job of these inputs whose files all pass ``is_stored``, or None;
        nothing is claimed or written (offline, a result that needs no call to RunComfy)."""

        def read() -> Entry | None:
            with self._read() as db:
                rows = db.execute(
                    "SELECT * FROM jobs WHERE account = ? AND fingerprint = ? AND state = ? "
                    "ORDER BY created_at DESC, id DESC",
                    (account, fingerprint, JobState.COMPLETED.value),
                ).fetchall()
            entries = (_entry(row) for row in rows)
            return next((entry for entry in entries if entry.files and all(map(is_stored, entry.files))), None)

        return self._guarded("read", read, None)

    def get(self, request_id: str) -> Entry | None:
        """The entry of ``request_id``, or None."""

        def read() -> Entry | None:
            with self._read() as db:
                row = db.execute("SELECT * FROM jobs WHERE request_id = ?", (request_id,)).fetchone()
            return _entry(row) if row else None

        return self._guarded("read", read, None)

    def recent(self, limit: int = 20, account: str | None = None) -> list[Entry]:
        """The newest ``limit`` entries (of ``account``, if given), newest first."""

        def read() -> list[Entry]:
            where, args = ("WHERE account = ?", (account,)) if account is not None else ("", ())
            with self._read() as db:
                rows = db.execute(
                    f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ?",
                    (*args, max(0, int(limit))),
                ).fetchall()
            return [_entry(row) for row in rows]

        return self._guarded("read", read, [])

    def spent_since(self, since: datetime | float, account: str | None = None) -> float:
        """Sum of reported costs (USD) of entries created at or after ``since``.

        Entries without a reported cost (in flight, or RunComfy did not say) count 0 here:
        this is what RunComfy reported. The daily limit counts them at their estimate
        (``counted_today``).
        """
        start = since.timestamp() if isinstance(since, datetime) else float(since)

        def read() -> float:
            where, args = ("AND account = ?", (account,)) if account is not None else ("", ())
            with self._read() as db:
                row = db.execute(
                    f"SELECT COALESCE(SUM(cost), 0.0) FROM jobs WHERE created_at >= ? {where}", (start, *args)
                ).fetchone()
            return float(row[0])

        return self._guarded("read", read, 0.0)

    def spent_today(self, account: str) -> float:
        """Reported spend (USD) of ``account``'s jobs created since local midnight (``local_midnight``)."""
        return self.spent_since(local_midnight(), account)

    def counted_today(self, account: str) -> float:
        """What the daily limit counts for ``account`` today: reported costs, and the estimate of
        every job that may be billed but has no reported cost (see ``_COUNTED_COST``)."""

        def read() -> float:
            with self._read() as db:
                return _counted_since(db, account, local_midnight())

        return self._guarded("read", read, 0.0)

    def last_billed(self, account: str, model_id: str, resolution: str) -> tuple[float, int, datetime] | None:
        """The newest completed job of ``account`` and ``model_id`` at ``resolution`` whose cost
        RunComfy reported: ``(cost USD, num_images, when it finished)``, or None.

        What RunComfy billed this account is the best price there is when its
        model info does not state one per resolution.
        """

        def read() -> tuple[float, int, datetime] | None:
            with self._read() as db:
                row = db.execute(
                    "SELECT cost, num_images, COALESCE(finished_at, updated_at) AS at FROM jobs "
                    "WHERE account = ? AND model_id = ? AND resolution = ? AND state = ? AND cost IS NOT NULL "
                    "AND cost > 0 AND num_images > 0 ORDER BY at DESC, id DESC LIMIT 1",
                    (account, model_id, resolution, JobState.COMPLETED.value),
                ).fetchone()
            return None if row is None else (float(row["cost"]), int(row["num_images"]), _utc(row["at"]))

        return self._guarded("read", read, None)

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taking the write lock up front (no upgrade deadlocks)."""
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, reopened if the file was replaced or we were forked."""
        if self._db is None or self._db_pid != os.getpid() or self._identity() != self._db_identity:
            self._reconnect()
        assert self._db is not None
        return self._db

    def _reconnect(self) -> None:
        """Connect, switch to WAL, create the schema if missing."""
        self._close()
        try:
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            try:
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                db.execute("BEGIN IMMEDIATE")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
                for name, kind in _ADDED_COLUMNS:  # a journal written by an older version
                    if name not in present:
                        db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
                if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                db.close()
                raise
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise _Corrupt(f"{type(exc).__name__}: {exc}", self._identity()) from None
            raise
        self._db, self._db_pid, self._db_identity = db, os.getpid(), self._identity()

    def _close(self) -> None:
        if self._db is None:
            return
        if self._db_pid == os.getpid():
            with suppress(sqlite3.Error):
                self._db.close()
        else:
            # Inherited through fork: closing it here could disturb the parent's locks.
            _INHERITED_CONNECTIONS.append(self._db)
        self._db = None

    def _guarded(self, kind: str, operation: Callable[[], _T], fallback: _T) -> _T:
        """Run a journal operation; any SQLite or OS error is logged once and gives ``fallback``.

        ValueError too: a row this version cannot read (e.g. a state written by a newer one).
        """
        if not self._available:
            return fallback
        try:
            return operation()
        except (sqlite3.Error, _Corrupt, OSError, ValueError) as exc:
            if isinstance(exc, _Corrupt) or isinstance(exc, sqlite3.Error) and _is_corruption(exc):
                with self._lock:  # the next process to open it moves it aside
                    self._available = False
                    self._close()
            self._warn_once(
                kind,
                "RunComfy job journal %s failed (%s: %s); this run goes on without it",
                self.path,
                type(exc).__name__,
                exc,
            )
            return fallback

    def _open(self) -> None:
        """Open (or create) the journal; move a corrupt file aside once; else degrade to no-op."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._degrade(f"cannot create its folder: {type(exc).__name__}: {exc.strerror or exc}")
            return
        for attempt in range(2):
            try:
                self._check_file()
                self._reconnect()
                self._quick_check()
            except _Corrupt as exc:
                self._close()
                if attempt == 0 and self._move_aside(exc.identity, str(exc)):
                    continue
                self._degrade(str(exc))
                return
            except (sqlite3.Error, OSError) as exc:
                self._close()
                self._degrade(f"{type(exc).__name__}: {exc}")
                return
            self._available = True
            return

    def _check_file(self) -> None:
        """Check that an existing file is readable and starts like a SQLite file."""
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(len(_SQLITE_HEADER))
                info = os.fstat(handle.fileno())
        except FileNotFoundError:
            return
        except PermissionError as exc:
            raise _Corrupt(f"unreadable: {exc.strerror}", None) from None
        identity = (info.st_dev, info.st_ino)
        if head and head != _SQLITE_HEADER[: len(head)] or 0 < len(head) < len(_SQLITE_HEADER):
            raise _Corrupt("not a SQLite database", identity)

    def _quick_check(self) -> None:
        """SQLite's own check of every page: a truncated or scribbled file fails it."""
        assert self._db is not None
        try:
            verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise _Corrupt(f"{type(exc).__name__}: {exc}", self._identity()) from None
            raise
        if verdict != "ok":
            raise _Corrupt(f"damaged: {verdict}", self._identity())

    def _identity(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_dev, info.st_ino)

    def _move_aside(self, identity: tuple[int, int] | None, reason: str) -> bool:
        """Rename the damaged file (and its WAL/SHM) aside; False if that is impossible.

        If another process already replaced the file (its identity changed), the
        new file is left alone and simply opened.
        """
        if identity is not None and self._identity() != identity:
            return True
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for number in range(2, 100):  # never overwrite an earlier damaged copy
            if not aside.exists():
                break
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{number}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        for suffix in ("-wal", "-shm"):  # a stale WAL must never be replayed into the new file
            with suppress(OSError):
                os.replace(self.path.with_name(self.path.name + suffix), aside.with_name(aside.name + suffix))
        log.warning(
            "RunComfy job journal %s was unusable (%s); moved it to %s and started a new one "
            "(earlier jobs will not be reused)",
            self.path,
            reason,
            aside,
        )
        return True

    def _degrade(self, reason: str) -> None:
        self._available = False
        self._warn_once(
            "open",
            "RunComfy job journal cannot be used at %s (%s); jobs run without it: no reuse, no resume, "
            "no spend tracking",
            self.path,
            reason,
        )

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        first = kind not in self._warned
        self._warned.add(kind)
        log.log(logging.WARNING if first else logging.DEBUG, message, *args)


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text
