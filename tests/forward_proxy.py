"""A tiny real HTTP forwarding proxy for tests (stdlib only), so the pack's proxy support
is tested over real sockets, not a mock.

It takes absolute-URI requests (``GET http://127.0.0.1:port/path``, what a
client sends to an HTTP proxy for an ``http://`` URL), forwards each to its
origin in origin form with a ``Via`` header, from its own source address
(``127.0.0.2`` by default, a different loopback address, so the origin's log
shows who connected), and logs every request it handled. CONNECT is not
needed for the simulator (plain http on loopback): a CONNECT is answered
403, so an ``https://`` URL shows how the client takes a refused tunnel. With
``credentials`` it answers ``407`` to requests without the matching
``Proxy-Authorization``.
"""

from __future__ import annotations

import base64
import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

VIA = "1.1 test-forward-proxy"
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "proxy-connection",
               "te", "trailer", "transfer-encoding", "upgrade"}


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy saw: what was asked, whether it carried credentials, what it answered."""

    method: str
    url: str
    status: int
    authorized: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the proxy keeps its own log."""

    def do_GET(self) -> None:
        proxy: ForwardProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        authorized = proxy.credentials is None or self.headers.get("Proxy-Authorization") == proxy.expected_auth
        target = urlsplit(self.path)
        # Each request is logged before it is answered, so the log is complete once the client has its answer.
        if not authorized:
            proxy.record(self.command, self.path, 407, authorized)
            self._answer(407, [("Proxy-Authenticate", 'Basic realm="test"')], b"proxy authentication required")
        elif target.scheme != "http" or not target.hostname:
            proxy.record(self.command, self.path, 400, authorized)
            self._answer(400, [], b"absolute http URI expected")
        else:
            self._forward(target, body, proxy)

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def do_CONNECT(self) -> None:
        """A tunnel for an https:// URL: asked for credentials (407) or refused (403), never opened."""
        proxy: ForwardProxy = self.server.proxy  # type: ignore[attr-defined]
        authorized = proxy.credentials is None or self.headers.get("Proxy-Authorization") == proxy.expected_auth
        status = 403 if authorized else 407
        proxy.record("CONNECT", self.path, status, authorized)
        headers = [] if authorized else [("Proxy-Authenticate", 'Basic realm="test"')]
        self._answer(status, headers, b"no tunnels here")

    def _forward(self, target: Any, body: bytes, proxy: "ForwardProxy") -> None:
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=60,
                                              source_address=(proxy.source_address, 0))
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        headers["Via"] = VIA
        path = target.path + (f"?{target.query}" if target.query else "")
        try:
            upstream.request(self.command, path or "/", body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            kept = [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_BY_HOP | {"content-length"}]
            status = response.status
        except OSError:
            status, kept, data = 502, [], b"bad gateway"
        finally:
            upstream.close()
        proxy.record(self.command, self.path, status, True)
        self._answer(status, kept, data)

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class ForwardProxy:
    """``with ForwardProxy() as proxy:`` a proxy on an ephemeral loopback port; ``proxy.url`` to use it."""

    def __init__(self, *, credentials: tuple[str, str] | None = None, source_address: str = "127.0.0.2") -> None:
        self.credentials = credentials
        self.source_address = source_address
        token = base64.b64encode(":".join(credentials).encode()).decode() if credentials else ""
        self.expected_auth = f"Basic {token}"
        self._lock = threading.Lock()
        self._log: list[ProxiedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, method: str, url: str, status: int, authorized: bool) -> None:
        with self._lock:
            self._log.append(ProxiedRequest(method, url, status, authorized))

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._log)

    def __enter__(self) -> "ForwardProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
