"""Where the token comes from, in one order of precedence (README's table is this module).

1. The environment: ``RUNCOMFY_TOKEN`` (RunComfy's CLI and docs: "always
   wins if set") or ``RUNCOMFY_API_TOKEN`` (RunComfy's ComfyUI nodes). Both set
   to different tokens is an error naming both: guessing would spend the
   wrong account's money.
2. The sign-in file ``token.json`` (``config.paths.token_file_path``; on macOS,
   when it is missing, the CLI's legacy file), written by ``runcomfy login``,
   by the pack's own sign-in, or by "Check and save" here.
3. The pack's old place, ``"api_token"`` in its own ``config.json``; moved to
   ``token.json`` the next time a token is saved.

Whether a token in ``token.json`` was pasted here or came from a sign-in is
remembered in the pack's config file as a short one-way tag of the token
(``token_saved_here``): a later ``runcomfy login`` writes another token, whose
tag differs, so the panel then rightly says "RunComfy CLI sign-in".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..config.paths import legacy_token_file_path, token_file_path
from ..errors import ConfigurationError
from .token_file import read_token_file
from .token_text import checked_token

ENVIRONMENT, CLI_SIGN_IN, SAVED_HERE, NONE = "environment", "cli_sign_in", "saved_here", "none"
TOKEN_VARIABLES = ("RUNCOMFY_TOKEN", "RUNCOMFY_API_TOKEN")  # RunComfy's CLI's name first: it "always wins"
SAVED_TAG_KEY = "token_saved_here"
LEGACY_TOKEN_KEY = "api_token"


def saved_tag(token: str) -> str:
    """A short one-way tag of ``token``: tells "this is the token saved here" without keeping it."""
    return hashlib.sha256(f"runcomfy-nb2 saved token\0{token}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenChoice:
    """The token the pack uses and where it comes from; the token is kept out of ``repr``."""

    token: str | None = field(default=None, repr=False)
    kind: str = NONE
    variable: str | None = None
    path: Path | None = None
    legacy: bool = False
    """From the pack's old place (``config.json`` ``api_token``), not yet moved."""
    conflict: str | None = None

    def describe(self) -> str:
        """Where the token comes from, in words for messages (never the token)."""
        if self.kind == ENVIRONMENT:
            return str(self.variable)
        if self.legacy:
            return f'"{LEGACY_TOKEN_KEY}" in {self.path}'
        if self.kind == SAVED_HERE:
            return f"the token saved here ({self.path})"
        if self.kind == CLI_SIGN_IN:
            return f"the RunComfy CLI sign-in ({self.path})"
        return "none"


def environment_conflict(env: Mapping[str, str]) -> str | None:
    """The one-line error when both variables hold different tokens (None: no conflict)."""
    values = {name: env.get(name, "").strip() for name in TOKEN_VARIABLES}
    if all(values.values()) and len(set(values.values())) > 1:
        first, second = TOKEN_VARIABLES
        return (f"{first} and {second} are both set and differ: unset one of them (or give both the same "
                "token) where ComfyUI is started. Nothing was sent")
    return None


def find_token(env: Mapping[str, str], config_values: Mapping[str, object], config_path: Path) -> TokenChoice:
    """The token by the order of the module docstring. Raises ``ConfigurationError`` for a
    token that cannot be right (a broken file, a pasted line break); a conflict of the two
    variables is returned (``conflict``), so whoever asks can say it, and nothing is sent."""
    conflict = environment_conflict(env)
    if conflict:
        return TokenChoice(conflict=conflict)
    for name in TOKEN_VARIABLES:
        if env.get(name, "").strip():
            return TokenChoice(checked_token(env[name], name), ENVIRONMENT, variable=name)
    for path in (token_file_path(env), legacy_token_file_path(env)):
        found = read_token_file(path) if path is not None else None
        if found is not None and found.access_token:
            token = checked_token(found.access_token, str(path))
            here = config_values.get(SAVED_TAG_KEY) == saved_tag(token)
            return TokenChoice(token, SAVED_HERE if here else CLI_SIGN_IN, path=path)
        if found is not None:
            break  # a signed-out file: the legacy one is not a fallback for it
    legacy = config_values.get(LEGACY_TOKEN_KEY)
    if legacy not in (None, ""):
        where = f'"{LEGACY_TOKEN_KEY}" in {config_path}'
        if not isinstance(legacy, str):
            raise ConfigurationError(f"{where} must be text: the token in double quotes")
        return TokenChoice(checked_token(legacy, where), SAVED_HERE, path=config_path, legacy=True)
    return TokenChoice()
