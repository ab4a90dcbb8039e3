"""Who the token belongs to: ``GET {www}/api/auth/me``, RunComfy's one documented token check.

``runcomfy whoami`` makes the same call; HTTP 401 means RunComfy refuses the
token. (Whether the Model API's model info refuses a bad token is not known:
it may be public, so it is no token check.) The answer shows as "signed in as
<email>", or the account id when RunComfy gives no email.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..config.settings import Settings
from ..errors import AuthenticationError, RunComfyError, shorten
from ..transport.api import RunComfyClient
from .lookup import account_call

SIGNED_IN, REJECTED, UNKNOWN, NO_TOKEN = "signed_in", "rejected", "unknown", "no_token"


@dataclass(frozen=True)
class Identity:
    """One who-am-I answer, or why there is none. ``message`` is one line, free of secrets."""

    state: str
    email: str | None = None
    id: str | None = None
    message: str | None = None
    checked_at: float | None = None

    @property
    def name(self) -> str | None:
        """What to call the account: its email, else its id."""
        return self.email or self.id

    def describe(self) -> str:
        if self.state == SIGNED_IN:
            return f"signed in as {self.name or 'an account RunComfy does not name'}"
        return self.message or self.state

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_identity(body: Any) -> Identity:
    """``auth/me``'s answer: ``id`` (required), ``email`` (may be null)."""
    account_id = body.get("id") if isinstance(body, dict) else None
    email = body.get("email") if isinstance(body, dict) else None
    if account_id in (None, "") and not isinstance(email, str):
        return Identity(UNKNOWN, message="RunComfy's who-am-I answer names no account", checked_at=time.time())
    return Identity(SIGNED_IN, email if isinstance(email, str) and email else None,
                    str(account_id) if account_id not in (None, "") else None, None, time.time())


async def fetch_identity(settings: Settings, token: str | None = None, *,
                         client: RunComfyClient | None = None) -> Identity:
    """Ask RunComfy who ``token`` (default: the settings' token) belongs to; never raises."""
    if token is not None:
        settings = dataclasses.replace(settings, token=token, token_source="candidate")
    if not settings.token:
        return Identity(NO_TOKEN, message="No RunComfy API token is set")
    if not settings.www_base_url:
        return Identity(UNKNOWN, message=f"Not asked: no www base is known for the Model API at {settings.base_url} "
                                         "(set RUNCOMFY_WWW_BASE_URL)")
    try:
        body = await account_call(settings, lambda c: c.whoami(), client=client)
    except AuthenticationError:
        return Identity(REJECTED, message="RunComfy rejected the API token (who-am-I answered HTTP 401): sign in "
                                          "again or paste a new token from your RunComfy profile",
                        checked_at=time.time())
    except RunComfyError as error:
        return Identity(UNKNOWN, message=shorten(f"Could not ask RunComfy who this token belongs to: {error}"),
                        checked_at=time.time())
    return read_identity(body)
