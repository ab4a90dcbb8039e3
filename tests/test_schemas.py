"""client/model/schemas.py and client/model/input_rules.py: what is refused before anything is sent.

The bundled schemas are compared with the model pages, and the client's rules
with the simulator's, in ``test_contract.py``.
"""

from __future__ import annotations

import pytest

from packloader import pack_import

schemas = pack_import("client.model.schemas")
errors = pack_import("client.errors")


def test_defaults_are_valid_and_independent_copies():
    schema = schemas.get_schema(schemas.EDIT)
    body = schema.defaults()
    assert schema.issues(body) == []
    body["image_urls"].append("x")
    assert len(schema.defaults()["image_urls"]) == 1


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"num_images": 5}, "num_images", "at most 4"),
        ({"num_images": 0}, "num_images", "at least 1"),
        ({"num_images": 2.0}, "num_images", "must be integer"),
        ({"seed": True}, "seed", "must be integer"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio", "not one of"),
        ({"resolution": "8K"}, "resolution", "not one of"),
        ({"output_format": "gif"}, "output_format", "not one of"),
        ({"safety_tolerance": 7}, "safety_tolerance", "not one of"),
        ({"limit_generations": "yes"}, "limit_generations", "must be boolean"),
        ({"prompt": "   "}, "prompt", "empty"),
        ({"stength": 1}, "stength", "not an input"),
        ({"image_urls": []}, "image_urls", "at least 1"),
        ({"image_urls": ["https://a.example/x.png"] * 21}, "image_urls", "at most 20"),
        ({"image_urls": ["C:\\photos\\cat.png"]}, "image_urls[0]", "neither an http(s) URL"),
    ],
)
def test_each_schema_rule_names_the_field(change, field, words):
    schema = schemas.get_schema(schemas.EDIT)
    body = {**schema.defaults(), **change}
    with pytest.raises(errors.RequestValidationError) as caught:
        schema.check(body)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_required_prompt_for_text_to_image():
    with pytest.raises(errors.RequestValidationError, match="prompt: is required"):
        schemas.get_schema(schemas.TEXT_TO_IMAGE).check({"num_images": 1})


def test_text_to_image_has_no_image_urls():
    issues = schemas.get_schema(schemas.TEXT_TO_IMAGE).issues({"prompt": "x", "image_urls": ["https://a/b"]})
    assert [issue.field for issue in issues] == ["image_urls"]
