"""A batch file read and checked whole, before anything is paid.

JSONL (one object a line) or CSV (a header row, one job a row); ``-`` is
standard input. Every line is turned into the request it would send, through
the same gate as a single job (``JobRequest.checked``), so a file that passes
here is refused by nothing of ours later. Problems carry the line number and
the field, and every line is checked (not just the first bad one), so the
user fixes the file in one go.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from .. import formats
from ..errors import RequestValidationError
from ..limits import MAX_INLINE_IMAGE_BYTES, MIB
from ..model.request import JobRequest
from ..model.schemas import EDIT, MODEL_IDS, TEXT_TO_IMAGE, InlineImage, get_schema

__all__ = ["BadLine", "BatchFile", "BatchLine", "read_batch_file", "reference_image"]

MODEL_KEY = "model"
MODELS = {"text-to-image": TEXT_TO_IMAGE, "edit": EDIT, **{model_id: model_id for model_id in MODEL_IDS}}
IMAGE_SEPARATOR = "|"  # several reference images in one CSV cell
INPUT_NAMES = frozenset(name for model_id in MODEL_IDS for name in get_schema(model_id).properties)
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


@dataclass(frozen=True)
class BatchLine:
    """One valid job: its line number, the request to send, the columns kept for the manifest."""

    number: int
    request: JobRequest
    kept: dict[str, str]
    source: dict[str, Any]  # the line as read (images as given, not their bytes)

    @property
    def model_id(self) -> str:
        return self.request.model_id


@dataclass(frozen=True)
class BadLine:
    """A line that would be refused, with the field to change."""

    number: int
    field: str
    message: str
    source: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"line {self.number}: {self.field}: {self.message}"


@dataclass(frozen=True)
class BatchFile:
    """Every line of a batch file, checked; ``kept_columns`` in first-seen order."""

    path: Path | None  # None: standard input
    kind: str  # "jsonl" or "csv"
    lines: list[BatchLine]
    bad: list[BadLine]
    kept_columns: list[str]


def reference_image(value: str, base: Path) -> str | InlineImage:
    """A URL as is, or a local file (relative to ``base``) as an inline image; ValueError says what to change."""
    if value.lower().startswith(("http://", "https://", "data:")):
        return value
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {value}: {exc.strerror}") from None
    kind = formats.sniff(data)
    if kind is None or not kind.inline:
        names = ", ".join(f.name.upper() for f in formats.INLINE_FORMATS)
        raise ValueError(f"{value} is not a {names} file")
    if len(data) > MAX_INLINE_IMAGE_BYTES:
        raise ValueError(
            f"{value} is {len(data) / MIB:.1f} MiB, over the {MAX_INLINE_IMAGE_BYTES // MIB} MiB inline limit; "
            "shrink it, host it and pass the URL, or use the ComfyUI node (it fits images automatically)"
        )
    return InlineImage(data, kind.mime)


def read_batch_file(name: str, *, local_api: bool = False) -> BatchFile:
    """Read and check every line of ``name`` (``-``: standard input). Raises ValueError when
    the file itself cannot be read; bad lines are returned, not raised."""
    if name == "-":
        text, path, base = sys.stdin.read(), None, Path.cwd()
    else:
        path = Path(name).expanduser()
        try:
            text = path.read_text("utf-8-sig")
        except OSError as exc:
            raise ValueError(f"cannot read {name}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{name} is not UTF-8 text") from None
        base = path.resolve().parent
    kind = "csv" if (path is not None and path.suffix.lower() == ".csv") or _looks_like_csv(text) else "jsonl"
    records = _csv_records(text) if kind == "csv" else _jsonl_records(text)
    lines: list[BatchLine] = []
    bad: list[BadLine] = []
    kept_columns: list[str] = []
    for number, record in records:
        if isinstance(record, BadLine):
            bad.append(record)
            continue
        checked = _checked_line(number, record, base, local_api, from_csv=kind == "csv")
        if isinstance(checked, BadLine):
            bad.append(checked)
            continue
        lines.append(checked)
        kept_columns += [name for name in checked.kept if name not in kept_columns]
    if not lines and not bad:
        raise ValueError(f"{name} has no jobs")
    return BatchFile(path, kind, lines, bad, kept_columns)


def _looks_like_csv(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return not first.lstrip().startswith("{")


def _jsonl_records(text: str) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, BadLine(number, "line", f"is not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            yield number, BadLine(number, "line", "must be a JSON object")
            continue
        yield number, record


def _csv_records(text: str) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        number = reader.line_num
        if None in row:
            yield number, BadLine(number, "row", f"has more cells than the header's {len(reader.fieldnames or [])}")
            continue
        values = {key.strip(): (value or "").strip() for key, value in row.items() if key}
        if not any(values.values()):
            continue
        yield number, {key: value for key, value in values.items() if value != ""}


def _checked_line(
    number: int, record: Mapping[str, Any], base: Path, local_api: bool, *, from_csv: bool
) -> BatchLine | BadLine:
    source = dict(record)
    inputs = {name: value for name, value in record.items() if name in INPUT_NAMES}
    kept = {name: _text(value) for name, value in record.items() if name not in INPUT_NAMES and name != MODEL_KEY}
    chosen = record.get(MODEL_KEY) or ("edit" if inputs.get("image_urls") else "text-to-image")
    model_id = MODELS.get(str(chosen).strip())
    if model_id is None:
        return BadLine(number, MODEL_KEY, f"{chosen!r} is not text-to-image or edit", source)
    schema = get_schema(model_id)
    for name in list(inputs):
        if name not in schema.properties:
            return BadLine(number, name, f"is not an input of {chosen} (inputs: {', '.join(schema.properties)})",
                           source)
        if from_csv:
            try:
                inputs[name] = _from_cell(inputs[name], schema.properties[name])
            except ValueError as exc:
                return BadLine(number, name, str(exc), source)
    if "image_urls" in inputs:
        images = inputs["image_urls"]
        images = [images] if isinstance(images, str) else images
        if not isinstance(images, list) or not all(isinstance(item, str) for item in images):
            return BadLine(number, "image_urls", "must be a path or URL, or a list of them", source)
        try:
            inputs["image_urls"] = [reference_image(item.strip(), base) for item in images]
        except ValueError as exc:
            return BadLine(number, "image_urls", str(exc), source)
    try:
        request = JobRequest.checked(model_id, inputs, local_api=local_api)
    except RequestValidationError as exc:
        message = str(exc).split(": ", 1)[-1]
        problem = message.split(": ", 1)[-1] if message.startswith(f"{exc.field}:") else message
        return BadLine(number, exc.field or "line", problem, source)
    return BatchLine(number, request, kept, source)


def _from_cell(cell: str, spec: Mapping[str, Any]) -> Any:
    """A CSV cell as the value the schema wants (every cell is text)."""
    kind = spec.get("type")
    if kind == "integer":
        try:
            return int(cell)
        except ValueError:
            raise ValueError(f"{cell!r} is not a whole number") from None
    if kind == "number":
        try:
            return float(cell)
        except ValueError:
            raise ValueError(f"{cell!r} is not a number") from None
    if kind == "boolean":
        word = cell.lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ValueError(f"{cell!r} is not true or false")
        return word in TRUE_WORDS
    if kind == "array":
        return [item.strip() for item in cell.split(IMAGE_SEPARATOR) if item.strip()]
    return cell


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
