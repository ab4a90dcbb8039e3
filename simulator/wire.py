"""What a request and an answer look like between the socket and the endpoints.

Endpoint code takes an ``Incoming`` and returns a ``Reply``; the HTTP handler
writes it. Keeping the two apart lets fault injection replace or distort an
answer (drop it, cut it off, trickle it) after the endpoint has done its work,
which is exactly the "the server did it but the answer was lost" case the
client must survive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"
TRUE_WORDS = ("1", "true", "yes", "on")


@dataclass
class Incoming:
    """One parsed /v1 request, plus what the router should log about it.

    ``token`` lives only here, for the duration of the request; it is never
    copied into the log or a job.
    """

    method: str
    path: str
    query: dict[str, str]
    token: str | None = field(repr=False)
    auth_header_sent: bool
    body: bytes
    base_url: str
    account: str | None = None
    request_id: str | None = None
    model_id: str | None = None

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").strip().lower() in TRUE_WORDS


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@dataclass
class Reply:
    """An HTTP answer. ``mode`` says how the handler sends it:

    - ``normal``: status, headers, body with its Content-Length.
    - ``drop``: close the connection without a byte.
    - ``truncate``: announce ``len(body)`` but send only ``size`` bytes, then close.
    - ``trickle``: send the body ``size`` bytes at a time, ``seconds`` apart,
      while the client stays connected.
    - ``oversize``: stream ``size`` bytes starting with ``body`` (chunked if ``chunked``).
    """

    status: int
    body: bytes = b""
    content_type: str | None = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    mode: str = "normal"
    size: int = 0
    seconds: float = 0.0
    chunked: bool = False


def json_reply(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, json.dumps(payload, separators=(",", ":")).encode("utf-8"), JSON, list(headers or []))


def error_reply(
    status: int,
    error_code: int | str,
    message: str,
    *,
    detail: Any = None,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    """RunComfy's error body: ``error_code``, ``error_message``, sometimes ``detail``."""
    payload: dict[str, Any] = {"error_code": error_code, "error_message": message}
    if detail is not None:
        payload["detail"] = detail
    return json_reply(status, payload, headers)


def plain_not_found() -> Reply:
    """A path no route serves; worded like the FastAPI default."""
    return json_reply(404, {"detail": "Not Found"})


def method_not_allowed(allowed: str) -> Reply:
    return json_reply(405, {"detail": "Method Not Allowed"}, [("Allow", allowed)])
