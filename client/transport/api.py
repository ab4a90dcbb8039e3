"""RunComfy's Model API over one ``httpx.AsyncClient``: one method per call, one attempt each.

This layer only speaks HTTP: it sends, reads, and turns every answer or
failure into a typed value or a typed error (``errors.py``). Whether and when
to repeat a call, and what a job's fate is, is decided in ``jobs.py``.

Money rule: a submit is billed as soon as RunComfy accepts it, and there is no
idempotency key, so ``submit`` tells apart the three ways it can fail: never
sent (``SubmitNotSentError``: safe to send again), refused unbilled (a typed
refusal such as ``RateLimitedError``), and sent but unanswered
(``SubmitOutcomeUnknownError``: must never be sent again).
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

import httpx

from ..config.settings import (
    ACCOUNT_BASE_VARIABLE, WWW_BASE_VARIABLE, Settings, is_loopback_host, load_settings,
)
from .download import DownloadPolicy, download_image
from ..errors import (
    APITimeoutError, ConfigurationError, NetworkError, ProxyRefusedError, RunComfyError, ServerError,
    SubmitNotSentError, SubmitOutcomeUnknownError, shorten,
)
from .proxy import ProxySetup
from .responses import (
    CancelOutcome,
    JobResult,
    JobStatus,
    check_request_id,
    error_from_response,
    parse_cancel,
    parse_result,
    parse_status,
    parse_submission,
)
from .retry import parse_retry_after

__all__ = ["RunComfyClient", "new_http_client"]

log = logging.getLogger("runcomfy")
# httpx logs every request at INFO, which floods ComfyUI's console with one
# line per poll and would print (possibly signed) result URLs. Quiet it unless
# the user configured httpx logging themselves.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

USER_AGENT = "ComfyUI-RunComfy-NanoBanana2/0.1 (+httpx)"
# Inline images make submits large; everything else is small and quick.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=60.0)


def new_http_client(
    max_connections: int = 32, timeout: httpx.Timeout = DEFAULT_TIMEOUT, *, proxies: ProxySetup | None = None
) -> httpx.AsyncClient:
    """The one HTTP client: no default auth header, so downloads never carry the token.

    ``proxies``: the user's proxy rules (``proxy.py``); when not given they are
    read from the settings now, so every client the pack makes, for the API,
    result files or the account, goes through the user's proxy.
    """
    if proxies is None:
        proxies = ProxySetup.from_settings(load_settings())
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=16)
    return httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,  # the proxy variables are read by ProxySetup; nothing else of the environment
        mounts=proxies.mounts(limits),
    )


def proxy_refusal(proxy: str, status: str, *, request_id: str | None = None) -> ProxyRefusedError:
    """The error for a proxy that turned a call away (``status``: its answer, e.g. "HTTP 407")."""
    if "407" in status:
        advice = "it wants a user name and password: write them in the proxy URL (http://user:password@host:port)"
    else:
        advice = "check the proxy, or change it in Settings > RunComfy"
    return ProxyRefusedError(
        f"The proxy {proxy} refused the call ({status}); {advice}. Nothing reached RunComfy",
        request_id=request_id,
    )


class RunComfyClient:
    """One account's access to RunComfy's three bases (``Settings``): the Model API, and the
    account calls on www (who am I, device sign-in) and api (balance). The token is
    required (and checked) once, here; only a client for a device sign-in, which has no
    token yet, is made without one (``signing_in=True``).

    Safe for many concurrent jobs on one event loop: calls are independent and
    connections are pooled.
    """

    def __init__(self, settings: Settings, *, http: httpx.AsyncClient | None = None, signing_in: bool = False) -> None:
        self.settings = settings
        self._auth = {} if signing_in else {"Authorization": f"Bearer {settings.require_token()}"}
        self.proxies = ProxySetup.from_settings(settings)
        self._http = http or new_http_client(proxies=self.proxies)
        self._owns_http = http is None
        api_host = urlsplit(settings.base_url).hostname or ""
        self.download_policy = DownloadPolicy(api_host=api_host, extra_hosts=settings.download_hosts)
        # An API on this machine (a simulator) can fetch loopback image URLs; RunComfy cannot.
        self.local = is_loopback_host(api_host)

    async def __aenter__(self) -> "RunComfyClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def submit(self, model_id: str, body: bytes) -> str:
        """Send one billed job (``body``: the JSON inputs), exactly once; its request id."""
        url = f"{self.settings.base_url}/v1/models/{quote(model_id)}"
        headers = {"Content-Type": "application/json", **self._auth}
        proxy = self.proxies.name_for(url)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.ProxyError as exc:  # the proxy would not open a tunnel: nothing left this machine's proxy
            raise self._proxy_failure(proxy or "in use", exc, SubmitNotSentError, "Nothing was submitted") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            if proxy:
                raise self._proxy_failure(proxy, exc, SubmitNotSentError, "Nothing was submitted") from None
            raise SubmitNotSentError(
                f"Cannot reach RunComfy at {self.settings.base_url} ({type(exc).__name__}); "
                "check your connection. Nothing was submitted"
            ) from None
        except httpx.HTTPError as exc:
            raise _outcome_unknown(model_id, type(exc).__name__) from None
        if proxy and response.status_code == 407:
            raise proxy_refusal(proxy, "HTTP 407 Proxy Authentication Required")
        try:
            payload = self._payload(response)
        except ServerError:
            # A server error (5xx, or error 500001 on any status) or an unreadable success
            # cannot tell whether the job was accepted. A documented refusal code (400002 on
            # a 500, say) can: it is raised as what it says, by error_code first.
            raise _outcome_unknown(
                model_id, "an unreadable answer" if response.is_success else f"HTTP {response.status_code}"
            ) from None
        request_id = parse_submission(payload)
        log.info("Submitted %s as request %s", model_id, request_id)
        return request_id

    async def status(self, request_id: str) -> JobStatus:
        request_id = check_request_id(request_id)
        return parse_status(await self._call("GET", f"/v1/requests/{request_id}/status", request_id), request_id)

    async def result(self, request_id: str) -> JobResult:
        request_id = check_request_id(request_id)
        body = await self._call("GET", f"/v1/requests/{request_id}/result", request_id, {"include_cost": "true"})
        return parse_result(body, request_id)

    async def cancel(self, request_id: str) -> CancelOutcome:
        request_id = check_request_id(request_id)
        return parse_cancel(await self._call("POST", f"/v1/requests/{request_id}/cancel", request_id))

    async def model_info(self, model_id: str, *, include_schema: bool = False) -> Mapping[str, Any]:
        """The catalog entry: price and (optionally) schema; read-only and free.

        An entry naming another model is refused, as RunComfy's own nodes do:
        its price and schema would be applied to the wrong model.
        """
        params = {"include_schema": "true"} if include_schema else None
        entry = await self._call("GET", f"/v1/models/{quote(model_id)}", None, params)
        named = entry.get("model_id")
        if named is not None and named != model_id:
            raise RunComfyError(
                f"RunComfy's catalog answered for {shorten(repr(named), 80)} when asked for {model_id!r}; "
                "its price and schema were not used"
            )
        return entry

    # -- the account, on the www and api bases (runcomfy-api.md, "Base and auth") --

    async def whoami(self) -> Mapping[str, Any]:
        """``GET {www}/api/auth/me``: ``id``, ``email``, ``token_type``, ``token_created_at``;
        HTTP 401 (``AuthenticationError``) is RunComfy refusing the token."""
        return await self._call("GET", "/api/auth/me", None, base=self._base("www_base_url"))

    async def balance(self) -> Mapping[str, Any]:
        """``GET {api}/prod/v2/balance``: ``balance_usd``, ``currency``."""
        return await self._call("GET", "/prod/v2/balance", None, base=self._base("account_base_url"))

    async def start_sign_in(self) -> Mapping[str, Any]:
        """``POST {www}/api/cli-auth/start`` (no token): ``device_code``, ``user_code``,
        ``verify_url``, ``expires_in``, ``poll_interval``."""
        return await self._call("POST", "/api/cli-auth/start", None, base=self._base("www_base_url"), body={},
                                auth=False)

    async def poll_sign_in(self, device_code: str) -> Mapping[str, Any]:
        """``POST {www}/api/cli-auth/poll``: ``status`` pending / authorized (with
        ``access_token``) / denied / expired; the last two come with HTTP 410, read here as
        an answer, not an error."""
        return await self._call("POST", "/api/cli-auth/poll", None, base=self._base("www_base_url"),
                                body={"device_code": device_code}, auth=False, answer_statuses=(410,))

    def _base(self, name: str) -> str:
        base = getattr(self.settings, name)
        if not base:
            raise ConfigurationError(
                f"No RunComfy {'www' if name == 'www_base_url' else 'account'} base is known for the Model API at "
                f"{self.settings.base_url}: set {WWW_BASE_VARIABLE if name == 'www_base_url' else ACCOUNT_BASE_VARIABLE}"
            )
        return base

    async def download(self, url: str, *, request_id: str | None = None) -> bytes:
        """One result file, by the rules of ``DownloadPolicy`` and without the token."""
        return await download_image(
            self._http, url, self.download_policy, request_id=request_id, proxy=self.proxies.name_for(url)
        )

    async def _call(
        self, method: str, path: str, request_id: str | None, params: Mapping[str, str] | None = None, *,
        base: str | None = None, body: Mapping[str, Any] | None = None, auth: bool = True,
        answer_statuses: tuple[int, ...] = (),
    ) -> Mapping[str, Any]:
        """One free call to ``base`` (default: the Model API): its JSON object, or the typed error
        it stands for. ``answer_statuses``: error statuses whose JSON object is an answer."""
        url = f"{base or self.settings.base_url}{path}"
        proxy = self.proxies.name_for(url)
        headers = dict(self._auth) if auth else {}
        try:
            response = await self._http.request(method, url, headers=headers, params=params, json=body)
        except httpx.ProxyError as exc:
            raise self._proxy_failure(proxy or "in use", exc, NetworkError, "", request_id) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if proxy:
                raise self._proxy_failure(proxy, exc, NetworkError, "", request_id) from None
            raise NetworkError(
                f"Lost the connection to RunComfy ({type(exc).__name__})", request_id=request_id
            ) from None
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"RunComfy did not answer in time ({type(exc).__name__})", request_id=request_id
            ) from None
        except httpx.HTTPError as exc:
            raise NetworkError(
                f"Lost the connection to RunComfy ({type(exc).__name__})", request_id=request_id
            ) from None
        if proxy and response.status_code == 407:
            raise proxy_refusal(proxy, "HTTP 407 Proxy Authentication Required", request_id=request_id)
        if response.status_code in answer_statuses:
            with contextlib.suppress(ValueError):
                if isinstance(answer := response.json(), dict):
                    return answer
        return self._payload(response, request_id)

    @staticmethod
    def _proxy_failure(
        proxy: str, exc: httpx.HTTPError, kind: type[NetworkError], tail: str, request_id: str | None = None
    ) -> NetworkError | ProxyRefusedError:
        """A call that failed at the proxy: refused (407: the same next time) or not reachable (may mend).

        httpx's own text is kept out (it may quote the proxy URL); only its
        status, when the proxy gave one, is used.
        """
        said = str(exc)
        if isinstance(exc, httpx.ProxyError) and "407" in said:
            return proxy_refusal(proxy, "HTTP 407 Proxy Authentication Required", request_id=request_id)
        what = "cannot be reached"
        if isinstance(exc, httpx.ProxyError):
            answer = f"HTTP {said}; " if re.match(r"\d{3} [\w -]{0,40}$", said) else ""
            what = f"refused to open a connection ({answer}"
            return kind(
                f"The proxy {proxy} {what}{type(exc).__name__}); check it, or change it in Settings > RunComfy."
                + (f" {tail}" if tail else ""),
                request_id=request_id,
            )
        return kind(
            f"The proxy {proxy} {what} ({type(exc).__name__}); check it, or change it in Settings > RunComfy."
            + (f" {tail}" if tail else ""),
            request_id=request_id,
        )

    @staticmethod
    def _payload(response: httpx.Response, request_id: str | None = None) -> Mapping[str, Any]:
        """The JSON body, or the typed error it stands for (also for HTTP 200 + error_code)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code, body if isinstance(body, dict) else None, request_id=request_id,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if not isinstance(body, dict):
            raise ServerError(
                f"RunComfy answered HTTP {response.status_code} with a body that is not a JSON object",
                request_id=request_id,
            )
        if body.get("error_code"):
            raise error_from_response(response.status_code, body, request_id=request_id)
        return body


def _outcome_unknown(model_id: str, what: str) -> SubmitOutcomeUnknownError:
    return SubmitOutcomeUnknownError(
        f"The submit to {model_id} got {what} instead of an answer, so the job may exist and "
        "be billed; it was NOT re-sent. Check the Requests page of your RunComfy dashboard "
        "before running again"
    )
