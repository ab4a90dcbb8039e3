"""One error hierarchy for everything that can go wrong talking to RunComfy.

Every message is a single line that tells the user what to do next, carries the
request id when a job exists (so it can be found in the RunComfy dashboard),
and is scrubbed of any registered secret before it is stored, so a token can
never leak through ``str(exc)``, a log record or a ComfyUI error popup.
"""

from __future__ import annotations

_SECRETS: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a value that must never appear in an error message."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RunComfyError(Exception):
    """Base of every error this pack raises about the RunComfy API."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
        error_code: int | str | None = None,
    ) -> None:
        one_line = " ".join(str(message).split())
        if request_id and request_id not in one_line:
            one_line = f"{one_line} (request id {request_id})"
        self.message = redact(one_line)
        self.request_id = request_id
        self.status_code = status_code
        self.error_code = error_code
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ConfigurationError(RunComfyError):
    """The local setup is wrong (bad base URL, unreadable config file)."""


class MissingTokenError(ConfigurationError):
    """No API token could be found; nothing was sent."""


class RequestValidationError(RunComfyError):
    """The inputs do not match the model schema.

    Raised locally before any network call, or from the server's HTTP 400/422.
    ``field`` names the offending input (e.g. ``num_images`` or
    ``image_urls[3]``) when known.
    """

    def __init__(self, message: str, *, field: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class AuthenticationError(RunComfyError):
    """The token is invalid, expired, or the account is inactive."""


class InsufficientBalanceError(RunComfyError):
    """The account has no balance left; the job was not accepted."""


class NotFoundError(RunComfyError):
    """The model or request id is unknown, expired, or belongs to another user."""


class RateLimitedError(RunComfyError):
    """The API asked us to slow down (HTTP 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(RunComfyError):
    """RunComfy answered with a server error or a body that is not valid JSON."""


class NetworkError(RunComfyError):
    """The connection failed before an answer arrived."""


class APITimeoutError(NetworkError):
    """An HTTP call took longer than its timeout."""


class SubmitOutcomeUnknownError(RunComfyError):
    """A submit was sent but its answer was lost: the job may exist and be billed.

    Never retried automatically, because the API has no idempotency key and a
    second submit would be billed again.
    """


class JobError(RunComfyError):
    """A job was accepted but did not produce images."""


class JobFailedError(JobError):
    """The job ended in a failed state; ``reason`` is the API's own words."""

    def __init__(self, message: str, *, reason: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


class JobBlockedError(JobFailedError):
    """The job was stopped by the model's safety filter."""


class JobCancelledError(JobError):
    """The job was cancelled, by the user or on RunComfy's side."""


class JobTimeoutError(JobError):
    """We stopped waiting; the job may still finish and be billed."""


class DownloadError(RunComfyError):
    """A result file could not be fetched safely or is not an image."""
