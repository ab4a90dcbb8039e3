"""RunComfy's model info (price, and whether the token is accepted), looked up sparingly.

``GET /v1/models/{model_id}`` is free and read-only, which makes it both the
source of prices and the safe way to check a token. The editor asks for
prices on every widget change of every node, so answers are cached per
(base URL, account, model) and concurrent askers share one call. Failures are
cached briefly too, so an offline ComfyUI does not hammer the network, but
not for long, so a fixed connection or token shows up quickly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import httpx

from ..transport.api import RunComfyClient, new_http_client
from ..transport.proxy import ProxySetup
from ..config.settings import Settings
from ..errors import AuthenticationError, NetworkError, RateLimitedError, RunComfyError, ServerError
from ..transport.retry import RetryPolicy

__all__ = ["Lookup", "ModelInfoCache", "check_token", "fetch_model_info"]

# States of a lookup, as the editor shows them.
OK, NO_TOKEN, REJECTED, UNREACHABLE, ERROR = "ok", "no_token", "rejected", "unreachable", "error"
LOOKUP_TIMEOUT = httpx.Timeout(8.0)
# Two tries: a settings panel or a badge should answer within seconds, not ride out an outage.
LOOKUP_RETRY = RetryPolicy(attempts=2, base_delay=0.25, max_delay=1.0, max_retry_after=2.0)


@dataclass(frozen=True)
class Lookup:
    """One model-info answer, or why there is none. ``message`` is one line, free of secrets."""

    state: str
    info: Mapping[str, Any] | None
    message: str
    checked_at: float  # wall clock, for "checked 2 minutes ago"


async def fetch_model_info(settings: Settings, model_id: str) -> Lookup:
    """Ask RunComfy once (with one retry) for ``model_id``'s info with ``settings``' token."""
    if not settings.token:
        return Lookup(NO_TOKEN, None, "No RunComfy API token is set", time.time())
    http = new_http_client(max_connections=2, timeout=LOOKUP_TIMEOUT, proxies=ProxySetup.from_settings(settings))
    try:
        info = await _ask(RunComfyClient(settings, http=http), model_id)
    except AuthenticationError as exc:
        return Lookup(REJECTED, None, str(exc), time.time())
    except (NetworkError, ServerError, RateLimitedError) as exc:
        return Lookup(UNREACHABLE, None, str(exc), time.time())
    except RunComfyError as exc:
        return Lookup(ERROR, None, str(exc), time.time())
    finally:
        await http.aclose()
    return Lookup(OK, info, "RunComfy accepted the token", time.time())


async def _ask(client: RunComfyClient, model_id: str) -> Mapping[str, Any]:
    """The model info, asked again after a transient failure while ``LOOKUP_RETRY`` allows."""
    calls = 0
    while True:
        try:
            return await client.model_info(model_id)
        except RunComfyError as error:
            calls += 1
            if not error.transient or LOOKUP_RETRY.exhausted(calls):
                raise
            await asyncio.sleep(LOOKUP_RETRY.delay(calls, getattr(error, "retry_after", None)))


async def check_token(settings: Settings, token: str, model_id: str) -> Lookup:
    """Would RunComfy accept ``token``? Asked with the read-only model-info call, never cached."""
    return await fetch_model_info(dataclasses.replace(settings, token=token, token_source="candidate"), model_id)


class ModelInfoCache:
    """Model-info lookups shared by every caller of one event loop (ComfyUI's server loop)."""

    def __init__(
        self,
        *,
        ttl: float = 300.0,
        failure_ttl: float = 30.0,
        fetch: Callable[[Settings, str], Awaitable[Lookup]] = fetch_model_info,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.failure_ttl = ttl, failure_ttl
        self._fetch, self._clock = fetch, clock
        self._answers: dict[tuple[str, str, str], tuple[float, Lookup]] = {}
        self._pending: dict[tuple[str, str, str], asyncio.Task[Lookup]] = {}

    async def get(self, settings: Settings, model_id: str) -> Lookup:
        """The cached lookup for this account and model, fetched when missing or stale."""
        key = (settings.base_url, settings.account_fingerprint(), model_id)
        cached = self._answers.get(key)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.ensure_future(self._fetch(settings, model_id))
            task.add_done_callback(lambda _: self._pending.pop(key, None))
        lookup = await asyncio.shield(task)
        lifetime = self.ttl if lookup.state in (OK, NO_TOKEN) else self.failure_ttl
        self._answers[key] = (self._clock() + lifetime, lookup)
        return lookup

    def remember(self, settings: Settings, model_id: str, lookup: Lookup) -> None:
        """Store an answer obtained elsewhere (a token check just before storing it)."""
        key = (settings.base_url, settings.account_fingerprint(), model_id)
        self._answers[key] = (self._clock() + self.ttl, lookup)

    def forget(self, settings: Settings, model_id: str) -> None:
        """Drop the answer for this account and model, so the next ``get`` asks RunComfy again."""
        self._answers.pop((settings.base_url, settings.account_fingerprint(), model_id), None)
