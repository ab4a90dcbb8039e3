"""RunComfy Model API client: plain Python + httpx, no ComfyUI and no torch.

Layers, one concern each:

- ``api.RunComfyClient``  the HTTP surface: one method per call, one attempt each, typed errors
- ``jobs.Jobs``           one paid job: the pre-submit gate, the journal, slots, the submit;
                          ``shared_jobs`` gives the one for this loop
- ``journey.Journey``     a submitted job followed to its end (retries, pacing, Stop, downloads)
- ``request``, ``responses``, ``schemas``, ``download``   what goes out and what comes back
- ``config``, ``errors``, ``limits``, ``formats``, ``retry``, ``pacing``, ``stop``   the facts they share
"""

from .api import RunComfyClient
from .config import Settings, load_settings
from .errors import (
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    DownloadError,
    InsufficientBalanceError,
    JobBlockedError,
    JobCancelledError,
    JobError,
    JobFailedError,
    JobTimeoutError,
    MissingTokenError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    RequestValidationError,
    ResultError,
    RunComfyError,
    ServerError,
    SpendLimitError,
    SubmitNotSentError,
    SubmitOutcomeUnknownError,
)
from .jobs import FinishedJob, Jobs, shared_jobs
from .responses import Phase
from .schemas import EDIT, TEXT_TO_IMAGE, InlineImage, get_schema
from .stop import Stop
from .updates import JobUpdate, Stage

__all__ = [
    "APITimeoutError", "AuthenticationError", "ConfigurationError", "DownloadError", "EDIT", "FinishedJob",
    "InlineImage", "InsufficientBalanceError", "JobBlockedError", "JobCancelledError", "JobError",
    "JobFailedError", "JobTimeoutError", "JobUpdate", "Jobs", "MissingTokenError", "NetworkError",
    "NotFoundError", "Phase", "RateLimitedError", "RequestValidationError", "ResultError", "RunComfyClient",
    "RunComfyError", "ServerError", "Settings", "SpendLimitError", "Stage", "Stop", "SubmitNotSentError",
    "SubmitOutcomeUnknownError", "TEXT_TO_IMAGE", "get_schema", "load_settings", "shared_jobs",
]
