"""What the user is told about a job, and how telling them can never hurt the job.

A ``JobUpdate`` is one change worth showing (a node's status line and progress
bar, the command line's stderr). The callback that shows it is best effort: a
display that fails is logged once and never changes what happens to a paid job.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Callable

__all__ = ["JobUpdate", "Stage", "UpdateCallback", "best_effort"]

log = logging.getLogger("runcomfy")


class Stage(str, enum.Enum):
    """Where a job is, as the user is told."""

    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHING = "finishing"
    OTHER_STATUS = "status"  # a status word this pack does not know: still waiting
    RETRYING = "retrying"
    DOWNLOADING = "downloading"
    DONE = "done"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    NOT_CANCELLABLE = "not_cancellable"
    REUSED = "reused"  # the same inputs were paid for before: their stored files are returned
    RESUMING = "resuming"  # a job of the same inputs already exists: followed, not submitted


@dataclass(frozen=True)
class JobUpdate:
    """One change worth telling the user about."""

    stage: Stage
    request_id: str | None = None
    status: str | None = None
    queue_position: int | None = None
    detail: str | None = None
    expected_seconds: float | None = None  # how long a running job of this kind usually runs

    def describe(self) -> str:
        """A short line for a status display."""
        rid = f" · {self.request_id}" if self.request_id else ""
        if self.stage is Stage.QUEUED and self.queue_position is not None:
            return f"queued (position {self.queue_position}){rid}"
        if self.stage is Stage.OTHER_STATUS:
            return f"RunComfy says {self.status!r}{rid}"
        if self.stage is Stage.RESUMING:
            return f"resuming request {self.request_id}: already paid for, not submitted again"
        if self.stage is Stage.REUSED:
            return f"reused the result of request {self.request_id} from {self.detail}, not billed again"
        return f"{self.stage.value}{': ' + self.detail if self.detail else ''}{rid}"


UpdateCallback = Callable[[JobUpdate], None]


def best_effort(on_update: UpdateCallback | None) -> UpdateCallback:
    """A display problem must never decide a paid job's fate: failures are logged once."""
    failed = False

    def report(update: JobUpdate) -> None:
        nonlocal failed
        if on_update is None:
            return
        try:
            on_update(update)
        except Exception:
            if not failed:
                failed = True
                log.exception("Showing the job's progress failed; the job carries on")

    return report
