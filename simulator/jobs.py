"""Jobs, their lifecycle, job scripts, and the accounts that pay for them.

A job's state is computed from the clock whenever someone asks, never ticked
by a background thread: ``in_queue`` for ``queue_seconds``, ``in_progress``
for ``run_seconds``, then finished. That keeps the simulator cheap to start and
stop, and lets tests move time forward (``JobStore.advance``) instead of
sleeping. A normal job only reports ``completed`` once its files are rendered,
so a completed result can always be downloaded.

Job scripts make the next submitted jobs misbehave in ways the real service
was seen (or may be expected) to: fail, be blocked by the safety filter, never
finish, report success on /status but failure on /result, use unusual status
words, complete with an error or without images, list malformed URLs, serve
files that are no usable image, or put their files on another host.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from .billing import Account, usd_to_micros
from .images import DEFECTS, SCALE, SIZES_1K
from .inputs import InputImage
from .options import check_status_words, known_fields

IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = (
    "in_queue", "in_progress", "completed", "failed", "cancelled",
)
FINISHED = (COMPLETED, FAILED, CANCELLED)
OUTCOMES = (
    "completed", "failed", "blocked", "never_finishes", "queued_forever",
    "status_completed_result_failed", "cancelled_by_server",
)
OUTPUTS = ("files", "no_images", "empty", "null", "absent")
SAFETY_MESSAGE = "Image generation blocked by the safety filter (PROHIBITED_CONTENT); rephrase the prompt"
_DEFAULT_ERRORS: dict[str, tuple[str, str]] = {
    # outcome -> (message, code used when errors are objects)
    "failed": ("Generation failed: the model backend returned an internal error", "generation_failed"),
    "blocked": (SAFETY_MESSAGE, "content_blocked"),
    "status_completed_result_failed": ("Generation failed: the model returned no image", "generation_failed"),
    "cancelled_by_server": ("Request cancelled by the service", "cancelled"),
}


@dataclass(frozen=True)
class JobScript:
    """How one of the next submitted jobs behaves (the default: it completes).

    ``model_id`` restricts the script to submits of that model; ``count`` is
    how many jobs it applies to. ``reason``/``error_code`` replace the default
    error message/code of a failing outcome; on ``completed`` they put an
    ``error`` beside the output (e.g. ``reason="safety: blocked"``).
    ``output_host`` puts another host in the output URLs (a loopback IP keeps
    scheme and port; a name such as ``cdn.runcomfy.net`` becomes
    ``https://name``; a full ``scheme://host`` base is used as is).
    ``status_words`` renames states for this job only.

    What a completed job hands back:

    - ``output``: ``files`` (the URLs), ``no_images`` (``{"images": []}``),
      ``empty`` (``{}``), ``null`` (``"output": null``), ``absent`` (no key).
    - ``output_urls``: these URLs instead of the real ones; ``{url}`` in one
      stands for the real URL of the same index (e.g. ``"{url}\\tx"``, a tab).
    - ``file_content``: ``image`` (a real render), or bytes that pass for one
      at a glance: ``gif``, ``corrupt_png``, ``corrupt_jpeg``, ``huge_png``
      (a header announcing 100000x100000 pixels), ``truncated_image`` (the
      first half of the render, served whole).
    - ``aspect_ratios``: image ``i`` gets ``aspect_ratios[i % n]`` instead of
      the asked ratio, so one job can mix orientations and sizes.
    - ``output_resolution``: every image is rendered at this resolution
      instead of the asked one (users saw 2K/4K asks come back at the 1K
      size, e.g. 1376x768 for 16:9).
    - ``identical_images``: every image of the job is the first one, pixel
      for pixel (users saw ``num_images=2`` return one picture twice).
    """

    outcome: str = "completed"
    count: int = 1
    model_id: str | None = None
    reason: str | None = None
    error_code: str | None = None
    queue_seconds: float | None = None
    run_seconds: float | None = None
    output_host: str | None = None
    status_words: Mapping[str, str] | None = None
    output: str = "files"
    output_urls: tuple[str, ...] | None = None
    file_content: str = "image"
    aspect_ratios: tuple[str, ...] | None = None
    output_resolution: str | None = None
    identical_images: bool = False

    def __post_init__(self) -> None:
        if self.output_resolution is not None and self.output_resolution not in SCALE:
            raise ValueError(f"output_resolution must be None or one of {tuple(SCALE)}")
        if not isinstance(self.identical_images, bool):
            raise ValueError("identical_images must be true or false")
        for name, choices in (("outcome", OUTCOMES), ("output", OUTPUTS), ("file_content", ("image", *DEFECTS))):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name, allowed in (("output_urls", None), ("aspect_ratios", ("auto", *SIZES_1K))):
            values = getattr(self, name)
            if values is None:
                continue
            if isinstance(values, str) or not values or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{name} must be None or a non-empty list of strings")
            if allowed and not set(values) <= set(allowed):
                raise ValueError(f"{name} must be among {allowed}")
            object.__setattr__(self, name, tuple(values))
        object.__setattr__(self, "status_words", dict(self.status_words) if self.status_words else None)
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError("count must be an int >= 1")
        for name in ("queue_seconds", "run_seconds"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be None or a number >= 0")
        check_status_words(self.status_words)

    @classmethod
    def from_json(cls, data: Any) -> "JobScript":
        """Build from a control-endpoint payload; unknown keys are an error."""
        return cls(**known_fields(cls, data, "job script"))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_SCRIPT = JobScript()


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z`` suffix and milliseconds."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Job:
    """One accepted submit. Mutable fields are written under the store's lock
    (cancel) or once by the render worker before ``rendered`` is set."""

    request_id: str
    model_id: str
    account: str
    inputs: dict[str, Any]
    images: list[InputImage]
    cost_micros: int
    seq: int
    created_mono: float
    created_wall: datetime
    queue_seconds: float
    run_seconds: float
    script: JobScript
    refund_on_failure: bool
    cancelled_mono: float | None = None
    files: list[bytes] = field(default_factory=list)
    files_evicted: bool = False
    output_size: tuple[int, int] | None = None
    work_error: str | None = None
    rendered_mono: float | None = None
    rendered: threading.Event = field(default_factory=threading.Event)

    @property
    def needs_render(self) -> bool:
        """Only jobs that can complete produce files; the others would waste CPU."""
        return self.script.outcome == "completed"

    @property
    def num_images(self) -> int:
        return int(self.inputs.get("num_images", 1))

    def state(self, now: float) -> str:
        """The true state at ``now`` (what /result reports)."""
        if self.cancelled_mono is not None:
            return CANCELLED
        elapsed = now - self.created_mono
        outcome = self.script.outcome
        if outcome == "queued_forever" or elapsed < self.queue_seconds:
            return IN_QUEUE
        if outcome == "never_finishes" or elapsed < self.queue_seconds + self.run_seconds:
            return IN_PROGRESS
        if outcome in ("failed", "blocked", "status_completed_result_failed"):
            return FAILED
        if outcome == "cancelled_by_server":
            return CANCELLED
        if not self.rendered.is_set():
            return IN_PROGRESS
        return FAILED if self.work_error else COMPLETED

    def status_state(self, now: float) -> str:
        """What /status reports: the same, except for the "completed on /status,
        failed on /result" script."""
        state = self.state(now)
        if state == FAILED and self.script.outcome == "status_completed_result_failed":
            return COMPLETED
        return state

    def finished_mono(self, now: float) -> float | None:
        """When the job reached its final state, or None while it runs."""
        state = self.state(now)
        if state not in FINISHED:
            return None
        if self.cancelled_mono is not None:
            return self.cancelled_mono
        end = self.created_mono + self.queue_seconds + self.run_seconds
        return max(end, self.rendered_mono or end)

    def finished_wall(self, now: float) -> datetime | None:
        finished = self.finished_mono(now)
        if finished is None:
            return None
        return self.created_wall + timedelta(seconds=finished - self.created_mono)

    def error(self, now: float) -> tuple[str, str] | None:
        """(message, code) of a failed or cancelled job, or of a completed one
        scripted with a ``reason``; else None."""
        state = self.state(now)
        if state == COMPLETED:
            return (self.script.reason, self.script.error_code or "completed_with_error") if self.script.reason else None
        if state == CANCELLED:
            if self.cancelled_mono is not None:
                return "Request cancelled by the user", "cancelled"
            return self.script.reason or _DEFAULT_ERRORS["cancelled_by_server"][0], self.script.error_code or "cancelled"
        if state != FAILED:
            return None
        if self.work_error:
            return self.work_error, self.script.error_code or "input_unavailable"
        message, code = _DEFAULT_ERRORS[self.script.outcome]
        return self.script.reason or message, self.script.error_code or code

    def net_cost_micros(self, now: float) -> int:
        """What the job costs its account now: refunded when cancelled (by the
        user or the service), and when failed if the refund policy says so."""
        state = self.state(now)
        if state == CANCELLED or (state == FAILED and self.refund_on_failure):
            return 0
        return self.cost_micros

    def status_word(self, state: str, default_words: Mapping[str, str]) -> str:
        words = self.script.status_words if self.script.status_words else default_words
        return words.get(state, state)


class SubmitRefused(Exception):
    """A submit the store will not accept (no balance, too many jobs)."""

    def __init__(self, status: int, error_code: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.error_code, self.retry_after = status, error_code, retry_after


class JobStore:
    """Jobs, accounts and job scripts behind one lock, with a clock tests can move."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._accounts: dict[str, Account] = {}  # token -> account (an account may have many tokens)
        self._token_kinds: dict[str, tuple[str, float]] = {}  # token -> (token_type, created, unix seconds)
        self._scripts: list[list[Any]] = []  # [script, remaining]
        self._seq = 0
        self._offset = 0.0
        self._stored: deque[Job] = deque()
        self._stored_bytes = 0

    def now(self) -> float:
        """Simulator time: monotonic, plus however far tests advanced it."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Move simulator time forward, so lifecycles can be stepped without sleeping."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset += seconds

    def add_account(self, token: str | None, balance_usd: float, name: str | None = None,
                    email: str | None = "auto") -> str:
        """Open an account; returns its token (a generated one unless given).

        ``email``: what ``auth/me`` reports; "auto" makes one up from the name, None reports none.
        """
        token = token or secrets.token_urlsafe(32)
        with self._lock:
            if token in self._accounts:
                raise ValueError("that token already belongs to an account")
            name = name or f"account-{len(self.accounts()) + 1}"
            if any(a.name == name for a in self._accounts.values()):
                raise ValueError(f"account name {name!r} is taken")
            if email == "auto":
                email = f"{name}@simulator.invalid"
            self._accounts[token] = Account(name, usd_to_micros(balance_usd), email=email)
            self._token_kinds[token] = ("api", time.time())
            return token

    def mint_token(self, account: Account, token_type: str = "cli") -> str:
        """A fresh token for ``account`` (a device sign-in mints one on every login)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._accounts[token] = account
            self._token_kinds[token] = (token_type, time.time())
        return token

    def token_kind(self, token: str) -> tuple[str, float] | None:
        """(token_type, created_at in unix seconds) of a known token."""
        with self._lock:
            return self._token_kinds.get(token)

    def account_for_token(self, token: str | None) -> Account | None:
        if not token:
            return None
        with self._lock:
            return self._accounts.get(token)

    def account_named(self, name: str) -> Account:
        with self._lock:
            for account in self._accounts.values():
                if account.name == name:
                    return account
        raise KeyError(f"no account named {name!r}")

    def accounts(self) -> list[Account]:
        with self._lock:
            return list({id(a): a for a in self._accounts.values()}.values())

    def balance_micros(self, account: Account) -> int:
        with self._lock:
            now = self.now()
            spent = sum(j.net_cost_micros(now) for j in self._jobs.values() if j.account == account.name)
            return account.funds_micros - spent

    def set_balance(self, account: Account, balance_usd: float) -> None:
        with self._lock:
            account.funds_micros += usd_to_micros(balance_usd) - self.balance_micros(account)

    def add_script(self, script: JobScript) -> JobScript:
        with self._lock:
            self._scripts.append([script, script.count])
        return script

    def scripts(self) -> list[tuple[JobScript, int]]:
        with self._lock:
            return [(s, n) for s, n in self._scripts]

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()

    def _take_script(self, model_id: str) -> JobScript:
        for entry in self._scripts:
            script, remaining = entry
            if script.model_id in (None, model_id):
                entry[1] = remaining - 1
                if entry[1] <= 0:
                    self._scripts.remove(entry)
                return script
        return DEFAULT_SCRIPT

    def create(
        self,
        *,
        model_id: str,
        account: Account,
        inputs: dict[str, Any],
        images: list[InputImage],
        cost_micros: int,
        queue_seconds: float,
        run_seconds: float,
        refund_on_failure: bool,
        max_active_jobs: int | None,
    ) -> Job:
        """Check the balance, bill and create the job, atomically.

        Raises ``SubmitRefused`` (402 / 429) without touching any state.
        """
        with self._lock:
            now = self.now()
            balance = self.balance_micros(account)
            if balance < cost_micros:
                raise SubmitRefused(
                    402, 400002,
                    f"Insufficient balance: this request costs ${cost_micros / 1e6:.2f} and the "
                    f"account has ${max(balance, 0) / 1e6:.2f}; top up your RunComfy balance",
                )
            if max_active_jobs is not None:
                active = sum(
                    1 for j in self._jobs.values()
                    if j.account == account.name and j.state(now) in (IN_QUEUE, IN_PROGRESS)
                )
                if active >= max_active_jobs:
                    raise SubmitRefused(
                        429, 429001,
                        f"Too many concurrent requests: {active} are queued or running "
                        f"(limit {max_active_jobs}); retry later", retry_after=1,
                    )
            script = self._take_script(model_id)
            self._seq += 1
            job = Job(
                request_id=str(uuid.uuid4()),
                model_id=model_id,
                account=account.name,
                inputs=inputs,
                images=images,
                cost_micros=cost_micros,
                seq=self._seq,
                created_mono=now,
                created_wall=datetime.now(timezone.utc),
                queue_seconds=queue_seconds if script.queue_seconds is None else script.queue_seconds,
                run_seconds=run_seconds if script.run_seconds is None else script.run_seconds,
                script=script,
                refund_on_failure=refund_on_failure,
            )
            self._jobs[job.request_id] = job
            return job

    def get(self, request_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(request_id)

    def jobs(self) -> dict[str, Job]:
        with self._lock:
            return dict(self._jobs)

    def queue_position(self, job: Job, now: float) -> int:
        """1 + the queued jobs of the same model submitted before this one."""
        with self._lock:
            ahead = sum(
                1 for other in self._jobs.values()
                if other.model_id == job.model_id and other.seq < job.seq and other.state(now) == IN_QUEUE
            )
            return ahead + 1

    def cancel(self, job: Job) -> bool:
        """Cancel a queued job (refunded by ``net_cost_micros``); False if not queued."""
        with self._lock:
            now = self.now()
            if job.state(now) != IN_QUEUE:
                return False
            job.cancelled_mono = now
            return True

    def keep_files(self, job: Job, files: list[bytes], max_bytes: int) -> None:
        """Attach a job's rendered files; expire the oldest jobs' files beyond ``max_bytes``."""
        with self._lock:
            job.files = files
            self._stored.append(job)
            self._stored_bytes += sum(len(f) for f in files)
            while self._stored_bytes > max_bytes and len(self._stored) > 1:
                old = self._stored.popleft()
                self._stored_bytes -= sum(len(f) for f in old.files)
                old.files, old.files_evicted = [], True

    def reset(self) -> None:
        """Forget jobs, scripts and accounts (the caller re-creates accounts)."""
        with self._lock:
            self._jobs.clear()
            self._scripts.clear()
            self._accounts.clear()
            self._token_kinds.clear()
            self._seq = 0
            self._stored.clear()
            self._stored_bytes = 0
