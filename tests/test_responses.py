"""client/transport/responses.py: RunComfy's answers read tolerantly, never optimistically."""

from __future__ import annotations

import json

import pytest

from helpers import EDIT, T2I
from packloader import pack_import
from simhelpers import other_token

client_pkg = pack_import("client")
client_api = pack_import("client.transport.api")
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


# Every documented code (runcomfy-api.md, "Errors") and the error it stands for. The docs pair
# no code with an HTTP status, so the code decides on whatever status it comes with.
KIND_OF_CODE = {
    400001: "NotFoundError", 400002: "InsufficientBalanceError", 400004: "AuthenticationError",
    403001: "NotFoundError", 404001: "NotFoundError", 422001: "RequestValidationError", 500001: "ServerError",
}
STATUSES = (200, 400, 401, 402, 403, 404, 413, 422, 429, 500, 503)


@pytest.mark.parametrize("code", sorted(KIND_OF_CODE))
@pytest.mark.parametrize("status", STATUSES)
def test_the_error_code_decides_before_the_http_status(code, status):
    for sent in (code, str(code)):  # a number or a string on the wire
        error = responses.error_from_response(status, {"error_code": sent, "error_message": "said"}, request_id="r-1")
        assert type(error).__name__ == KIND_OF_CODE[code], (code, status)
        assert error.error_code == sent and error.status_code == status
        assert f"HTTP {status}" in str(error) and "said" in str(error) and "r-1" in str(error)


@pytest.mark.parametrize(
    "status, kind",
    [
        (401, "AuthenticationError"), (403, "AuthenticationError"), (402, "InsufficientBalanceError"),
        (404, "NotFoundError"), (429, "RateLimitedError"), (413, "RequestValidationError"),
        (400, "RequestValidationError"), (422, "RequestValidationError"), (500, "ServerError"),
        (502, "ServerError"), (418, "RunComfyError"), (200, "RunComfyError"),
    ],
)
def test_without_a_known_code_the_http_status_decides(status, kind):
    for body in (None, {}, {"error_code": 999999, "error_message": "new"}, {"error_code": "429001"}):
        assert type(responses.error_from_response(status, body)).__name__ == kind, (status, body)


def test_the_code_names_what_is_unknown():
    model = responses.error_from_response(404, {"error_code": 400001, "error_message": "Unknown model id"})
    request = responses.error_from_response(400, {"error_code": 404001})
    other = responses.error_from_response(404, {"error_code": 403001})
    assert "this model" in str(model) and "check the model id" in str(model)
    assert "this request" in str(request) and "another RunComfy account" in str(other)


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
        ({"status": "cancelled", "outcome": "cancelled"}, True),  # what RunComfy's own clients take as success
        ({"status": "canceled", "outcome": "canceled"}, True),
        ({"outcome": "cancelled"}, True),
        ({"outcome": "Canceled"}, True),
        ({"status": "cancelled", "outcome": "cancellation_requested"}, True),  # seen once, unconfirmed
        ({"outcome": "cancellation_requested"}, True),
        ({"status": "cancelled"}, True),
        ({"status": "canceled"}, True),
        ({"status": "in_progress", "outcome": "not_cancellable"}, False),
        ({"outcome": "not_cancellable"}, False),
        ({"status": "completed"}, False),
        ({"status": "cancelled", "outcome": "not_cancellable"}, False),  # a refusal wins over a stale status
        ({}, False),
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


# ---------------------------------------------------------------- over HTTP, every pairing (issue 14)
# The simulator answers each code on the status a test pairs it with; the client over real HTTP
# must come to the same typed error whichever it is, and a refusal never leaves a job behind.

def sim_client(simulator, token=None):
    token = token or simulator.token
    return client_api.RunComfyClient(client_pkg.Settings(base_url=simulator.url, token=token, token_source="test"))


def body_of(inputs):
    return json.dumps(inputs).encode()


async def bad_token(simulator):
    async with sim_client(simulator, token=other_token(simulator.token)) as client:
        await client.status("0f0e0d0c-0000-4000-8000-000000000001")


async def no_balance(simulator):
    simulator.set_balance(0.0)
    async with sim_client(simulator) as client:
        await client.submit(T2I, body_of({"prompt": "p"}))


async def unknown_request(simulator):
    async with sim_client(simulator) as client:
        await client.result("0f0e0d0c-0000-4000-8000-000000000002")


async def unknown_model_submit(simulator):
    async with sim_client(simulator) as client:
        await client.submit("google/nano-banana-9", body_of({"prompt": "p"}))


async def unknown_model_info(simulator):
    async with sim_client(simulator) as client:
        await client.model_info("google/nano-banana-9")


async def another_accounts_request(simulator):
    other = simulator.add_account(balance=5.0)
    async with sim_client(simulator, other) as theirs:
        request_id = await theirs.submit(T2I, body_of({"prompt": "theirs"}))
    async with sim_client(simulator) as mine:
        await mine.cancel(request_id)


async def refused_inputs(simulator):
    async with sim_client(simulator) as client:  # the raw client: the pack's own checks are not in the way
        await client.submit(T2I, body_of({"prompt": "p", "num_images": 9}))


CASES = {
    400004: (bad_token, "AuthenticationError", (401, 400, 403, 200)),
    400002: (no_balance, "InsufficientBalanceError", (402, 400, 500, 200)),
    404001: (unknown_request, "NotFoundError", (404, 400, 200)),
    400001: (unknown_model_submit, "NotFoundError", (400, 404, 422)),
    403001: (another_accounts_request, "NotFoundError", (403, 404, 401)),
    422001: (refused_inputs, "RequestValidationError", (422, 400, 500)),
}


@pytest.mark.anyio
@pytest.mark.parametrize("code, status", [(code, status) for code, (_, _, statuses) in CASES.items()
                                          for status in statuses])
async def test_every_code_on_every_status_over_http(simulator, code, status):
    make, kind, _ = CASES[code]
    simulator.configure(error_statuses={str(code): status})
    jobs_before = len(simulator.jobs)
    with pytest.raises(errors.RunComfyError) as caught:
        await make(simulator)
    assert type(caught.value).__name__ == kind and caught.value.status_code == status
    assert str(caught.value.error_code) == str(code)
    answered = [r for r in simulator.requests() if r.status == status]
    assert answered, "the simulator answered with the configured status"
    if code != 403001:
        assert len(simulator.jobs) == jobs_before  # refused: no job, nothing billed


@pytest.mark.anyio
async def test_the_catalog_read_of_an_unknown_model_on_either_status(simulator):
    for status in (404, 400):
        simulator.configure(error_statuses={"400001": status})
        with pytest.raises(errors.NotFoundError, match="this model") as caught:
            await unknown_model_info(simulator)
        assert caught.value.status_code == status


@pytest.mark.anyio
async def test_http_200_with_a_top_level_error_code_is_an_error(simulator):
    simulator.add_fault("status", "ok_with_error_code", error_code=400004, error_message="token revoked")
    simulator.add_fault("model", "ok_with_error_code", error_code=400002)
    async with sim_client(simulator) as client:
        with pytest.raises(errors.AuthenticationError, match="HTTP 200, error 400004: token revoked"):
            await client.status("0f0e0d0c-0000-4000-8000-000000000003")
        with pytest.raises(errors.InsufficientBalanceError):
            await client.model_info(T2I)


@pytest.mark.anyio
async def test_a_server_error_on_submit_stays_an_unknown_outcome_whatever_its_status(simulator):
    """500001 (or a 5xx without a known code) cannot say whether the job exists: never re-sent."""
    for fault in ({"kind": "ok_with_error_code"}, {"kind": "http_error", "status": 400, "error_code": 500001},
                  {"kind": "http_error", "status": 503, "error_code": 429001}, {"kind": "http_error", "status": 502}):
        simulator.add_fault("submit", after_processing=True, **fault)
        async with sim_client(simulator) as client:
            with pytest.raises(errors.SubmitOutcomeUnknownError, match="NOT re-sent"):
                await client.submit(T2I, body_of({"prompt": "p", "resolution": "0.5K"}))
    assert len(simulator.requests(route="submit")) == 4 == len(simulator.jobs)  # each was accepted, none repeated


@pytest.mark.anyio
async def test_a_catalog_entry_for_another_model_is_refused(simulator):
    simulator.add_fault("model", "json_body", body=json.dumps({"model_id": EDIT, "base_price_usd": 0.5}))
    async with sim_client(simulator) as client:
        with pytest.raises(errors.RunComfyError, match="answered for 'google/nano-banana-2/edit' when asked for"):
            await client.model_info(T2I)
        assert (await client.model_info(T2I))["model_id"] == T2I
