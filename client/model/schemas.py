"""The published input schemas of the two models, and validation against them.

The JSON files beside this module are the contract: node widgets are built from
them and every request body is checked against them, and against the pack's
own rules (``input_rules``), before it is sent, so a typo costs nothing. Only
the subset of JSON Schema the model pages use is implemented (types, enums,
bounds, item counts, required fields).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Mapping

from ..errors import RequestValidationError
from ..formats import INLINE_FORMATS, image_digest, sniff
from .input_rules import data_uri_problem, image_url_problem, prompt_problem, seed_problem

TEXT_TO_IMAGE = "google/nano-banana-2/text-to-image"
EDIT = "google/nano-banana-2/edit"
MODEL_IDS = (TEXT_TO_IMAGE, EDIT)

_SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_DATA_URI = re.compile(
    "^data:(" + "|".join(re.escape(f.mime) for f in INLINE_FORMATS) + ");base64,", re.IGNORECASE
)
_INLINE_NAMES = "|".join(f.name for f in INLINE_FORMATS)
_PYTHON_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict}


@dataclass(frozen=True)
class InlineImage:
    """An encoded input image, sent as a ``data:<mime>;base64,...`` URI.

    It stays bytes until the body is written (``request.py`` splices the
    base64 straight into the body), so multi-megabyte images are never copied
    into strings; it counts as an ``image_uri`` here.
    """

    data: bytes = field(repr=False)
    mime: str

    @cached_property
    def digest(self) -> str:
        """What identifies this image (not its data URI): ``formats.image_digest``."""
        return image_digest(self.data)


@dataclass(frozen=True)
class FieldIssue:
    """One reason a body does not match the schema."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_ok(value: Any, type_name: str) -> bool:
    expected = _PYTHON_TYPES[type_name]
    if expected in (int, str, list, dict) and isinstance(value, bool):
        return False
    return isinstance(value, expected)


def _check_value(name: str, value: Any, spec: Mapping[str, Any]) -> list[FieldIssue]:
    type_name = spec.get("type")
    if isinstance(value, InlineImage) and spec.get("format") == "image_uri":
        kind = sniff(value.data)
        if kind is None or kind.mime != value.mime or not kind.inline:
            return [FieldIssue(name, f"is not a {value.mime} image the model takes inline")]
        return []
    if type_name and not _type_ok(value, type_name):
        return [FieldIssue(name, f"must be {type_name}, got {_describe(value)}")]
    issues: list[FieldIssue] = []
    if "enum" in spec and value not in spec["enum"]:
        choices = ", ".join(str(choice) for choice in spec["enum"])
        issues.append(FieldIssue(name, f"{_describe(value)} is not one of {choices}"))
    if "minimum" in spec and value < spec["minimum"]:
        issues.append(FieldIssue(name, f"must be at least {spec['minimum']}, got {value}"))
    if "maximum" in spec and value > spec["maximum"]:
        issues.append(FieldIssue(name, f"must be at most {spec['maximum']}, got {value}"))
    if type_name == "array":
        count = len(value)
        if count < spec.get("minItems", 0):
            issues.append(FieldIssue(name, f"needs at least {spec['minItems']} item(s), got {count}"))
        if count > spec.get("maxItems", count):
            issues.append(FieldIssue(name, f"takes at most {spec['maxItems']} items, got {count}"))
        item_spec = spec.get("items", {})
        for index, item in enumerate(value):
            issues.extend(_check_value(f"{name}[{index}]", item, item_spec))
    return issues


def _pack_rule_issues(name: str, value: Any, spec: Mapping[str, Any], local_api: bool) -> list[FieldIssue]:
    """The pack's own pre-submit rules (``input_rules``) for a value that passed the schema."""
    problem = None
    if isinstance(value, InlineImage):
        pass  # checked by _check_value
    elif spec.get("format") == "image_uri":
        if value[:5].lower() == "data:":
            problem = data_uri_problem(value) if _DATA_URI.match(value) else f"is not a data:image/<{_INLINE_NAMES}>;base64 URI"
        else:
            problem = image_url_problem(value, local_api=local_api)
        if problem:
            problem = f"{_describe(value)} {problem}"
    elif name == "prompt":
        problem = prompt_problem(value)
    elif name == "seed":
        problem = seed_problem(value)
    return [FieldIssue(name, problem)] if problem else []


@dataclass(frozen=True)
class ModelSchema:
    """One model's input schema, loaded from its JSON file."""

    model_id: str
    input_schema: Mapping[str, Any]

    @property
    def properties(self) -> Mapping[str, Mapping[str, Any]]:
        return self.input_schema["properties"]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(self.input_schema.get("required", ()))

    def defaults(self) -> dict[str, Any]:
        """Every field's documented default, as a fresh dict."""
        return json.loads(json.dumps({k: v["default"] for k, v in self.properties.items() if "default" in v}))

    def issues(self, body: Mapping[str, Any], *, local_api: bool = False) -> list[FieldIssue]:
        """Every way ``body`` breaks the schema or the pack's own rules (empty when it is valid).

        ``local_api``: the API runs on this machine or network, so it can fetch
        loopback and private image URLs (see ``input_rules.image_url_problem``).
        """
        if not isinstance(body, Mapping):
            return [FieldIssue("body", "must be a JSON object")]
        found = [FieldIssue(name, "is required") for name in self.required if name not in body]
        for name, value in body.items():
            spec = self.properties.get(name)
            if spec is None:
                known = ", ".join(self.properties)
                found.append(FieldIssue(name, f"is not an input of {self.model_id} (inputs: {known})"))
                continue
            problems = _check_value(name, value, spec)
            if not problems and spec.get("type") == "array":
                item_spec = spec.get("items", {})
                for index, item in enumerate(value):
                    problems += _pack_rule_issues(f"{name}[{index}]", item, item_spec, local_api)
            elif not problems:
                problems = _pack_rule_issues(name, value, spec, local_api)
            found.extend(problems)
        return found

    def check(self, body: Mapping[str, Any], *, local_api: bool = False) -> None:
        """Raise one-line ``RequestValidationError`` naming the first bad field."""
        found = self.issues(body, local_api=local_api)
        if found:
            more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
            raise RequestValidationError(
                f"Invalid input for {self.model_id}: {found[0]}{more}", field=found[0].field
            )


@cache
def get_schema(model_id: str) -> ModelSchema:
    """The schema of a supported model; unknown ids are a programming error."""
    if model_id not in MODEL_IDS:
        raise RequestValidationError(
            f"Unknown model {model_id!r}; this pack supports {', '.join(MODEL_IDS)}", field="model_id"
        )
    data = json.loads((_SCHEMA_DIR / f"{model_id.split('/', 1)[1].replace('/', '-')}.json").read_text("utf-8"))
    return ModelSchema(model_id=data["model_id"], input_schema=data["input_schema"])
