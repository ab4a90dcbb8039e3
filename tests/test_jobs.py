"""client/job/jobs.py over real HTTP against the simulator: one paid job from the gate to files in hand.

Lifecycles, the money rules (never a second submit, nothing sent for bad
input, Stop cancels), and a paid job never abandoned in hard times (issue 8):
every case asserts on the simulator's request log.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import logging
import socket

import anyio
import httpx
import pytest
from PIL import Image, ImageFile

from helpers import EDIT, FAST_RETRY, T2I, Updates, decodable, jobs_for, open_bytes, settings_for
from packloader import pack_import

client_pkg = pack_import("client")
api = pack_import("client.transport.api")
errors = pack_import("client.errors")
retry = pack_import("client.transport.retry")
sim_images = pack_import("simulator.images")

pytestmark = pytest.mark.anyio
SMALL = {"prompt": "a lighthouse", "resolution": "0.5K"}


def png_data_uri(width: int, height: int, colour=(200, 40, 40)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def submits(simulator) -> int:
    return len(simulator.requests(route="submit"))


# ---------------------------------------------------------------- lifecycles


async def test_text_to_image_lifecycle(simulator, jobs):
    simulator.script_next_jobs(queue_seconds=60, run_seconds=60)  # each state lasts until the test moves on
    updates = Updates()

    def step(update):  # once a state was seen, the simulator's clock jumps past it: no race with the load
        updates(update)
        if update.stage in ("queued", "running"):
            simulator.advance(60)

    body = {"prompt": "a red fox", "num_images": 2, "aspect_ratio": "16:9", "output_format": "jpeg"}
    job = await jobs.run(T2I, body, on_update=step)
    assert len(job.files) == 2
    expected = sim_images.expected_size("16:9", "1K")
    for data in job.files:
        image = open_bytes(data)
        assert (image.format, image.size) == ("JPEG", expected)
    assert job.files[0] != job.files[1]
    assert job.cost is not None and job.cost > 0
    assert len(simulator.requests(route="submit")) == 1
    assert {"submitting", "submitted", "queued", "running", "downloading", "done"} <= set(updates.stages)
    queued = next(update for update in updates if update.stage == "queued")
    assert queued.queue_position == 1 and queued.request_id == job.request_id


async def test_edit_lifecycle_with_inline_and_hosted_images(simulator, jobs):
    first = await jobs.run(T2I, {"prompt": "a reference", "resolution": "0.5K"})
    hosted = first.result.image_urls[0]  # the simulator fetches URL inputs itself
    job = await jobs.run(EDIT, {"prompt": "make it night", "image_urls": [png_data_uri(640, 480), hosted], "seed": 7}
    )
    image = open_bytes(job.files[0])
    assert image.size == sim_images.expected_size("auto", "1K", (640, 480))
    assert len(simulator.requests(route="submit")) == 2


async def test_same_prompt_and_seed_give_the_same_image(jobs):
    body = {"prompt": "determinism", "seed": 42, "resolution": "0.5K"}
    first = await jobs.run(T2I, body)
    second = await jobs.run(T2I, body)
    assert first.files == second.files and first.request_id != second.request_id


async def test_model_info_is_a_free_read(simulator, jobs):
    info = await jobs.client.model_info(T2I, include_schema=True)
    assert info["base_price_usd"] > 0 and "properties" in info["schema"]
    assert simulator.requests(route="submit") == []


@pytest.mark.parametrize("style", ["image", "both"])
async def test_every_output_shape_yields_the_images(simulator, jobs, style):
    simulator.configure(output_style=style)
    job = await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert len(job.files) == 1


async def test_other_status_spellings_are_understood(simulator, jobs):
    simulator.configure(status_words={"in_queue": "pending", "in_progress": "processing", "completed": "succeeded"})
    job = await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert len(job.files) == 1


# ---------------------------------------------------------------- nothing is sent for bad input


@pytest.mark.parametrize(
    "model, body",
    [
        (T2I, {"prompt": ""}),
        (T2I, {"prompt": "x", "num_images": 5}),
        (T2I, {"prompt": "x", "resolution": "8K"}),
        (EDIT, {"prompt": "x"}),
        (EDIT, {"prompt": "x", "image_urls": ["https://a.example/i.png"] * 21}),
    ],
)
async def test_invalid_requests_never_reach_the_server(simulator, jobs, model, body):
    with pytest.raises(errors.RequestValidationError):
        await jobs.run(model, body)
    assert simulator.requests() == []


async def test_missing_token_sends_nothing(simulator):
    with pytest.raises(errors.MissingTokenError, match="RUNCOMFY_API_TOKEN"):
        client_pkg.RunComfyClient(client_pkg.Settings(base_url=simulator.url))
    assert simulator.requests() == []


@pytest.mark.parametrize(
    "model, change, field",
    [
        (T2I, {"prompt": "\u200b\u200b\u200b"}, "prompt"),
        (T2I, {"prompt": "\0\0"}, "prompt"),
        (T2I, {"prompt": "a" * 1_000_000}, "prompt"),
        (T2I, {"seed": -1}, "seed"),
        (T2I, {"seed": 2**31}, "seed"),
        (T2I, {"seed": 2**64 + 5}, "seed"),
        (EDIT, {"image_urls": ["https://x/cat.png"]}, "image_urls[0]"),
        (EDIT, {"image_urls": ["http://10.1.2.3/cat.png"]}, "image_urls[0]"),
        (EDIT, {"image_urls": ["http://169.254.169.254/latest"]}, "image_urls[0]"),
        (EDIT, {"image_urls": ["https://exa mple.com/cat.png"]}, "image_urls[0]"),
        (EDIT, {"image_urls": ["ftp://example.com/cat.png"]}, "image_urls[0]"),
    ],
)
async def test_inputs_that_cannot_succeed_are_refused_before_paying(simulator, jobs, model, change, field):
    with pytest.raises(errors.RequestValidationError) as caught:
        await jobs.run(model, {**SMALL, **change})
    assert caught.value.field == field and "\n" not in str(caught.value)
    assert simulator.requests() == []


async def test_an_upper_case_https_url_is_accepted(simulator, jobs):
    simulator.script_next_jobs("queued_forever")
    stop = client_pkg.Stop(check=lambda: bool(simulator.jobs))
    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError):
        await jobs.run(EDIT, {**SMALL, "image_urls": ["HTTPS://EXAMPLE.COM/cat.png"]}, stop=stop)
    assert submits(simulator) == 1


# ---------------------------------------------------------------- a submit is never sent twice


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "drop", "after_processing": True},
        {"kind": "malformed_json", "after_processing": True},
        {"kind": "http_error", "status": 500},
        {"kind": "http_error", "status": 502, "body": "<html>Bad gateway</html>", "content_type": "text/html"},
    ],
)
async def test_a_lost_submit_answer_is_never_resent(simulator, jobs, fault):
    simulator.add_fault("submit", **fault)
    with pytest.raises(errors.SubmitOutcomeUnknownError, match="NOT re-sent") as caught:
        await jobs.run(T2I, {"prompt": "x"})
    assert "dashboard" in str(caught.value)
    assert len(simulator.requests(route="submit")) == 1
    assert simulator.requests(route="status") == []


async def test_a_submit_that_times_out_is_never_resent(simulator):
    simulator.add_fault("submit", "delay", seconds=2.0, after_processing=True)
    http = api.new_http_client(timeout=httpx.Timeout(0.3))
    with pytest.raises(errors.SubmitOutcomeUnknownError):
        await jobs_for(settings_for(simulator), http=http).run(T2I, {"prompt": "x"})
    await http.aclose()
    assert len(simulator.jobs) == 1  # the server did accept (and bill) it
    simulator.wait_until(lambda: simulator.requests(route="submit"))  # logged once its late answer is written
    assert len(simulator.requests(route="submit")) == 1


async def test_a_submit_that_never_connected_is_retried_then_reported():
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = client_pkg.Settings(base_url=f"http://127.0.0.1:{port}", token="t" * 20)
    jobs = jobs_for(settings)
    async with jobs.client:
        with pytest.raises(errors.NetworkError, match="Nothing was submitted"):
            await jobs.run(T2I, {"prompt": "x"})


async def test_rate_limited_submit_waits_and_is_billed_once(simulator, jobs):
    simulator.add_fault("submit", "http_error", status=429, retry_after=0, times=2)
    job = await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    submits = simulator.requests(route="submit")
    assert [record.status for record in submits] == [429, 429, 200]
    assert list(simulator.jobs) == [job.request_id]


@pytest.mark.parametrize(
    "fault, error",
    [
        ({"kind": "http_error", "status": 401}, errors.AuthenticationError),
        ({"kind": "http_error", "status": 400, "error_code": 400004}, errors.AuthenticationError),
        ({"kind": "http_error", "status": 402}, errors.InsufficientBalanceError),
        ({"kind": "ok_with_error_code", "error_code": 400002, "error_message": "no balance"}, errors.InsufficientBalanceError),
        ({"kind": "http_error", "status": 422, "detail": [{"loc": ["body", "seed"], "msg": "bad seed"}]}, errors.RequestValidationError),
    ],
)
async def test_submit_refusals_map_to_typed_errors(simulator, jobs, fault, error):
    simulator.add_fault("submit", **fault)
    with pytest.raises(error) as caught:
        await jobs.run(T2I, {"prompt": "x"})
    assert "\n" not in str(caught.value)
    assert simulator.jobs == {}


async def test_wrong_token_and_empty_balance_from_the_server(simulator):
    good = jobs_for(settings_for(simulator))
    async with good.client:
        simulator.set_balance(0.0)
        with pytest.raises(errors.InsufficientBalanceError, match="top up"):
            await good.run(T2I, {"prompt": "x"})
    bad = jobs_for(client_pkg.Settings(base_url=simulator.url, token="not-the-simulator-token"))
    async with bad.client:
        with pytest.raises(errors.AuthenticationError, match="RUNCOMFY_API_TOKEN"):
            await bad.run(T2I, {"prompt": "x"})
    assert simulator.jobs == {}


async def test_an_html_413_from_a_proxy_is_called_too_large_not_a_schema_mismatch(simulator, jobs):
    simulator.add_fault("submit", "http_error", status=413, body="<html><body>413 Request Entity Too Large</body></html>")
    with pytest.raises(errors.RequestValidationError, match="too large") as caught:
        await jobs.run(T2I, SMALL)
    assert "schema" not in str(caught.value) and "Nothing was billed" in str(caught.value)


# ---------------------------------------------------------------- free calls ride out outages until the deadline


@pytest.mark.parametrize(
    "route, fault",
    [
        ("status", {"kind": "http_error", "status": 503, "times": 3}),
        ("status", {"kind": "http_error", "status": 429, "retry_after": 0, "times": 2}),
        ("status", {"kind": "drop", "times": 2}),
        ("status", {"kind": "malformed_json"}),
        ("status", {"kind": "ok_with_error_code", "error_code": 500001}),
        ("result", {"kind": "http_error", "status": 500, "times": 2}),
        ("result", {"kind": "drop"}),
        ("result", {"kind": "malformed_json"}),
    ],
)
async def test_free_calls_recover_from_faults(simulator, jobs, route, fault):
    simulator.add_fault(route, **fault)
    job = await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert len(job.files) == 1
    assert len(simulator.requests(route="submit")) == 1
    assert any(record.fault for record in simulator.requests(route=route))


async def test_persistent_server_errors_are_ridden_out_until_the_deadline(simulator, jobs):
    simulator.add_fault("status", "http_error", status=500, times=None)
    with pytest.raises(errors.JobTimeoutError, match="may still finish and be billed") as caught:
        await jobs.run(T2I, {"prompt": "x"}, timeout=1.5)
    assert caught.value.request_id in str(caught.value) and "HTTP 500" in str(caught.value)
    assert len(simulator.requests(route="status")) > FAST_RETRY.attempts  # never given up early
    assert len(simulator.requests(route="cancel")) == 1  # tried, in case it was still queued


@pytest.mark.parametrize(
    "route, fault",
    [
        ("status", {"kind": "http_error", "status": 503, "times": 8}),
        ("status", {"kind": "drop", "times": 6}),
        ("status", {"kind": "http_error", "status": 404, "times": 1}),  # the new id is not visible yet
        ("status", {"kind": "http_error", "status": 429, "retry_after": 0, "times": 3}),
        ("status", {"kind": "json_body", "times": 2}),
        ("result", {"kind": "http_error", "status": 502, "times": 8}),
        ("result", {"kind": "json_body", "body": '["completed"]', "times": 2}),
    ],
)
async def test_an_outage_of_status_or_result_is_ridden_out(simulator, jobs, route, fault):
    simulator.add_fault(route, **fault)
    job = await jobs.run(T2I, SMALL)
    assert decodable(job.files)
    assert submits(simulator) == 1
    assert len([r for r in simulator.requests(route=route) if r.fault]) == fault["times"]


@pytest.mark.parametrize("value", [-5, "1e9", 1_000_000_000, "Thu, 01 Jan 2099 00:00:00 GMT", "soon"])
async def test_a_hostile_retry_after_is_read_sanely(simulator, value):
    policy = retry.RetryPolicy(base_delay=0.2, max_delay=0.4, max_retry_after=0.5)
    simulator.add_fault("status", "http_error", status=429, retry_after=value, times=3)
    runner = jobs_for(settings_for(simulator), policy=policy)
    async with runner.client:
        with anyio.fail_after(15):  # a wish of 10^9 s or a date in 2099 is capped, not obeyed
            await runner.run(T2I, SMALL)
    times = [r.time for r in simulator.requests(route="status")][:4]
    assert all(later - earlier >= 0.09 for earlier, later in zip(times, times[1:]))  # never a burst


async def test_the_deadline_cancels_a_job_that_is_still_queued(simulator, jobs):
    simulator.script_next_jobs("queued_forever")
    balance = simulator.balance()
    with pytest.raises(errors.JobTimeoutError, match="cancelled it on RunComfy: nothing is billed") as caught:
        await jobs.run(T2I, SMALL, timeout=0.5)
    assert simulator.state(caught.value.request_id) == "cancelled"
    assert simulator.balance() == pytest.approx(balance)


async def test_the_deadline_says_how_to_collect_a_running_job(simulator, jobs):
    simulator.script_next_jobs("never_finishes", queue_seconds=0)
    with pytest.raises(errors.JobTimeoutError, match="may still finish and be billed") as caught:
        await jobs.run(T2I, SMALL, timeout=0.5)
    assert "Result by Request ID" in str(caught.value) and caught.value.request_id in str(caught.value)
    assert "try again" not in str(caught.value).lower()


async def test_a_failing_progress_callback_never_changes_the_job(simulator, jobs):
    def broken(update):
        raise RuntimeError("the editor went away")

    job = await jobs.run(T2I, SMALL, on_update=broken)
    assert decodable(job.files) and submits(simulator) == 1


# ---------------------------------------------------------------- success is decided from the whole answer


@pytest.mark.parametrize(
    "outcome, error, words",
    [
        ("failed", errors.JobFailedError, "failed on RunComfy"),
        ("blocked", errors.JobBlockedError, "safety filter"),
        ("status_completed_result_failed", errors.JobFailedError, "failed"),
        ("cancelled_by_server", errors.JobCancelledError, "cancelled"),
    ],
)
async def test_unsuccessful_jobs_raise_with_the_api_reason(simulator, jobs, outcome, error, words):
    simulator.script_next_jobs(outcome)
    with pytest.raises(error, match=words) as caught:
        await jobs.run(T2I, {"prompt": "x"})
    assert caught.value.request_id and caught.value.request_id in str(caught.value)
    assert simulator.requests(route="file") == []


async def test_failed_job_reason_given_as_an_object(simulator, jobs):
    simulator.configure(error_style="object")
    simulator.script_next_jobs("failed", reason="model overloaded")
    with pytest.raises(errors.JobFailedError, match="model overloaded"):
        await jobs.run(T2I, {"prompt": "x"})


async def test_a_job_that_never_finishes_times_out_with_its_id(simulator, jobs):
    simulator.script_next_jobs("never_finishes")
    with pytest.raises(errors.JobTimeoutError, match="may still finish") as caught:
        await jobs.run(T2I, {"prompt": "x"}, timeout=1.0)
    assert caught.value.request_id in simulator.jobs


async def test_an_unknown_status_is_never_taken_for_success(simulator, jobs):
    simulator.configure(status_words={"completed": "done-ish"})
    with pytest.raises(errors.JobTimeoutError):
        await jobs.run(T2I, {"prompt": "x"}, timeout=1.0)
    assert simulator.requests(route="file") == []


@pytest.mark.parametrize(
    "script, error, words",
    [
        ({"reason": "safety: blocked"}, errors.JobBlockedError, "safety: blocked"),
        ({"reason": "model overloaded", "output": "no_images"}, errors.JobFailedError, "model overloaded"),
        ({"output": "empty"}, errors.JobFailedError, "sent no image"),
        ({"output_urls": ["{url}\tx"]}, errors.DownloadError, "cannot be fetched"),
    ],
)
async def test_a_completed_answer_that_is_not_a_success_fails_with_its_reason(simulator, jobs, script, error, words):
    simulator.script_next_jobs("completed", **script)
    with pytest.raises(error, match=words) as caught:
        await jobs.run(T2I, SMALL)
    assert caught.value.request_id in simulator.jobs and caught.value.request_id in str(caught.value)
    assert simulator.requests(route="file") == []


async def test_a_result_that_cannot_be_processed_carries_the_request_id(simulator, jobs):
    async def refuse(data):
        raise ValueError("not what was expected")

    with pytest.raises(errors.ResultError, match="not what was expected") as caught:
        await jobs.run(T2I, SMALL, process=refuse)
    assert caught.value.request_id in simulator.jobs


# ---------------------------------------------------------------- Stop


@pytest.mark.parametrize("body, outcome, word", [
    ("both", "cancelled", "cancelled"),  # RunComfy's clients: status or outcome "cancelled" is success
    ("both", "canceled", "canceled"),
    ("both", "cancellation_requested", "cancelled"),  # the older reading, unconfirmed
    ("outcome", "cancelled", "cancelled"),
    ("outcome", "canceled", "cancelled"),
    ("outcome", "cancellation_requested", "cancelled"),
    ("status", "cancelled", "cancelled"),
    ("status", "cancelled", "canceled"),
])
async def test_stop_while_queued_cancels_once_and_refunds(simulator, jobs, body, outcome, word):
    simulator.configure(cancel_body=body, cancel_outcome=outcome, status_words={"cancelled": word})
    simulator.script_next_jobs("queued_forever")
    balance = simulator.balance()
    stop = client_pkg.Stop()
    updates = Updates()

    def on_update(update):
        updates(update)
        if update.stage == "queued":
            stop.set()

    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="while still queued"):
        await jobs.run(T2I, {"prompt": "x"}, on_update=on_update, stop=stop)
    assert len(simulator.requests(route="cancel")) == 1
    (request_id,) = simulator.jobs
    assert simulator.state(request_id) == "cancelled"
    assert simulator.balance() == pytest.approx(balance)
    assert updates.stages[-1] == "cancelled"


@pytest.mark.parametrize("body", ["both", "outcome", "status"])
async def test_stop_while_running_reports_not_cancellable(simulator, jobs, body):
    simulator.configure(cancel_body=body)
    simulator.script_next_jobs("never_finishes")
    stop = client_pkg.Stop()

    def on_update(update):
        if update.stage == "running":
            stop.set()

    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="already running"):
        await jobs.run(T2I, {"prompt": "x"}, on_update=on_update, stop=stop)
    assert len(simulator.requests(route="cancel")) == 1


async def test_stop_before_submit_sends_nothing(simulator, jobs):
    stop = client_pkg.Stop()
    stop.set()
    with pytest.raises(errors.JobCancelledError, match="nothing was billed"):
        await jobs.run(T2I, {"prompt": "x"}, stop=stop)
    assert simulator.requests() == []


async def test_cancelling_the_task_cancels_the_queued_job(simulator, jobs):
    simulator.script_next_jobs("queued_forever")
    queued = asyncio.Event()
    task = asyncio.create_task(
        jobs.run(T2I, {"prompt": "x"}, on_update=lambda u: u.stage == "queued" and queued.set())
    )
    await asyncio.wait_for(queued.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (request_id,) = simulator.jobs
    assert simulator.state(request_id) == "cancelled"


async def test_stop_during_a_rate_limit_wait_sends_no_second_submit(simulator, jobs):
    simulator.add_fault("submit", "http_error", status=429, retry_after=30)
    stop = client_pkg.Stop(check=lambda: submits(simulator) >= 1)  # pressed once the first answer is in
    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="nothing was billed"):
        await jobs.run(T2I, SMALL, stop=stop)
    assert submits(simulator) == 1 and simulator.jobs == {}


async def test_stop_while_waiting_for_a_job_slot_submits_nothing(simulator):
    simulator.script_next_jobs("queued_forever")
    runner = jobs_for(settings_for(simulator), max_concurrent_jobs=1)
    async with runner.client:
        first = asyncio.create_task(runner.run(T2I, {**SMALL, "prompt": "first"}))
        await anyio.to_thread.run_sync(simulator.wait_until, lambda: simulator.jobs)  # it holds the one slot
        polled = len(simulator.requests(route="status"))
        # Pressed while the second waits for the slot: once the first job was polled twice more.
        stop = client_pkg.Stop(check=lambda: len(simulator.requests(route="status")) >= polled + 2)
        with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="nothing was billed"):
            await runner.run(T2I, {**SMALL, "prompt": "second"}, stop=stop)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert submits(simulator) == 1


async def test_repeated_cancellation_during_a_slow_submit_still_cancels_the_job(simulator, jobs):
    simulator.script_next_jobs("queued_forever")
    held = simulator.add_fault("submit", "hold", after_processing=True)  # billed, its answer held back
    task = asyncio.create_task(jobs.run(T2I, SMALL))
    await anyio.to_thread.run_sync(simulator.wait_until, lambda: simulator.held(held) == 1)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # a second cancellation must not orphan the job
    simulator.release(held)
    with anyio.fail_after(10), pytest.raises(asyncio.CancelledError):
        await task
    (request_id,) = simulator.jobs
    assert simulator.state(request_id) == "cancelled"
    assert len(simulator.requests(route="cancel")) == 1


async def test_stop_during_a_trickling_download_ends_it_and_says_it_is_billed(simulator, jobs):
    simulator.add_fault("file", "trickle", size=1, seconds=2)
    stop = client_pkg.Stop(check=lambda: bool(simulator.requests(route="file")))
    with anyio.fail_after(5), pytest.raises(errors.JobCancelledError, match="is billed") as caught:
        await jobs.run(T2I, SMALL, stop=stop)
    assert caught.value.request_id in simulator.jobs
    assert len(simulator.requests(route="file")) == 1


# ---------------------------------------------------------------- downloads


@pytest.mark.parametrize(
    "fault, words",
    [
        ({"kind": "redirect", "host": "127.0.0.2"}, "redirected"),
        ({"kind": "not_image"}, "HTML page, not an image"),
        ({"kind": "oversize", "size": 3 * 1024 * 1024}, "larger than"),
        ({"kind": "oversize", "size": 3 * 1024 * 1024, "chunked": True}, "larger than"),
        ({"kind": "truncated", "times": None}, "broke off"),
        ({"kind": "http_error", "status": 404}, "HTTP 404"),
    ],
)
async def test_hostile_downloads_are_refused(simulator, jobs, fault, words):
    jobs.client.download_policy = dataclasses.replace(jobs.client.download_policy, max_bytes=2 * 1024 * 1024)
    simulator.add_fault("file", **fault)
    with pytest.raises(errors.DownloadError, match=words) as caught:
        await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"}, timeout=1.0)
    assert caught.value.request_id in simulator.jobs


async def test_same_host_redirect_is_followed(simulator, jobs):
    simulator.add_fault("file", "redirect")
    job = await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert open_bytes(job.files[0]).size == sim_images.expected_size("auto", "0.5K")


@pytest.mark.parametrize("host", ["127.0.0.2", "cdn.example.org"])
async def test_results_from_unknown_hosts_are_not_fetched(simulator, jobs, host):
    simulator.script_next_jobs(output_host=host)
    with pytest.raises(errors.DownloadError, match="download_hosts|plain http"):
        await jobs.run(T2I, {"prompt": "x"})
    assert simulator.requests(route="file") == []


@pytest.mark.parametrize("host", ["cdn.runcomfy.com", "files.runcomfy.net"])
async def test_a_runcomfy_name_resolving_to_the_local_network_is_not_fetched(simulator, jobs, host):
    """The name is trusted, the address it resolves to is not: refused before any connection,
    with the request id (the job is billed: collect it later)."""
    async def resolve(name, port):
        asked.append((name, port))
        return ["10.20.30.40"]

    asked = []
    jobs.client.download_policy = dataclasses.replace(jobs.client.download_policy, resolver=resolve)
    simulator.script_next_jobs(output_host=host)
    with pytest.raises(errors.DownloadError, match="10.20.30.40") as caught:
        await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert caught.value.request_id in simulator.jobs and caught.value.request_id in str(caught.value)
    assert asked and {name for name, _ in asked} == {host}
    assert simulator.requests(route="file") == [] and submits(simulator) == 1


async def test_configured_extra_host_is_allowed(simulator):
    simulator.script_next_jobs(output_host="localhost")  # same server, a host name the API does not use
    settings = settings_for(simulator, download_hosts=("localhost",))
    jobs = jobs_for(settings)
    async with jobs.client:
        job = await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert len(job.files) == 1


async def test_downloads_never_carry_the_token(simulator, jobs):
    await jobs.run(T2I, {"prompt": "x", "num_images": 3, "resolution": "0.5K"})
    files = simulator.requests(route="file")
    assert len(files) == 3 and not any(record.auth_header_sent for record in files)
    assert all(record.auth_header_sent for record in simulator.requests(route="status"))


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http_error", "status": 503},
        {"kind": "drop"},
        {"kind": "truncated"},
    ],
)
async def test_one_failed_download_is_tried_again(simulator, jobs, fault):
    simulator.add_fault("file", **fault)
    job = await jobs.run(T2I, SMALL)
    assert decodable(job.files)
    assert [bool(r.fault) for r in simulator.requests(route="file")] == [True, False]
    assert submits(simulator) == 1


async def test_a_truncated_result_is_refused_whatever_pillow_is_told(simulator, jobs, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    simulator.script_next_jobs("completed", file_content="truncated_image")
    with pytest.raises(errors.DownloadError, match="cut off") as caught:
        await jobs.run(T2I, SMALL)  # the same cut each time: damaged, so no need to wait for a deadline
    assert "is billed" in str(caught.value) and caught.value.request_id in simulator.jobs


async def test_a_redirect_to_another_port_of_the_same_host_is_refused(simulator, jobs):
    other = f"http://127.0.0.1:{simulator.port + 1 if simulator.port < 65535 else 1}/elsewhere.png"
    simulator.add_fault("file", "redirect", location=other)
    with pytest.raises(errors.DownloadError, match="redirected") as caught:
        await jobs.run(T2I, SMALL)
    assert caught.value.request_id in simulator.jobs


# ---------------------------------------------------------------- many jobs, pacing, what is learned


async def test_many_concurrent_jobs_share_one_client(simulator):
    simulator.configure(max_active_jobs=4)
    settings = settings_for(simulator)
    runner = jobs_for(settings, max_concurrent_jobs=4)
    async with runner.client:
        jobs = await asyncio.gather(*(runner.run(T2I, {"prompt": f"job {n}", "resolution": "0.5K"}) for n in range(12)))
    assert len({job.request_id for job in jobs}) == 12
    assert all(len(job.files) == 1 for job in jobs)
    submits = simulator.requests(route="submit")
    assert len(submits) == 12 and all(record.status == 200 for record in submits)  # the cap kept us under 429


async def test_polling_stays_within_two_calls_a_second(simulator, jobs):
    simulator.script_next_jobs(queue_seconds=0.5, run_seconds=2.0, count=2)
    for _ in range(2):  # the second job benefits from the learned duration
        job = await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
        polls = [r for r in simulator.requests(request_id=job.request_id) if r.route in ("status", "result")]
        seconds = polls[-1].time - polls[0].time
        assert len(polls) <= 2.0 * seconds + 5  # the rate budget plus its burst


@pytest.mark.anyio
async def test_a_job_teaches_its_run_duration(simulator):
    settings = client_pkg.Settings(base_url=simulator.url, token=simulator.token, token_source="test")
    simulator.script_next_jobs(queue_seconds=0.3, run_seconds=1.2)
    async with client_pkg.RunComfyClient(settings) as client:
        jobs = client_pkg.Jobs(client)
        await jobs.run("google/nano-banana-2/text-to-image", {"prompt": "x", "resolution": "0.5K"})
        learned = jobs.durations.expected(("google/nano-banana-2/text-to-image", "0.5K", 1))
    assert learned == pytest.approx(1.2, abs=0.3)  # the start is only known to a poll gap


# ---------------------------------------------------------------- secrets


async def test_the_token_never_appears_in_logs_or_errors(simulator, jobs, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    simulator.add_fault("status", "http_error", status=503)
    await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    simulator.add_fault("submit", "http_error", status=401, error_message=f"token {simulator.token} is bad")
    with pytest.raises(errors.AuthenticationError) as caught:
        await jobs.run(T2I, {"prompt": "x"})
    seen.append(str(caught.value))
    seen.append(repr(jobs.client.settings))
    seen.extend(record.getMessage() for record in caplog.records)
    seen.extend(str(record.to_json()) for record in simulator.requests())
    assert seen and not any(simulator.token in text for text in seen)


async def test_a_token_echoed_near_the_cut_never_leaks(simulator, jobs):
    simulator.add_fault("submit", "http_error", status=401, error_message="x" * 190 + " {token} was refused")
    with pytest.raises(errors.AuthenticationError) as caught:
        await jobs.run(T2I, SMALL)
    text = str(caught.value)
    token = simulator.token
    assert not any(token[i : i + 6] in text for i in range(len(token) - 5))
