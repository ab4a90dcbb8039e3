"""The submit-time check of a request body, as RunComfy's backend is taken to do it.

Written from the model pages' input schemas (JSON Schema) and
``runcomfy-api.md``, never from the client, whose stricter rules are its own
business (a contract test lists where the two differ and why). Where the docs
are silent, the default is what a JSON Schema validator makes of the page, and
the plausible alternative is an opt-in rule (``Options.input_rules``):

- ``integer`` follows JSON Schema (draft 6 on): ``3.0`` is an integer, ``true``
  is not (booleans are not numbers in JSON). pydantic's lax mode, the other
  likely validator behind a FastAPI-style ``detail`` list, also takes ``3.0``.
- Unknown fields are ignored: the schemas do not say
  ``additionalProperties: false``. Rule ``unknown_fields`` refuses them.
- ``prompt`` is a string without ``minLength``, so "" or blanks pass (the job
  is billed and runs). Rule ``blank_prompt`` refuses them.
- ``seed`` has no bounds on the page. Rule ``seed_int32`` refuses what does not
  fit Gemini's signed 32-bit seed.
- ``image_uri`` (not a standard format) is taken as an http(s) URL with a host,
  the scheme in any case (RFC 3986), or a ``data:`` URI. Data URIs are decoded
  now (the backend stores them as hosted inputs), URLs are fetched by the job.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .catalog import defaults, input_schema
from .inputs import InputImage, parse_image_urls

_TYPES: dict[str, Any] = {"string": str, "array": list, "object": dict, "boolean": bool}
INT32 = (-(2**31), 2**31 - 1)

Problem = tuple[str | None, str]  # (field, message); None is the body as a whole


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    return isinstance(value, _TYPES[type_name])


def _is_image_uri(value: str) -> bool:
    if value[:5].lower() == "data:":
        return True
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _check(name: str, value: Any, spec: dict[str, Any], problems: list[Problem]) -> None:
    if "type" in spec and not _is_type(value, spec["type"]):
        problems.append((name, f"Input should be a valid {spec['type']}"))
        return
    if "enum" in spec and value not in spec["enum"]:
        problems.append((name, "Input should be " + ", ".join(repr(choice) for choice in spec["enum"])))
    if "minimum" in spec and value < spec["minimum"]:
        problems.append((name, f"Input should be greater than or equal to {spec['minimum']}"))
    if "maximum" in spec and value > spec["maximum"]:
        problems.append((name, f"Input should be less than or equal to {spec['maximum']}"))
    if isinstance(value, list):
        if len(value) < spec.get("minItems", 0):
            problems.append((name, f"List should have at least {spec['minItems']} item(s), not {len(value)}"))
        if len(value) > spec.get("maxItems", len(value)):
            problems.append((name, f"List should have at most {spec['maxItems']} items, not {len(value)}"))
        for index, item in enumerate(value):
            _check(f"{name}[{index}]", item, spec.get("items", {}), problems)
    if spec.get("format") == "image_uri" and not _is_image_uri(value):
        problems.append((name, "Input should be an http(s) URL or a data:image URI"))


def validate(
    model_id: str, body: Any, rules: frozenset[str] | tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[InputImage], list[Problem]]:
    """(inputs with defaults filled in, decoded input images, problems) of one submit.

    ``problems`` is empty when the server accepts the body; ``rules`` are the
    opt-in refusals named in ``options.INPUT_RULES``.
    """
    if not isinstance(body, dict):
        return {}, [], [(None, "Body must be a JSON object")]
    schema = input_schema(model_id)
    properties = schema["properties"]
    problems: list[Problem] = [(name, "Field required") for name in schema["required"] if name not in body]
    for name, value in body.items():
        if name in properties:
            _check(name, value, properties[name], problems)
        elif "unknown_fields" in rules:
            problems.append((name, "Extra inputs are not permitted"))
    prompt, seed = body.get("prompt"), body.get("seed")
    if "blank_prompt" in rules and isinstance(prompt, str) and not prompt.strip():
        problems.append(("prompt", "String should have at least 1 character that is not blank"))
    if "seed_int32" in rules and _is_type(seed, "integer") and not INT32[0] <= seed <= INT32[1]:
        problems.append(("seed", f"Input should be between {INT32[0]} and {INT32[1]}"))
    if problems:
        return {}, [], problems
    inputs = {**defaults(model_id), **{name: value for name, value in body.items() if name in properties}}
    images: list[InputImage] = []
    if "image_urls" in inputs:
        images, bad = parse_image_urls(list(inputs["image_urls"]))
        problems.extend(bad)
    return inputs, images, problems
