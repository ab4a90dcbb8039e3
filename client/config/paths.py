"""Where the pack keeps what outlives a process: the job journal and the result store.

Both live in the per-user data folder, which is the config file's folder
(``~/.config/runcomfy`` on Linux, ``%APPDATA%\\runcomfy`` on Windows, or the
folder of ``$RUNCOMFY_CONFIG``), unless ``$RUNCOMFY_DATA_DIR`` names another.
Never inside the pack: a journal or a result image there could be committed or
shared along with the pack, so such a folder is refused, as a config file there is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from .settings import PACK_ROOT, default_config_path
from ..errors import ConfigurationError

DATA_DIR_VARIABLE = "RUNCOMFY_DATA_DIR"
JOURNAL_FILE_NAME = "journal.sqlite3"
RESULTS_DIR_NAME = "results"


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
