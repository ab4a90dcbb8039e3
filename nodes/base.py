"""What the two Nano Banana 2 nodes share: identity, outputs, caching rule."""

from __future__ import annotations

from ..client import load_settings
from ..client.errors import ConfigurationError, RunComfyError
from ..client.model.input_rules import prompt_problem
from .user_language import in_user_language, user_locale

CATEGORY = "RunComfy/Nano Banana 2"


class NanoBanana2Node:
    """Classic ComfyUI node surface shared by both nodes.

    ``FUNCTION`` is async: ComfyUI awaits it, so other nodes keep running
    while a job waits in RunComfy's queue.
    """

    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("images", "info")
    OUTPUT_TOOLTIPS = (
        "Every generated image, in the order RunComfy returned them, as one batch.",
        "Request id, final status, reported cost and any note about resizing or padding.",
    )
    FUNCTION = "run"
    # The newest ComfyUI exposes these to the node search as search_aliases; older ones ignore them.
    SEARCH_ALIASES = ["nano banana", "nano banana 2", "nb2", "gemini image", "gemini 3.1 flash image", "runcomfy"]
    CATEGORY = CATEGORY
    # No API_NODE: that marks Comfy.org partner nodes, and the current editor
    # then hides the Run button from users without a Comfy.org account.
    # RunComfy bills these jobs; web/ draws the pack's own price badge instead.
    HIDDEN = {"unique_id": "UNIQUE_ID"}

    async def run(self, **inputs):
        """ComfyUI's entry point: the outputs, plus the run's cost and request id for the editor.

        An error the user meets gets a headline in the editor's language (request id and
        RunComfy's reason unchanged); see ``user_language``.
        """
        try:
            return (await self.generate(**inputs)).for_comfyui()
        except RunComfyError as error:
            in_user_language(error, user_locale())
            raise

    @classmethod
    def VALIDATE_INPUTS(cls, prompt=None):
        """Refuse an empty prompt when the user queues, before any node runs.

        Only ``prompt`` is named, so ComfyUI keeps its own checks of every
        other widget; a prompt linked from another node arrives as None here
        and is checked again just before the paid submit.
        """
        problem = prompt_problem(prompt) if isinstance(prompt, str) else None
        return f"prompt {problem}" if problem else True

    @classmethod
    def IS_CHANGED(cls, **_inputs):
        """Re-run when the account changes; otherwise ComfyUI's cache decides.

        ComfyUI already re-runs a node whose inputs changed and reuses the
        cached images when nothing did, so an unchanged graph costs nothing.
        Returning a one-way hash of the account makes a token change count
        as a change without the token ever entering a cache key.
        """
        try:
            return load_settings().account_fingerprint()
        except ConfigurationError:
            return "unconfigured"
