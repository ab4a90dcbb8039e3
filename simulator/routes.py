"""From one request to one answer: route it, apply faults, call the endpoint, log it.

The HTTP handler hands every request here and writes whatever comes back, so
all the simulator's behaviour lives above the socket and every fault is a
``Reply`` like any other. The log record is written before the answer leaves,
so when a client has its answer the simulator's log already shows the
request: tests can assert on it without waiting.
"""

from __future__ import annotations

import re
from email.message import Message
from http import HTTPStatus
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from .account_api import AccountApi
from .api import Api
from .control import Control
from .error_codes import default_error_code
from .faults import FILE_KINDS, MAX_SECONDS, FaultBook, FaultRule
from .files import FileRoute, file_base
from .log import RequestLog
from .wire import JSON, Incoming, Reply, bearer_token, error_reply, method_not_allowed, plain_not_found

MODEL, WWW, ACCOUNT = "model", "www", "api"  # the three bases (runcomfy-api.md, "Base and auth")
BASES = (MODEL, WWW, ACCOUNT)
_ROUTES: dict[str, list[tuple[re.Pattern[str], dict[str, str]]]] = {
    # base -> [(path pattern, {method: route name})]; a wrong method is a 405 on the first route
    MODEL: [
        (re.compile(r"^/v1/models/?$"), {"GET": "models"}),
        (re.compile(r"^/v1/models/(?P<model_id>.*)$"), {"GET": "model", "POST": "submit"}),
        (re.compile(r"^/v1/requests/(?P<request_id>[^/]+)/status/?$"), {"GET": "status"}),
        (re.compile(r"^/v1/requests/(?P<request_id>[^/]+)/result/?$"), {"GET": "result"}),
        (re.compile(r"^/v1/requests/(?P<request_id>[^/]+)/cancel/?$"), {"POST": "cancel"}),
        (re.compile(r"^/files/(?P<request_id>[^/]+)/(?P<name>[^/]+)$"), {"GET": "file", "HEAD": "file"}),
    ],
    WWW: [
        (re.compile(r"^/api/auth/me/?$"), {"GET": "auth_me"}),
        (re.compile(r"^/api/cli-auth/start/?$"), {"POST": "sign_in_start"}),
        (re.compile(r"^/api/cli-auth/poll/?$"), {"POST": "sign_in_poll"}),
    ],
    ACCOUNT: [
        (re.compile(r"^/prod/v2/balance/?$"), {"GET": "balance"}),
    ],
}
ACCOUNT_ROUTES = ("auth_me", "sign_in_start", "sign_in_poll", "balance")


def resolve(method: str, path: str, base: str = MODEL) -> tuple[str, dict[str, str], Reply | None]:
    """(route name, path parameters, an error answer if the method is wrong) on ``base``."""
    for pattern, methods in _ROUTES[base]:
        match = pattern.match(path)
        if match:
            params = {name: value.strip("/") for name, value in match.groupdict().items()}
            if method not in methods:
                return next(iter(methods.values())), params, method_not_allowed(", ".join(methods))
            return methods[method], params, None
    return "unknown", {}, plain_not_found()


class Router:
    """Everything between the parsed HTTP request and the ``Reply`` to write."""

    def __init__(self, *, api: Api, account_api: AccountApi, files: FileRoute, control: Control, faults: FaultBook,
                 log: RequestLog, base_url_for: Callable[[str, str | None], str]) -> None:
        self._api, self._account_api, self._files, self._control = api, account_api, files, control
        self._faults, self._log, self._base_url_for = faults, log, base_url_for

    def for_base(self, base: str) -> Callable[..., Reply]:
        """``respond`` for the listener of ``base``: it serves that base's routes only."""
        def respond(method: str, target: str, headers: Message, body: bytes, body_error: Reply | None,
                    peer: str | None = None) -> Reply:
            return self.respond(method, target, headers, body, body_error, peer, base=base)
        return respond

    def respond(self, method: str, target: str, headers: Message, body: bytes, body_error: Reply | None,
                peer: str | None = None, base: str = MODEL) -> Reply:
        """The answer to one request on ``base``; ``body_error`` is a 413/400 the transport already
        decided; ``peer``: the address the request came from (a proxy's, when one forwarded it)."""
        split = urlsplit(target)
        path = unquote(split.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        if base == MODEL and (path == "/_sim" or path.startswith("/_sim/")):
            return body_error or self._control.handle(method, path, query, body, headers.get("Authorization"))
        authorization = headers.get("Authorization")
        req = Incoming(
            method=method, path=path, query=query, token=bearer_token(authorization),
            auth_header_sent=authorization is not None, body=body, base_url=self._base_url_for(base, headers.get("Host")),
        )
        route, params, reply = resolve(method, path, base)
        fault: FaultRule | None = None
        if body_error is not None:
            reply = body_error
        elif reply is None:
            req.request_id = params.get("request_id")
            req.model_id = params.get("model_id") or self._api.model_of(req.request_id)
            fault = self._faults.take(route, req.model_id, req.request_id)
            if fault is not None and not fault.after_processing and fault.kind not in FILE_KINDS:
                reply = self._fault_reply(fault, None, req)
            if reply is None:
                reply = self._dispatch(route, params, req, fault)
            if fault is not None and fault.after_processing:
                reply = self._fault_reply(fault, reply, req) or reply
        self._log.add(
            method=method, path=path, route=route, status=None if reply.mode == "drop" else reply.status,
            request_id=req.request_id, model_id=req.model_id, auth_header_sent=req.auth_header_sent,
            fault=fault.kind if fault else None, account=req.account,
            peer=peer, via=(headers.get("Via") or "")[:80] or None, base=base,
        )
        return reply

    def _dispatch(self, route: str, params: dict[str, str], req: Incoming, fault: FaultRule | None) -> Reply:
        if route == "file":
            file_fault = fault if fault is not None and fault.kind in FILE_KINDS else None
            return self._files.serve(req, params["request_id"], params["name"], file_fault)
        if route in ACCOUNT_ROUTES:
            return getattr(self._account_api, route)(req)
        if route in ("submit", "model"):
            return getattr(self._api, route)(req, params["model_id"])
        if route == "models":
            return self._api.models(req)
        return getattr(self._api, route)(req, params["request_id"])

    def _fault_reply(self, fault: FaultRule, processed: Reply | None, req: Incoming) -> Reply | None:
        """The answer a generic fault produces; None means "carry on" (after a delay)."""
        if fault.kind in ("delay", "hold"):
            seconds = MAX_SECONDS if fault.kind == "hold" else (1.0 if fault.seconds is None else fault.seconds)
            self._faults.wait(fault.id, seconds)
            return processed
        if fault.kind == "drop":
            return Reply(0, mode="drop")
        if fault.kind == "malformed_json":
            good = processed.body if processed is not None and processed.body else b'{"request_id":"'
            return Reply(200, good[: max(1, len(good) // 2)])
        if fault.kind == "redirect":
            return Reply(fault.status or 302, b"", None, [("Location", _redirect_target(fault, req))])
        headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
        message = (fault.error_message or "").replace("{token}", req.token or "")
        if fault.kind == "json_body":
            return Reply(fault.status or 200, (fault.body or "[]").encode("utf-8"), fault.content_type or JSON, headers)
        if fault.kind == "ok_with_error_code":
            code = fault.error_code if fault.error_code is not None else 500001
            return error_reply(200, code, message or "Internal server error; retry with backoff",
                               detail=fault.detail, headers=headers)
        status = fault.status or 500
        if fault.body is not None:
            return Reply(status, fault.body.encode("utf-8"), fault.content_type or "text/html; charset=utf-8", headers)
        code = fault.error_code if fault.error_code is not None else default_error_code(status)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return error_reply(status, code, message or f"{phrase} (injected)", detail=fault.detail, headers=headers)


def _redirect_target(fault: FaultRule, req: Incoming) -> str:
    """``location`` as given, else the same path on ``host``, else on the same host.

    A same-host redirect adds ``?redirected=1`` so the target is a different
    URL that serves normally once the rule is used up.
    """
    if fault.location:
        return fault.location
    parts = urlsplit(file_base(fault.host, req.base_url) if fault.host else req.base_url)
    return urlunsplit((parts.scheme, parts.netloc, req.path, "redirected=1", ""))
