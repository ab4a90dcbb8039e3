"""The client over real HTTP against the simulator: lifecycles, faults, money rules."""

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
from PIL import Image

from packloader import pack_import

client_pkg = pack_import("client")
api = pack_import("client.api")
errors = pack_import("client.errors")
retry = pack_import("client.retry")
sim_images = pack_import("simulator.images")

pytestmark = pytest.mark.anyio
T2I = client_pkg.TEXT_TO_IMAGE
EDIT = client_pkg.EDIT
FAST_RETRY = retry.RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=1.0)


def settings_for(sim, **overrides):
    return client_pkg.Settings(base_url=sim.url, token=sim.token, token_source="test", **overrides)


def jobs_for(settings, *, http=None, **options):
    return client_pkg.Jobs(client_pkg.RunComfyClient(settings, http=http), retry=FAST_RETRY, **options)


@pytest.fixture
async def rc(simulator):
    jobs = jobs_for(settings_for(simulator))
    async with jobs.client:
        yield jobs


def png_data_uri(width: int, height: int, colour=(200, 40, 40)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class Updates(list):
    def __call__(self, update):
        self.append(update)

    @property
    def stages(self):
        return [update.stage for update in self]


# -- lifecycles ----------------------------------------------------------------


async def test_text_to_image_lifecycle(simulator, rc):
    simulator.script_next_jobs(queue_seconds=0.3, run_seconds=0.6)  # long enough to see each state
    updates = Updates()
    job = await rc.run(T2I, {"prompt": "a red fox", "num_images": 2, "aspect_ratio": "16:9", "output_format": "jpeg"},
        on_update=updates,
    )
    assert len(job.files) == 2
    expected = sim_images.expected_size("16:9", "1K")
    for data in job.files:
        image = decode(data)
        assert (image.format, image.size) == ("JPEG", expected)
    assert job.files[0] != job.files[1]
    assert job.cost is not None and job.cost > 0
    assert len(simulator.requests(route="submit")) == 1
    assert {"submitting", "submitted", "queued", "running", "downloading", "done"} <= set(updates.stages)
    queued = next(update for update in updates if update.stage == "queued")
    assert queued.queue_position == 1 and queued.request_id == job.request_id


async def test_edit_lifecycle_with_inline_and_hosted_images(simulator, rc):
    first = await rc.run(T2I, {"prompt": "a reference", "resolution": "0.5K"})
    hosted = first.result.image_urls[0]  # the simulator fetches URL inputs itself
    job = await rc.run(EDIT, {"prompt": "make it night", "image_urls": [png_data_uri(640, 480), hosted], "seed": 7}
    )
    image = decode(job.files[0])
    assert image.size == sim_images.expected_size("auto", "1K", (640, 480))
    assert len(simulator.requests(route="submit")) == 2


async def test_same_prompt_and_seed_give_the_same_image(rc):
    body = {"prompt": "determinism", "seed": 42, "resolution": "0.5K"}
    first = await rc.run(T2I, body)
    second = await rc.run(T2I, body)
    assert first.files == second.files and first.request_id != second.request_id


async def test_model_info_is_a_free_read(simulator, rc):
    info = await rc.client.model_info(T2I, include_schema=True)
    assert info["base_price_usd"] > 0 and "properties" in info["schema"]
    assert simulator.requests(route="submit") == []


@pytest.mark.parametrize("style", ["image", "both"])
async def test_every_output_shape_yields_the_images(simulator, rc, style):
    simulator.configure(output_style=style)
    job = await rc.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert len(job.files) == 1


async def test_other_status_spellings_are_understood(simulator, rc):
    simulator.configure(status_words={"in_queue": "pending", "in_progress": "processing", "completed": "succeeded"})
    job = await rc.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert len(job.files) == 1


# -- nothing sent for bad input -------------------------------------------------


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
async def test_invalid_requests_never_reach_the_server(simulator, rc, model, body):
    with pytest.raises(errors.RequestValidationError):
        await rc.run(model, body)
    assert simulator.requests() == []


async def test_missing_token_sends_nothing(simulator):
    with pytest.raises(errors.MissingTokenError, match="RUNCOMFY_API_TOKEN"):
        client_pkg.RunComfyClient(client_pkg.Settings(base_url=simulator.url))
    assert simulator.requests() == []


# -- submit: never twice -------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "drop", "after_processing": True},
        {"kind": "malformed_json", "after_processing": True},
        {"kind": "http_error", "status": 500},
        {"kind": "http_error", "status": 502, "body": "<html>Bad gateway</html>", "content_type": "text/html"},
    ],
)
async def test_a_lost_submit_answer_is_never_resent(simulator, rc, fault):
    simulator.add_fault("submit", **fault)
    with pytest.raises(errors.SubmitOutcomeUnknownError, match="NOT re-sent") as caught:
        await rc.run(T2I, {"prompt": "x"})
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


async def test_rate_limited_submit_waits_and_is_billed_once(simulator, rc):
    simulator.add_fault("submit", "http_error", status=429, retry_after=0, times=2)
    job = await rc.run(T2I, {"prompt": "x", "resolution": "0.5K"})
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
async def test_submit_refusals_map_to_typed_errors(simulator, rc, fault, error):
    simulator.add_fault("submit", **fault)
    with pytest.raises(error) as caught:
        await rc.run(T2I, {"prompt": "x"})
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


# -- free calls recover ---------------------------------------------------------


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
async def test_free_calls_recover_from_faults(simulator, rc, route, fault):
    simulator.add_fault(route, **fault)
    job = await rc.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert len(job.files) == 1
    assert len(simulator.requests(route="submit")) == 1
    assert any(record.fault for record in simulator.requests(route=route))


async def test_persistent_server_errors_are_ridden_out_until_the_deadline(simulator, rc):
    simulator.add_fault("status", "http_error", status=500, times=None)
    with pytest.raises(errors.JobTimeoutError, match="may still finish and be billed") as caught:
        await rc.run(T2I, {"prompt": "x"}, timeout=1.5)
    assert caught.value.request_id in str(caught.value) and "HTTP 500" in str(caught.value)
    assert len(simulator.requests(route="status")) > FAST_RETRY.attempts  # never given up early
    assert len(simulator.requests(route="cancel")) == 1  # tried, in case it was still queued


# -- job outcomes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome, error, words",
    [
        ("failed", errors.JobFailedError, "failed on RunComfy"),
        ("blocked", errors.JobBlockedError, "safety filter"),
        ("status_completed_result_failed", errors.JobFailedError, "failed"),
        ("cancelled_by_server", errors.JobCancelledError, "cancelled"),
    ],
)
async def test_unsuccessful_jobs_raise_with_the_api_reason(simulator, rc, outcome, error, words):
    simulator.script_next_jobs(outcome)
    with pytest.raises(error, match=words) as caught:
        await rc.run(T2I, {"prompt": "x"})
    assert caught.value.request_id and caught.value.request_id in str(caught.value)
    assert simulator.requests(route="file") == []


async def test_failed_job_reason_given_as_an_object(simulator, rc):
    simulator.configure(error_style="object")
    simulator.script_next_jobs("failed", reason="model overloaded")
    with pytest.raises(errors.JobFailedError, match="model overloaded"):
        await rc.run(T2I, {"prompt": "x"})


async def test_a_job_that_never_finishes_times_out_with_its_id(simulator, rc):
    simulator.script_next_jobs("never_finishes")
    with pytest.raises(errors.JobTimeoutError, match="may still finish") as caught:
        await rc.run(T2I, {"prompt": "x"}, timeout=1.0)
    assert caught.value.request_id in simulator.jobs


async def test_an_unknown_status_is_never_taken_for_success(simulator, rc):
    simulator.configure(status_words={"completed": "done-ish"})
    with pytest.raises(errors.JobTimeoutError):
        await rc.run(T2I, {"prompt": "x"}, timeout=1.0)
    assert simulator.requests(route="file") == []


# -- cancelling ------------------------------------------------------------------


async def test_stop_while_queued_cancels_once_and_refunds(simulator, rc):
    simulator.script_next_jobs("queued_forever")
    balance = simulator.balance()
    stop = client_pkg.Stop()
    updates = Updates()

    def on_update(update):
        updates(update)
        if update.stage == "queued":
            stop.set()

    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="while still queued"):
        await rc.run(T2I, {"prompt": "x"}, on_update=on_update, stop=stop)
    assert len(simulator.requests(route="cancel")) == 1
    (request_id,) = simulator.jobs
    assert simulator.state(request_id) == "cancelled"
    assert simulator.balance() == pytest.approx(balance)
    assert updates.stages[-1] == "cancelled"


async def test_stop_while_running_reports_not_cancellable(simulator, rc):
    simulator.script_next_jobs("never_finishes")
    stop = client_pkg.Stop()

    def on_update(update):
        if update.stage == "running":
            stop.set()

    with anyio.fail_after(10), pytest.raises(errors.JobCancelledError, match="already running"):
        await rc.run(T2I, {"prompt": "x"}, on_update=on_update, stop=stop)
    assert len(simulator.requests(route="cancel")) == 1


async def test_stop_before_submit_sends_nothing(simulator, rc):
    stop = client_pkg.Stop()
    stop.set()
    with pytest.raises(errors.JobCancelledError, match="nothing was billed"):
        await rc.run(T2I, {"prompt": "x"}, stop=stop)
    assert simulator.requests() == []


async def test_cancelling_the_task_cancels_the_queued_job(simulator, rc):
    simulator.script_next_jobs("queued_forever")
    queued = asyncio.Event()
    task = asyncio.create_task(
        rc.run(T2I, {"prompt": "x"}, on_update=lambda u: u.stage == "queued" and queued.set())
    )
    await asyncio.wait_for(queued.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (request_id,) = simulator.jobs
    assert simulator.state(request_id) == "cancelled"


# -- downloads -------------------------------------------------------------------


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
async def test_hostile_downloads_are_refused(simulator, rc, fault, words):
    rc.client.download_policy = dataclasses.replace(rc.client.download_policy, max_bytes=2 * 1024 * 1024)
    simulator.add_fault("file", **fault)
    with pytest.raises(errors.DownloadError, match=words) as caught:
        await rc.run(T2I, {"prompt": "x", "resolution": "0.5K"}, timeout=1.0)
    assert caught.value.request_id in simulator.jobs


async def test_same_host_redirect_is_followed(simulator, rc):
    simulator.add_fault("file", "redirect")
    job = await rc.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert decode(job.files[0]).size == sim_images.expected_size("auto", "0.5K")


@pytest.mark.parametrize("host", ["127.0.0.2", "cdn.example.org"])
async def test_results_from_unknown_hosts_are_not_fetched(simulator, rc, host):
    simulator.script_next_jobs(output_host=host)
    with pytest.raises(errors.DownloadError, match="download_hosts|plain http"):
        await rc.run(T2I, {"prompt": "x"})
    assert simulator.requests(route="file") == []


async def test_configured_extra_host_is_allowed(simulator):
    simulator.script_next_jobs(output_host="localhost")  # same server, a host name the API does not use
    settings = settings_for(simulator, download_hosts=("localhost",))
    jobs = jobs_for(settings)
    async with jobs.client:
        job = await jobs.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    assert len(job.files) == 1


async def test_downloads_never_carry_the_token(simulator, rc):
    await rc.run(T2I, {"prompt": "x", "num_images": 3, "resolution": "0.5K"})
    files = simulator.requests(route="file")
    assert len(files) == 3 and not any(record.auth_header_sent for record in files)
    assert all(record.auth_header_sent for record in simulator.requests(route="status"))


# -- many jobs, one client ----------------------------------------------------------


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


async def test_polling_stays_within_two_calls_a_second(simulator, rc):
    simulator.script_next_jobs(queue_seconds=0.5, run_seconds=2.0, count=2)
    for _ in range(2):  # the second job benefits from the learned duration
        job = await rc.run(T2I, {"prompt": "x", "resolution": "0.5K"})
        polls = [r for r in simulator.requests(request_id=job.request_id) if r.route in ("status", "result")]
        seconds = polls[-1].time - polls[0].time
        assert len(polls) <= 2.0 * seconds + 5  # the rate budget plus its burst


# -- secrets ------------------------------------------------------------------------


async def test_the_token_never_appears_in_logs_or_errors(simulator, rc, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    simulator.add_fault("status", "http_error", status=503)
    await rc.run(T2I, {"prompt": "x", "resolution": "0.5K"})
    simulator.add_fault("submit", "http_error", status=401, error_message=f"token {simulator.token} is bad")
    with pytest.raises(errors.AuthenticationError) as caught:
        await rc.run(T2I, {"prompt": "x"})
    seen.append(str(caught.value))
    seen.append(repr(rc.client.settings))
    seen.extend(record.getMessage() for record in caplog.records)
    seen.extend(str(record.to_json()) for record in simulator.requests())
    assert seen and not any(simulator.token in text for text in seen)
