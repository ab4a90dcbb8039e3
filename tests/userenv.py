"""The environment a user of the pack runs with, for tests that start the pack or configure it.

Nothing of this machine's own RunComfy setup (a real token, a config file, a
data folder) may leak into a test, and nothing a test sets may leak out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PREFIX = "RUNCOMFY_"


def pack_env(config_path: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any ``RUNCOMFY_*`` variable, plus ``RUNCOMFY_CONFIG``
    (so the data folder is the config file's folder) and ``variables``; for a new process."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(PREFIX)}
    # RunComfy's sign-in file (token.json) beside it, so a real `runcomfy login` of this machine stays out
    env.update(RUNCOMFY_CONFIG=str(config_path), RUNCOMFY_CONFIG_DIR=str(Path(config_path).parent / "sign-in"),
               **variables)
    return env


def apply_env(monkeypatch: Any, env: dict[str, str]) -> None:
    """Give this test process the ``RUNCOMFY_*`` variables of ``env`` and no others
    (pytest's ``monkeypatch`` puts everything back afterwards)."""
    for name in [name for name in os.environ if name.startswith(PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(PREFIX):
            monkeypatch.setenv(name, value)
