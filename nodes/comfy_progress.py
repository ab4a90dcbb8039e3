"""How a node's progress bar reaches ComfyUI: the one way that leaves Stop alone, or the old hook.

ComfyUI has two ways in, and they treat the Stop button differently:

- ``ComfyAPI.execution.set_progress`` (``comfy_api.latest``) only records the
  value for the editor; it never reads or clears the interrupt flag. Used
  wherever the backend has it.
- ``comfy.utils.ProgressBar`` runs ComfyUI's progress hook, which reads *and
  clears* the interrupt flag and raises ``InterruptProcessingException``
  (an ``Exception`` before April 2026, a ``BaseException`` since). Since 2026
  the bar also drops updates closer than 100 ms or 0.5 % to the last one it
  sent. The caller (``comfy_runtime.NodeFeedback``) turns that raise back
  into a Stop every waiting node sees.

Imports are lazy: outside ComfyUI there is no channel and the bar is silent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

log = logging.getLogger("runcomfy")


class ProgressChannel(Protocol):
    """Where ``NodeFeedback`` sends ``value`` of ``total``."""

    def show(self, value: int, total: int) -> None: ...

    async def settle(self) -> None: ...


class ApiProgress:
    """``ComfyAPI.execution.set_progress``: the node's bar, never touching the Stop flag.

    The call is a coroutine and job updates arrive in plain callbacks, so each
    update is a small task on the node's loop; ``settle`` waits for the last ones
    so the bar is complete before the node returns.
    """

    def __init__(self, execution: Any, node_id: str | None) -> None:
        self._execution = execution
        self._node_id = node_id
        self._pending: set[asyncio.Task] = set()
        self._failed = False

    def show(self, value: int, total: int) -> None:
        task = asyncio.get_running_loop().create_task(self._send(value, total))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, value: int, total: int) -> None:
        try:
            await self._execution.set_progress(value, total, node_id=self._node_id)
        except Exception:  # an editor gone away must not decide the job's fate
            if not self._failed:
                self._failed = True
                log.warning("[node %s] showing the progress bar failed; the job carries on", self._node_id,
                            exc_info=True)

    async def settle(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


class HookProgress:
    """``comfy.utils.ProgressBar``: its hook may raise ComfyUI's interrupt (see the module doc)."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def show(self, value: int, total: int) -> None:
        self._bar.update_absolute(value, total)

    async def settle(self) -> None:
        return None


def _execution_api() -> Any | None:
    """ComfyUI's ``ComfyAPI.execution`` if this backend has ``set_progress``, else None."""
    try:
        from comfy_api.latest import ComfyAPI
    except Exception:  # not inside ComfyUI, or a backend before comfy_api
        return None
    execution = getattr(ComfyAPI(), "execution", None)
    if execution is None and isinstance(getattr(ComfyAPI, "Execution", None), type):
        execution = ComfyAPI.Execution()  # backends where it is only declared on the class (October 2025)
    return execution if callable(getattr(execution, "set_progress", None)) else None


def open_channel(node_id: str | None, steps: int) -> ProgressChannel | None:
    """The best progress channel this ComfyUI offers for ``node_id``; None outside ComfyUI."""
    execution = _execution_api()
    if execution is not None:
        return ApiProgress(execution, node_id)
    try:
        import comfy.utils

        return HookProgress(comfy.utils.ProgressBar(steps, node_id=node_id))
    except Exception:  # not inside ComfyUI, or an older ProgressBar
        return None
