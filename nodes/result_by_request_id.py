"""Nano Banana 2 Result by Request ID: collect a job that was already paid for."""

from __future__ import annotations

from ..client.errors import RequestValidationError
from ..client.transport.responses import check_request_id
from .base import NanoBanana2Node
from .runner import collect_result


class RunComfyNanoBanana2ResultByRequestId(NanoBanana2Node):
    """Follow a RunComfy request to its end and return its images; never submits, so it is free."""

    DESCRIPTION = (
        "Collects the images of a Nano Banana 2 job that already exists on RunComfy, by its request id "
        "(from the RunComfy dashboard, another node's info output or an error message). It never "
        "submits anything, so it costs nothing; images already in the pack's result store are "
        "taken from there."
    )
    OUTPUT_TOOLTIPS = (
        "The request's images, in the order RunComfy returned them, as one batch.",
        "Request id, final status and where the images came from.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "request_id": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": False,
                        "placeholder": "e.g. 1aa3c2de-…  (from the dashboard or an error message)",
                        "tooltip": "The RunComfy request id of a Nano Banana 2 job. Collecting it is free.",
                    },
                ),
            },
            "hidden": dict(cls.HIDDEN),
        }

    @classmethod
    def VALIDATE_INPUTS(cls, request_id=None):
        """Refuse a malformed id when the user queues, before any call."""
        if request_id is None:  # linked from another node: checked when it runs
            return True
        try:
            check_request_id(request_id)
        except RequestValidationError as error:
            return str(error)
        return True

    async def generate(self, unique_id=None, request_id: str = ""):
        return await collect_result(check_request_id(request_id), node_id=unique_id)
