"""client/transport/responses.py: RunComfy's answers read tolerantly, never optimistically."""

from __future__ import annotations

import pytest

from packloader import pack_import

errors = pack_import("client.errors")
responses = pack_import("client.transport.responses")


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


def run_seconds(created_at, finished_at):
    body = {"status": "completed", "created_at": created_at, "finished_at": finished_at}
    return responses.parse_result(body, "r-1").run_seconds


def test_the_server_timestamps_give_the_duration():
    assert run_seconds("2025-01-01T00:00:00.250Z", "2025-01-01T00:00:06.750Z") == 6.5
    assert run_seconds(None, "2025-01-01T00:00:06Z") is None
    assert run_seconds("yesterday", "2025-01-01T00:00:06Z") is None
