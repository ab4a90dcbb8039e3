"""Who am I and how much is left, cached briefly per account, for every caller of the process.

The settings panel reads both whenever it opens, a list of prompts checks the
balance once per job, so answers are kept a little while (failures a shorter
while, so a mended connection shows soon). After each paid job the balance is
forgotten (``forget_balances``), so the next reading shows what was billed.

ComfyUI serves its routes on one event loop and runs each prompt on another,
so the answers are plain data behind a thread lock, and callers that ask at
the same time on one loop share one call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Awaitable, Callable

from ..config.settings import Settings
from ..transport.api import RunComfyClient
from .balance import KNOWN, Balance, fetch_balance
from .identity import NO_TOKEN, SIGNED_IN, Identity, fetch_identity

IDENTITY_SECONDS = 300.0
BALANCE_SECONDS = 60.0
FAILURE_SECONDS = 15.0


class AccountCache:
    """``identity`` and ``balance`` answers by (base, account), each with its own lifetime."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._pending: dict[tuple[str, str, str, int], asyncio.Future[Any]] = {}

    async def identity(self, settings: Settings, *, refresh: bool = False,
                       client: RunComfyClient | None = None) -> Identity:
        lifetime = lambda answer: IDENTITY_SECONDS if answer.state in (SIGNED_IN, NO_TOKEN) else FAILURE_SECONDS
        return await self._get(("identity", settings.www_base_url or "", settings.account_fingerprint()), refresh,
                               lambda: fetch_identity(settings, client=client), lifetime)

    async def balance(self, settings: Settings, *, refresh: bool = False,
                      client: RunComfyClient | None = None) -> Balance:
        lifetime = lambda answer: BALANCE_SECONDS if answer.state == KNOWN else FAILURE_SECONDS
        return await self._get(("balance", settings.account_base_url or "", settings.account_fingerprint()), refresh,
                               lambda: fetch_balance(settings, client=client), lifetime)

    def remember_identity(self, settings: Settings, identity: Identity) -> None:
        """Keep an answer obtained elsewhere (the check just before a token is stored)."""
        key = ("identity", settings.www_base_url or "", settings.account_fingerprint())
        with self._lock:
            self._answers[key] = (self._clock() + IDENTITY_SECONDS, identity)

    def forget_balances(self) -> None:
        """After a paid job: the next balance reading asks RunComfy."""
        with self._lock:
            for key in [key for key in self._answers if key[0] == "balance"]:
                del self._answers[key]

    def forget(self) -> None:
        """Everything (a sign-in, a sign-out, ``?refresh=1``)."""
        with self._lock:
            self._answers.clear()

    async def _get(self, key: tuple[str, str, str], refresh: bool, fetch: Callable[[], Awaitable[Any]],
                   lifetime: Callable[[Any], float]) -> Any:
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and not refresh and self._clock() < cached[0]:
                return cached[1]
            loop_key = (*key, id(asyncio.get_running_loop()))
            pending = self._pending.get(loop_key)
            owner = pending is None
            if owner:
                pending = self._pending[loop_key] = asyncio.get_running_loop().create_future()
        if not owner:
            return await asyncio.shield(pending)
        try:
            answer = await fetch()  # the fetchers never raise but for cancellation
        except BaseException:
            with self._lock:
                self._pending.pop(loop_key, None)
            pending.cancel()
            raise
        with self._lock:
            self._answers[key] = (self._clock() + lifetime(answer), answer)
            self._pending.pop(loop_key, None)
        pending.set_result(answer)
        return answer


_SHARED = AccountCache()


def shared_account_cache() -> AccountCache:
    """The process-wide cache (the routes, the nodes' jobs and the command line share it)."""
    return _SHARED
