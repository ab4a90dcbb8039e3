"""Where a batch's images go and what is written about each job.

File names come from a ``--name`` template over the line's kept columns
(``{line}`` is the line number), default ``{line}-<first kept column>``; they
are made safe for every file system, unique within the batch, and an existing
file is never overwritten by a different image (a resumed batch finds its own
files again and leaves them). ``manifest.jsonl`` (and ``manifest.csv`` for a
CSV batch) says, per line, what was asked, what became of it and where the
files are; it is rewritten whole, atomically, so a killed run leaves a
complete manifest of what was known at the time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import formats

__all__ = ["Outcome", "check_template", "default_template", "file_stems", "write_files", "write_manifest"]

SAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM = 80


@dataclass
class Outcome:
    """What became of one line; one manifest row."""

    line: int
    status: str  # pending, completed, reused, failed, blocked, cancelled, skipped, invalid
    model: str | None = None
    kept: dict[str, str] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    cost_usd: float | None = None
    files: list[str] = field(default_factory=list)
    error: str | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


def default_template(kept_columns: list[str]) -> str:
    return "{line:04d}-{" + kept_columns[0] + "}" if kept_columns else "{line:04d}"


def check_template(template: str, columns: Iterable[str]) -> None:
    """ValueError naming what to change when the template uses an unknown column."""
    known = {"line", *columns}
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"--name {template!r}: {exc}") from None
    unknown = [name for name in names if name.split(":")[0] not in known]
    if unknown:
        raise ValueError(f"--name {template!r} uses {{{unknown[0]}}}, which is no column; columns: {', '.join(sorted(known))}")


def file_stems(template: str, rows: Iterable[tuple[int, Mapping[str, str]]]) -> dict[int, str]:
    """Line number -> a safe stem, unique within the batch (a clash gets its line number added)."""
    stems: dict[int, str] = {}
    for line, kept in rows:
        values = {name: kept.get(name, "") for name in _fields(template) if name != "line"}
        stem = SAFE.sub("_", template.format(**values, line=line))
        stems[line] = stem.strip("._")[:MAX_STEM] or f"{line:04d}"
    seen: dict[str, int] = {}
    for line in sorted(stems):
        stem = stems[line]
        if stem.lower() in seen:
            stems[line] = f"{stem}-line{line}"
        seen[stems[line].lower()] = line
    return stems


def write_files(folder: Path, stem: str, files: list[bytes]) -> list[str]:
    """Write one job's images as ``<stem>-<n>.<ext>``; a different image already there is kept
    and this one takes the next free name. Returns the names, relative to ``folder``."""
    names = []
    for number, data in enumerate(files, start=1):
        kind = formats.sniff(data)
        extension = kind.extension if kind else "bin"
        base = f"{stem}-{number}" if len(files) > 1 else stem
        candidate, attempt = folder / f"{base}.{extension}", 1
        while candidate.exists() and candidate.read_bytes() != data:
            attempt += 1
            candidate = folder / f"{base}~{attempt}.{extension}"
        if not candidate.exists():
            _atomic_write(candidate, data)
        names.append(candidate.name)
    return names


def write_manifest(folder: Path, outcomes: Iterable[Outcome], *, kept_columns: list[str], as_csv: bool) -> None:
    """Rewrite ``manifest.jsonl`` (and ``manifest.csv``) whole, atomically, in line order."""
    ordered = sorted(outcomes, key=lambda outcome: outcome.line)
    jsonl = "".join(json.dumps(outcome.row(), ensure_ascii=False) + "\n" for outcome in ordered)
    _atomic_write(folder / "manifest.jsonl", jsonl.encode("utf-8"))
    if not as_csv:
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", *kept_columns, "model", "status", "request_id", "cost_usd", "files", "error"])
    for outcome in ordered:
        cost = "" if outcome.cost_usd is None else f"{outcome.cost_usd:.6g}"
        writer.writerow([outcome.line, *(outcome.kept.get(name, "") for name in kept_columns), outcome.model or "",
                         outcome.status, outcome.request_id or "", cost, " ".join(outcome.files), outcome.error or ""])
    _atomic_write(folder / "manifest.csv", buffer.getvalue().encode("utf-8"))


def _fields(template: str) -> list[str]:
    return [name.split(":")[0] for _, name, _, _ in string.Formatter().parse(template) if name]


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
