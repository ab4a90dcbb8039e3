"""The RunComfy Model API over one shared ``httpx.AsyncClient``.

Money rule: a submit is billed as soon as RunComfy accepts it, and there is no
idempotency key, so a submit is repeated only when it provably never reached
the server (the connection could not be opened) or was turned away unbilled
(HTTP 429). Every other lost answer raises ``SubmitOutcomeUnknownError``.
Status, result, cancel and model info are free and are retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

import httpx

from .config import Settings, load_settings
from .download import DownloadPolicy, download_image
from .polling import RunDurations
from .errors import (
    APITimeoutError,
    NetworkError,
    RateLimitedError,
    RunComfyError,
    ServerError,
    SubmitOutcomeUnknownError,
)
from .responses import (
    CancelOutcome,
    JobResult,
    JobStatus,
    Submission,
    error_from_response,
    parse_cancel,
    parse_result,
    parse_status,
    parse_submission,
)
from .retry import RetryPolicy, parse_retry_after
from .schemas import get_schema

log = logging.getLogger("runcomfy")
# httpx logs every request at INFO, which floods ComfyUI's console with one
# line per poll and would print (possibly signed) result URLs. Quiet it unless
# the user configured httpx logging themselves.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

USER_AGENT = "ComfyUI-RunComfy-NanoBanana2/0.1 (+httpx)"
# Inline images make submits large; everything else is small and quick.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=60.0)
MAX_BODY_BYTES = 64 * 1024 * 1024


class _Retryable(Exception):
    """Internal: a free call failed in a way worth repeating."""

    def __init__(self, error: RunComfyError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


def new_http_client(max_connections: int = 32, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """The one HTTP client: no default auth header, so downloads never carry the token."""
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=16),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,
    )


class RunComfyClient:
    """Async access to RunComfy's Model API for one account.

    Safe for many concurrent jobs on one event loop: each call is independent
    and connections are pooled.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy = RetryPolicy(),
        max_concurrent_jobs: int = 8,
        run_durations: RunDurations | None = None,
    ) -> None:
        self.settings = settings
        self.retry = retry
        self._http = http or new_http_client()
        self._owns_http = http is None
        self.run_durations = run_durations if run_durations is not None else RunDurations()
        # Caps how many jobs one account runs at once (a list of prompts fans out).
        self.job_slots = asyncio.Semaphore(max_concurrent_jobs)
        self.download_policy = DownloadPolicy(
            api_host=urlsplit(settings.base_url).hostname or "", extra_hosts=settings.download_hosts
        )

    async def __aenter__(self) -> "RunComfyClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- calls ---------------------------------------------------------------

    async def submit(self, model_id: str, inputs: Mapping[str, Any]) -> Submission:
        """Validate locally, then send one billed job. Never sent twice."""
        get_schema(model_id).check(inputs)
        body = json.dumps(inputs, separators=(",", ":")).encode()
        if len(body) > MAX_BODY_BYTES:
            raise RunComfyError(
                f"The request is {len(body) // (1024 * 1024)} MiB, over RunComfy's 64 MiB limit; "
                "use fewer or smaller input images"
            )
        token = self.settings.require_token()
        url = f"{self.settings.base_url}/v1/models/{quote(model_id)}"
        headers = {"Content-Type": "application/json", **self._auth(token)}
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await self._http.post(url, content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never left this machine: repeating it cannot double-bill.
                if attempt == self.retry.attempts:
                    raise NetworkError(
                        f"Cannot reach RunComfy at {self.settings.base_url} ({type(exc).__name__}); "
                        "check your connection. Nothing was submitted"
                    ) from None
                await asyncio.sleep(self.retry.backoff(attempt))
                continue
            except httpx.HTTPError as exc:
                raise self._outcome_unknown(model_id, type(exc).__name__) from None
            if response.status_code == 429 and attempt < self.retry.attempts:
                wait = self.retry.delay(attempt, parse_retry_after(response.headers.get("retry-after")))
                log.info("RunComfy rate-limited the submit; retrying in %.1f s (not billed)", wait)
                await asyncio.sleep(wait)
                continue
            if response.status_code >= 500:
                raise self._outcome_unknown(model_id, f"HTTP {response.status_code}")
            try:
                payload = self._payload(response)
            except ServerError:
                if response.is_success:
                    raise self._outcome_unknown(model_id, "an unreadable answer") from None
                raise
            submission = parse_submission(payload)
            log.info("Submitted %s as request %s", model_id, submission.request_id)
            return submission
        raise AssertionError("unreachable")  # pragma: no cover

    async def status(self, request_id: str) -> JobStatus:
        body = await self._free_call("GET", f"/v1/requests/{quote(request_id)}/status", request_id)
        return parse_status(body, request_id)

    async def result(self, request_id: str) -> JobResult:
        body = await self._free_call(
            "GET", f"/v1/requests/{quote(request_id)}/result", request_id, params={"include_cost": "true"}
        )
        return parse_result(body, request_id)

    async def cancel(self, request_id: str) -> CancelOutcome:
        body = await self._free_call("POST", f"/v1/requests/{quote(request_id)}/cancel", request_id)
        return parse_cancel(body, request_id)

    async def model_info(self, model_id: str, *, include_schema: bool = False) -> Mapping[str, Any]:
        """Price and (optionally) schema; read-only, so also a safe token check."""
        params = {"include_schema": "true"} if include_schema else None
        return await self._free_call("GET", f"/v1/models/{quote(model_id)}", None, params=params)

    async def download(self, url: str, *, request_id: str | None = None) -> bytes:
        """One result file, by the rules of ``DownloadPolicy`` and without the token."""
        return await download_image(self._http, url, self.download_policy, request_id=request_id)

    # -- plumbing ------------------------------------------------------------

    @staticmethod
    def _auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _outcome_unknown(self, model_id: str, what: str) -> SubmitOutcomeUnknownError:
        return SubmitOutcomeUnknownError(
            f"The submit to {model_id} got {what} instead of an answer, so the job may exist and "
            "be billed; it was NOT re-sent. Check the Requests page of your RunComfy dashboard "
            "before running again"
        )

    def _payload(self, response: httpx.Response, request_id: str | None = None) -> Mapping[str, Any]:
        """The JSON body, or the typed error it stands for (also for HTTP 200 + error_code)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code, body if isinstance(body, dict) else None,
                request_id=request_id, retry_after=retry_after,
            )
        if not isinstance(body, dict):
            raise ServerError(
                f"RunComfy answered HTTP {response.status_code} with a body that is not a JSON object; "
                "try again in a minute",
                request_id=request_id,
            )
        if body.get("error_code"):
            raise error_from_response(response.status_code, body, request_id=request_id)
        return body

    async def _free_call(
        self, method: str, path: str, request_id: str | None, params: Mapping[str, str] | None = None
    ) -> Mapping[str, Any]:
        """A free, idempotent call, retried on network errors, 429 and 5xx."""
        token = self.settings.require_token()
        url = f"{self.settings.base_url}{path}"
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await self._attempt(method, url, token, request_id, params)
            except _Retryable as retryable:
                if attempt == self.retry.attempts:
                    raise retryable.error from None
                wait = self.retry.delay(attempt, retryable.retry_after)
                log.info("%s %s failed (%s); retry %d in %.2f s", method, path, retryable.error, attempt, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, method: str, url: str, token: str, request_id: str | None, params: Mapping[str, str] | None
    ) -> Mapping[str, Any]:
        try:
            response = await self._http.request(method, url, headers=self._auth(token), params=params)
        except httpx.TimeoutException as exc:
            raise _Retryable(
                APITimeoutError(f"RunComfy did not answer in time ({type(exc).__name__})", request_id=request_id)
            ) from None
        except httpx.HTTPError as exc:
            raise _Retryable(
                NetworkError(f"Lost the connection to RunComfy ({type(exc).__name__})", request_id=request_id)
            ) from None
        try:
            return self._payload(response, request_id)
        except (RateLimitedError, ServerError) as error:
            retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
            raise _Retryable(error, retry_after) from None


# One client per (event loop, account): an httpx.AsyncClient's pooled
# connections belong to the loop that opened them, and ComfyUI runs every
# prompt on a new loop. What the pacer learned about how long jobs run is
# plain data, so it outlives the loops: one record per account.
_SHARED: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, RunComfyClient]]" = (
    weakref.WeakKeyDictionary()
)
_DURATIONS: dict[tuple[str, str], RunDurations] = {}


def shared_client(settings: Settings | None = None) -> RunComfyClient:
    """The process-wide client for the running event loop and this account."""
    settings = settings or load_settings()
    loop = asyncio.get_running_loop()
    per_loop = _SHARED.setdefault(loop, {})
    key = (settings.base_url, settings.account_fingerprint(), settings.download_hosts)
    client = per_loop.get(key)
    if client is None:
        durations = _DURATIONS.setdefault(key[:2], RunDurations())
        client = per_loop[key] = RunComfyClient(settings, run_durations=durations)
    return client
