"""The RunComfy simulator, exercised over real HTTP with raw httpx.

These tests pin the simulator to ``runcomfy-api.md`` (shapes, codes, the
lifecycle) and check that every fault and job script does what it says, so the
client's tests can rely on it (the faults issue 8 needs are in
``test_simulator_faults.py``, model info and prices in
``test_simulator_models.py``). They synchronise on the simulator's own state
(``sim.advance`` moves its clock, ``sim.wait_until`` polls with a deadline),
never on a bare sleep.
"""

from __future__ import annotations

import base64
import graphlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image

from packloader import PACK_ROOT, pack_import
from simhelpers import (
    EDIT, LONG, T2I, TLS, api, catalog, completed_file_url, download, error_of, finished_result, get, image_uri,
    other_token, result, status, submit,
)

server = pack_import("simulator.server")
images = pack_import("simulator.images")


# -- sizes ------------------------------------------------------------------------------
def test_expected_size_follows_gemini_table() -> None:
    assert images.expected_size("1:1", "1K") == (1024, 1024)
    assert images.expected_size("16:9", "2K") == (2752, 1536)
    assert images.expected_size("21:9", "0.5K") == (792, 336)
    assert images.expected_size("9:16", "4K") == (3072, 5504)
    assert images.expected_size("auto", "1K") == (1024, 1024)
    assert images.expected_size("auto", "1K", (3000, 2000)) == images.expected_size("3:2", "1K")
    assert images.expected_size("auto", "1K", (1080, 1920)) == images.expected_size("9:16", "1K")
    for ratio, (width, height) in images.SIZES_1K.items():
        assert images.expected_size(ratio, "0.5K") == (width // 2, height // 2)


# -- lifecycles -------------------------------------------------------------------------
def test_text_to_image_lifecycle_end_to_end(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs(queue_seconds=LONG, run_seconds=LONG)
    with api(sim) as client:
        response = client.post(f"/v1/models/{T2I}", json={"prompt": "a lighthouse", "aspect_ratio": "16:9", "resolution": "2K"})
        assert response.status_code == 200 and response.http_version == "HTTP/1.1"
        accepted = response.json()
        request_id = accepted["request_id"]
        assert set(accepted) == {"request_id", "status_url", "result_url", "cancel_url"}
        assert uuid.UUID(request_id).version == 4
        assert accepted["status_url"] == f"{sim.url}/v1/requests/{request_id}/status"
        assert accepted["cancel_url"] == f"{sim.url}/v1/requests/{request_id}/cancel"

        queued = status(client, request_id)
        assert queued == {"request_id": request_id, "status": "in_queue", "queue_position": 1,
                          "status_url": accepted["status_url"], "result_url": accepted["result_url"]}
        assert result(client, request_id) == queued  # before completion /result answers like /status

        sim.advance(LONG)
        running = status(client, request_id)
        assert running["status"] == "in_progress" and "queue_position" not in running

        sim.advance(LONG)
        done = finished_result(sim, client, request_id)
    assert set(done) == {"request_id", "status", "output", "created_at", "finished_at", "error", "model_id"}
    assert done["status"] == "completed" and done["error"] is None and done["model_id"] == T2I
    created = datetime.fromisoformat(done["created_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(done["finished_at"].replace("Z", "+00:00"))
    assert created.utcoffset().total_seconds() == 0 and (finished - created).total_seconds() >= 2 * LONG
    [url] = done["output"]["images"]
    assert url.startswith(f"{sim.url}/files/{request_id}/")
    image = download(url)
    assert (image.format, image.size) == ("PNG", (2752, 1536))
    [file_request] = sim.requests(route="file")
    assert file_request.status == 200 and file_request.auth_header_sent is False


def test_lifecycle_runs_on_real_time_with_fixture_timings(simulator: Any) -> None:
    seen: list[str] = []
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p", "resolution": "0.5K"})
        simulator.wait_until(lambda: seen.append(status(client, request_id)["status"]) or seen[-1] == "completed")
        done = result(client, request_id)
    assert seen[0] in ("in_queue", "in_progress") and set(seen) <= {"in_queue", "in_progress", "completed"}
    assert seen == sorted(seen, key=["in_queue", "in_progress", "completed"].index)
    assert done["status"] == "completed" and len(done["output"]["images"]) == 1


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_output_format_and_size(simulator: Any, fmt: str, pil_format: str) -> None:
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p", "aspect_ratio": "3:4", "resolution": "0.5K", "output_format": fmt})
        done = finished_result(simulator, client, request_id)
    image = download(done["output"]["images"][0])
    assert image.format == pil_format and image.size == images.expected_size("3:4", "0.5K")


def test_renders_are_deterministic_and_photo_like(simulator: Any) -> None:
    body = {"prompt": "same", "seed": 7, "resolution": "0.5K"}
    with api(simulator) as client:
        first, second = submit(client, T2I, body), submit(client, T2I, body)
        third = submit(client, T2I, {**body, "seed": 8})
        urls = [finished_result(simulator, client, rid)["output"]["images"][0] for rid in (first, second, third)]
    contents = [get(url).content for url in urls]
    assert contents[0] == contents[1] and contents[0] != contents[2]
    image = Image.open(io.BytesIO(contents[0])).convert("L")
    assert sum(1 for count in image.histogram() if count) > 20  # texture, not a flat fill


def test_edit_lifecycle_uses_the_input_image(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs(queue_seconds=LONG, run_seconds=0)
    body = {"prompt": "make it dusk", "image_urls": [image_uri((300, 200), (230, 10, 10)), image_uri((50, 50), (0, 0, 255))],
            "num_images": 2, "output_format": "webp"}
    with api(sim) as client:
        request_id = submit(client, EDIT, body)
        assert status(client, request_id)["queue_position"] == 1
        sim.advance(LONG)
        done = finished_result(sim, client, request_id, include_cost="true")
    assert done["status"] == "completed" and done["model_id"] == EDIT and done["cost"] == 0.16
    urls = done["output"]["images"]
    assert len(urls) == 2
    first, second = download(urls[0]), download(urls[1])
    assert first.format == "WEBP" and first.size == images.expected_size("auto", "1K", (300, 200)) == (1264, 848)
    red, green, blue = first.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert red > green + 60 and red > blue + 60  # visibly derived from the red first input
    assert first.tobytes() != second.tobytes()


def test_edit_fetches_loopback_url_inputs(simulator: Any) -> None:
    sim = simulator
    with api(sim) as client:
        source = submit(client, T2I, {"prompt": "tall", "aspect_ratio": "9:16", "resolution": "0.5K"})
        source_url = finished_result(sim, client, source)["output"]["images"][0]
        edit = submit(client, EDIT, {"prompt": "edit", "image_urls": [source_url], "resolution": "0.5K"})
        done = finished_result(sim, client, edit)
    assert done["status"] == "completed"
    assert download(done["output"]["images"][0]).size == images.expected_size("9:16", "0.5K")
    [fetch] = sim.requests(route="input_fetch")
    assert fetch.status == 200 and fetch.request_id == edit and fetch.path == f"/files/{source}/0.png"


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "http://127.0.0.1:9/nothing-listens.png"])
def test_edit_with_unreachable_url_fails_the_job_naming_the_url(simulator: Any, url: str) -> None:
    with api(simulator) as client:
        request_id = submit(client, EDIT, {"prompt": "edit", "image_urls": [image_uri(), url]})
        done = finished_result(simulator, client, request_id)
    assert done["status"] == "failed" and done["output"] is None
    assert url in done["error"] and "image_urls[1]" in done["error"]
    [fetch] = simulator.requests(route="input_fetch")
    assert fetch.status is None and fetch.note


# -- auth, ownership, unknown ids ----------------------------------------------------------
def test_auth_errors(simulator: Any) -> None:
    sim = simulator
    with httpx.Client(base_url=sim.url, verify=TLS) as anonymous:
        missing = anonymous.post(f"/v1/models/{T2I}", json={"prompt": "p"})
        error_of(missing, 401, 400004)
        assert missing.headers["www-authenticate"].lower().startswith("bearer")
        wrong_token = other_token(sim.token)
        bad = anonymous.get("/v1/models/" + T2I, headers={"Authorization": f"Bearer {wrong_token}"})
        assert wrong_token not in bad.text
        error_of(bad, 401, 400004)
        error_of(anonymous.get(f"/v1/requests/{uuid.uuid4()}/status", headers={"Authorization": "Basic abc"}), 401, 400004)
        sim.configure(error_statuses={"400004": 400})
        error_of(anonymous.get(f"/v1/requests/{uuid.uuid4()}/result"), 400, 400004)
    assert not sim.jobs


def test_error_codes_go_with_the_statuses_they_are_paired_with(simulator: Any) -> None:
    """The docs pair no code with a status; Options.error_statuses picks, per code, for every route."""
    sim = simulator
    sim.configure(error_statuses={"400004": 400, "404001": 400, "400002": 200, "400001": 404, "422001": 400})
    with httpx.Client(base_url=sim.url, verify=TLS) as anonymous:
        error_of(anonymous.get(f"/v1/requests/{uuid.uuid4()}/status"), 400, 400004)
        error_of(anonymous.get("/v1/models"), 400, 400004)
    with api(sim) as client:
        error_of(client.get(f"/v1/requests/{uuid.uuid4()}/result"), 400, 404001)
        error_of(client.post("/v1/models/google/nano-banana-9", json={"prompt": "p"}), 404, 400001)
        error_of(client.post(f"/v1/models/{T2I}", json={"prompt": "p", "num_images": 9}), 400, 422001)
        sim.set_balance(0.0)
        error_of(client.post(f"/v1/models/{T2I}", json={"prompt": "p"}), 200, 400002)
    assert not sim.jobs
    for bad in ({"999999": 400}, {"400004": 600}, {"400004": "400"}, ["400004"]):
        with pytest.raises(ValueError, match="error_statuses"):
            sim.configure(error_statuses=bad)
    assert sim.options.error_statuses["400004"] == 400


def test_other_accounts_request_is_forbidden_and_unknown_id_is_404(simulator: Any) -> None:
    sim = simulator
    other_token = sim.add_account(balance=1.0)
    with api(sim) as mine, api(sim, token=other_token) as theirs:
        request_id = submit(mine, T2I, {"prompt": "mine"})
        error_of(theirs.get(f"/v1/requests/{request_id}/status"), 403, 403001)
        error_of(theirs.get(f"/v1/requests/{request_id}/result"), 403, 403001)
        error_of(theirs.post(f"/v1/requests/{request_id}/cancel"), 403, 403001)
        error_of(mine.get(f"/v1/requests/{uuid.uuid4()}/status"), 404, 404001)
        error_of(mine.post(f"/v1/requests/{uuid.uuid4()}/cancel"), 404, 404001)
    assert sim.balance(other_token) == 1.0
    assert [r.account for r in sim.requests(route="status")] == ["account-2", "default"]


# -- validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (T2I, {}, "prompt"),
        (T2I, {"prompt": "p", "aspect_ratio": "7:3"}, "aspect_ratio"),
        (T2I, {"prompt": "p", "num_images": 5}, "num_images"),
        (T2I, {"prompt": "p", "resolution": "8K"}, "resolution"),
        (EDIT, {"prompt": "p"}, "image_urls"),
        (EDIT, {"prompt": "p", "image_urls": ["data:image/png;base64,@@not-base64@@"]}, "image_urls[0]"),
        (EDIT, {"prompt": "p", "image_urls": [image_uri(), "data:image/png;base64," + base64.b64encode(b"hello").decode()]},
         "image_urls[1]"),
        (EDIT, {"prompt": "p", "image_urls": ["ftp://example.com/a.png"]}, "image_urls[0]"),
    ],
)
def test_invalid_inputs_get_422_with_detail(simulator: Any, model: str, body: dict[str, Any], field: str) -> None:
    with api(simulator) as client:
        answer = error_of(client.post(f"/v1/models/{model}", json=body), 422, 422001)
    assert {"loc": ["body", field], "type": "value_error"}.items() <= answer["detail"][0].items()
    assert answer["detail"][0]["msg"]
    assert not simulator.jobs and simulator.balance() == 100.0


def test_unknown_fields_are_ignored_unless_the_rule_refuses_them(simulator: Any) -> None:
    body = {"prompt": "p", "negative_prompt": "x"}
    with api(simulator) as client:
        request_id = submit(client, T2I, body)
        assert "negative_prompt" not in simulator.job(request_id).inputs
        simulator.configure(input_rules=["unknown_fields"])
        answer = error_of(client.post(f"/v1/models/{T2I}", json=body), 422, 422001)
    assert {"loc": ["body", "negative_prompt"], "type": "value_error"}.items() <= answer["detail"][0].items()
    assert len(simulator.jobs) == 1


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_422(simulator: Any, raw: bytes) -> None:
    with api(simulator) as client:
        answer = error_of(client.post(f"/v1/models/{T2I}", content=raw), 422, 422001)
    assert answer["detail"][0]["loc"] == ["body"]


def test_unknown_model_and_model_catalog(simulator: Any) -> None:
    with api(simulator) as client:
        error_of(client.post("/v1/models/google/nano-banana-9/text-to-image", json={"prompt": "p"}), 400, 400001)
        error_of(client.get("/v1/models/google/nano-banana-9/text-to-image"), 404, 400001)
        plain = client.get(f"/v1/models/{EDIT}").json()
        full = client.get(f"/v1/models/{EDIT}", params={"include_schema": "true"}).json()
    assert plain["model_id"] == EDIT and plain["price_unit"] == "output" and plain["base_price_usd"] == 0.08
    assert plain["pricing_note"] and "schema" not in plain
    assert full["schema"] == catalog.input_schema(EDIT)


def test_body_over_the_limit_is_413(simulator: Any) -> None:
    assert simulator.options.max_body_bytes == 64 * 1024 * 1024
    simulator.configure(max_body_bytes=1024 * 1024)
    with api(simulator) as client:
        big = {"prompt": "p", "image_urls": [image_uri(), "data:image/png;base64," + "A" * (1024 * 1024)]}
        error_of(client.post(f"/v1/models/{EDIT}", json=big), 413, 413001)
        assert client.get(f"/v1/models/{EDIT}").status_code == 200  # same connection still usable
    assert not simulator.jobs


# -- money ------------------------------------------------------------------------------------
def test_insufficient_balance_is_402(simulator: Any) -> None:
    simulator.set_balance(0.10)
    with api(simulator) as client:
        error_of(client.post(f"/v1/models/{T2I}", json={"prompt": "p", "resolution": "2K"}), 402, 400002)
        submit(client, T2I, {"prompt": "p", "resolution": "1K"})
    assert simulator.balance() == pytest.approx(0.02)
    assert len(simulator.jobs) == 1


def test_billing_refund_on_cancel_and_include_cost(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs(queue_seconds=LONG)
    with api(sim) as client:
        queued = submit(client, T2I, {"prompt": "p", "resolution": "2K", "num_images": 3})
        assert sim.balance() == pytest.approx(100 - 0.36)
        cancelled = client.post(f"/v1/requests/{queued}/cancel").json()
        assert cancelled == {"request_id": queued, "status": "cancelled", "outcome": "cancelled"}
        assert sim.balance() == 100.0
        again = client.post(f"/v1/requests/{queued}/cancel").json()
        assert again["outcome"] == "not_cancellable" and sim.balance() == 100.0
        assert status(client, queued)["status"] == "cancelled"
        gone = result(client, queued, include_cost="true")
        assert gone["status"] == "cancelled" and gone["output"] is None and gone["cost"] == 0

        done_id = submit(client, T2I, {"prompt": "p", "resolution": "0.5K"})
        done = finished_result(sim, client, done_id, include_cost="true")
        assert done["cost"] == 0.06 and "cost" not in result(client, done_id)
    assert sim.balance() == pytest.approx(100 - 0.06)


@pytest.mark.parametrize("outcome", ["cancelled", "canceled", "cancellation_requested"])
def test_a_successful_cancel_says_so_in_the_chosen_words(simulator: Any, outcome: str) -> None:
    """Default: status and outcome "cancelled", as RunComfy's CLI and ComfyUI nodes read success."""
    sim = simulator
    if outcome != "cancelled":
        sim.configure(cancel_outcome=outcome)
    sim.script_next_jobs(queue_seconds=LONG, count=2)
    with api(sim) as client:
        first, second = submit(client, T2I, {"prompt": "1"}), submit(client, T2I, {"prompt": "2"})
        answer = client.post(f"/v1/requests/{first}/cancel").json()
        assert answer == {"request_id": first, "status": "cancelled", "outcome": outcome}
        sim.configure(cancel_body="outcome", status_words={"cancelled": "canceled"})
        assert client.post(f"/v1/requests/{second}/cancel").json() == {"request_id": second, "outcome": outcome}
        assert status(client, second)["status"] == "canceled"
    with pytest.raises(ValueError, match="cancel_outcome"):
        sim.configure(cancel_outcome="cancellation_accepted")


def test_cancel_running_or_finished_is_not_cancellable(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs(queue_seconds=0, run_seconds=LONG)
    with api(sim) as client:
        running = submit(client, T2I, {"prompt": "p"})
        answer = client.post(f"/v1/requests/{running}/cancel").json()
        assert answer == {"request_id": running, "status": "in_progress", "outcome": "not_cancellable"}
        finished = submit(client, T2I, {"prompt": "p", "resolution": "0.5K"})
        finished_result(sim, client, finished)
        answer = client.post(f"/v1/requests/{finished}/cancel").json()
        assert answer == {"request_id": finished, "status": "completed", "outcome": "not_cancellable"}
        sim.configure(cancel_body="outcome")
        assert client.post(f"/v1/requests/{running}/cancel").json() == {"request_id": running, "outcome": "not_cancellable"}
        sim.configure(cancel_body="status")
        assert client.post(f"/v1/requests/{running}/cancel").json() == {"request_id": running, "status": "in_progress"}
    assert sim.balance() == pytest.approx(100 - 0.08 - 0.06)


def test_queue_position_counts_queued_jobs_of_the_same_model(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs(queue_seconds=LONG, count=4)
    with api(sim) as client:
        first, other_model, second, third = (
            submit(client, T2I, {"prompt": "1"}),
            submit(client, EDIT, {"prompt": "e", "image_urls": [image_uri()]}),
            submit(client, T2I, {"prompt": "2"}),
            submit(client, T2I, {"prompt": "3"}),
        )
        assert [status(client, rid)["queue_position"] for rid in (first, second, third, other_model)] == [1, 2, 3, 1]
        client.post(f"/v1/requests/{first}/cancel")
        assert [status(client, rid)["queue_position"] for rid in (second, third)] == [1, 2]


def test_failed_jobs_keep_their_charge_unless_refund_failed(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs("failed", count=2, reason="backend exploded")
    with api(sim) as client:
        kept = submit(client, T2I, {"prompt": "p"})
        assert finished_result(sim, client, kept, include_cost="true")["cost"] == 0.08
        sim.configure(refund_failed=True)
        refunded = submit(client, T2I, {"prompt": "p"})
        assert finished_result(sim, client, refunded, include_cost="true")["cost"] == 0
    assert sim.balance() == pytest.approx(100 - 0.08)


def test_per_account_concurrency_limit_is_429(simulator: Any) -> None:
    simulator.configure(max_active_jobs=1)
    simulator.script_next_jobs("queued_forever")
    with api(simulator) as client:
        submit(client, T2I, {"prompt": "p"})
        limited = client.post(f"/v1/models/{T2I}", json={"prompt": "p"})
    error_of(limited, 429, 429001)
    assert limited.headers["retry-after"] == "1"


# -- result shapes ------------------------------------------------------------------------------
def test_output_styles_error_styles_and_model_id_switch(simulator: Any) -> None:
    sim = simulator
    with api(sim) as client:
        sim.configure(output_style="image", result_model_id=False)
        single = finished_result(sim, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K"}))
        assert set(single["output"]) == {"image"} and "model_id" not in single
        several = finished_result(sim, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K", "num_images": 2}))
        assert len(several["output"]["images"]) == 2 and "image" not in several["output"]
        sim.configure(output_style="both")
        both = finished_result(sim, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K"}))
        assert both["output"]["image"] == both["output"]["images"][0]
        sim.configure(error_style="object")
        sim.script_next_jobs("failed", reason="boom", error_code="E42")
        failed = finished_result(sim, client, submit(client, T2I, {"prompt": "p"}))
    assert failed["error"] == {"message": "boom", "code": "E42"} and failed["output"] is None


# -- job scripts ---------------------------------------------------------------------------------
def test_blocked_job_names_the_safety_filter(simulator: Any) -> None:
    simulator.script_next_jobs("blocked")
    with api(simulator) as client:
        done = finished_result(simulator, client, submit(client, T2I, {"prompt": "p"}))
    assert done["status"] == "failed" and "safety filter" in done["error"] and done["output"] is None


def test_never_finishes_and_queued_forever(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs("never_finishes")
    sim.script_next_jobs("queued_forever")
    with api(sim) as client:
        stuck_running = submit(client, T2I, {"prompt": "p"})
        stuck_queued = submit(client, T2I, {"prompt": "p"})
        sim.advance(10_000)
        assert status(client, stuck_running)["status"] == "in_progress"
        assert status(client, stuck_queued)["status"] == "in_queue"
        assert client.post(f"/v1/requests/{stuck_running}/cancel").json()["outcome"] == "not_cancellable"
        assert client.post(f"/v1/requests/{stuck_queued}/cancel").json()["outcome"] == "cancelled"
        assert status(client, stuck_queued)["status"] == "cancelled"


def test_status_completed_while_result_failed(simulator: Any) -> None:
    simulator.script_next_jobs("status_completed_result_failed")
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        simulator.advance(LONG)
        assert status(client, request_id)["status"] == "completed"
        done = result(client, request_id)
    assert done["status"] == "failed" and done["output"] is None and done["error"]


def test_cancelled_by_server_is_refunded(simulator: Any) -> None:
    simulator.script_next_jobs("cancelled_by_server", reason="maintenance")
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        assert simulator.balance() == pytest.approx(99.92)
        simulator.advance(LONG)
        done = result(client, request_id, include_cost="true")
    assert done["status"] == "cancelled" and done["error"] == "maintenance" and done["cost"] == 0
    assert simulator.balance() == 100.0


@pytest.mark.parametrize(
    ("host", "prefix"),
    [("127.0.0.2", "http://127.0.0.2:{port}/files/"), ("cdn.runcomfy.net", "https://cdn.runcomfy.net/files/")],
)
def test_output_host_script(simulator: Any, host: str, prefix: str) -> None:
    simulator.script_next_jobs(output_host=host)
    with api(simulator) as client:
        done = finished_result(simulator, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K"}))
    assert done["output"]["images"][0].startswith(prefix.format(port=simulator.port))


def test_unusual_status_words(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs(queue_seconds=LONG, run_seconds=LONG, count=1,
                         status_words={"in_queue": "pending", "in_progress": "processing", "completed": "succeeded"})
    sim.script_next_jobs(queue_seconds=LONG, status_words={"cancelled": "canceled"})
    sim.script_next_jobs(queue_seconds=0, run_seconds=LONG, status_words={"in_progress": "mulling_it_over"})
    with api(sim) as client:
        first = submit(client, T2I, {"prompt": "p", "resolution": "0.5K"})
        second = submit(client, T2I, {"prompt": "p"})
        third = submit(client, T2I, {"prompt": "p"})
        assert status(client, first)["status"] == "pending" and status(client, first)["queue_position"] == 1
        assert client.post(f"/v1/requests/{second}/cancel").json()["status"] == "canceled"
        assert status(client, third)["status"] == "mulling_it_over"
        sim.advance(LONG)
        assert status(client, first)["status"] == "processing"
        sim.advance(LONG)
        assert finished_result(sim, client, first)["status"] == "succeeded"


# -- faults -----------------------------------------------------------------------------------
def test_http_error_fault_with_retry_after_then_recovers(simulator: Any) -> None:
    sim = simulator
    with api(sim) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        sim.add_fault("status", "http_error", status=503, retry_after=2, times=2)
        for _ in range(2):
            answer = client.get(f"/v1/requests/{request_id}/status")
            assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
            assert answer.json()["error_code"] == 500001
        assert client.get(f"/v1/requests/{request_id}/result").status_code == 200  # other routes unaffected
        assert client.get(f"/v1/requests/{request_id}/status").status_code == 200
        sim.add_fault("submit", "http_error", status=429, error_message="slow down", retry_after=1)
        error_of(client.post(f"/v1/models/{T2I}", json={"prompt": "p"}), 429, 429001)
        sim.add_fault("result", "http_error", status=502, body="<html>Bad Gateway</html>")
        proxy = client.get(f"/v1/requests/{request_id}/result")
        assert proxy.status_code == 502 and proxy.headers["content-type"].startswith("text/html")
    assert [r.fault for r in sim.requests(route="status")] == ["http_error", "http_error", None]
    assert len(sim.jobs) == 1  # the 429 submit created nothing


def test_fault_matches_request_id_and_model(simulator: Any) -> None:
    sim = simulator
    with api(sim) as client:
        first, second = submit(client, T2I, {"prompt": "1"}), submit(client, T2I, {"prompt": "2"})
        sim.add_fault("status", "http_error", status=500, request_id=second)
        sim.add_fault("submit", "http_error", status=500, model_id=EDIT)
        assert client.get(f"/v1/requests/{first}/status").status_code == 200
        assert client.get(f"/v1/requests/{second}/status").status_code == 500
        submit(client, T2I, {"prompt": "3"})
        assert client.post(f"/v1/models/{EDIT}", json={"prompt": "e", "image_urls": [image_uri()]}).status_code == 500
    assert not sim.faults.pending()


def test_ok_with_error_code_and_malformed_json(simulator: Any) -> None:
    sim = simulator
    with api(sim) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        sim.add_fault("result", "ok_with_error_code", error_code=400004, error_message="token expired")
        answer = client.get(f"/v1/requests/{request_id}/result")
        assert answer.status_code == 200 and answer.json() == {"error_code": 400004, "error_message": "token expired"}
        sim.add_fault("status", "malformed_json")
        broken = client.get(f"/v1/requests/{request_id}/status")
        assert broken.status_code == 200
        with pytest.raises(ValueError):
            broken.json()


def test_drop_before_processing_creates_nothing(simulator: Any) -> None:
    simulator.add_fault("submit", "drop")
    with api(simulator) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post(f"/v1/models/{T2I}", json={"prompt": "p"})
    assert not simulator.jobs and simulator.balance() == 100.0
    [record] = simulator.requests(route="submit")
    assert record.status is None and record.fault == "drop" and record.request_id is None


@pytest.mark.parametrize("kind", ["drop", "malformed_json", "http_error"])
def test_answer_lost_after_processing_still_creates_and_bills_the_job(simulator: Any, kind: str) -> None:
    sim = simulator
    sim.add_fault("submit", kind, after_processing=True, status=504 if kind == "http_error" else None)
    with api(sim) as client:
        try:
            answer = client.post(f"/v1/models/{T2I}", json={"prompt": "p"})
            assert answer.status_code != 200 or not answer.text.endswith("}")
        except httpx.RemoteProtocolError:
            assert kind == "drop"
        [record] = sim.requests(route="submit")
        [job] = sim.jobs.values()
        assert record.request_id == job.request_id and record.fault == kind
        assert sim.balance() == pytest.approx(99.92)
        assert status(client, job.request_id)["request_id"] == job.request_id  # the job is real


def test_delay_fault(simulator: Any) -> None:
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        simulator.add_fault("status", "delay", seconds=0.3)
        started = time.monotonic()
        assert client.get(f"/v1/requests/{request_id}/status").status_code == 200
        assert time.monotonic() - started >= 0.3
        assert client.get(f"/v1/requests/{request_id}/status").status_code == 200
    assert [r.fault for r in simulator.requests(route="status")] == ["delay", None]


def test_file_redirect_faults(simulator: Any) -> None:
    sim = simulator
    url = completed_file_url(sim)
    sim.add_fault("file", "redirect")
    hop = get(url)
    assert hop.status_code == 302 and hop.headers["location"].startswith(url) and "redirected=1" in hop.headers["location"]
    assert get(hop.headers["location"]).status_code == 200
    sim.add_fault("file", "redirect", host="127.0.0.2", status=307)
    away = get(url)
    assert away.status_code == 307 and away.headers["location"].startswith(f"http://127.0.0.2:{sim.port}/files/")
    sim.add_fault("file", "redirect", location="https://elsewhere.example/x.png")
    assert get(url).headers["location"] == "https://elsewhere.example/x.png"


def test_file_not_image_truncated_and_slow(simulator: Any) -> None:
    sim = simulator
    url = completed_file_url(sim)
    full = get(url).content
    sim.add_fault("file", "not_image")
    page = get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html") and b"<html" in page.content
    sim.add_fault("file", "truncated")
    with pytest.raises(httpx.RemoteProtocolError):
        get(url)
    sim.add_fault("file", "slow", seconds=0.3)
    started = time.monotonic()
    assert get(url).content == full
    assert time.monotonic() - started >= 0.25
    assert [r.fault for r in sim.requests(route="file")] == [None, "not_image", "truncated", "slow"]


@pytest.mark.parametrize("chunked", [False, True])
def test_file_oversize_streams_more_than_any_cap(simulator: Any, chunked: bool) -> None:
    url = completed_file_url(simulator)
    simulator.add_fault("file", "oversize", chunked=chunked)
    received = 0
    with httpx.stream("GET", url, verify=TLS) as response:
        assert response.status_code == 200
        if chunked:
            assert "content-length" not in response.headers
        else:
            assert int(response.headers["content-length"]) == 64 * 1024 * 1024
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > 4 * 1024 * 1024:
                break  # a client with a cap stops here
    assert received > 4 * 1024 * 1024


def test_file_route_needs_no_auth_and_records_auth_header(simulator: Any) -> None:
    url = completed_file_url(simulator)
    assert get(url).status_code == 200
    assert get(url, headers={"Authorization": f"Bearer {simulator.token}"}).status_code == 200
    assert [r.auth_header_sent for r in simulator.requests(route="file")] == [False, True]
    assert get(url.replace("/0.png", "/5.png")).status_code == 404
    head = httpx.head(url, verify=TLS)
    assert head.status_code == 200 and int(head.headers["content-length"]) > 0 and head.content == b""


def test_file_ttl_expiry(simulator: Any) -> None:
    url = completed_file_url(simulator)
    simulator.configure(file_ttl_seconds=60)
    assert get(url).status_code == 200
    simulator.advance(61)
    expired = get(url)
    assert expired.status_code == 403 and b"expired" in expired.content


def test_oldest_files_expire_beyond_the_memory_cap(simulator: Any) -> None:
    first = completed_file_url(simulator)
    simulator.configure(max_file_bytes=1)
    second = completed_file_url(simulator)
    assert get(first).status_code == 403 and get(second).status_code == 200
    [job] = [j for j in simulator.jobs.values() if j.request_id in first]
    assert job.files_evicted and all(item.data is None for item in job.images)


def test_job_keeps_inputs_without_inline_bytes(simulator: Any) -> None:
    with api(simulator) as client:
        request_id = submit(client, EDIT, {"prompt": "p", "image_urls": [image_uri((64, 48))], "resolution": "0.5K"})
    job = simulator.job(request_id)
    assert job.inputs["image_urls"][0].startswith("data:image/png;base64,...(")
    assert job.images[0].size == (64, 48)


# -- log, control API, CLI ---------------------------------------------------------------------
def test_log_never_contains_a_token(simulator: Any) -> None:
    sim = simulator
    other = sim.add_account(balance=5)
    with api(sim) as client, api(sim, token=other) as theirs:
        request_id = submit(client, T2I, {"prompt": "p"})
        theirs.get(f"/v1/requests/{request_id}/status")
        get(f"{sim.url}/v1/models/{T2I}", headers={"Authorization": "Bearer not-" + sim.token})
        get(f"{sim.url}/v1/requests/{request_id}/status?token={sim.token}")
        finished_result(sim, client, request_id)
        control_log = get(f"{sim.url}/_sim/log", headers={"Authorization": f"Bearer {sim.token}"}).text
    dumped = json.dumps([r.to_json() for r in sim.requests()])
    for text in (dumped, control_log):
        assert sim.token not in text and other not in text
    assert len(sim.requests()) >= 5


def test_control_endpoints(simulator: Any) -> None:
    sim = simulator
    control = httpx.Client(base_url=f"{sim.url}/_sim", headers={"Authorization": f"Bearer {sim.token}"}, verify=TLS)
    with control, api(sim) as client:
        assert get(f"{sim.url}/_sim/health").json() == {"ok": True}
        assert get(f"{sim.url}/_sim/state").status_code == 401
        assert control.post("/faults", json={"route": "status", "kind": "http_error", "status": 500}).status_code == 200
        assert control.post("/faults", json={"route": "status", "kind": "bogus"}).status_code == 422
        assert control.post("/scripts", json=[{"outcome": "blocked"}, {"queue_seconds": 1000}]).status_code == 200
        blocked = submit(client, T2I, {"prompt": "p"})
        queued = submit(client, T2I, {"prompt": "p"})
        assert client.get(f"/v1/requests/{blocked}/status").status_code == 500
        assert status(client, queued)["status"] == "in_queue"
        assert control.post("/advance", json={"seconds": 1000}).status_code == 200
        assert status(client, queued)["status"] != "in_queue"
        assert "safety filter" in finished_result(sim, client, blocked)["error"]
        records = control.get("/log", params={"route": "submit"}).json()["records"]
        assert [r["request_id"] for r in records] == [blocked, queued]
        assert control.post("/config", json={"error_style": "object"}).json()["error_style"] == "object"
        created = control.post("/accounts", json={"balance": 2.5}).json()
        assert created["balance"] == 2.5 and sim.balance(created["token"]) == 2.5
        jobs = control.get("/jobs").json()["jobs"]
        assert [j["request_id"] for j in jobs] == [blocked, queued]
        assert control.post("/reset").status_code == 200
        state = control.get("/state").json()
    assert state["jobs"] == 0 and state["faults"] == [] and state["options"]["error_style"] == "string"
    assert state["accounts"] == [{"name": "default", "balance": 100.0}]


def test_responses_keep_alive_with_content_length(simulator: Any) -> None:
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        answers = [client.get(f"/v1/requests/{request_id}/status") for _ in range(3)]
        answers.append(client.get("/v1/nowhere"))
        answers.append(client.get(f"/v1/requests/{request_id}/cancel"))
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 405]
    assert all("content-length" in a.headers and a.headers.get("connection") != "close" for a in answers)


def test_start_and_stop_are_fast() -> None:
    started = time.monotonic()
    for _ in range(5):
        with server.Simulator() as sim:
            with httpx.Client(base_url=sim.url, verify=TLS) as client:  # an idle keep-alive connection must not block stop
                client.get("/_sim/health")
    assert time.monotonic() - started < 2


@pytest.mark.anyio
async def test_concurrent_submits_bill_exactly(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs("queued_forever", count=8)  # nothing to render: this test is about billing
    headers = {"Authorization": f"Bearer {sim.token}"}
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=sim.url, headers=headers, verify=TLS) as client:
        async def one(index: int) -> None:
            model, body = (T2I, {"prompt": f"p{index}", "resolution": "0.5K"}) if index % 2 else (
                EDIT, {"prompt": f"e{index}", "image_urls": [image_uri()], "resolution": "0.5K"})
            answer = await client.post(f"/v1/models/{model}", json=body)
            assert answer.status_code == 200
            ids.append(answer.json()["request_id"])

        async with anyio.create_task_group() as group:
            for index in range(8):
                group.start_soon(one, index)
    assert len(set(ids)) == 8 and sim.balance() == pytest.approx(100 - 8 * 0.06)


def test_cli_runs_from_the_pack_command_line_and_prints_url_and_token() -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    process = subprocess.Popen(
        [sys.executable, str(PACK_ROOT), "simulator", "--port", "0", "--queue-seconds", "0", "--run-seconds", "0"],
        cwd=Path(PACK_ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        url = lines[1].strip().split("=", 1)[1]
        token = lines[2].strip().split("=", 1)[1]
        assert lines[1].startswith("RUNCOMFY_API_BASE_URL=http://127.0.0.1:") and len(token) >= 32
        answer = get(f"{url}/v1/models/{T2I}", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_simulator_runs_without_httpx_or_the_client() -> None:
    """It shares no code with the client it tests: starting it, submitting and
    reading model info load neither httpx nor any module of ``client/``."""
    script = textwrap.dedent(f"""
        import http.client, importlib, importlib.util, json, sys
        spec = importlib.util.spec_from_file_location(
            "pack", {str(PACK_ROOT / "__init__.py")!r}, submodule_search_locations=[{str(PACK_ROOT)!r}])
        sys.modules["pack"] = importlib.util.module_from_spec(spec)  # as __main__.py does: the nodes stay unloaded
        server = importlib.import_module("pack.simulator.server")
        importlib.import_module("pack.simulator.cli")
        with server.Simulator(queue_seconds=0, run_seconds=0) as sim:
            connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
            headers = {{"Authorization": "Bearer " + sim.token, "Content-Type": "application/json"}}
            connection.request("POST", "/v1/models/{T2I}", json.dumps({{"prompt": "p"}}), headers)
            assert connection.getresponse().read() and sim.jobs
            connection.request("GET", "/v1/models/{T2I}?include_schema=true", headers=headers)
            assert json.loads(connection.getresponse().read())["schema"]
        print(json.dumps(sorted(n for n in sys.modules if n.split(".")[0] == "httpx" or n.startswith("pack.client"))))
    """)
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_simulator_modules_form_no_import_cycle_and_reach_outside_nothing() -> None:
    graph: dict[str, set[str]] = {}
    for path in (PACK_ROOT / "simulator").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) \.\.", source, re.M), f"{path.name} imports outside simulator/"
        graph[path.stem] = set(re.findall(r"^from \.(\w+) import", source, re.M))
        graph[path.stem] |= {name.strip() for names in re.findall(r"^from \. import (.+)$", source, re.M)
                             for name in names.split(",")}
    assert graph["handler"] <= {"wire", "error_codes"} and "server" not in graph["control"] | graph["routes"]
    list(graphlib.TopologicalSorter(graph).static_order())  # CycleError if modules import each other


def test_the_command_line_sets_the_pairings_and_the_cancel_and_catalog_readings(capsys: Any) -> None:
    cli = pack_import("simulator.cli")
    ready, stop = threading.Event(), threading.Event()
    argv = ["--port", "0", "--error-status", "400004=400", "--error-status", "404001=400",
            "--cancel-outcome", "canceled", "--public-catalog"]
    runner = threading.Thread(target=cli.main, args=(argv,), kwargs={"ready": ready, "stop": stop}, daemon=True)
    runner.start()
    try:
        assert ready.wait(30)
        printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if "=" in line
                       and line.startswith("RUNCOMFY_"))
        url, token = printed["RUNCOMFY_API_BASE_URL"], printed["RUNCOMFY_API_TOKEN"]
        config = httpx.get(f"{url}/_sim/config", headers={"Authorization": f"Bearer {token}"}, verify=TLS).json()
        assert config["error_statuses"] == {"400004": 400, "404001": 400}
        assert config["cancel_outcome"] == "canceled" and config["public_catalog"] is True
        assert httpx.get(f"{url}/v1/models", verify=TLS).json()["total"] == 2
        error_of(httpx.get(f"{url}/v1/requests/{uuid.uuid4()}/status", verify=TLS), 400, 400004)
    finally:
        stop.set()
        runner.join(10)
    assert cli.main(["--port", "0", "--error-status", "400004"]) == 1
    assert "CODE=STATUS" in capsys.readouterr().err
    assert cli.main(["--port", "0", "--error-status", "123=400"]) == 1
    assert "unknown error code" in capsys.readouterr().err
