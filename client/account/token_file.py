"""``token.json``, RunComfy's sign-in file, in RunComfy's CLI's own format.

``runcomfy login`` writes it and every RunComfy tool reads it
(runcomfy-api.md, "Base and auth"): pretty-printed JSON with exactly the keys
``access_token``, ``refresh_token``, ``expires_at`` (unix seconds) and
``user_email``, the last three null after a login. The pack writes the same
file the same way (atomic, 0600), so ``runcomfy whoami`` works with a token
saved here and the pack works after ``runcomfy login``. Where the file lives
is ``config.paths``'.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config.paths import refuse_inside_pack
from ..config.private_file import read_json_object, write_private_file
from ..errors import ConfigurationError, register_secret

WHAT = "Sign-in file"
KEYS = ("access_token", "refresh_token", "expires_at", "user_email")


@dataclass(frozen=True)
class TokenFile:
    """What a sign-in file holds; the token is kept out of ``repr``."""

    path: Path
    access_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    user_email: str | None = None


def read_token_file(path: Path) -> TokenFile | None:
    """The sign-in file at ``path`` (None: there is none). A file without a usable
    ``access_token`` is read as signed out, as RunComfy's CLI reads it."""
    data = read_json_object(path, WHAT)
    if data is None:
        return None
    token = data.get("access_token")
    if token is not None and not isinstance(token, str):
        raise ConfigurationError(f'"access_token" in {path} must be text: the token in double quotes')
    register_secret(token)
    refresh = data.get("refresh_token")
    register_secret(refresh if isinstance(refresh, str) else None)
    expires = data.get("expires_at")
    email = data.get("user_email")
    return TokenFile(
        path,
        token.strip() if token and token.strip() else None,
        float(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) else None,
        email if isinstance(email, str) else None,
    )


def format_token_file(token: str) -> str:
    """The file's text, as ``runcomfy login`` writes it (serde's pretty JSON: two-space indent)."""
    return json.dumps({"access_token": token, "refresh_token": None, "expires_at": None, "user_email": None}, indent=2)


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to the sign-in file at ``path``, replacing what was there."""
    refuse_inside_pack(path, WHAT, "set RUNCOMFY_CONFIG_DIR to a folder outside it")
    register_secret(token)
    write_private_file(path, format_token_file(token), WHAT)


def remove_token_file(path: Path) -> bool:
    """Delete the sign-in file (signing out every RunComfy tool, as ``runcomfy logout`` does)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigurationError(f"Cannot remove the sign-in file {path}: {type(exc).__name__}") from None
    return True
