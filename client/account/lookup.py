"""One account call with a short-lived client: quick to give up, one retry, never a second HTTP client.

The settings panel and ``whoami`` want an answer within seconds, not a ride
through an outage; a failed account call never blocks a run, it only makes
"unknown". The client is the pack's one (``transport.api``), with the user's
proxy; a caller that already has one (``Jobs``) passes it.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, TypeVar

import httpx

from ..config.settings import Settings
from ..errors import RunComfyError
from ..transport.api import RunComfyClient, new_http_client
from ..transport.proxy import ProxySetup
from ..transport.retry import RetryPolicy

T = TypeVar("T")
LOOKUP_TIMEOUT = httpx.Timeout(8.0)
LOOKUP_RETRY = RetryPolicy(attempts=2, base_delay=0.25, max_delay=1.0, max_retry_after=2.0)


async def account_call(
    settings: Settings, call: Callable[[RunComfyClient], Awaitable[T]], *,
    client: RunComfyClient | None = None, signing_in: bool = False,
) -> T:
    """``call(client)``, asked again once after a transient failure; raises the typed error."""
    if client is not None:
        return await _twice(client, call)
    http = new_http_client(max_connections=2, timeout=LOOKUP_TIMEOUT, proxies=ProxySetup.from_settings(settings))
    try:
        return await _twice(RunComfyClient(settings, http=http, signing_in=signing_in), call)
    finally:
        await http.aclose()


async def _twice(client: RunComfyClient, call: Callable[[RunComfyClient], Awaitable[T]]) -> T:
    calls = 0
    while True:
        try:
            return await call(client)
        except RunComfyError as error:
            calls += 1
            if not error.transient or LOOKUP_RETRY.exhausted(calls):
                raise
            await asyncio.sleep(LOOKUP_RETRY.delay(calls, getattr(error, "retry_after", None)))
