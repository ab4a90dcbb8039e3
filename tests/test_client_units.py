"""The client's pure parts: schema checks, configuration, error mapping, pacing, URL rules.

The bundled schemas are compared with the model pages in ``test_contract.py``.
"""

from __future__ import annotations

import json
import re

import pytest

from packloader import PACK_ROOT, pack_import

schemas = pack_import("client.schemas")
config = pack_import("client.config")
errors = pack_import("client.errors")
responses = pack_import("client.responses")
pacing = pack_import("client.pacing")
formats = pack_import("client.formats")
download = pack_import("client.download")


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


# -- configuration -----------------------------------------------------------


def test_token_precedence_env_then_legacy_env_then_file(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"api_token": "from-file-token"}))
    base = {"RUNCOMFY_CONFIG": str(cfg)}
    assert config.load_settings(base).token == "from-file-token"
    assert config.load_settings({**base, "RUNCOMFY_TOKEN": "legacy-token"}).token == "legacy-token"
    chosen = config.load_settings({**base, "RUNCOMFY_TOKEN": "legacy-token", "RUNCOMFY_API_TOKEN": "main-token"})
    assert (chosen.token, chosen.token_source) == ("main-token", "RUNCOMFY_API_TOKEN")
    assert "main-token" not in repr(chosen)


def test_missing_token_message_says_how_to_set_one(tmp_path):
    settings = config.load_settings({"RUNCOMFY_CONFIG": str(tmp_path / "none.json")})
    with pytest.raises(errors.MissingTokenError) as caught:
        settings.require_token()
    assert "RUNCOMFY_API_TOKEN" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://model-api.runcomfy.net", True),
        ("http://127.0.0.1:8189", True),
        ("http://localhost:8189/", True),
        ("http://[::1]:8189", True),
        ("http://model-api.runcomfy.net", False),
        ("http://192.168.1.5:8189", False),
        ("ftp://model-api.runcomfy.net", False),
    ],
)
def test_plain_http_only_on_loopback(url, ok, tmp_path):
    env = {"RUNCOMFY_API_BASE_URL": url, "RUNCOMFY_CONFIG": str(tmp_path / "none.json")}
    if ok:
        assert config.load_settings(env).base_url == url.rstrip("/")
    else:
        with pytest.raises(errors.ConfigurationError):
            config.load_settings(env)


def test_config_file_inside_the_pack_is_refused():
    inside = PACK_ROOT / "client" / "schemas" / "nano-banana-2-edit.json"
    with pytest.raises(errors.ConfigurationError, match="inside the node pack"):
        config.load_settings({"RUNCOMFY_CONFIG": str(inside)})


def test_account_fingerprint_changes_with_the_token_and_hides_it(tmp_path):
    first = config.Settings(token="token-one-abcdef")
    second = config.Settings(token="token-two-abcdef")
    assert first.account_fingerprint() != second.account_fingerprint()
    assert "token-one" not in first.account_fingerprint()
    assert first.account_fingerprint() == config.Settings(token="token-one-abcdef").account_fingerprint()


def test_registered_secret_is_scrubbed_from_error_messages():
    errors.register_secret("sekrit-value-123456")
    assert "sekrit" not in str(errors.RunComfyError("bad token sekrit-value-123456 given"))


# -- error mapping -----------------------------------------------------------


@pytest.mark.parametrize(
    "status, body, kind",
    [
        (401, {"error_code": 400004, "error_message": "Invalid token"}, "AuthenticationError"),
        (400, {"error_code": 400004, "error_message": "Invalid token"}, "AuthenticationError"),
        (403, {}, "AuthenticationError"),
        (403, {"error_code": 403001}, "NotFoundError"),
        (402, {}, "InsufficientBalanceError"),
        (400, {"error_code": 400002, "error_message": "no balance"}, "InsufficientBalanceError"),
        (400, {"error_code": 400001, "error_message": "bad model"}, "NotFoundError"),
        (404, {"error_code": 404001}, "NotFoundError"),
        (429, {}, "RateLimitedError"),
        (422, {"error_code": 422001, "detail": [{"loc": ["body", "image_urls", 2], "msg": "bad"}]}, "RequestValidationError"),
        (500, {"error_code": 500001}, "ServerError"),
        (200, {"error_code": 500001, "error_message": "oops"}, "ServerError"),
    ],
)
def test_error_bodies_map_to_one_typed_error(status, body, kind):
    error = responses.error_from_response(status, body, request_id="req-1")
    assert type(error).__name__ == kind
    assert "\n" not in str(error) and "req-1" in str(error)


def test_validation_detail_names_the_field():
    error = responses.error_from_response(
        422, {"error_code": 422001, "detail": [{"loc": ["body", "image_urls", 2], "msg": "cannot decode"}]}
    )
    assert error.field == "image_urls[2]"
    assert "image_urls[2]: cannot decode" in str(error)


@pytest.mark.parametrize(
    "status, phase",
    [
        ("in_queue", "QUEUED"), ("pending", "QUEUED"), ("waiting", "QUEUED"), ("starting", "RUNNING"),
        ("in_progress", "RUNNING"), ("processing", "RUNNING"), ("completed", "COMPLETED"),
        ("succeeded", "COMPLETED"), ("failed", "FAILED"), ("cancelled", "CANCELLED"), ("canceled", "CANCELLED"),
        ("done-ish", "UNKNOWN"), ("", "UNKNOWN"), (None, "UNKNOWN"),
    ],
)
def test_status_spellings(status, phase):
    assert responses.phase_of(status).name == phase
    assert not responses.phase_of("mystery").is_terminal


def test_output_urls_from_every_documented_shape():
    assert responses.image_urls_of({"images": ["a", "b"], "image": "a"}) == ("a", "b")
    assert responses.image_urls_of({"image": "c"}) == ("c",)
    assert responses.image_urls_of({"video": "v"}) == ()
    assert responses.image_urls_of(None) == ()


@pytest.mark.parametrize(
    "body, cancelled",
    [
        ({"status": "cancelled", "outcome": "cancellation_requested"}, True),
        ({"outcome": "cancellation_requested"}, True),
        ({"status": "cancelled"}, True),
        ({"status": "in_progress", "outcome": "not_cancellable"}, False),
        ({"outcome": "not_cancellable"}, False),
        ({"status": "completed"}, False),
    ],
)
def test_cancel_answers(body, cancelled):
    assert responses.parse_cancel(body).cancelled is cancelled


# -- pacing ------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _simulate_polls(pacer: pacing.PollPacer, clock: FakeClock, phase, seconds: float) -> list[float]:
    times = []
    end = clock.now + seconds
    while clock.now < end:
        pacer.spend()
        times.append(clock.now)
        clock.now += pacer.next_delay(phase)
    return times


@pytest.mark.parametrize("expected_run", [None, 3.0])
def test_pacer_never_exceeds_about_two_polls_a_second(expected_run):
    clock = FakeClock()
    pacer = pacing.PollPacer(expected_run=expected_run, clock=clock)
    pacer.running_since = clock.now
    times = _simulate_polls(pacer, clock, responses.Phase.RUNNING, 30.0)
    assert len(times) / 30.0 <= 2.0 + 5 / 30  # the rate plus one initial burst
    for start in times:  # no one-second window holds more than the burst allows
        assert sum(start <= t < start + 1.0 for t in times) <= 2 + 5


def test_pacer_polls_densely_when_the_job_should_end():
    clock = FakeClock()
    pacer = pacing.PollPacer(expected_run=5.0, clock=clock)
    pacer.running_since = clock.now
    times = _simulate_polls(pacer, clock, responses.Phase.RUNNING, 6.0)
    early = [t for t in times if t < 103.5]
    near_end = [t for t in times if 104.6 <= t <= 105.4]
    assert len(early) <= 5
    assert len(near_end) >= 4


def test_pacer_backs_off_while_queued():
    clock = FakeClock()
    pacer = pacing.PollPacer(clock=clock)
    delays = [pacer.next_delay(responses.Phase.QUEUED) for _ in range(8)]
    assert delays[0] < 0.5 and delays[-1] == pytest.approx(1.0)
    assert delays == sorted(delays)


# -- download rules ----------------------------------------------------------


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://cdn.runcomfy.net/a.png", True),
        ("https://runcomfy.net/a.png", True),
        ("https://model-api.example/a.png", True),
        ("https://files.partner.example/a.png", True),
        ("https://evil-runcomfy.net/a.png", False),
        ("https://runcomfy.net.evil.example/a.png", False),
        ("http://cdn.runcomfy.net/a.png", False),
        ("file:///etc/passwd", False),
        ("https://127.0.0.1/a.png", False),
    ],
)
def test_download_hosts(url, ok):
    policy = download.DownloadPolicy(api_host="model-api.example", extra_hosts=("*.partner.example",))
    if ok:
        assert policy.check_url(url) == url
    else:
        with pytest.raises(errors.DownloadError):
            policy.check_url(url)


def test_sniffing_recognises_images_only():
    assert formats.sniff(b"\x89PNG\r\n\x1a\n....").mime == "image/png"
    assert formats.sniff(b"\xff\xd8\xff\xe0").mime == "image/jpeg"
    assert formats.sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ").mime == "image/webp"
    assert formats.sniff(b"<!doctype html><html>") is None
    assert re.search("HTML", download._describe_non_image(b"<!DOCTYPE html>"))
