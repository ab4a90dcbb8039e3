"""The device sign-in of ``runcomfy login``: start, poll until it ends, store the token; or cancel.

``POST {www}/api/cli-auth/start`` gives a ``user_code`` and a ``verify_url``
for the person, and a ``device_code`` for this side; then this side polls
``POST {www}/api/cli-auth/poll`` every ``poll_interval`` seconds until the
answer is ``authorized`` (with a fresh ``access_token``), ``denied`` or
``expired`` (those two with HTTP 410), or ``expires_in`` has passed.
``finish`` is the one place that waits; ``cancel`` ends the wait at once.

The token goes straight from the poll's answer into ``token.json``
(``saving.store_token``): it is never an attribute, never in ``snapshot``
(what the editor and the command line see), never in a message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..config.settings import Settings, is_loopback_host
from ..errors import ConfigurationError, RunComfyError, register_secret, shorten
from ..transport.api import RunComfyClient
from .lookup import account_call
from .saving import store_token
from .sources import CLI_SIGN_IN

log = logging.getLogger("runcomfy")

IDLE, PENDING, AUTHORIZED, DENIED, EXPIRED, CANCELLED, ERROR = (
    "idle", "pending", "authorized", "denied", "expired", "cancelled", "error")
ENDED = (AUTHORIZED, DENIED, EXPIRED, CANCELLED, ERROR)
DEFAULT_POLL_SECONDS = 5.0
MAX_POLL_SECONDS = 60.0
DEFAULT_EXPIRES_IN = 600.0
MESSAGES = {
    DENIED: "The sign-in was denied on RunComfy's page; nothing was stored",
    EXPIRED: "The sign-in code expired before it was approved; start the sign-in again",
    CANCELLED: "The sign-in was cancelled; nothing was stored",
}


def _seconds(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 0 else default


class DeviceSignIn:
    """One device sign-in, from ``start`` to an ended state. Not reusable: start anew with a new one."""

    def __init__(self, settings: Settings, env: Mapping[str, str] = os.environ) -> None:
        self.settings, self.env = settings, env
        self.state = IDLE
        self.user_code: str | None = None
        self.verify_url: str | None = None
        self.expires_at: float | None = None
        self.poll_interval: float | None = None
        self.message: str | None = None
        self._device_code: str | None = None
        self._cancelled: asyncio.Event | None = None

    async def start(self) -> None:
        """Ask RunComfy for a code; raises the typed error when it cannot be reached."""
        if not self.settings.www_base_url:
            raise ConfigurationError(f"Cannot sign in: no www base is known for the Model API at "
                                     f"{self.settings.base_url} (set RUNCOMFY_WWW_BASE_URL)")
        self._cancelled = asyncio.Event()
        answer = await account_call(self.settings, lambda c: c.start_sign_in(), signing_in=True)
        device_code, user_code, verify_url = (answer.get(k) for k in ("device_code", "user_code", "verify_url"))
        if not all(isinstance(v, str) and v for v in (device_code, user_code, verify_url)):
            raise RunComfyError("RunComfy's sign-in start answered without a device code, user code or link")
        register_secret(device_code)  # it can be exchanged for a token: as secret as one
        self._device_code, self.user_code, self.verify_url = device_code, user_code, verify_url
        self.expires_at = time.time() + _seconds(answer.get("expires_in"), DEFAULT_EXPIRES_IN)
        lowest = 0.01 if is_loopback_host(_host(self.settings.www_base_url)) else 1.0  # a simulator may hurry
        self.poll_interval = min(max(_seconds(answer.get("poll_interval"), DEFAULT_POLL_SECONDS), lowest),
                                 MAX_POLL_SECONDS)
        self.state = PENDING

    async def finish(self) -> str:
        """Poll until the sign-in ends; on approval store the token (``token.json``). The ended state."""
        assert self._cancelled is not None and self._device_code is not None, "start() first"
        while self.state == PENDING:
            wait = min(self.poll_interval or DEFAULT_POLL_SECONDS, max(0.0, (self.expires_at or 0) - time.time()))
            try:
                await asyncio.wait_for(self._cancelled.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
            if self.state != PENDING:
                break
            if time.time() >= (self.expires_at or 0):
                self._end(EXPIRED)
                break
            await self._poll_once()
        return self.state

    def cancel(self) -> None:
        """Stop waiting; a pending sign-in ends as cancelled (an ended one stays as it is)."""
        if self.state in (IDLE, PENDING):
            self._end(CANCELLED)
        if self._cancelled is not None:
            self._cancelled.set()

    def snapshot(self) -> dict[str, Any]:
        """What the editor and the command line may see: never the token or the device code."""
        return {"state": self.state, "user_code": self.user_code, "verify_url": self.verify_url,
                "expires_at": self.expires_at, "poll_interval": self.poll_interval, "message": self.message}

    async def _poll_once(self) -> None:
        device_code = self._device_code
        assert device_code is not None
        try:
            answer = await account_call(self.settings, lambda c: c.poll_sign_in(device_code), signing_in=True)
        except RunComfyError as error:
            if error.transient:  # free to ask again: ride it out until the code expires
                log.info("RunComfy sign-in poll failed (%s); asking again", error)
                return
            self._end(ERROR, shorten(f"The sign-in failed: {error}"))
            return
        status = str(answer.get("status") or "").lower()
        if status == AUTHORIZED:
            self._store(answer.get("access_token"))
        elif status in (DENIED, EXPIRED):
            self._end(status)
        elif status != PENDING:
            log.info("RunComfy sign-in poll said %r; still waiting", status[:40])

    def _store(self, token: Any) -> None:
        if self.state != PENDING:  # cancelled meanwhile: the grant is dropped, nothing is stored
            return
        if not isinstance(token, str) or not token.strip():
            self._end(ERROR, "RunComfy approved the sign-in but sent no token; start the sign-in again")
            return
        register_secret(token)
        try:
            path = store_token(token, how=CLI_SIGN_IN, env=self.env)
        except RunComfyError as error:
            self._end(ERROR, shorten(f"Signed in, but the token could not be stored: {error}"))
            return
        log.info("Signed in with RunComfy; the token is in %s", path)
        self._end(AUTHORIZED)

    def _end(self, state: str, message: str | None = None) -> None:
        self.state, self.message = state, message or MESSAGES.get(state)
        self._device_code = None


def _host(url: str) -> str | None:
    return urlsplit(url).hostname
