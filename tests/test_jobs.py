"""A paid job is never abandoned (issue 8): Jobs over real HTTP against the simulator in hard times.

Every case asserts on the simulator's request log: exactly one submit, the job
collected or cancelled, the request id in every error, no call after Stop.
"""

from __future__ import annotations

import asyncio
import io

import anyio
import pytest
from PIL import Image, ImageFile

from packloader import pack_import

client_pkg = pack_import("client")
errors = pack_import("client.errors")
retry = pack_import("client.retry")

pytestmark = pytest.mark.anyio
T2I = client_pkg.TEXT_TO_IMAGE
EDIT = client_pkg.EDIT
SMALL = {"prompt": "a lighthouse", "resolution": "0.5K"}
FAST = retry.RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=0.2)


def jobs_for(simulator, policy=FAST, **options):
    settings = client_pkg.Settings(base_url=simulator.url, token=simulator.token, token_source="test")
    return client_pkg.Jobs(client_pkg.RunComfyClient(settings), retry=policy, **options)


@pytest.fixture
async def jobs(simulator):
    runner = jobs_for(simulator)
    async with runner.client:
        yield runner


def decodable(files) -> bool:
    for data in files:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    return bool(files)


def submits(simulator) -> int:
    return len(simulator.requests(route="submit"))


# -- 1. outages of the free calls are ridden out --------------------------------------


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


@pytest.mark.parametrize("value", [-5, "1e9", 1_000_000_000, "Thu, 01 Jan 2099 00:00:00 GMT", "soon"])
async def test_a_hostile_retry_after_is_read_sanely(simulator, value):
    policy = retry.RetryPolicy(base_delay=0.2, max_delay=0.4, max_retry_after=0.5)
    simulator.add_fault("status", "http_error", status=429, retry_after=value, times=3)
    async with jobs_for(simulator, policy).client as client:
        with anyio.fail_after(15):  # a wish of 10^9 s or a date in 2099 is capped, not obeyed
            await client_pkg.Jobs(client, retry=policy).run(T2I, SMALL)
    times = [r.time for r in simulator.requests(route="status")][:4]
    assert all(later - earlier >= 0.09 for earlier, later in zip(times, times[1:]))  # never a burst


# -- 3. Stop is honoured wherever money could still be spent ------------------------------


async def test_stop_during_a_rate_limit_wait_sends_no_second_submit(simulator, jobs):
    simulator.add_fault("submit", "http_error", status=429, retry_after=30)
    stop = client_pkg.Stop(check=lambda: submits(simulator) >= 1)  # pressed once the first answer is in
    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="nothing was billed"):
        await jobs.run(T2I, SMALL, stop=stop)
    assert submits(simulator) == 1 and simulator.jobs == {}


async def test_stop_while_waiting_for_a_job_slot_submits_nothing(simulator):
    simulator.script_next_jobs("queued_forever")
    runner = jobs_for(simulator, max_concurrent_jobs=1)
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


# -- 4. giving up cancels what can be cancelled ---------------------------------------------


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


# -- 5. the display is best effort ----------------------------------------------------------


async def test_a_failing_progress_callback_never_changes_the_job(simulator, jobs):
    def broken(update):
        raise RuntimeError("the editor went away")

    job = await jobs.run(T2I, SMALL, on_update=broken)
    assert decodable(job.files) and submits(simulator) == 1


# -- 7./8. errors about a paid job carry its id; success is decided from the whole answer ------


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


async def test_a_truncated_result_is_refused_whatever_pillow_is_told(simulator, jobs, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    simulator.script_next_jobs("completed", file_content="truncated_image")
    with pytest.raises(errors.DownloadError, match="cut off") as caught:
        await jobs.run(T2I, SMALL, timeout=0.5)
    assert "is billed" in str(caught.value) and caught.value.request_id in simulator.jobs


async def test_a_result_that_cannot_be_processed_carries_the_request_id(simulator, jobs):
    async def refuse(data):
        raise ValueError("not what was expected")

    with pytest.raises(errors.ResultError, match="not what was expected") as caught:
        await jobs.run(T2I, SMALL, process=refuse)
    assert caught.value.request_id in simulator.jobs


# -- 9. secrets are scrubbed before anything is shortened ------------------------------------


async def test_a_token_echoed_near_the_cut_never_leaks(simulator, jobs):
    simulator.add_fault("submit", "http_error", status=401, error_message="x" * 190 + " {token} was refused")
    with pytest.raises(errors.AuthenticationError) as caught:
        await jobs.run(T2I, SMALL)
    text = str(caught.value)
    token = simulator.token
    assert not any(token[i : i + 6] in text for i in range(len(token) - 5))


# -- 10. what cannot succeed is refused before paying -----------------------------------------


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


# -- 11. odd edges ----------------------------------------------------------------------------


async def test_an_html_413_from_a_proxy_is_called_too_large_not_a_schema_mismatch(simulator, jobs):
    simulator.add_fault("submit", "http_error", status=413, body="<html><body>413 Request Entity Too Large</body></html>")
    with pytest.raises(errors.RequestValidationError, match="too large") as caught:
        await jobs.run(T2I, SMALL)
    assert "schema" not in str(caught.value) and "Nothing was billed" in str(caught.value)


async def test_a_redirect_to_another_port_of_the_same_host_is_refused(simulator, jobs):
    other = f"http://127.0.0.1:{simulator.port + 1 if simulator.port < 65535 else 1}/elsewhere.png"
    simulator.add_fault("file", "redirect", location=other)
    with pytest.raises(errors.DownloadError, match="redirected") as caught:
        await jobs.run(T2I, SMALL)
    assert caught.value.request_id in simulator.jobs
