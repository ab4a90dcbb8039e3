"""Storing and removing the token: one place on disk, never two, never lost.

A token is stored in RunComfy's sign-in file ``token.json`` (so ``runcomfy
whoami`` and every RunComfy tool see it). Only then is the pack's old place,
``"api_token"`` in its own ``config.json``, emptied: a crash in between leaves
the token in two places for a moment, never in none. The config file also
remembers a tag of a token pasted here (``sources.SAVED_TAG_KEY``), so the
panel can tell "saved here" from "RunComfy CLI sign-in".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

from ..config.paths import token_file_path
from ..config.settings import read_config_values, update_config_file
from .sources import LEGACY_TOKEN_KEY, SAVED_HERE, SAVED_TAG_KEY, saved_tag
from .token_file import remove_token_file, write_token_file
from .token_text import check_token_text

log = logging.getLogger("runcomfy")


def store_token(token: str, *, how: str = SAVED_HERE, env: Mapping[str, str] = os.environ) -> Path:
    """Write ``token`` to ``token.json``; ``how`` is ``saved_here`` (pasted) or ``cli_sign_in``
    (from a device sign-in). Returns the sign-in file's path."""
    token = check_token_text(token)
    path = token_file_path(env)
    write_token_file(path, token)
    _, values = read_config_values(env)
    changes = {SAVED_TAG_KEY: saved_tag(token)} if how == SAVED_HERE else {}
    remove = tuple(key for key in (LEGACY_TOKEN_KEY, SAVED_TAG_KEY) if key in values and key not in changes)
    if changes or remove:
        update_config_file(changes, remove=remove, env=env)
    if LEGACY_TOKEN_KEY in values:
        log.info("Moved the RunComfy token from the pack's config file to %s", path)
    return path


def remove_token(env: Mapping[str, str] = os.environ) -> bool:
    """Sign out: delete ``token.json`` and the old ``api_token`` (the macOS legacy file is
    RunComfy CLI's and stays). True when a token was removed."""
    removed = remove_token_file(token_file_path(env))
    _, values = read_config_values(env)
    stale = tuple(key for key in (LEGACY_TOKEN_KEY, SAVED_TAG_KEY) if key in values)
    if stale:
        update_config_file({}, remove=stale, env=env)
    return removed or LEGACY_TOKEN_KEY in stale
