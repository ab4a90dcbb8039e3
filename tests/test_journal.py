"""The job journal: real SQLite files, real processes, kills and damaged files.

Children are forked (they share the loaded pack, so they start in
milliseconds) and every hand-over between processes is an explicit signal
(barrier, pipe, event), never a sleep.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
import threading
import time

import pytest

from packloader import PACK_ROOT, pack_import

journal = pack_import("client.ledger.journal")
storage_paths = pack_import("client.config.paths")
errors = pack_import("client.errors")
Action, JobState, Journal = journal.Action, journal.JobState, journal.Journal

JOURNAL_LOG = "runcomfy.journal"
MODEL = "google/nano-banana-2/text-to-image"
ACCOUNT = "a" * 32
OTHER_ACCOUNT = "b" * 32
FP = "f" * 64
DIGESTS = ("1" * 64, "2" * 64)
fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "journal.sqlite3"


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == JOURNAL_LOG and r.levelno >= logging.WARNING]


def _completed(j, fingerprint=FP, account=ACCOUNT, request_id="req-1", files=DIGESTS, cost=0.08):
    claim = j.claim(fingerprint, account, model_id=MODEL, prompt="a red fox")
    assert claim.action is Action.SUBMIT
    j.record_submitted(claim, request_id)
    j.record_state(request_id, JobState.COMPLETED, cost)
    if files is not None:
        j.record_files(request_id, files)
    return request_id


def _age(path, seconds: float, where: str = "1 = 1") -> None:
    """Move entries back in time by rewriting their timestamps (stands in for a clock)."""
    with sqlite3.connect(path) as db:
        db.execute(
            f"UPDATE jobs SET created_at = created_at - ?, updated_at = updated_at - ? WHERE {where}",
            (seconds, seconds),
        )
    db.close()


# ---------------------------------------------------------------- where it lives


def test_data_folder_is_beside_the_config_file_unless_overridden(tmp_path):
    config = tmp_path / "cfg" / "config.json"
    assert storage_paths.default_data_dir({"RUNCOMFY_CONFIG": str(config)}) == tmp_path / "cfg"
    env = {"RUNCOMFY_CONFIG": str(config), "RUNCOMFY_DATA_DIR": str(tmp_path / "data")}
    assert storage_paths.default_journal_path(env) == tmp_path / "data" / "journal.sqlite3"
    assert storage_paths.default_results_dir(env) == tmp_path / "data" / "results"
    xdg = storage_paths.default_data_dir({"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert xdg == tmp_path / "xdg" / "runcomfy"


@pytest.mark.parametrize("variable", ["RUNCOMFY_DATA_DIR", "RUNCOMFY_CONFIG"])
def test_a_data_folder_inside_the_pack_is_refused(variable):
    inside = PACK_ROOT / "userdata" / ("config.json" if variable == "RUNCOMFY_CONFIG" else "")
    with pytest.raises(errors.ConfigurationError, match="inside the node pack folder.*RUNCOMFY_DATA_DIR"):
        storage_paths.default_data_dir({variable: str(inside)})


# ---------------------------------------------------------------- what a run does


def test_first_run_submits_and_leaves_a_placeholder(path):
    j = Journal(path)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL, prompt="  a red\nfox  " + "x" * 100)
    assert claim.action is Action.SUBMIT and claim.request_id is None
    entry = j.recent()[0]
    assert entry.state is JobState.SUBMITTING and entry.fingerprint == FP and entry.account == ACCOUNT
    assert entry.prompt_preview.startswith("a red fox x") and len(entry.prompt_preview) == journal.PREVIEW_CHARS
    assert "\n" not in entry.prompt_preview


def test_completed_with_stored_files_is_reused(path):
    j = Journal(path)
    _completed(j)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL, is_stored=lambda digest: True)
    assert claim.action is Action.REUSE and claim.request_id == "req-1"
    assert claim.entry.files == DIGESTS and claim.entry.cost == 0.08
    assert claim.entry.finished_at is not None and claim.entry.finished_at.utcoffset().total_seconds() == 0
    assert len(j.recent()) == 1  # reusing adds nothing


@pytest.mark.parametrize("files, stored", [(None, set()), (DIGESTS, {DIGESTS[0]}), (DIGESTS, None)])
def test_completed_but_not_fully_stored_is_resumed(path, files, stored):
    j = Journal(path)
    _completed(j, files=files)
    is_stored = None if stored is None else stored.__contains__
    claim = j.claim(FP, ACCOUNT, model_id=MODEL, is_stored=is_stored)
    assert (claim.action, claim.request_id) == (Action.RESUME, "req-1")


@pytest.mark.parametrize("state", [JobState.SUBMITTED, JobState.QUEUED, JobState.RUNNING])
def test_a_job_in_flight_is_resumed(path, state):
    j = Journal(path)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL)
    j.record_submitted(claim, "req-9")
    j.record_state("req-9", state)
    again = j.claim(FP, ACCOUNT, model_id=MODEL)
    assert (again.action, again.request_id, again.entry.state) == (Action.RESUME, "req-9", state)


@pytest.mark.parametrize("ending", [JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED])
def test_failed_cancelled_and_expired_jobs_are_never_reused(path, ending):
    j = Journal(path)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL)
    j.record_submitted(claim, "req-1")
    j.record_state("req-1", ending)
    assert j.claim(FP, ACCOUNT, model_id=MODEL, is_stored=lambda d: True).action is Action.SUBMIT


def test_completed_files_gone_at_runcomfy_too_can_expire(path):
    j = Journal(path)
    _completed(j)
    assert j.record_state("req-1", JobState.EXPIRED)
    assert j.claim(FP, ACCOUNT, model_id=MODEL).action is Action.SUBMIT


def test_entries_are_per_account(path):
    j = Journal(path)
    _completed(j)
    assert j.claim(FP, OTHER_ACCOUNT, model_id=MODEL, is_stored=lambda d: True).action is Action.SUBMIT
    assert j.claim("e" * 64, ACCOUNT, model_id=MODEL, is_stored=lambda d: True).action is Action.SUBMIT


def test_reuse_off_always_submits_and_still_records(path):
    j = Journal(path)
    _completed(j)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL, is_stored=lambda d: True, reuse=False)
    assert claim.action is Action.SUBMIT and len(j.recent()) == 2


def test_a_refused_submit_releases_its_placeholder(path):
    j = Journal(path)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL)
    j.release(claim)
    assert j.recent() == []
    assert j.claim(FP, ACCOUNT, model_id=MODEL, wait=0).action is Action.SUBMIT


def test_a_lost_submit_answer_is_kept_as_abandoned_and_blocks_nobody(path):
    j = Journal(path)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL)
    j.release(claim, maybe_sent=True)
    assert j.recent()[0].state is JobState.ABANDONED
    assert j.claim(FP, ACCOUNT, model_id=MODEL, wait=0).action is Action.SUBMIT


def test_record_submitted_only_takes_a_submit_claim(path):
    j = Journal(path)
    _completed(j)
    resume = j.claim(FP, ACCOUNT, model_id=MODEL)
    with pytest.raises(ValueError, match="SUBMIT claim"):
        j.record_submitted(resume, "req-2")


def test_states_only_move_forward(path):
    j = Journal(path)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL)
    j.record_submitted(claim, "req-1")
    assert j.record_state("req-1", JobState.RUNNING)
    assert not j.record_state("req-1", JobState.QUEUED)  # a late report
    assert j.record_state("req-1", JobState.COMPLETED, cost=0.12)
    assert not j.record_state("req-1", JobState.RUNNING)
    assert not j.record_state("req-1", JobState.FAILED)
    assert j.record_state("req-1", JobState.COMPLETED)  # repeating keeps the cost
    entry = j.get("req-1")
    assert (entry.state, entry.cost) == (JobState.COMPLETED, 0.12)
    assert not j.record_state("unknown", JobState.RUNNING) and j.get("unknown") is None
    with pytest.raises(ValueError):
        j.record_files("req-1", ["not-a-digest"])


# ---------------------------------------------------------------- the placeholder's lease


def test_a_fresh_placeholder_of_a_live_process_makes_others_wait(path):
    j = Journal(path)
    first = j.claim(FP, ACCOUNT, model_id=MODEL)
    busy = j.claim(FP, ACCOUNT, model_id=MODEL, wait=0)
    assert busy.action is Action.BUSY and busy.entry.state is JobState.SUBMITTING
    stopped = threading.Event()
    stopped.set()
    assert j.claim(FP, ACCOUNT, model_id=MODEL, stop=stopped).action is Action.BUSY
    j.record_submitted(first, "req-1")
    assert j.claim(FP, ACCOUNT, model_id=MODEL, wait=0).request_id == "req-1"


def test_a_placeholder_past_its_lease_is_abandoned(path):
    j = Journal(path)
    j.claim(FP, ACCOUNT, model_id=MODEL)
    _age(path, journal.LEASE_SECONDS + 1)
    claim = j.claim(FP, ACCOUNT, model_id=MODEL, wait=0)
    assert claim.action is Action.SUBMIT
    assert [e.state for e in j.recent()] == [JobState.SUBMITTING, JobState.ABANDONED]


def test_the_owner_records_its_request_id_even_after_being_abandoned(path):
    j = Journal(path)
    slow = j.claim(FP, ACCOUNT, model_id=MODEL)
    _age(path, journal.LEASE_SECONDS + 1)
    j.claim(FP, ACCOUNT, model_id=MODEL, wait=0)  # abandons it and submits again
    j.record_submitted(slow, "req-slow")
    assert j.get("req-slow").state is JobState.SUBMITTED  # the job exists: it stays findable


class _SignalWhenWaiting:
    """A ``stop`` event that tells the test the claim has started waiting."""

    def __init__(self, waiting) -> None:
        self.waiting = waiting
        self._never = threading.Event()

    def wait(self, timeout: float) -> bool:
        self.waiting.set()
        return self._never.wait(timeout)


def _claim_in_child(path, results, waiting=None, barrier=None, done=None, wait=None, fingerprint=FP) -> None:
    j = Journal(path)
    if barrier is not None:
        barrier.wait()
    stop = _SignalWhenWaiting(waiting) if waiting is not None else None
    claim = j.claim(fingerprint, ACCOUNT, model_id=MODEL, wait=wait, stop=stop)
    results.send((claim.action.value, claim.request_id))
    if done is not None:
        done.wait()  # stay alive, as a ComfyUI process would while it submits


@fork
def test_a_second_process_waits_for_the_request_id_and_resumes_it(path):
    context = multiprocessing.get_context("fork")
    j = Journal(path)
    mine = j.claim(FP, ACCOUNT, model_id=MODEL)
    results, child_end = context.Pipe(duplex=False)
    waiting = context.Event()
    child = context.Process(target=_claim_in_child, args=(path, child_end), kwargs={"waiting": waiting})
    child.start()
    assert waiting.wait(30), "the second process never started waiting"
    j.record_submitted(mine, "req-shared")
    assert results.poll(30)
    assert results.recv() == ("resume", "req-shared")
    child.join()


@fork
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_claiming_the_same_inputs_at_once_submit_exactly_once(path, processes):
    context = multiprocessing.get_context("fork")
    Journal(path)
    for round_number in range(3):
        barrier, done = context.Barrier(processes), context.Event()
        pipes = [context.Pipe(duplex=False) for _ in range(processes)]
        arguments = {"barrier": barrier, "done": done, "wait": 0, "fingerprint": f"{round_number:064x}"}
        children = [context.Process(target=_claim_in_child, args=(path, send), kwargs=arguments) for _, send in pipes]
        for child in children:
            child.start()
        actions = sorted(receive.recv()[0] for receive, _ in pipes)
        done.set()
        for child in children:
            child.join()
        assert actions == ["busy"] * (processes - 1) + ["submit"], f"round {round_number}"


@fork
def test_a_dead_owners_placeholder_is_abandoned_at_once(path):
    context = multiprocessing.get_context("fork")
    results, child_end = context.Pipe(duplex=False)
    child = context.Process(target=_claim_in_child, args=(path, child_end))
    child.start()
    assert results.recv() == ("submit", None)
    child.join()  # it died before recording a request id
    started = time.monotonic()
    claim = Journal(path).claim(FP, ACCOUNT, model_id=MODEL)  # no wait bound given
    assert claim.action is Action.SUBMIT and time.monotonic() - started < journal.LEASE_SECONDS / 10
    assert [e.state for e in Journal(path).recent()] == [JobState.SUBMITTING, JobState.ABANDONED]


# ---------------------------------------------------------------- kills and damage


def _write_forever(path, ready, number) -> None:
    j = Journal(path)
    first = number
    while True:
        fingerprint = f"{number:064x}"
        claim = j.claim(fingerprint, ACCOUNT, model_id=MODEL, prompt=f"prompt {number}")
        j.record_submitted(claim, f"req-{number}")
        j.record_state(f"req-{number}", JobState.RUNNING)
        j.record_state(f"req-{number}", JobState.COMPLETED, cost=0.01)
        j.record_files(f"req-{number}", DIGESTS)
        number += 1
        if number == first + 30:
            ready.send(True)


@fork
def test_kill_9_in_the_middle_of_writes_leaves_a_consistent_journal(path, caplog):
    context = multiprocessing.get_context("fork")
    for round_number in range(3):
        ready, child_end = context.Pipe(duplex=False)
        child = context.Process(target=_write_forever, args=(path, child_end, round_number * 1_000_000))
        child.start()
        assert ready.poll(30), "the writer never got going"
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        j = Journal(path)
        assert j.available and _warnings(caplog) == []
        entries = j.recent(limit=10_000)
        assert len([e for e in entries if e.state is JobState.COMPLETED]) >= 30 * (round_number + 1)
        for entry in entries:
            assert (entry.request_id is None) == (entry.state in (JobState.SUBMITTING, JobState.ABANDONED))
            assert entry.files in (None, DIGESTS)
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    claim = Journal(path).claim(FP, ACCOUNT, model_id=MODEL)
    assert claim.action is Action.SUBMIT


def _damaged_copies(path) -> list:
    return sorted(p for p in path.parent.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm")))


def test_a_garbage_journal_is_moved_aside_with_one_warning(path, caplog):
    path.parent.mkdir(parents=True)
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    (path.parent / (path.name + "-wal")).write_bytes(os.urandom(100))
    j = Journal(path)
    assert j.available
    assert len(_warnings(caplog)) == 1 and "moved it to" in _warnings(caplog)[0]
    (aside,) = _damaged_copies(path)
    assert aside.read_bytes() == garbage
    assert (aside.parent / (aside.name + "-wal")).exists()  # a stale WAL goes with it
    _completed(j)
    assert Journal(path).claim(FP, ACCOUNT, model_id=MODEL, is_stored=lambda d: True).action is Action.REUSE
    assert len(_warnings(caplog)) == 1


def test_a_truncated_journal_is_moved_aside_with_one_warning(path, caplog):
    j = Journal(path)
    _completed(j)
    j.close()
    with sqlite3.connect(path) as db:  # many rows, quickly: the file must span many pages
        db.executemany(
            "INSERT INTO jobs (request_id, model_id, fingerprint, account, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 'completed', 0, 0)",
            ((f"bulk-{n}", MODEL, f"{n:064x}", ACCOUNT) for n in range(2000)),
        )
    db.close()
    assert not (path.parent / (path.name + "-wal")).exists()  # all in the main file
    size = path.stat().st_size
    assert size > 16 * 4096
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    fresh = Journal(path)
    assert fresh.available and fresh.recent() == []
    assert len(_warnings(caplog)) == 1 and len(_damaged_copies(path)) == 1
    assert fresh.claim(FP, ACCOUNT, model_id=MODEL).action is Action.SUBMIT


def test_an_unwritable_folder_turns_the_journal_into_a_no_op(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    j = Journal(blocker / "data" / "journal.sqlite3")  # its parent is a regular file
    assert not j.available
    claim = j.claim(FP, ACCOUNT, model_id=MODEL)
    assert (claim.action, claim.entry) == (Action.SUBMIT, None)
    j.record_submitted(claim, "req-1")
    j.release(claim)
    assert not j.record_state("req-1", JobState.COMPLETED, 0.1) and not j.record_files("req-1", DIGESTS)
    assert j.get("req-1") is None and j.recent() == [] and j.spent_today(ACCOUNT) == 0.0
    assert len(_warnings(caplog)) == 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through chmod")
def test_a_read_only_folder_turns_the_journal_into_a_no_op(tmp_path, caplog):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        j = Journal(folder / "journal.sqlite3")
        assert not j.available and j.claim(FP, ACCOUNT, model_id=MODEL).action is Action.SUBMIT
        assert len(_warnings(caplog)) == 1
    finally:
        folder.chmod(0o700)


# ---------------------------------------------------------------- looking back


def test_recent_is_newest_first_and_filters_by_account(path):
    j = Journal(path)
    for number in range(5):
        _completed(j, fingerprint=f"{number:064x}", request_id=f"req-{number}")
    _completed(j, fingerprint="e" * 64, account=OTHER_ACCOUNT, request_id="req-other")
    assert [e.request_id for e in j.recent(3)] == ["req-other", "req-4", "req-3"]
    assert [e.request_id for e in j.recent(2, account=ACCOUNT)] == ["req-4", "req-3"]


def test_spent_today_sums_todays_reported_costs_of_one_account(path):
    j = Journal(path)
    _completed(j, fingerprint="1" * 64, request_id="req-1", cost=0.08)
    _completed(j, fingerprint="2" * 64, request_id="req-2", cost=0.12)
    _completed(j, fingerprint="3" * 64, request_id="req-3", cost=None)
    _completed(j, fingerprint="4" * 64, request_id="req-4", cost=1.0, account=OTHER_ACCOUNT)
    _completed(j, fingerprint="5" * 64, request_id="req-old", cost=5.0)
    _age(path, 2 * 86400, "request_id = 'req-old'")
    assert j.spent_today(ACCOUNT) == pytest.approx(0.20)
    assert j.spent_today(OTHER_ACCOUNT) == pytest.approx(1.0)
    assert j.spent_since(0) == pytest.approx(6.2)


def test_outlook_says_what_a_claim_would_decide_without_claiming(path):
    j = Journal(path)
    assert j.outlook(FP, ACCOUNT) is Action.SUBMIT
    _completed(j)
    assert j.outlook(FP, ACCOUNT, is_stored=lambda digest: True) is Action.REUSE
    assert j.outlook(FP, ACCOUNT, is_stored=lambda digest: False) is Action.RESUME  # collected again, free
    assert j.outlook(FP, OTHER_ACCOUNT, is_stored=lambda digest: True) is Action.SUBMIT
    other = "e" * 64
    claim = j.claim(other, ACCOUNT, model_id=MODEL)
    assert j.outlook(other, ACCOUNT) is Action.SUBMIT  # a placeholder alone is nothing paid yet
    j.record_submitted(claim, "req-2")
    assert j.outlook(other, ACCOUNT) is Action.RESUME
    j.record_state("req-2", JobState.FAILED)
    assert j.outlook(other, ACCOUNT) is Action.SUBMIT
    assert [entry.request_id for entry in j.recent(10)] == ["req-2", "req-1"]  # looking wrote nothing


def _submitted_at(j, number: int, estimate: float | None, *, limit: float | None = None, state=None, cost=None):
    claim = j.claim(str(number) * 64, ACCOUNT, model_id="m", resolution="2K", num_images=2, estimate=estimate,
                    daily_limit=limit)
    if claim.action is Action.SUBMIT:
        j.record_submitted(claim, f"req-{number}")
        if state is not None:
            j.record_state(f"req-{number}", state, cost)
    return claim


def test_the_limit_counts_estimates_until_a_cost_is_reported_and_nothing_for_a_queued_cancel(path):
    states = JobState
    j = Journal(path)
    _submitted_at(j, 1, 0.24)  # in flight: its estimate
    _submitted_at(j, 2, 0.24, state=states.COMPLETED, cost=0.30)  # reported: the cost
    _submitted_at(j, 3, 0.24, state=states.COMPLETED)  # finished without a cost: keeps its estimate
    _submitted_at(j, 4, 0.24, state=states.FAILED)  # may be billed: keeps its estimate
    _submitted_at(j, 5, 0.24, state=states.CANCELLED)  # cancelled while queued: not billed
    assert j.spent_today(ACCOUNT) == pytest.approx(0.30)
    assert j.counted_today(ACCOUNT) == pytest.approx(0.24 + 0.30 + 0.24 + 0.24)
    refused = _submitted_at(j, 6, 0.24, limit=1.2)
    assert refused.action is Action.OVER_LIMIT and refused.spent_today == pytest.approx(1.02)
    assert _submitted_at(j, 7, None, limit=100.0).action is Action.OVER_LIMIT  # an unknown price is never $0
    assert _submitted_at(j, 8, 0.18, limit=1.2).action is Action.SUBMIT  # exactly at the limit is within it
    assert len(j.recent(20)) == 6
    assert j.last_billed(ACCOUNT, "m", "2K")[:2] == (0.30, 2) and j.last_billed(ACCOUNT, "m", "4K") is None


def test_a_journal_of_the_first_version_gains_the_spend_columns_and_keeps_its_jobs(path):
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript("""CREATE TABLE jobs (id INTEGER PRIMARY KEY, request_id TEXT UNIQUE, model_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL, account TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
        updated_at REAL NOT NULL, finished_at REAL, cost REAL, prompt_preview TEXT NOT NULL DEFAULT '',
        files TEXT, owner TEXT, claim_token TEXT); PRAGMA user_version = 1;""")
    old.execute("INSERT INTO jobs (request_id, model_id, fingerprint, account, state, created_at, updated_at, cost) "
                "VALUES ('req-old', 'm', ?, ?, 'completed', strftime('%s','now'), strftime('%s','now'), 0.5)",
                (FP, ACCOUNT))
    old.commit()
    old.close()
    j = Journal(path)
    assert j.available and j.get("req-old").cost == 0.5
    assert j.counted_today(ACCOUNT) == pytest.approx(0.5)
    assert _submitted_at(j, 9, 0.1).action is Action.SUBMIT and j.counted_today(ACCOUNT) == pytest.approx(0.6)
