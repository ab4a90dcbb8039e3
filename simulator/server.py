"""``Simulator``: a local, RunComfy-compatible Model API server, with RunComfy's two account bases.

No machine of this project reaches RunComfy, so every test and demo talks to
this server over real HTTP on loopback. RunComfy answers on three bases (the
Model API, ``www`` for who-am-I and the device sign-in, ``api`` for the
balance), so the simulator listens on three ports (``url``, ``www_url``,
``api_url``): a client that sends a call to the wrong base gets a 404. It is started in-process by tests
(``with Simulator() as sim:``, ephemeral port, background daemon thread) or
from the command line (``cli.py``) for a benchmark or a real ComfyUI run,
which then steer it through ``/_sim/*``.

Start and stop take milliseconds: nothing is rendered or ticked until a job
is submitted, and stopping closes even idle keep-alive connections.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, Callable, TypeVar

from .account_api import AccountApi
from .api import Api
from .billing import Account, micros_to_usd
from .control import Control
from .faults import FaultBook, FaultRule
from .files import FileRoute
from .handler import Handler, Transport
from .jobs import Job, JobScript, JobStore
from .log import LogRecord, RequestLog
from .options import Options
from .routes import ACCOUNT, BASES, MODEL, WWW, Router
from .signin import SignIn, SignIns
from .work import RenderPool

T = TypeVar("T")
_HOST_HEADER = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that binds without a DNS lookup and can close its
    open connections on stop (idle keep-alive threads would otherwise linger)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default 5 drops SYNs of a burst of clients (a 1 s retransmit stall)

    def __init__(self, address: tuple[str, int], transport: Transport, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.transport = transport
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup
        # that can take seconds on a machine without DNS; the name is unused.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up (reset, broken pipe, idle timeout) is normal here,
        not worth a traceback on stderr; anything else still is."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def open_connections(self) -> list[socket.socket]:
        with self._open_lock:
            return list(self._open)

    def close_open_connections(self) -> None:
        sockets = self.open_connections()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Simulator:
    """A RunComfy Model API look-alike on loopback. Use as a context manager.

    Parameters: ``host``/``port`` (default 127.0.0.1, ephemeral; ``www_port`` and
    ``api_port`` for the other two bases, ephemeral by default), ``token`` of
    the default account (generated with ``secrets`` when None), ``balance`` of
    that account in USD, ``queue_seconds``/``run_seconds`` (job lifecycle),
    ``render_workers`` (image threads), ``options`` and/or any ``Options``
    field as a keyword (e.g. ``error_style="object"``).
    """

    account_name = "default"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        www_port: int = 0,
        api_port: int = 0,
        token: str | None = None,
        balance: float = 100.0,
        queue_seconds: float | None = None,
        run_seconds: float | None = None,
        render_workers: int = 2,
        options: Options | None = None,
        **option_overrides: Any,
    ) -> None:
        timings = {k: v for k, v in (("queue_seconds", queue_seconds), ("run_seconds", run_seconds)) if v is not None}
        self._initial_options = self._options = (options or Options()).replace(**timings, **option_overrides)
        self.host = host
        self.requested_port = port
        self._requested_ports = {MODEL: port, WWW: www_port, ACCOUNT: api_port}
        self.token: str = token or secrets.token_urlsafe(32)
        self._initial_balance = balance
        self.stopping = threading.Event()
        self.log = RequestLog()
        self.started_mono = self.log.started
        self.faults = FaultBook()
        self.store = JobStore()
        self.pool = RenderPool(render_workers, self.log, self.store.now,
                               lambda job, files: self.store.keep_files(job, files, self._options.max_file_bytes))
        api = Api(self.store, self.pool, lambda: self._options)
        self.sign_ins = SignIns(self.store.now, self.store.mint_token,
                                lambda: self.store.account_named(self.account_name), self.store.account_named)
        control = Control(token=self.token, account_name=self.account_name, store=self.store, faults=self.faults,
                          log=self.log, options=lambda: self._options, configure=self.configure, reset=self.reset,
                          url=lambda: self.url, urls=self.urls, sign_ins=self.sign_ins)
        router = Router(api=api, account_api=AccountApi(self.store, self.sign_ins, lambda: self._options),
                        files=FileRoute(self.store, lambda: self._options, self.stopping), control=control,
                        faults=self.faults, log=self.log, base_url_for=self.base_url_for)
        self._transports = {base: Transport(router.for_base(base), lambda: self._options.max_body_bytes, self.stopping)
                            for base in BASES}
        self._servers: dict[str, _HTTPServer] = {}
        self._threads: list[threading.Thread] = []
        self.store.add_account(self.token, balance, self.account_name)

    def start(self) -> "Simulator":
        """Bind the three bases and serve each in a daemon thread; returns self."""
        if self._servers:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            for base in BASES:
                self._servers[base] = _HTTPServer((self.host, self._requested_ports[base]), self._transports[base], family)
        except OSError:
            for server in self._servers.values():
                server.server_close()
            self._servers.clear()
            raise
        for base, server in self._servers.items():
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                      name=f"sim-http-{base}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, release waiting handlers and workers."""
        servers, self._servers = list(self._servers.values()), {}
        self.stopping.set()
        self.faults.clear(close=True)
        self.pool.stop()
        for server in servers:
            server.shutdown()
            server.server_close()
            server.close_open_connections()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def port_of(self, base: str = MODEL) -> int:
        server = self._servers.get(base)
        if server is None:
            raise RuntimeError("the simulator is not running")
        return int(server.server_address[1])

    @property
    def port(self) -> int:
        """The Model API's port."""
        return self.port_of(MODEL)

    def url_of(self, base: str) -> str:
        """The base URL of ``base`` (``model``, ``www`` or ``api``), e.g. ``http://127.0.0.1:41234``."""
        host = self.host
        if _is_unspecified(host):
            host = "::1" if ":" in host else "127.0.0.1"
        port = self.port_of(base)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The Model API's base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash, no /v1)."""
        return self.url_of(MODEL)

    @property
    def www_url(self) -> str:
        """Stands for ``https://www.runcomfy.com``: ``/api/auth/me`` and the device sign-in."""
        return self.url_of(WWW)

    @property
    def api_url(self) -> str:
        """Stands for ``https://api.runcomfy.net``: ``/prod/v2/balance``."""
        return self.url_of(ACCOUNT)

    def urls(self) -> dict[str, str]:
        """The three bases by name."""
        return {base: self.url_of(base) for base in BASES}

    def base_url_for(self, base: str, host_header: str | None) -> str:
        """The base for absolute URLs in answers on ``base``: the bound address, or the
        client's Host header when bound to all interfaces."""
        if _is_unspecified(self.host) and host_header and _HOST_HEADER.match(host_header):
            return f"http://{host_header}"
        return self.url_of(base)

    @property
    def options(self) -> Options:
        return self._options

    def configure(self, **changes: Any) -> Options:
        """Switch behaviours at run time (any ``Options`` field)."""
        self._options = self._options.replace(**changes)
        return self._options

    def advance(self, seconds: float) -> None:
        """Move simulator time forward: jobs progress as if ``seconds`` passed."""
        self.store.advance(seconds)

    def advance_to_finish(self, request_id: str) -> None:
        """Move simulator time to the end of this job's queue + run timers (no-op if past)."""
        job = self.job(request_id)
        remaining = job.created_mono + job.queue_seconds + job.run_seconds - self.store.now()
        if remaining > 0:
            self.store.advance(remaining)

    def add_fault(self, route: str, kind: str, **params: Any) -> FaultRule:
        """Inject a fault; see ``FaultRule`` for kinds and parameters."""
        return self.faults.add(FaultRule(route=route, kind=kind, **params))

    def clear_faults(self) -> None:
        self.faults.clear()

    def release(self, rule: FaultRule) -> None:
        """Let the requests a ``hold`` (or ``delay``) rule holds go on, now and later."""
        self.faults.release(rule.id)

    def held(self, rule: FaultRule) -> int:
        """How many requests wait behind a ``hold``/``delay`` rule right now."""
        return self.faults.held(rule.id)

    def open_connections(self) -> int:
        """Client connections the servers have open (a trickle ends with its client)."""
        return sum(len(server.open_connections()) for server in self._servers.values())

    def script_next_jobs(self, outcome: str = "completed", **params: Any) -> JobScript:
        """Make the next ``count`` submitted jobs behave as scripted; see ``JobScript``."""
        return self.store.add_script(JobScript(outcome=outcome, **params))

    def clear_scripts(self) -> None:
        self.store.clear_scripts()

    def add_account(self, balance: float = 10.0, *, name: str | None = None, token: str | None = None,
                    email: str | None = "auto") -> str:
        """Create another account; returns its (generated) token. ``email``: what ``auth/me``
        reports ("auto": made up from the name; None: none, so clients show the id)."""
        return self.store.add_account(token, balance, name, email)

    # -- device sign-in (what the person does on RunComfy's website) --------

    def approve_sign_in(self, user_code: str | None = None, *, account: str | None = None) -> SignIn:
        """Approve the pending sign-in with ``user_code`` (default: the newest); mints a fresh
        token for ``account`` (default: the primary one), collected by the tool's next poll."""
        return self.sign_ins.settle("approve", user_code=user_code, account=account)

    def deny_sign_in(self, user_code: str | None = None) -> SignIn:
        return self.sign_ins.settle("deny", user_code=user_code)

    def expire_sign_in(self, user_code: str | None = None) -> SignIn:
        return self.sign_ins.settle("expire", user_code=user_code)

    def pending_sign_ins(self) -> list[SignIn]:
        return self.sign_ins.pending()

    def _account(self, token: str | None) -> Account:
        account = self.store.account_for_token(token or self.token)
        if account is None:
            raise KeyError("no account has that token")
        return account

    def balance(self, token: str | None = None) -> float:
        """Balance in USD of the account of ``token`` (default: the simulator's)."""
        return micros_to_usd(self.store.balance_micros(self._account(token)))

    def set_balance(self, amount: float, token: str | None = None) -> None:
        self.store.set_balance(self._account(token), amount)

    def requests(self, **filters: Any) -> list[LogRecord]:
        """Logged requests matching ``filters`` (any ``LogRecord`` field)."""
        return self.log.records(**filters)

    @property
    def jobs(self) -> dict[str, Job]:
        return self.store.jobs()

    def job(self, request_id: str) -> Job:
        job = self.store.get(request_id)
        if job is None:
            raise KeyError(request_id)
        return job

    def state(self, request_id: str) -> str:
        """The true state of a job now (what /result would report)."""
        return self.job(request_id).state(self.store.now())

    def wait_until(self, predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.005) -> T:
        """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)

    def reset(self) -> None:
        """Back to the state right after construction (same token and port)."""
        self.store.reset()
        self.sign_ins.clear()
        self.store.add_account(self.token, self._initial_balance, self.account_name)
        self.faults.clear()
        self.log.clear()
        self._options = self._initial_options


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return host == ""
