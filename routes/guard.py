"""Who may call the pack's routes, and how their JSON bodies are read.

ComfyUI listens on a port any web page the user visits can send requests to.
Its own guard (Host vs Origin, loopback only) is off with
``--enable-cors-header`` and on non-loopback addresses, so the routes that
touch the token carry their own:

- Every route refuses a request a browser marks as coming from another site:
  an ``Origin`` whose host differs from the request's ``Host`` (or a proxy's
  ``X-Forwarded-Host``), or ``Sec-Fetch-Site`` other than ``same-origin``.
  That stops another site from probing the account even when ComfyUI sends
  permissive CORS headers.
- Routes that change state also require an ``Origin`` (browsers send it on
  every POST and DELETE) and ``Content-Type: application/json``. An HTML form
  cannot send JSON, and a script on another site cannot send it without a
  CORS preflight that ComfyUI does not approve.

Not covered: DNS rebinding (a hostile name resolving to the user's ComfyUI
is "same origin" to the browser), as for ComfyUI's own routes.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger("runcomfy")
MAX_BODY_BYTES = 16 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Refusal(Exception):
    """A request answered with an error status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def answer(data: Mapping[str, Any], status: int = 200) -> web.Response:
    """A JSON answer that no browser or proxy keeps (it describes the account)."""
    return web.json_response(dict(data), status=status, headers={"Cache-Control": "no-store"})


def refusal_answer(refusal: Refusal) -> web.Response:
    return answer({"error": refusal.message}, status=refusal.status)


def _host_and_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port
    except ValueError:
        return netloc.lower(), None
    return (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def _same_origin(origin: str, request: web.Request) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return False
    origin_host = _host_and_port(parts.netloc, parts.scheme)
    hosts = [request.headers.get("Host", "")] + request.headers.get("X-Forwarded-Host", "").split(",")
    return any(host.strip() and _host_and_port(host.strip(), parts.scheme) == origin_host for host in hosts)


def refuse_cross_site(request: web.Request, *, changes_state: bool) -> None:
    """Raise ``Refusal`` unless the request comes from the editor's own page (or a non-browser client)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if fetch_site is not None and fetch_site != "same-origin" and not (fetch_site == "none" and not changes_state):
        log.warning("RunComfy routes: refused a %s %s request to %s", fetch_site, request.method, request.path)
        raise Refusal(403, "Refused: this request comes from another site; use the ComfyUI editor itself")
    if origin is None:
        if changes_state:
            raise Refusal(403, "Refused: a request that changes settings must carry an Origin header (send it from the editor)")
        return
    if not _same_origin(origin, request):
        log.warning("RunComfy routes: refused a cross-origin %s request to %s", request.method, request.path)
        raise Refusal(403, "Refused: this request comes from another site; use the ComfyUI editor itself")


async def read_json_object(request: web.Request, *, allow_empty: bool = False,
                           max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body of a state-changing request: JSON, small (``max_bytes``), an object."""
    refuse_cross_site(request, changes_state=True)
    if request.content_type != "application/json":
        raise Refusal(415, "Send the request body as JSON (Content-Type: application/json)")
    if request.content_length is not None and request.content_length > max_bytes:
        raise Refusal(413, f"The request body is larger than {max_bytes // 1024} KiB")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise Refusal(413, f"The request body is larger than {max_bytes // 1024} KiB")
    if not raw.strip() and allow_empty:
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refusal(400, "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "The request body must be a JSON object")
    return body
