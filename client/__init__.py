"""RunComfy Model API client: plain Python + httpx, no ComfyUI and no torch.

``run_job`` is the entry point for one paid generation; ``shared_client`` gives
the pooled client for the running event loop.
"""

from .api import RunComfyClient, shared_client
from .config import Settings, load_settings
from .errors import *  # noqa: F401,F403 - the error hierarchy is part of the API
from .jobs import FinishedJob, run_job
from .polling import JobUpdate
from .responses import Phase
from .schemas import EDIT, TEXT_TO_IMAGE, get_schema
