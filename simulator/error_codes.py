"""RunComfy's error codes and the HTTP status each one is answered with.

RunComfy documents the codes (docs.runcomfy.com/model-apis/error-codes) but
not which HTTP status travels with each (runcomfy-api.md, "Errors"). The
simulator therefore answers every code on the status its route would
naturally use, and ``Options.error_statuses`` pairs any code with another
status (even 200, as some RunComfy endpoints answer), so a client can be
tested against every pairing without editing the simulator.
"""

from __future__ import annotations

from typing import Any, Mapping

# The Model API's codes, then the Serverless pages' two, whose use by the
# Model API is unconfirmed; 413001 and 429001 are invented by this simulator.
DOCUMENTED: dict[int, str] = {
    400001: "bad model id",
    400002: "no balance",
    400004: "missing or expired token, revoked credentials or inactive account",
    403001: "request belongs to another user",
    404001: "request id unknown, deleted or expired",
    422001: "validation error (detail[])",
    500001: "server error, retry with backoff",
}
INVENTED: dict[int, str] = {413001: "request body too large", 429001: "too many concurrent requests"}

# error_code that goes with an HTTP status when an injected fault does not give one.
CODE_FOR_STATUS: dict[int, int] = {
    400: 400001,
    401: 400004,
    402: 400002,
    403: 403001,
    404: 404001,
    413: 413001,
    422: 422001,
    429: 429001,
}


def default_error_code(status: int) -> int:
    """The documented code for a status; 500001 ("retry with backoff") otherwise."""
    return CODE_FOR_STATUS.get(status, 500001)


def check_error_statuses(pairs: Any) -> dict[str, int]:
    """``{"<error code>": <HTTP status>}`` as given in options, checked and with string keys.

    A code this simulator never sends, or a status outside 200-599, is an
    error rather than a pairing that silently does nothing.
    """
    if not isinstance(pairs, Mapping):
        raise ValueError('error_statuses must map error codes to HTTP statuses, e.g. {"400004": 400}')
    checked: dict[str, int] = {}
    for code, status in pairs.items():
        text = str(code).strip()
        if not text.isdigit() or int(text) not in {**DOCUMENTED, **INVENTED}:
            known = ", ".join(str(c) for c in (*DOCUMENTED, *INVENTED))
            raise ValueError(f"error_statuses: unknown error code {code!r} (codes: {known})")
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            raise ValueError(f"error_statuses[{text}] must be an HTTP status from 200 to 599, got {status!r}")
        checked[text] = status
    return checked


def status_for(code: int, natural: int, pairs: Mapping[str, int]) -> int:
    """The HTTP status to answer ``code`` with: the configured pairing, else the route's ``natural`` one."""
    return pairs.get(str(code), natural)
