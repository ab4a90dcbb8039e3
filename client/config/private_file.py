"""Reading and writing the small JSON files that hold a secret: the config file and the sign-in file.

Both may hold the token, so both are read with the same suspicion (a file
any user may change could send the token elsewhere) and written the same way:
owner-only (0600, its folder 0700), atomically (a crash or a concurrent reader
never sees half a file), and never over a file that cannot be read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from ..errors import ConfigurationError


def read_json_object(path: Path, what: str) -> dict | None:
    """The JSON object in ``path`` (``what`` names the file in errors), None when it does not exist."""
    if not path.is_file():
        return None
    resolved = path.resolve()
    if os.name == "posix" and resolved.stat().st_mode & 0o002:
        raise ConfigurationError(
            f"{what} {path} can be changed by any user of this machine, who could send your token "
            f"elsewhere; run: chmod 600 {path}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # tolerate a byte-order mark
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"Cannot read {what.lower()} {path}: {type(exc).__name__}; fix or delete it") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{what} {path} must hold a JSON object")
    return data


def write_private_file(path: Path, text: str, what: str) -> None:
    """Replace ``path`` (a link: its target) with ``text``, owner-only and atomically."""
    target = path.resolve() if path.is_symlink() else path
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                os.chmod(temporary, 0o600)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise ConfigurationError(f"Cannot write {what.lower()} {path}: {type(exc).__name__}") from None
