"""Fault rules: what goes wrong, on which requests, how many times.

A rule names a route (and optionally a model or request id) and a kind of
failure; it applies to the next ``times`` matching requests and is then used
up, so a test can say "the next two status calls get a 503" and then watch the
client recover. Rules are plain data so they can also be posted as JSON to
``/_sim/faults`` by a benchmark or a real ComfyUI run in another process.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .options import known_fields

ROUTES = ("submit", "status", "result", "cancel", "model", "models", "file", "auth_me", "sign_in_start",
          "sign_in_poll", "balance", "any")
GENERIC_KINDS = ("http_error", "ok_with_error_code", "json_body", "drop", "malformed_json", "delay", "hold", "redirect")
FILE_KINDS = ("not_image", "oversize", "truncated", "cut", "slow", "trickle")
KINDS = GENERIC_KINDS + FILE_KINDS

MAX_SECONDS = 60.0
MAX_OVERSIZE_BYTES = 64 * 1024 * 1024
DEFAULT_SLOW_SECONDS = 5.0


@dataclass(frozen=True)
class FaultRule:
    """One injected failure. Parameters used by each kind:

    - ``http_error``: ``status`` (default 500), ``error_code`` (default: the
      documented one for the status, e.g. 404 -> 404001), ``error_message``,
      ``detail``, or a raw ``body`` + ``content_type`` (e.g. a proxy's HTML
      413 or 502 page).
    - ``ok_with_error_code``: HTTP 200 whose JSON carries ``error_code`` /
      ``error_message`` (default 500001).
    - ``json_body``: HTTP ``status`` (default 200) with the JSON text ``body``
      (default ``[]``: valid JSON that is not an object).
    - ``drop``: the connection is closed without an answer.
    - ``malformed_json``: HTTP 200 with a cut-off JSON body.
    - ``delay``: the answer comes ``seconds`` later (default 1, at most 60),
      or as soon as the rule is released (``Simulator.release``).
    - ``hold``: the answer waits until the rule is released (at most 60 s);
      ``Simulator.held(rule)`` counts the requests waiting on it.
    - ``redirect``: ``status`` (default 302) to ``location``, or to the same
      path on ``host``, or (with ``?redirected=1``) on the same host.
    - file route only: ``not_image`` (an HTML page, ``content_type``
      overridable), ``oversize`` (streams ``size`` bytes, at most and by
      default 64 MiB; ``chunked`` hides the length), ``truncated`` (announces
      the full length, sends ``size`` bytes or half, then closes), ``cut``
      (a complete 200 whose body is only the file's first ``size`` bytes, or
      half: a different ``size`` per rule is a cut that differs each time),
      ``slow``
      (the real file spread over ``seconds``, default 5), ``trickle`` (``size``
      bytes, default 1, every ``seconds``, default 2, for as long as the
      client stays connected).

    The generic kinds apply to every route, the file route included (a
    flaky CDN: ``http_error`` 503, ``drop``). ``retry_after`` sets a
    ``Retry-After`` header on an ``http_error``, ``ok_with_error_code`` or
    ``json_body`` answer, verbatim (``0``, ``-5``, ``"1e9"``, an HTTP date,
    garbage). ``{token}`` in ``error_message`` becomes the caller's own bearer
    token (a server that echoes secrets). ``times`` counts matching requests
    (None: forever), so "an outage of N polls" is ``times=N`` on route
    ``status`` and/or ``result``, and "a 404 right after submit" is
    ``http_error`` 404 with ``request_id`` (404001 by default).

    ``after_processing``: the request is handled normally first (a submit
    creates and bills its job) and only then is the answer replaced by the
    fault: the "server did it but the answer was lost" case.
    """

    route: str
    kind: str
    times: int | None = 1
    model_id: str | None = None
    request_id: str | None = None
    after_processing: bool = False
    status: int | None = None
    error_code: int | str | None = None
    error_message: str | None = None
    detail: Any = None
    retry_after: int | str | None = None
    body: str | None = None
    content_type: str | None = None
    seconds: float | None = None
    location: str | None = None
    host: str | None = None
    size: int | None = None
    chunked: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}, got {self.route!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind in FILE_KINDS and self.route != "file":
            raise ValueError(f"fault kind {self.kind!r} only applies to route 'file'")
        if self.kind in FILE_KINDS and self.after_processing:
            raise ValueError(f"fault kind {self.kind!r} cannot be applied after processing")
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise ValueError("times must be None (forever) or an int >= 1")
        if self.seconds is not None and not 0 <= float(self.seconds) <= MAX_SECONDS:
            raise ValueError(f"seconds must be between 0 and {MAX_SECONDS:g}")
        if self.status is not None and not 100 <= int(self.status) <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.kind == "redirect" and self.status is not None and not 300 <= self.status < 400:
            raise ValueError("a redirect needs a 3xx status")
        if self.size is not None and not 0 <= int(self.size) <= MAX_OVERSIZE_BYTES:
            raise ValueError(f"size must be between 0 and {MAX_OVERSIZE_BYTES} bytes")
        if any(char in str(self.retry_after) for char in "\r\n"):
            raise ValueError("retry_after cannot contain a line break")
        if self.kind == "json_body" and self.body is not None:
            json.loads(self.body)  # ValueError: json_body needs a JSON text

    @classmethod
    def from_json(cls, data: Any) -> "FaultRule":
        """Build from a control-endpoint payload; unknown keys are an error."""
        return cls(**known_fields(cls, data, "fault rule"))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def matches(self, route: str, model_id: str | None, request_id: str | None) -> bool:
        if self.route not in ("any", route):
            return False
        if self.model_id is not None and self.model_id != model_id:
            return False
        return self.request_id is None or self.request_id == request_id


class FaultBook:
    """The active rules, consumed in the order they were added, and the gates
    that ``delay`` and ``hold`` requests wait behind until released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[list[Any]] = []  # [rule, remaining uses or None]
        self._gates: dict[str, threading.Event] = {}
        self._held: Counter[str] = Counter()
        self._closed = False

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append([rule, rule.times])
        return rule

    def take(self, route: str, model_id: str | None, request_id: str | None) -> FaultRule | None:
        """The first rule matching this request, with one use consumed."""
        with self._lock:
            for entry in self._rules:
                rule, remaining = entry
                if rule.matches(route, model_id, request_id):
                    if remaining is not None:
                        entry[1] = remaining - 1
                        if entry[1] <= 0:
                            self._rules.remove(entry)
                    return rule
        return None

    def pending(self) -> list[tuple[FaultRule, int | None]]:
        """Rules not used up yet, with their remaining uses (None = forever)."""
        with self._lock:
            return [(rule, remaining) for rule, remaining in self._rules]

    def wait(self, rule_id: str, seconds: float) -> None:
        """Hold the calling request for ``seconds`` or until the rule is released."""
        with self._lock:
            gate = self._gates.setdefault(rule_id, threading.Event())
            if self._closed:
                gate.set()
            self._held[rule_id] += 1
        try:
            gate.wait(seconds)
        finally:
            with self._lock:
                self._held[rule_id] -= 1

    def held(self, rule_id: str) -> int:
        """How many requests are waiting behind the rule now."""
        with self._lock:
            return self._held[rule_id]

    def release(self, rule_id: str) -> None:
        """Let every request the rule holds, now or later, go on."""
        with self._lock:
            self._gates.setdefault(rule_id, threading.Event()).set()

    def clear(self, *, close: bool = False) -> None:
        """Forget every rule and release every held request (``close``: for good)."""
        with self._lock:
            self._rules.clear()
            self._closed = self._closed or close
            for gate in self._gates.values():
                gate.set()
            self._gates.clear()
