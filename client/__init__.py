"""RunComfy Model API client: plain Python + httpx, no ComfyUI and no torch.

Folders, one concern each:

- ``transport/``  the HTTP surface (``api.RunComfyClient``): one method per call, one attempt each,
                  typed errors; answers read in ``responses``, result files fetched in ``download``
- ``job/``        one paid job: ``jobs.Jobs`` (the gate, the journal, slots, the submit; ``shared_jobs``
                  gives the one for this loop), ``journey.Journey`` (a submitted job followed to its end)
- ``model/``      what the model takes: schemas, the pack's own input rules, the request body
- ``ledger/``     what outlives a process: the journal, the result store, fingerprints, spend
- ``pricing/``    prices read from RunComfy's model info
- ``config/``     the token, base URLs, preferences and every path rule
- ``errors``, ``limits``, ``formats``   the facts every folder shares
"""

from .transport.api import RunComfyClient
from .config.settings import Settings, load_settings
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
from .job.jobs import FinishedJob, Jobs, shared_jobs
from .transport.responses import Phase
from .model.schemas import EDIT, TEXT_TO_IMAGE, InlineImage, get_schema
from .job.stop import Stop
from .job.updates import JobUpdate, Stage

__all__ = [
    "APITimeoutError", "AuthenticationError", "ConfigurationError", "DownloadError", "EDIT", "FinishedJob",
    "InlineImage", "InsufficientBalanceError", "JobBlockedError", "JobCancelledError", "JobError",
    "JobFailedError", "JobTimeoutError", "JobUpdate", "Jobs", "MissingTokenError", "NetworkError",
    "NotFoundError", "Phase", "RateLimitedError", "RequestValidationError", "ResultError", "RunComfyClient",
    "RunComfyError", "ServerError", "Settings", "SpendLimitError", "Stage", "Stop", "SubmitNotSentError",
    "SubmitOutcomeUnknownError", "TEXT_TO_IMAGE", "get_schema", "load_settings", "shared_jobs",
]
