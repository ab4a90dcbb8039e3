"""The few things a running node asks of ComfyUI, imported lazily.

Outside ComfyUI (tests, the command line) every hook quietly does nothing, so
the pack imports and runs anywhere. Tests replace ``processing_interrupted`` to
simulate the Stop button.

Both interrupt contracts are handled: ``InterruptProcessingException`` derives
from ``Exception`` in ComfyUI before April 2026 and from ``BaseException``
since (ComfyUI PR #13523). Nothing here catches a ``BaseException`` that is
not ComfyUI's interrupt.
"""

from __future__ import annotations

import logging
from typing import Callable, NoReturn

from .comfy_progress import open_channel

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


def is_comfy_interrupt(error: BaseException) -> bool:
    """Whether ``error`` is ComfyUI's ``InterruptProcessingException`` (either contract)."""
    try:
        import comfy.model_management as model_management
    except ImportError:
        return False
    kind = getattr(model_management, "InterruptProcessingException", None)
    return isinstance(kind, type) and isinstance(error, kind)


def restore_interrupt() -> None:
    """Set ComfyUI's Stop flag again, after its progress hook read and cleared it.

    Every other node of the prompt (ours waiting on RunComfy, ComfyUI's own)
    learns of a Stop only from this flag.
    """
    import comfy.model_management as model_management

    model_management.interrupt_current_processing(True)


class NodeFeedback:
    """Progress bar and status text on one node in the ComfyUI editor.

    Best effort: the editor may be gone, ComfyUI may be interrupting, an older
    ComfyUI may lack a call. A failure is logged once and never changes what
    happens to the (paid) job. A Stop that ComfyUI's progress hook consumed is
    handed on, never lost: ``on_stop`` is called and the flag is set again.
    """

    STEPS = 100

    def __init__(self, node_id: str | None, on_stop: Callable[[], None] | None = None) -> None:
        self.node_id = node_id
        self._on_stop = on_stop
        self._last_step: int | None = None
        self._failed = False
        self._channel = open_channel(node_id, self.STEPS)
        try:
            from server import PromptServer

            self._server = PromptServer.instance
        except Exception:
            self._server = None

    def progress(self, fraction: float) -> None:
        """Move the bar without swallowing a Stop.

        Through ``set_progress`` the Stop flag is never touched. Through the
        old hook, ComfyUI raises its interrupt here after clearing the flag:
        the raise would end this node in the middle of a paid job (no cancel)
        and the cleared flag would hide the Stop from every other node. So the
        interrupt is taken as this node's Stop (its job is cancelled the usual
        way, then the node raises ComfyUI's interrupt) and the flag is put back.
        Any other ``BaseException`` (task cancelled, Ctrl-C) goes on untouched.
        """
        step = int(max(0.0, min(1.0, fraction)) * self.STEPS)
        if self._channel is None or step == self._last_step:
            return  # each update is a websocket message: send only real moves
        self._last_step = step
        try:
            self._channel.show(step, self.STEPS)
        except BaseException as error:
            if is_comfy_interrupt(error):
                self._stop_seen_by_hook()
            elif isinstance(error, Exception):
                self._log_failure("progress bar")
            else:
                raise

    async def settle(self) -> None:
        """Wait until the last progress updates are out (``set_progress`` sends them as tasks)."""
        if self._channel is not None:
            await self._channel.settle()

    def status(self, text: str) -> None:
        log.info("[node %s] %s", self.node_id, text)
        if self._server is not None and self.node_id is not None:
            try:
                self._server.send_progress_text(text, self.node_id)
            except Exception:  # an older ComfyUI without progress text, or no editor: the log line stays
                self._log_failure("status text")

    def _stop_seen_by_hook(self) -> None:
        if self._on_stop is not None:
            self._on_stop()
        try:
            restore_interrupt()
        except Exception:
            self._log_failure("restoring the Stop flag")

    def _log_failure(self, what: str) -> None:
        if not self._failed:
            self._failed = True
            log.warning("[node %s] showing the %s failed; the job carries on", self.node_id, what, exc_info=True)
