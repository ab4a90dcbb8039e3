"""The contract: the model pages, the client's validator and the simulator's.

The client checks every body before it pays; the simulator checks it the way
RunComfy's server is taken to (``simulator/validation.py``, written from the
docs, not from the client). One table of request bodies runs through both:

- whatever the server refuses, the client must refuse too (a refusal costs
  nothing before the submit, a confusing 422 after it); known client gaps are
  listed in ``CLIENT_GAPS`` as strict expected failures, so fixing one shows;
- the client may refuse more, on purpose, before paying, but only where
  ``CLIENT_ONLY`` says so and why; any other disagreement fails.

The client's validator is getting stricter in parallel work (prompt
normalisation, seed range, URL checks): extend ``CASES`` freely, and write each
new deliberate difference into ``CLIENT_ONLY``.

A second table, ``WIRE``, runs the other way: the answers the simulator sends
(cancel, error codes on their paired statuses, catalog entries, result URLs),
each read by the client's own parser.

The schemas behind both are compared field by field with the model pages,
kept as a fixture (``fixtures/model_pages``) so this runs where
``../shared`` is absent.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from packloader import PACK_ROOT, pack_import

schemas = pack_import("client.model.schemas")
catalog = pack_import("simulator.catalog")
validation = pack_import("simulator.validation")

T2I, EDIT = catalog.TEXT_TO_IMAGE, catalog.EDIT
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "model_pages"
SEEDS = PACK_ROOT.parent / "shared" / "seeds"
PAGES = {T2I: "nano-banana-2-text-to-image", EDIT: "nano-banana-2-edit"}


def page_schema(model_id: str) -> dict[str, Any]:
    """The input schema of a model page, from the fixture."""
    return json.loads((FIXTURES / f"{PAGES[model_id]}.json").read_text(encoding="utf-8"))["input_schema"]


def seed_schema(filename: str) -> dict[str, Any]:
    """The input schema JSON embedded in a model page as published."""
    text = (SEEDS / filename).read_text(encoding="utf-8")
    start = text.rindex("{", 0, text.index('"required"'))
    depth = 0
    for offset, char in enumerate(text[start:]):
        depth += (char == "{") - (char == "}")
        if depth == 0:
            return json.loads(text[start : start + offset + 1])
    raise AssertionError("unbalanced schema")


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds not beside the repo")
@pytest.mark.parametrize("model_id", [T2I, EDIT])
def test_fixture_is_the_model_page_verbatim(model_id: str) -> None:
    assert page_schema(model_id) == seed_schema(f"{PAGES[model_id]}-api.txt")


@pytest.mark.parametrize("model_id", [T2I, EDIT])
def test_bundled_schema_matches_the_model_page(model_id: str) -> None:
    published = page_schema(model_id)
    ours = schemas.get_schema(model_id).input_schema
    assert ours["required"] == published["required"]
    assert list(ours["properties"]) == list(published["properties"])
    for name, spec in published["properties"].items():
        for key, value in spec.items():
            if key not in ("title", "description"):
                assert ours["properties"][name][key] == value, (name, key)


@pytest.mark.parametrize("model_id", [T2I, EDIT])
def test_simulator_catalog_matches_the_model_page(model_id: str) -> None:
    published = page_schema(model_id)
    ours = catalog.input_schema(model_id)
    assert ours["required"] == published["required"] and ours["type"] == published["type"] == "object"
    assert list(ours["properties"]) == list(published["properties"])
    for name, spec in published["properties"].items():
        assert ours["properties"][name] == {k: v for k, v in spec.items() if k not in ("title", "description")}, name
    assert catalog.defaults(model_id) == {name: spec["default"] for name, spec in published["properties"].items()}


def data_uri(fmt: str = "PNG", media: str | None = None) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, fmt)
    return f"data:image/{media or fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass(frozen=True)
class Case:
    """One request body; ``refused_on`` is the field the server names (``BODY``:
    the body as a whole), None if it accepts the body."""

    name: str
    model: str
    body: Any
    refused_on: str | None = None

    def __str__(self) -> str:
        return self.name


def t2i(name: str, refused_on: str | None = None, **fields: Any) -> Case:
    return Case(name, T2I, {"prompt": "a lighthouse at dawn", **fields}, refused_on)


def edit(name: str, urls: Any, refused_on: str | None = None, **fields: Any) -> Case:
    return Case(name, EDIT, {"prompt": "make it night", "image_urls": urls, **fields}, refused_on)


URL = "https://example.com/cat.png"
BODY = "(body)"
CASES = [
    # accepted by the server, and by the client
    t2i("t2i minimal"),
    t2i("t2i every field", num_images=4, seed=2**31 - 1, aspect_ratio="21:9", resolution="4K",
        output_format="webp", safety_tolerance=6, limit_generations=False, enable_web_search=True),
    edit("edit https URL", [URL]),
    edit("edit plain http URL", ["http://example.com/cat.png"]),
    edit("edit PNG data URI", [data_uri()]),
    edit("edit JPEG and WebP data URIs", [data_uri("JPEG"), data_uri("WEBP")]),
    edit("edit data URI in upper case (RFC 2397)", [data_uri().replace("data:image/png;base64", "DATA:IMAGE/PNG;BASE64")]),
    edit("edit 20 images", [URL] * 20),
    edit("edit HEIC data URI (kept opaque)", ["data:image/heic;base64," + base64.b64encode(b"\0\0\0\x18ftypheic").decode()]),
    # accepted by the server, refused by the client on purpose (see CLIENT_ONLY)
    t2i("empty prompt", prompt=""),
    t2i("blank prompt", prompt="  \t "),
    t2i("zero-width prompt", prompt="\u200b\u200b"),
    t2i("NUL prompt", prompt="\x00"),
    t2i("1 MB prompt", prompt="x" * 1_000_000),
    t2i("seed -1", seed=-1),
    t2i("seed 2**31", seed=2**31),
    t2i("seed 2**64 + 5", seed=2**64 + 5),
    t2i("integral float num_images", num_images=2.0),
    t2i("integral float safety_tolerance", safety_tolerance=4.0),
    t2i("unknown field", negative_prompt="blurry"),
    t2i("image_urls on text-to-image", image_urls=[URL]),
    edit("HTTPS scheme in upper case", ["HTTPS://EXAMPLE.COM/cat.png"]),
    edit("loopback URL", ["http://localhost:8188/view?filename=x.png&type=output"]),
    edit("private address URL", ["https://192.168.1.10/cat.png"]),
    edit("link-local address URL", ["http://169.254.169.254/latest/meta-data"]),
    edit("host without a domain", ["https://x"]),
    edit("space in the host", ["https://my host/cat.png"]),
    edit("GIF data URI", [data_uri("GIF")]),
    # refused by the server
    Case("t2i empty body", T2I, {}, "prompt"),
    Case("body is a list", T2I, [{"prompt": "p"}], BODY),
    t2i("prompt null", "prompt", prompt=None),
    t2i("prompt a number", "prompt", prompt=5),
    t2i("num_images 0", "num_images", num_images=0),
    t2i("num_images 5", "num_images", num_images=5),
    t2i("num_images 2.5", "num_images", num_images=2.5),
    t2i("num_images a string", "num_images", num_images="2"),
    t2i("num_images true", "num_images", num_images=True),
    t2i("seed true", "seed", seed=True),
    t2i("seed a string", "seed", seed="7"),
    t2i("seed 1.5", "seed", seed=1.5),
    t2i("seed null", "seed", seed=None),
    t2i("aspect_ratio 7:3", "aspect_ratio", aspect_ratio="7:3"),
    t2i("resolution 8K", "resolution", resolution="8K"),
    t2i("output_format gif", "output_format", output_format="gif"),
    t2i("output_format PNG in upper case", "output_format", output_format="PNG"),
    t2i("safety_tolerance 7", "safety_tolerance", safety_tolerance=7),
    t2i("safety_tolerance a string", "safety_tolerance", safety_tolerance="4"),
    t2i("limit_generations yes", "limit_generations", limit_generations="yes"),
    t2i("limit_generations 1", "limit_generations", limit_generations=1),
    t2i("enable_web_search null", "enable_web_search", enable_web_search=None),
    Case("edit without image_urls", EDIT, {"prompt": "p"}, "image_urls"),
    edit("edit 0 images", [], "image_urls"),
    edit("edit 21 images", [URL] * 21, "image_urls"),
    edit("image_urls a string", URL, "image_urls"),
    edit("image_urls item a number", [5], "image_urls[0]"),
    edit("ftp URL", ["ftp://example.com/cat.png"], "image_urls[0]"),
    edit("Windows path", [URL, "C:\\photos\\cat.png"], "image_urls[1]"),
    edit("bare file name", ["cat.png"], "image_urls[0]"),
    edit("data URI not an image type", ["data:text/plain;base64,aGVsbG8="], "image_urls[0]"),
    edit("data URI not base64", ["data:image/png,rawbytes"], "image_urls[0]"),
    edit("data URI with bad base64", ["data:image/png;base64,@@not-base64@@"], "image_urls[0]"),
    edit("data URI that is no image", [data_uri(), "data:image/png;base64," + base64.b64encode(b"hello").decode()],
         "image_urls[1]"),
    edit("data URI with nothing in it", ["data:image/png;base64,"], "image_urls[0]"),
]

# Accepted by the server, refused by the client on purpose, before paying.
# The client may refuse these or not (its stricter rules land in parallel);
# any refusal not listed here fails the test until it is written down.
_UNUSABLE_PROMPT = "the schema has no minLength: the server bills and runs it, the user gets nothing they meant"
_SEED_RANGE = "no bound on the page; README promises 0..2^31-1 and Gemini's seed is 32-bit"
_UNFETCHABLE = "the server accepts any http(s) URL and only fails the (billed) job when it cannot fetch it"
CLIENT_ONLY: dict[str, str] = {
    "empty prompt": _UNUSABLE_PROMPT,
    "blank prompt": _UNUSABLE_PROMPT,
    "zero-width prompt": _UNUSABLE_PROMPT,
    "NUL prompt": _UNUSABLE_PROMPT,
    "1 MB prompt": "no length limit on the page; the client picks a documented one rather than pay for a truncation",
    "seed -1": _SEED_RANGE,
    "seed 2**31": _SEED_RANGE,
    "seed 2**64 + 5": _SEED_RANGE,
    "integral float num_images": "JSON Schema counts 2.0 as an integer; the client sends ints only and says so",
    "integral float safety_tolerance": "JSON Schema counts 4.0 as an integer; the client sends ints only and says so",
    "unknown field": "the page does not forbid extra fields, so the server drops a typo silently and bills the job",
    "image_urls on text-to-image": "dropped silently by the server: the user's reference image would be ignored",
    "loopback URL": _UNFETCHABLE,
    "private address URL": _UNFETCHABLE,
    "link-local address URL": _UNFETCHABLE,
    "host without a domain": _UNFETCHABLE,
    "space in the host": _UNFETCHABLE,
    "GIF data URI": "Gemini takes PNG, JPEG, WebP, HEIC and HEIF only; the server stores any image it can decode",
}
# Refused by the server, accepted by the client: client bugs, kept visible as
# strict expected failures (fixing one makes its test fail: move it out then).
CLIENT_GAPS: dict[str, str] = {}


def server_problems(case: Case) -> list[tuple[str | None, str]]:
    return validation.validate(case.model, case.body)[2]


def client_issues(case: Case) -> list[Any]:
    return schemas.get_schema(case.model).issues(case.body)


def test_the_table_is_consistent() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    accepted = {case.name for case in CASES if case.refused_on is None}
    assert set(CLIENT_ONLY) <= accepted
    assert set(CLIENT_GAPS) <= set(names) - accepted


@pytest.mark.parametrize("case", CASES, ids=str)
def test_simulator_verdict(case: Case) -> None:
    problems = server_problems(case)
    if case.refused_on is None:
        assert problems == []
    else:
        assert problems and problems[0][0] == (None if case.refused_on == BODY else case.refused_on), problems
        assert all(message for _, message in problems)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=CLIENT_GAPS[case.name]))
        if case.name in CLIENT_GAPS else case
        for case in CASES if case.refused_on is not None
    ],
    ids=str,
)
def test_client_refuses_whatever_the_server_refuses(case: Case) -> None:
    assert server_problems(case)
    assert client_issues(case), f"the server refuses {case.name!r} but the client would send it"


@pytest.mark.parametrize("case", [c for c in CASES if c.refused_on is None], ids=str)
def test_client_refuses_beyond_the_server_only_where_written_down(case: Case) -> None:
    assert not server_problems(case)
    issues = client_issues(case)
    if issues and case.name not in CLIENT_ONLY:
        pytest.fail(f"the client refuses {case.name!r} ({issues[0]}) though the server accepts it: "
                    "write the reason into CLIENT_ONLY, or stop refusing it")


@pytest.mark.parametrize(
    ("rule", "case_name", "field"),
    [
        ("unknown_fields", "unknown field", "negative_prompt"),
        ("blank_prompt", "blank prompt", "prompt"),
        ("blank_prompt", "empty prompt", "prompt"),
        ("seed_int32", "seed 2**31", "seed"),
    ],
)
def test_opt_in_server_rules_refuse_what_they_name(rule: str, case_name: str, field: str) -> None:
    [case] = [c for c in CASES if c.name == case_name]
    assert not server_problems(case)
    problems = validation.validate(case.model, case.body, (rule,))[2]
    assert [name for name, _ in problems] == [field]
    assert not validation.validate(T2I, {"prompt": "p", "seed": -(2**31)}, (rule,))[2]


# ---------------------------------------------------------------- wire shapes (issue 14)
# The answers the simulator sends, as RunComfy's sources give them, each read by the
# client's own parser: one row per shape, sent for real over loopback HTTP.

responses = pack_import("client.transport.responses")
download = pack_import("client.transport.download")


@dataclass(frozen=True)
class Wire:
    """One simulator setting, the call made with it, and what the client must make of the answer."""

    name: str
    options: dict[str, Any]
    call: str  # "cancel_queued", "cancel_running", "bad_token", "unknown_request", "no_balance"
    reading: Any

    def __str__(self) -> str:
        return self.name


WIRE = [
    Wire("cancel answered as RunComfy's clients expect", {}, "cancel_queued", True),
    Wire("cancel outcome only", {"cancel_body": "outcome"}, "cancel_queued", True),
    Wire("cancel status only", {"cancel_body": "status"}, "cancel_queued", True),
    Wire("cancel 'canceled'", {"cancel_outcome": "canceled", "status_words": {"cancelled": "canceled"}},
         "cancel_queued", True),
    Wire("cancel 'cancellation_requested'", {"cancel_outcome": "cancellation_requested"}, "cancel_queued", True),
    Wire("cancel of a running job", {}, "cancel_running", False),
    Wire("cancel of a running job, outcome only", {"cancel_body": "outcome"}, "cancel_running", False),
    Wire("cancel of a running job, status only", {"cancel_body": "status"}, "cancel_running", False),
    Wire("400004 on 401", {}, "bad_token", "AuthenticationError"),
    Wire("400004 on 400", {"error_statuses": {"400004": 400}}, "bad_token", "AuthenticationError"),
    Wire("400004 on 200", {"error_statuses": {"400004": 200}}, "bad_token", "AuthenticationError"),
    Wire("404001 on 404", {}, "unknown_request", "NotFoundError"),
    Wire("404001 on 400", {"error_statuses": {"404001": 400}}, "unknown_request", "NotFoundError"),
    Wire("400002 on 402", {}, "no_balance", "InsufficientBalanceError"),
    Wire("400002 on 400", {"error_statuses": {"400002": 400}}, "no_balance", "InsufficientBalanceError"),
]


def _wire_answer(sim: Any, row: Wire) -> tuple[int, Any]:
    import httpx

    sim.configure(**row.options)
    auth = {"Authorization": f"Bearer {sim.token}"}
    with httpx.Client(base_url=sim.url, headers=auth) as http:
        if row.call.startswith("cancel"):
            if row.call == "cancel_queued":
                sim.script_next_jobs("queued_forever")
            else:
                sim.script_next_jobs("never_finishes", queue_seconds=0)
            request_id = http.post(f"/v1/models/{T2I}", json={"prompt": "p"}).json()["request_id"]
            answer = http.post(f"/v1/requests/{request_id}/cancel")
        elif row.call == "bad_token":
            answer = http.get(f"/v1/requests/{'0' * 8}-0000-4000-8000-{'0' * 12}/status",
                              headers={"Authorization": "Bearer not-" + sim.token})
        elif row.call == "unknown_request":
            answer = http.get(f"/v1/requests/{'0' * 8}-0000-4000-8000-{'0' * 12}/result")
        else:
            sim.set_balance(0.0)
            answer = http.post(f"/v1/models/{T2I}", json={"prompt": "p"})
    return answer.status_code, answer.json()


@pytest.mark.parametrize("row", WIRE, ids=str)
def test_the_client_reads_each_wire_shape_the_simulator_sends(simulator: Any, row: Wire) -> None:
    status, body = _wire_answer(simulator, row)
    if row.call.startswith("cancel"):
        assert status == 200 and set(body) <= {"request_id", "status", "outcome"} and "request_id" in body
        assert responses.parse_cancel(body).cancelled is row.reading, body
    else:
        assert set(body) >= {"error_code", "error_message"} and isinstance(body["error_code"], int), body
        assert type(responses.error_from_response(status, body)).__name__ == row.reading, (status, body)


def test_the_catalog_shapes_are_what_the_client_reads(simulator: Any) -> None:
    import httpx

    auth = {"Authorization": f"Bearer {simulator.token}"}
    with httpx.Client(base_url=simulator.url, headers=auth) as http:
        entry = http.get(f"/v1/models/{EDIT}", params={"include_schema": "true"}).json()
        listed = http.get("/v1/models", params={"category": "image-to-image", "limit": "5"}).json()
    assert {"model_id", "display_name", "categories", "base_price_usd", "price_unit", "pricing_note",
            "schema"} <= set(entry) and entry["model_id"] == EDIT
    assert entry["price_unit"] in ("output", "second") and isinstance(entry["categories"], list)
    assert "invented" in entry["pricing_note"]  # the simulator's prices say they are made up
    assert set(listed) == {"models", "total"} and listed["total"] == 1 and listed["models"][0]["model_id"] == EDIT


@pytest.mark.parametrize("output_host, fetched", [
    ("cdn.runcomfy.net", True), ("cdn.runcomfy.com", True), ("cdn.runcomfy.com.evil.example", False),
])
def test_result_urls_on_runcomfy_hosts_pass_the_clients_host_rule(simulator: Any, output_host: str,
                                                                   fetched: bool) -> None:
    import httpx

    simulator.script_next_jobs(output_host=output_host, queue_seconds=0, run_seconds=0)
    with httpx.Client(base_url=simulator.url, headers={"Authorization": f"Bearer {simulator.token}"}) as http:
        request_id = http.post(f"/v1/models/{T2I}", json={"prompt": "p", "resolution": "0.5K"}).json()["request_id"]
        simulator.wait_until(lambda: simulator.state(request_id) == "completed", timeout=15)
        urls = responses.parse_result(http.get(f"/v1/requests/{request_id}/result").json(), request_id).image_urls
    policy = download.DownloadPolicy(api_host="model-api.runcomfy.net")
    assert urls and all(url.startswith(f"https://{output_host}/") for url in urls)
    for url in urls:
        if fetched:
            assert policy.check_url(url) == url
        else:
            with pytest.raises(pack_import("client.errors").DownloadError):
                policy.check_url(url)
