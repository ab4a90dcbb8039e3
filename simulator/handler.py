"""HTTP/1.1 transport: parse, route, apply faults, log, write.

One ``Handler`` per connection (keep-alive), on a daemon thread of
``ThreadingHTTPServer``. Every answer has a Content-Length (except the
deliberately chunked ``oversize`` fault), so clients can reuse connections.
The log record is written *before* the answer leaves, so when a client has
its answer the simulator's log already shows the request: tests can assert on
it without waiting.
"""

from __future__ import annotations

import re
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .api import Incoming, bearer_token
from .faults import FILE_KINDS, FaultRule, default_error_code
from .log import LogRecord
from .wire import Reply, error_reply, method_not_allowed, plain_not_found

if TYPE_CHECKING:
    from .server import Simulator

DRAIN_LIMIT = 1024 * 1024 * 1024  # beyond this an oversized body is not read, the connection is closed
_REQUEST_PATH = re.compile(r"^/v1/requests/([^/]+)/(status|result|cancel)/?$")
_FILE_PATH = re.compile(r"^/files/([^/]+)/([^/]+)$")
_ROUTE_METHODS = {"status": "GET", "result": "GET", "cancel": "POST"}


def resolve(method: str, path: str) -> tuple[str, dict[str, str], Reply | None]:
    """(route name, path parameters, an error answer if the method is wrong)."""
    if path.startswith("/v1/models/"):
        params = {"model_id": path[len("/v1/models/"):].strip("/")}
        if method == "POST":
            return "submit", params, None
        if method == "GET":
            return "model", params, None
        return "model", params, method_not_allowed("GET, POST")
    match = _REQUEST_PATH.match(path)
    if match:
        route = match.group(2)
        params = {"request_id": match.group(1)}
        if method != _ROUTE_METHODS[route]:
            return route, params, method_not_allowed(_ROUTE_METHODS[route])
        return route, params, None
    match = _FILE_PATH.match(path)
    if match:
        params = {"request_id": match.group(1), "name": match.group(2)}
        if method not in ("GET", "HEAD"):
            return "file", params, method_not_allowed("GET, HEAD")
        return "file", params, None
    return "unknown", {}, plain_not_found()


class Handler(BaseHTTPRequestHandler):
    """Request handler; ``self.server.sim`` is the owning ``Simulator``."""

    protocol_version = "HTTP/1.1"
    server_version = "runcomfy-simulator/1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed after this

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silenced: the simulator keeps its own structured log."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- request ----------------------------------------------------------------
    @property
    def sim(self) -> "Simulator":
        return self.server.sim  # type: ignore[attr-defined]

    def _handle(self) -> None:
        sim = self.sim
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        body, body_error = self._read_body(sim.options.max_body_bytes)
        if path == "/_sim" or path.startswith("/_sim/"):
            reply = body_error or sim.control.handle(self.command, path, query, body, self.headers.get("Authorization"))
            self._send(reply)
            return
        authorization = self.headers.get("Authorization")
        req = Incoming(
            method=self.command, path=path, query=query, token=bearer_token(authorization),
            auth_header_sent=authorization is not None, body=body,
            base_url=sim.base_url_for(self.headers.get("Host")),
        )
        route, params, reply = resolve(self.command, path)
        fault: FaultRule | None = None
        if body_error is not None:
            reply = body_error
        elif reply is None:
            req.request_id = params.get("request_id")
            req.model_id = params.get("model_id") or sim.model_of(req.request_id)
            fault = sim.faults.take(route, req.model_id, req.request_id)
            if fault is not None and not fault.after_processing and fault.kind not in FILE_KINDS:
                reply = self._fault_reply(fault, None)
            if reply is None:
                reply = self._dispatch(route, params, req, fault)
            if fault is not None and fault.after_processing:
                reply = self._fault_reply(fault, reply) or reply
        sent_status = None if reply.mode == "drop" else reply.status
        sim.log.append(LogRecord(
            time=round(time.monotonic() - sim.started_mono, 6), method=self.command, path=path, route=route,
            status=sent_status, request_id=req.request_id, model_id=req.model_id,
            auth_header_sent=req.auth_header_sent, fault=fault.kind if fault else None,
            account=req.account, note=req.note,
        ))
        self._send(reply)

    def _dispatch(self, route: str, params: dict[str, str], req: Incoming, fault: FaultRule | None) -> Reply:
        api = self.sim.api
        if route == "submit":
            return api.submit(req, params["model_id"])
        if route == "model":
            return api.model(req, params["model_id"])
        if route == "status":
            return api.status(req, params["request_id"])
        if route == "result":
            return api.result(req, params["request_id"])
        if route == "cancel":
            return api.cancel(req, params["request_id"])
        file_fault = fault if fault is not None and fault.kind in FILE_KINDS else None
        return self.sim.files.serve(req, params["request_id"], params["name"], file_fault)

    def _fault_reply(self, fault: FaultRule, processed: Reply | None) -> Reply | None:
        """The answer a generic fault produces; None means "carry on" (a delay)."""
        if fault.kind == "delay":
            self.sim.stopping.wait(fault.seconds if fault.seconds is not None else 1.0)
            return processed
        if fault.kind == "drop":
            return Reply(0, mode="drop")
        if fault.kind == "malformed_json":
            good = processed.body if processed is not None and processed.body else b'{"request_id":"'
            return Reply(200, good[: max(1, len(good) // 2)])
        if fault.kind == "ok_with_error_code":
            code = fault.error_code if fault.error_code is not None else 500001
            return error_reply(200, code, fault.error_message or "Internal server error; retry with backoff",
                               detail=fault.detail)
        status = fault.status or 500
        headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
        if fault.body is not None:
            return Reply(status, fault.body.encode("utf-8"), fault.content_type or "text/html; charset=utf-8", headers)
        code = fault.error_code if fault.error_code is not None else default_error_code(status)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return error_reply(status, code, fault.error_message or f"{phrase} (injected)", detail=fault.detail,
                           headers=headers)

    def _read_body(self, limit: int) -> tuple[bytes, Reply | None]:
        """The request body, or a 413/400 answer. An oversized body is drained
        (up to 1 GiB) so the client reads the 413 instead of a reset."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return b"", json_error(400, "Invalid Content-Length")
        if length > limit:
            if length > DRAIN_LIMIT:
                self.close_connection = True
            else:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        self.close_connection = True
                        break
                    remaining -= len(chunk)
            return b"", too_large(limit)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
        return body, None

    def _read_chunked(self, limit: int) -> tuple[bytes, Reply | None]:
        parts: list[bytes] = []
        total = 0
        try:
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > DRAIN_LIMIT:
                    self.close_connection = True
                    return b"", too_large(limit)
                data = self.rfile.read(size)
                self.rfile.readline(16)
                if total <= limit:
                    parts.append(data)
        except ValueError:
            self.close_connection = True
            return b"", json_error(400, "Malformed chunked body")
        if total > limit:
            return b"", too_large(limit)
        return b"".join(parts), None

    # -- answer -----------------------------------------------------------------
    def _send(self, reply: Reply) -> None:
        if reply.mode == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.mode == "oversize" and reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(reply.size if reply.mode == "oversize" else len(reply.body)))
        if reply.close or reply.mode == "truncate" or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if reply.mode == "truncate":
                self.wfile.write(reply.body[: reply.size])
                self.close_connection = True
            elif reply.mode == "trickle":
                self._trickle(reply)
            elif reply.mode == "oversize":
                self._stream_oversize(reply)
            elif reply.body:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True

    def _trickle(self, reply: Reply) -> None:
        pieces = 50
        step = max(1, -(-len(reply.body) // pieces))
        pause = reply.seconds / pieces
        for offset in range(0, len(reply.body), step):
            if offset and self.sim.stopping.wait(pause):
                self.close_connection = True
                return
            self.wfile.write(reply.body[offset: offset + step])

    def _stream_oversize(self, reply: Reply) -> None:
        """Send ``reply.size`` bytes: the real file's start, then zeros."""
        chunk_size = 1 << 20
        zeros = bytes(chunk_size)
        sent = 0
        while sent < reply.size:
            if self.sim.stopping.is_set():
                self.close_connection = True
                return
            piece = reply.body[sent: sent + chunk_size] if sent < len(reply.body) else zeros
            piece = piece[: reply.size - sent]
            if reply.chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
            sent += len(piece)
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")


def json_error(status: int, message: str) -> Reply:
    return error_reply(status, default_error_code(status), message)


def too_large(limit: int) -> Reply:
    return error_reply(413, 413001, f"Request body is larger than {limit // (1024 * 1024)} MiB; "
                                    "send smaller or fewer images")
