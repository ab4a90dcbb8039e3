"""The few things a running node asks of ComfyUI, imported lazily.

Outside ComfyUI (tests, the command line) every hook quietly does nothing, so
the pack imports and runs anywhere. Tests replace ``processing_interrupted`` to
simulate the Stop button.
"""

from __future__ import annotations

import logging
from typing import NoReturn

log = logging.getLogger("runcomfy")


def processing_interrupted() -> bool:
    """True once the user pressed Stop; read without clearing the flag.

    Several of our async nodes may be waiting at once: reading without
    clearing lets every one of them see the same Stop.
    """
    try:
        import comfy.model_management as model_management
    except ImportError:
        return False
    return bool(model_management.processing_interrupted())


def raise_interrupted(message: str) -> NoReturn:
    """End the node the way ComfyUI expects after a Stop (no error popup)."""
    try:
        import comfy.model_management as model_management
    except ImportError:
        from ..client.errors import JobCancelledError

        raise JobCancelledError(message) from None
    raise model_management.InterruptProcessingException()


class NodeFeedback:
    """Progress bar and status text on one node in the ComfyUI editor.

    Best effort: the editor may be gone, ComfyUI may be interrupting, an older
    ComfyUI may lack a call. A failure is logged once and never changes what
    happens to the (paid) job.
    """

    STEPS = 100

    def __init__(self, node_id: str | None) -> None:
        self.node_id = node_id
        self._last_step: int | None = None
        self._failed = False
        self._bar = None
        self._server = None
        try:
            import comfy.utils

            self._bar = comfy.utils.ProgressBar(self.STEPS, node_id=node_id)
        except Exception:  # not inside ComfyUI, or an older ProgressBar
            self._bar = None
        try:
            from server import PromptServer

            self._server = PromptServer.instance
        except Exception:
            self._server = None

    def progress(self, fraction: float) -> None:
        """Move the bar without swallowing a Stop.

        ComfyUI's progress hook raises ``InterruptProcessingException`` and
        clears the interrupt flag when Stop was pressed. Our own Stop check (and
        every other waiting node) decides what to do about a Stop, so the flag
        is put back for them to see.
        """
        step = int(max(0.0, min(1.0, fraction)) * self.STEPS)
        if self._bar is None or step == self._last_step:
            return  # each update is a websocket message: send only real moves
        self._last_step = step
        try:
            self._bar.update_absolute(step, self.STEPS)
        except Exception as exc:
            if type(exc).__name__ == "InterruptProcessingException":
                self._restore_interrupt()
            else:
                self._log_failure("progress bar")

    def status(self, text: str) -> None:
        log.info("[node %s] %s", self.node_id, text)
        if self._server is not None and self.node_id is not None:
            try:
                self._server.send_progress_text(text, self.node_id)
            except Exception:  # an older ComfyUI without progress text, or no editor: the log line stays
                self._log_failure("status text")

    def _restore_interrupt(self) -> None:
        try:
            import comfy.model_management as model_management

            model_management.interrupt_current_processing(True)
        except Exception:
            self._log_failure("restoring the Stop flag")

    def _log_failure(self, what: str) -> None:
        if not self._failed:
            self._failed = True
            log.warning("[node %s] showing the %s failed; the job carries on", self.node_id, what, exc_info=True)
