"""HTTP/1.1 transport: read the request, hand it to the router, write the answer.

One ``Handler`` per connection (keep-alive), on a daemon thread of
``ThreadingHTTPServer``. Every answer has a Content-Length (except the
deliberately chunked ``oversize`` fault), so clients can reuse connections.
Slow answers (trickles, endless bodies) stop as soon as the client hangs up
or the simulator stops.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from .error_codes import default_error_code
from .wire import Reply, error_reply

DRAIN_LIMIT = 1024 * 1024 * 1024  # beyond this an oversized body is not read, the connection is closed


@dataclass(frozen=True)
class Transport:
    """What a ``Handler`` needs from its server: where answers come from, the
    current body limit, and the flag that ends slow answers on stop."""

    respond: Callable[[str, str, Message, bytes, Reply | None, str | None], Reply]
    max_body_bytes: Callable[[], int]
    stopping: threading.Event


class Handler(BaseHTTPRequestHandler):
    """Request handler; ``self.server.transport`` is its ``Transport``."""

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
        transport: Transport = self.server.transport  # type: ignore[attr-defined]
        body, body_error = self._read_body(transport.max_body_bytes())
        peer = str(self.client_address[0]) if self.client_address else None
        self._send(transport.respond(self.command, self.path, self.headers, body, body_error, peer), transport.stopping)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

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

    def _send(self, reply: Reply, stopping: threading.Event) -> None:
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
        if reply.mode == "truncate" or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if reply.mode == "truncate":
                self.wfile.write(reply.body[: reply.size])
            elif reply.mode == "trickle":
                self._trickle(reply, stopping)
            elif reply.mode == "oversize":
                self._stream_oversize(reply, stopping)
            elif reply.body:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True

    def _trickle(self, reply: Reply, stopping: threading.Event) -> None:
        """``reply.size`` bytes, then a pause of ``reply.seconds``, until the body is out."""
        for offset in range(0, len(reply.body), reply.size):
            if offset and self._gone_within(reply.seconds, stopping):
                self.close_connection = True
                return
            self.wfile.write(reply.body[offset: offset + reply.size])

    def _gone_within(self, seconds: float, stopping: threading.Event) -> bool:
        """Wait ``seconds``; True as soon as the client hangs up or the simulator stops.

        A hang-up shows as the socket turning readable with nothing to read,
        which a 50 ms ``select`` notices long before the next write would fail.
        """
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            try:
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return True
            except OSError:
                return True
            if readable:  # a pipelined request waits its turn; do not spin on it
                stopping.wait(min(left, 0.05))
        return stopping.is_set()

    def _stream_oversize(self, reply: Reply, stopping: threading.Event) -> None:
        """Send ``reply.size`` bytes: the real file's start, then zeros."""
        chunk_size = 1 << 20
        zeros = bytes(chunk_size)
        sent = 0
        while sent < reply.size:
            if stopping.is_set():
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
