"""Every path rule of the pack: the sign-in file, the config file, the journal and the result store.

Two folders, for two owners:

- The **sign-in file** ``token.json`` is RunComfy's, shared with RunComfy's CLI
  (``runcomfy login``) and every RunComfy tool: in the first of
  ``$RUNCOMFY_CONFIG_DIR``, ``$XDG_CONFIG_HOME/runcomfy``, ``~/.config/runcomfy``,
  the same on every OS (Windows and macOS included, as the CLI does). macOS
  also has the CLI's legacy ``~/Library/Application Support/runcomfy/token.json``,
  read only.
- The pack's own **config file** ``config.json`` (preferences, proxy, extra
  download hosts; once also the token) keeps its place:
  ``$RUNCOMFY_CONFIG``, else ``%APPDATA%\\runcomfy\\config.json`` on Windows,
  else ``$XDG_CONFIG_HOME/runcomfy/config.json`` or ``~/.config/runcomfy/config.json``.
  The journal and result store live in its folder unless ``$RUNCOMFY_DATA_DIR``
  names another.

Nothing of these may be inside the pack folder: a token, a journal or a result
image there could be committed or shared along with the pack.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from ..errors import ConfigurationError

PACK_ROOT = Path(__file__).resolve().parents[2]
CONFIG_PATH_VARIABLE = "RUNCOMFY_CONFIG"
SIGN_IN_DIR_VARIABLE = "RUNCOMFY_CONFIG_DIR"  # RunComfy CLI's name
DATA_DIR_VARIABLE = "RUNCOMFY_DATA_DIR"
TOKEN_FILE_NAME = "token.json"
JOURNAL_FILE_NAME = "journal.sqlite3"
RESULTS_DIR_NAME = "results"


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME", "").strip()
    return Path(home) if home else Path.home()


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """The pack's per-user config file: outside any repo and any workflow."""
    if env.get(CONFIG_PATH_VARIABLE):
        return Path(env[CONFIG_PATH_VARIABLE]).expanduser()
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "runcomfy" / "config.json"
    base = env.get("XDG_CONFIG_HOME") or str(_home(env) / ".config")
    return Path(base) / "runcomfy" / "config.json"


def sign_in_dir(env: Mapping[str, str] = os.environ) -> Path:
    """RunComfy's CLI config folder, the home of ``token.json`` (CLI ``src/config.rs``)."""
    if env.get(SIGN_IN_DIR_VARIABLE, "").strip():
        return Path(env[SIGN_IN_DIR_VARIABLE].strip()).expanduser()
    if env.get("XDG_CONFIG_HOME", "").strip():
        return Path(env["XDG_CONFIG_HOME"].strip()).expanduser() / "runcomfy"
    return _home(env) / ".config" / "runcomfy"


def token_file_path(env: Mapping[str, str] = os.environ) -> Path:
    """Where the sign-in file is read and written."""
    return sign_in_dir(env) / TOKEN_FILE_NAME


def legacy_token_file_path(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> Path | None:
    """The CLI's old macOS place, read when ``token_file_path`` does not exist (never written)."""
    if platform != "darwin":
        return None
    return _home(env) / "Library" / "Application Support" / "runcomfy" / TOKEN_FILE_NAME


def refuse_inside_pack(path: Path, what: str, remedy: str) -> None:
    """A one-line error if ``path`` lies inside the pack folder (``what`` names it)."""
    if path.resolve().is_relative_to(PACK_ROOT):
        raise ConfigurationError(
            f"{what} {path} is inside the node pack folder, where it could be shared or committed; {remedy}"
        )


def default_data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The per-user data folder (it may not exist yet); refused inside the pack folder."""
    if env.get(DATA_DIR_VARIABLE, "").strip():
        folder = Path(env[DATA_DIR_VARIABLE].strip()).expanduser()
        origin = f"{DATA_DIR_VARIABLE}={folder}"
    else:
        folder = default_config_path(env).parent
        origin = f"the config file's folder {folder}"
    if folder.resolve().is_relative_to(PACK_ROOT):
        raise ConfigurationError(
            f"The RunComfy data folder ({origin}) is inside the node pack folder, where the job "
            f"journal and result images could be shared or committed; set {DATA_DIR_VARIABLE} "
            "to a folder outside it"
        )
    return folder


def default_journal_path(env: Mapping[str, str] = os.environ) -> Path:
    """The job journal's SQLite file in the data folder."""
    return default_data_dir(env) / JOURNAL_FILE_NAME


def default_results_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The result store's folder in the data folder."""
    return default_data_dir(env) / RESULTS_DIR_NAME
