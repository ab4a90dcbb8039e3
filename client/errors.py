"""Everything that can go wrong talking to RunComfy, as one tree.

    RunComfyError                 one line, says what to do, never holds a token
    ├── ConfigurationError        the local setup (token text, config file, base URL)
    │   ├── MissingTokenError     no token anywhere: nothing was sent
    │   ├── OfflineError          the host application forbids online calls: nothing was sent
    │   └── ProxyRefusedError     the proxy turned the call away (e.g. HTTP 407): nothing reached RunComfy
    ├── RequestValidationError    inputs refused, here (nothing sent) or by RunComfy (400/422)
    ├── SpendLimitError           the daily spend limit would be passed: nothing sent
    ├── AuthenticationError       the token was rejected (401/403, error 400004)
    ├── InsufficientBalanceError  no balance (402, error 400002): nothing billed
    ├── NotFoundError             unknown model or request id, or another account's
    ├── RateLimitedError          HTTP 429                                  [transient]
    ├── ServerError               5xx, or an answer that cannot be read     [transient]
    ├── NetworkError              no answer at all                          [transient]
    │   ├── APITimeoutError       ...because it took too long
    │   └── SubmitNotSentError    ...and the submit never left this machine
    ├── SubmitOutcomeUnknownError a submit was sent, its answer lost: may be billed, never re-sent
    └── JobError                  about a job that exists: always carries its request id
        ├── JobFailedError        RunComfy says the job failed (``reason``)
        │   └── JobBlockedError   ...because of the safety filter
        ├── JobCancelledError     cancelled, by Stop or by RunComfy
        ├── JobTimeoutError       we stopped waiting; it may still finish and be billed
        └── ResultError           the job's result could not be collected
            └── DownloadError     ...because a file could not be fetched safely
                └── CutFileError  ...because it arrived complete-looking but cut off [transient]

``transient`` marks the errors worth repeating a free call for. Messages are
scrubbed of every registered secret before they are shortened or stored, so a
token cannot leak through ``str(exc)``, a log record or an error popup.
"""

from __future__ import annotations

__all__ = [
    "APITimeoutError", "AuthenticationError", "ConfigurationError", "CutFileError", "DownloadError",
    "InsufficientBalanceError", "JobBlockedError", "JobCancelledError", "JobError", "JobFailedError",
    "JobTimeoutError", "MissingTokenError", "NetworkError", "OfflineError", "ProxyRefusedError", "NotFoundError", "RateLimitedError",
    "RequestValidationError", "ResultError", "RunComfyError", "ServerError", "SpendLimitError", "SubmitNotSentError",
    "SubmitOutcomeUnknownError", "redact", "register_secret", "shorten",
]

_SECRETS: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a value that must never appear in an error message."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def shorten(text: str, limit: int = 200) -> str:
    """Scrub, then cut: cutting first could leave most of a secret behind."""
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunComfyError(Exception):
    """Base of every error this pack raises about the RunComfy API."""

    transient = False

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
    """The local setup is wrong (bad base URL, unreadable config file, bad token text)."""


class MissingTokenError(ConfigurationError):
    """No API token could be found; nothing was sent."""


class OfflineError(ConfigurationError):
    """The host application (ComfyUI started with ``--offline``) forbids calls to RunComfy: nothing was sent."""


class ProxyRefusedError(ConfigurationError):
    """The configured proxy answered instead of RunComfy and refused the call (its
    password, say, is wrong); the call never reached RunComfy, so nothing was billed."""


class RequestValidationError(RunComfyError):
    """The inputs do not match the model schema; ``field`` names the input when known."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class SpendLimitError(RunComfyError):
    """The job would take today's reported spend past the user's daily limit; nothing was sent."""


class AuthenticationError(RunComfyError):
    """The token is invalid, expired, or the account is inactive."""


class InsufficientBalanceError(RunComfyError):
    """The account has no balance left; the job was not accepted."""


class NotFoundError(RunComfyError):
    """The model or request id is unknown, expired, or belongs to another user."""


class RateLimitedError(RunComfyError):
    """RunComfy asked us to slow down; ``retry_after`` is its wish in seconds, if it gave one."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(RunComfyError):
    """RunComfy answered with a server error or a body that is not a JSON object."""

    transient = True


class NetworkError(RunComfyError):
    """The connection failed before an answer arrived."""

    transient = True


class APITimeoutError(NetworkError):
    """An HTTP call took longer than its timeout."""


class SubmitNotSentError(NetworkError):
    """The submit could not even be sent (no connection): sending it again cannot bill twice."""


class SubmitOutcomeUnknownError(RunComfyError):
    """A submit was sent but its answer was lost: the job may exist and be billed.

    Never repeated, because the API has no idempotency key and a second submit
    would be billed again.
    """


class JobError(RunComfyError):
    """A job was accepted but did not end in images in hand."""


class JobFailedError(JobError):
    """The job ended in a failed state; ``reason`` is the API's own words."""

    def __init__(self, message: str, *, reason: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


class JobBlockedError(JobFailedError):
    """The job was stopped by the model's safety filter."""


class JobCancelledError(JobError):
    """The job was cancelled, by the user or on RunComfy's side (or Stop came before any submit)."""


class JobTimeoutError(JobError):
    """We stopped waiting; the job may still finish and be billed."""


class ResultError(JobError):
    """The job finished, but its result could not be turned into images."""


class DownloadError(ResultError):
    """A result file could not be fetched safely, or is not an image.

    ``transient``: a server error, a broken connection or a cut-off body,
    which may go better a moment later.
    """

    def __init__(self, message: str, *, transient: bool = False, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.transient = transient


class CutFileError(DownloadError):
    """A result file arrived whole as far as HTTP can tell, but its image ends early.

    Usually a cut in transit that the next download mends; ``length`` and
    ``sha256`` let the caller see when RunComfy serves the very same broken
    bytes again and again, i.e. when its stored file itself is damaged.
    """

    def __init__(self, message: str, *, length: int, sha256: str, **kwargs) -> None:
        super().__init__(message, transient=True, **kwargs)
        self.length = length
        self.sha256 = sha256
