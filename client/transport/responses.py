"""Typed views of RunComfy's JSON answers, and the mapping of error bodies.

Parsing is tolerant (fields may be missing, statuses may come in several
spellings) but never optimistic: an unknown status is ``Phase.UNKNOWN``, which
nothing treats as success.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import (
    AuthenticationError,
    InsufficientBalanceError,
    NotFoundError,
    RateLimitedError,
    RequestValidationError,
    RunComfyError,
    ServerError,
    SubmitOutcomeUnknownError,
    shorten,
)


class Phase(enum.Enum):
    """Where a job is, whatever spelling the API used."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED)


_PHASE_BY_STATUS = {
    "in_queue": Phase.QUEUED,
    "queued": Phase.QUEUED,
    "pending": Phase.QUEUED,
    "waiting": Phase.QUEUED,
    "in_progress": Phase.RUNNING,
    "starting": Phase.RUNNING,
    "processing": Phase.RUNNING,
    "running": Phase.RUNNING,
    "completed": Phase.COMPLETED,
    "succeeded": Phase.COMPLETED,
    "failed": Phase.FAILED,
    "error": Phase.FAILED,
    "cancelled": Phase.CANCELLED,
    "canceled": Phase.CANCELLED,
}


def phase_of(status: Any) -> Phase:
    """Map a raw status string to a phase; anything unrecognised is UNKNOWN."""
    return _PHASE_BY_STATUS.get(str(status or "").strip().lower(), Phase.UNKNOWN)


@dataclass(frozen=True)
class JobStatus:
    request_id: str
    status: str
    phase: Phase
    queue_position: int | None = None


@dataclass(frozen=True)
class JobResult:
    """The answer of ``/result``; ``image_urls`` in the order the API gave them."""

    request_id: str
    status: str
    phase: Phase
    image_urls: tuple[str, ...] = ()
    error: str | None = None
    cost: float | None = None
    created_at: str | None = None
    finished_at: str | None = None
    queue_position: int | None = None
    model_id: str | None = None  # "sometimes present"

    @property
    def run_seconds(self) -> float | None:
        """Seconds from ``created_at`` to ``finished_at`` by RunComfy's clock, if both are readable."""
        try:
            first, last = (
                datetime.fromisoformat(str(text).replace("Z", "+00:00")) for text in (self.created_at, self.finished_at)
            )
            return (last - first).total_seconds()
        except (TypeError, ValueError):  # missing, malformed, or one naive and one aware
            return None


@dataclass(frozen=True)
class CancelOutcome:
    """Whether RunComfy accepted a cancel (running jobs are not cancellable), and its words."""

    cancelled: bool
    said: str | None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_text(value: Any) -> str | None:
    """The API's error may be a string or an object; keep its words either way."""
    if value in (None, "", {}, []):
        return None
    if isinstance(value, Mapping):
        for key in ("message", "error_message", "detail", "reason"):
            if value.get(key):
                return str(value[key])
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def image_urls_of(output: Any) -> tuple[str, ...]:
    """All image URLs in an ``output`` object, ``images`` first, without repeats."""
    if not isinstance(output, Mapping):
        return ()
    found: list[str] = []
    images = output.get("images")
    if isinstance(images, list):
        found.extend(url for url in images if isinstance(url, str) and url)
    single = output.get("image")
    if isinstance(single, str) and single and single not in found:
        found.append(single)
    return tuple(found)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{3,127}$")


def check_request_id(value: Any) -> str:
    """A request id safe to put in a URL path (RunComfy's are UUIDs), or a one-line error."""
    text = value.strip() if isinstance(value, str) else ""
    if not _REQUEST_ID.match(text):
        shown = shorten(repr(value), 60)
        raise RequestValidationError(
            f"{shown} is not a RunComfy request id (letters, digits, '-' and '_', e.g. a UUID)",
            field="request_id",
        )
    return text


def parse_submission(body: Mapping[str, Any]) -> str:
    """The request id of an accepted submit (the status/result/cancel URLs it also
    sends are the documented paths, which the client builds itself)."""
    try:
        return check_request_id(body.get("request_id"))
    except RequestValidationError:
        raise SubmitOutcomeUnknownError(
            "RunComfy accepted the submit but sent no usable request_id, so the job may exist and be "
            "billed; check the Requests page of your RunComfy dashboard"
        ) from None


def parse_status(body: Mapping[str, Any], request_id: str) -> JobStatus:
    status = str(body.get("status") or "")
    return JobStatus(
        request_id=str(body.get("request_id") or request_id),
        status=status,
        phase=phase_of(status),
        queue_position=_int_or_none(body.get("queue_position")),
    )


def parse_result(body: Mapping[str, Any], request_id: str) -> JobResult:
    status = str(body.get("status") or "")
    cost = body.get("cost")
    return JobResult(
        request_id=str(body.get("request_id") or request_id),
        status=status,
        phase=phase_of(status),
        image_urls=image_urls_of(body.get("output")),
        error=_error_text(body.get("error")),
        cost=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
        created_at=body.get("created_at"),
        finished_at=body.get("finished_at"),
        queue_position=_int_or_none(body.get("queue_position")),
        model_id=body.get("model_id") if isinstance(body.get("model_id"), str) else None,
    )


def parse_cancel(body: Mapping[str, Any]) -> CancelOutcome:
    status = body.get("status")
    outcome = body.get("outcome")
    refused = str(outcome or "").lower() in ("not_cancellable", "not_cancelable", "rejected")
    cancelled = not refused and (
        phase_of(status) is Phase.CANCELLED
        or str(outcome or "").lower() in ("cancellation_requested", "cancelled", "canceled")
    )
    return CancelOutcome(cancelled, status or outcome)


def _first_detail_field(detail: Any) -> tuple[str | None, str | None]:
    """The field and message of the first FastAPI-style validation detail."""
    if isinstance(detail, list) and detail and isinstance(detail[0], Mapping):
        loc = [str(part) for part in detail[0].get("loc", []) if part != "body"]
        name = ""
        for part in loc:
            name += f"[{part}]" if part.isdigit() else (f".{part}" if name else part)
        return (name or None), (str(detail[0].get("msg")) if detail[0].get("msg") else None)
    if isinstance(detail, str):
        return None, detail
    return None, None


def error_from_response(
    status_code: int,
    body: Mapping[str, Any] | None,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> RunComfyError:
    """Turn an error answer (HTTP >= 400, or 200 with ``error_code``) into one typed error."""
    body = body or {}
    code = body.get("error_code")
    said = _error_text(body.get("error_message")) or _error_text(body.get("error")) or ""
    said = shorten(said)
    where = f"HTTP {status_code}" + (f", error {code}" if code else "") + (f": {said}" if said else "")
    common = {"request_id": request_id, "status_code": status_code, "error_code": code}
    code_text = str(code or "")

    if code_text == "400004" or status_code in (401, 403) and code_text != "403001":
        return AuthenticationError(
            f"RunComfy rejected the API token ({where}); check RUNCOMFY_API_TOKEN or create a new "
            "token in your RunComfy profile",
            **common,
        )
    if code_text == "400002" or status_code == 402:
        return InsufficientBalanceError(
            f"Your RunComfy balance is too low ({where}); top up your account, nothing was billed",
            **common,
        )
    if code_text == "403001":
        return NotFoundError(f"This request belongs to another RunComfy account ({where})", **common)
    if code_text in ("404001", "400001") or status_code == 404:
        what = "model" if code_text == "400001" else "request"
        return NotFoundError(f"RunComfy does not know this {what} ({where}); it may have expired", **common)
    if status_code == 429:
        return RateLimitedError(
            f"RunComfy is rate limiting this account ({where}); wait a moment and run again",
            retry_after=retry_after,
            **common,
        )
    if status_code == 413:  # often a proxy's HTML page, before RunComfy saw the request
        return RequestValidationError(
            f"The request is too large for RunComfy ({where}); use fewer or smaller input images. "
            "Nothing was billed",
            field="image_urls",
            **common,
        )
    if code_text == "422001" or status_code in (400, 422):
        field_name, detail_msg = _first_detail_field(body.get("detail"))
        reason = f"{field_name}: {detail_msg}" if field_name and detail_msg else (detail_msg or said)
        return RequestValidationError(
            f"RunComfy refused the inputs (HTTP {status_code}"
            + (f", error {code}" if code else "")
            + f"): {reason or 'they do not match the model schema'}; fix that input and run again",
            field=field_name,
            **common,
        )
    if status_code >= 500 or code_text == "500001":
        return ServerError(f"RunComfy had a server error ({where}); try again in a minute", **common)
    return RunComfyError(f"RunComfy answered with an error ({where})", **common)
