"""How much is left: ``GET {api}/prod/v2/balance`` (RunComfy CLI's ``balance``).

One wallet funds every RunComfy service. A failed call is "unknown", never a
reason to stop a run; only a known balance below a known estimate refuses a
job (``job.jobs``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..config.settings import Settings
from ..errors import RunComfyError, shorten
from ..transport.api import RunComfyClient
from .lookup import account_call

KNOWN, UNKNOWN, NO_TOKEN = "known", "unknown", "no_token"


@dataclass(frozen=True)
class Balance:
    """One balance answer, or why there is none. ``message`` is one line, free of secrets."""

    state: str
    usd: float | None = None
    currency: str | None = None
    message: str | None = None
    checked_at: float | None = None

    @property
    def known(self) -> bool:
        return self.state == KNOWN and self.usd is not None

    def describe(self) -> str:
        if self.known:
            return f"${self.usd:.2f}" + (f" {self.currency}" if self.currency and self.currency != "USD" else "")
        return "unknown" + (f" ({self.message})" if self.message else "")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_balance(body: Any) -> Balance:
    """``balance_usd`` (a number, or a number in text) and ``currency``."""
    value = body.get("balance_usd") if isinstance(body, dict) else None
    try:
        usd = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except ValueError:
        usd = None
    if usd is None or not math.isfinite(usd):
        return Balance(UNKNOWN, message="RunComfy's balance answer has no balance_usd", checked_at=time.time())
    currency = body.get("currency")
    return Balance(KNOWN, usd, currency if isinstance(currency, str) and currency else "USD", None, time.time())


async def fetch_balance(settings: Settings, *, client: RunComfyClient | None = None) -> Balance:
    """Ask RunComfy for the account's balance; never raises."""
    if not settings.token:
        return Balance(NO_TOKEN, message="No RunComfy API token is set")
    if not settings.account_base_url:
        return Balance(UNKNOWN, message=f"Not asked: no account base is known for the Model API at "
                                        f"{settings.base_url} (set RUNCOMFY_ACCOUNT_BASE_URL)")
    try:
        body = await account_call(settings, lambda c: c.balance(), client=client)
    except RunComfyError as error:
        return Balance(UNKNOWN, message=shorten(f"Could not read the balance: {error}"), checked_at=time.time())
    return read_balance(body)
