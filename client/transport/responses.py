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
from typing import Any, Callable, Mapping

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
    """Turn an error answer (HTTP >= 400, or 200 with ``error_code``) into one typed error.

    RunComfy documents its error codes but not the HTTP status each comes
    with (runcomfy-api.md, "Errors"), so a known ``error_code`` decides, on
    whatever status it arrives (400004 on 400 or 401 alike); only an answer
    without a known code is read by its HTTP status, as RunComfy's clients do.
    """
    body = body or {}
    code = body.get("error_code")
    said = _error_text(body.get("error_message")) or _error_text(body.get("error")) or ""
    said = shorten(said)
    answer = _Answer(
        status_code, code, said, body.get("detail"), retry_after,
        where=f"HTTP {status_code}" + (f", error {code}" if code else "") + (f": {said}" if said else ""),
        common={"request_id": request_id, "status_code": status_code, "error_code": code},
    )
    kind = _KIND_BY_CODE.get(str(code or "").strip()) or _kind_by_status(status_code)
    return _BUILDERS[kind](answer)


@dataclass(frozen=True)
class _Answer:
    """What an error answer said, as the builders below need it."""

    status_code: int
    code: Any
    said: str
    detail: Any
    retry_after: float | None
    where: str
    common: dict[str, Any]


# The documented codes (runcomfy-api.md, "Errors") and the kind of error each one is.
_KIND_BY_CODE: dict[str, str] = {
    "400001": "unknown_model",
    "400002": "balance",
    "400004": "token",
    "403001": "other_account",
    "404001": "unknown_request",
    "422001": "inputs",
    "500001": "server",
}


def _kind_by_status(status_code: int) -> str:
    """The kind of an error answer without a known code: RunComfy's clients' reading of HTTP statuses."""
    by_status = {401: "token", 403: "token", 402: "balance", 404: "unknown_request", 429: "rate_limited",
                 413: "too_large", 400: "inputs", 422: "inputs"}
    return by_status.get(status_code) or ("server" if status_code >= 500 else "other")


def _inputs_error(a: _Answer) -> RunComfyError:
    field_name, detail_msg = _first_detail_field(a.detail)
    reason = f"{field_name}: {detail_msg}" if field_name and detail_msg else (detail_msg or a.said)
    return RequestValidationError(
        f"RunComfy refused the inputs (HTTP {a.status_code}" + (f", error {a.code}" if a.code else "")
        + f"): {reason or 'they do not match the model schema'}; fix that input and run again",
        field=field_name, **a.common,
    )


_BUILDERS: dict[str, Callable[[_Answer], RunComfyError]] = {
    "token": lambda a: AuthenticationError(
        f"RunComfy rejected the API token ({a.where}); check RUNCOMFY_API_TOKEN or create a new "
        "token in your RunComfy profile", **a.common),
    "balance": lambda a: InsufficientBalanceError(
        f"Your RunComfy balance is too low ({a.where}); top up your account, nothing was billed", **a.common),
    "other_account": lambda a: NotFoundError(
        f"This request belongs to another RunComfy account ({a.where})", **a.common),
    "unknown_model": lambda a: NotFoundError(
        f"RunComfy does not know this model ({a.where}); check the model id", **a.common),
    "unknown_request": lambda a: NotFoundError(
        f"RunComfy does not know this request ({a.where}); it may have expired", **a.common),
    "rate_limited": lambda a: RateLimitedError(
        f"RunComfy is rate limiting this account ({a.where}); wait a moment and run again",
        retry_after=a.retry_after, **a.common),
    # often a proxy's HTML page, before RunComfy saw the request
    "too_large": lambda a: RequestValidationError(
        f"The request is too large for RunComfy ({a.where}); use fewer or smaller input images. "
        "Nothing was billed", field="image_urls", **a.common),
    "inputs": _inputs_error,
    "server": lambda a: ServerError(f"RunComfy had a server error ({a.where}); try again in a minute", **a.common),
    "other": lambda a: RunComfyError(f"RunComfy answered with an error ({a.where})", **a.common),
}
