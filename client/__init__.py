"""RunComfy Model API client: plain Python + httpx, no ComfyUI and no torch.

``run_job`` is the entry point for one paid generation; ``shared_client`` gives
the pooled client for the running event loop.
"""

from .api import RunComfyClient, shared_client
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
    RunComfyError,
    ServerError,
    SubmitOutcomeUnknownError,
)
from .jobs import FinishedJob, run_job
from .polling import JobUpdate
from .responses import Phase
from .schemas import EDIT, TEXT_TO_IMAGE, get_schema

__all__ = [
    "APITimeoutError", "AuthenticationError", "ConfigurationError", "DownloadError", "EDIT", "FinishedJob",
    "InsufficientBalanceError", "JobBlockedError", "JobCancelledError", "JobError", "JobFailedError",
    "JobTimeoutError", "JobUpdate", "MissingTokenError", "NetworkError", "NotFoundError", "Phase",
    "RateLimitedError", "RequestValidationError", "RunComfyClient", "RunComfyError", "ServerError",
    "Settings", "SubmitOutcomeUnknownError", "TEXT_TO_IMAGE", "get_schema", "load_settings", "run_job",
    "shared_client",
]
