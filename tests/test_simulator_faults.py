"""The faults a client must ride out once a job exists (issue 8), on the wire:
transport faults first, then job scripts whose answers look like success.

Each test asserts what a plain HTTP client sees and what the simulator's log
recorded; counts (``times=N``), held answers released by the test and the
simulator's movable clock replace every sleep.
"""

from __future__ import annotations

import http.client
import io
import socket
import struct
from contextlib import closing
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from packloader import pack_import
from simhelpers import T2I, TLS, api, completed_file_url, download, error_of, finished_result, get, status, submit

faults = pack_import("simulator.faults")
images = pack_import("simulator.images")


def test_an_outage_of_n_polls_on_status_and_result(simulator: Any) -> None:
    sim = simulator
    with api(sim) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        sim.add_fault("status", "http_error", status=503, times=3)
        sim.add_fault("result", "drop", times=2)
        assert [client.get(f"/v1/requests/{request_id}/status").status_code for _ in range(4)] == [503, 503, 503, 200]
        for _ in range(2):
            with pytest.raises(httpx.RemoteProtocolError):
                client.get(f"/v1/requests/{request_id}/result")
        assert client.get(f"/v1/requests/{request_id}/result").status_code == 200
    assert [r.fault for r in sim.requests(route="status")] == ["http_error"] * 3 + [None]
    assert [(r.fault, r.status) for r in sim.requests(route="result")] == [("drop", None)] * 2 + [(None, 200)]
    assert not sim.faults.pending()


@pytest.mark.parametrize("value", [0, -5, "1e9", 1_000_000_000, "Thu, 01 Jan 2099 00:00:00 GMT", "soon, maybe"])
def test_retry_after_is_sent_verbatim_however_hostile(simulator: Any, value: object) -> None:
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        simulator.add_fault("status", "http_error", status=429, retry_after=value)
        answer = client.get(f"/v1/requests/{request_id}/status")
    error_of(answer, 429, 429001)
    assert answer.headers["retry-after"] == str(value)


def test_retry_after_cannot_smuggle_a_header(simulator: Any) -> None:
    with pytest.raises(ValueError):
        simulator.add_fault("status", "http_error", status=429, retry_after="1\r\nSet-Cookie: x=1")


def test_a_transient_404_right_after_submit(simulator: Any) -> None:
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        simulator.add_fault("status", "http_error", status=404, request_id=request_id)
        error_of(client.get(f"/v1/requests/{request_id}/status"), 404, 404001)
        assert status(client, request_id)["request_id"] == request_id


@pytest.mark.parametrize(("route", "body"), [("status", None), ("result", '["completed"]'), ("result", "null")])
def test_json_body_that_is_not_an_object(simulator: Any, route: str, body: str | None) -> None:
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        simulator.add_fault(route, "json_body", body=body)
        answer = client.get(f"/v1/requests/{request_id}/{route}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == ([] if body is None else httpx.Response(200, content=body).json())
    with pytest.raises(ValueError):
        simulator.add_fault(route, "json_body", body="[not json")


def test_html_413_from_a_proxy_on_submit_creates_nothing(simulator: Any) -> None:
    page = "<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>"
    simulator.add_fault("submit", "http_error", status=413, body=page)
    with api(simulator) as client:
        answer = client.post(f"/v1/models/{T2I}", json={"prompt": "p"})
    assert answer.status_code == 413 and answer.headers["content-type"].startswith("text/html")
    assert answer.text == page and not simulator.jobs


def test_error_message_can_echo_the_callers_token(simulator: Any) -> None:
    simulator.add_fault("model", "http_error", status=401, error_message="x" * 190 + " token {token} rejected")
    with api(simulator) as client:
        answer = client.get(f"/v1/models/{T2I}")
    assert f"token {simulator.token} rejected" in answer.json()["error_message"]
    assert simulator.token not in str([rule.to_json() for rule, _ in simulator.faults.pending()])
    assert simulator.token not in str([r.to_json() for r in simulator.requests()])


@pytest.mark.parametrize("kind", ["http_error", "drop", "truncated"])
def test_flaky_file_gets_for_the_next_n_requests_only(simulator: Any, kind: str) -> None:
    sim = simulator
    url = completed_file_url(sim)
    whole = get(url).content
    sim.add_fault("file", kind, times=2, **({"status": 503} if kind == "http_error" else {}))
    for _ in range(2):
        if kind == "http_error":
            assert get(url).status_code == 503
        else:
            with pytest.raises(httpx.RemoteProtocolError):
                get(url)
    assert get(url).content == whole
    assert [r.fault for r in sim.requests(route="file")] == [None, kind, kind, None]


def test_redirect_on_an_api_route(simulator: Any) -> None:
    with api(simulator) as client:
        request_id = submit(client, T2I, {"prompt": "p"})
        simulator.add_fault("status", "redirect", status=307, location="http://127.0.0.1:9/elsewhere")
        hop = client.get(f"/v1/requests/{request_id}/status")
    assert hop.status_code == 307 and hop.headers["location"] == "http://127.0.0.1:9/elsewhere"


def open_trickle(sim: Any, **params: Any) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, bytes]:
    """A file GET under a ``trickle`` fault, its response and the full file."""
    url = completed_file_url(sim)
    whole = get(url).content
    sim.add_fault("file", "trickle", **params)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("GET", parts.path)
    return connection, connection.getresponse(), whole


def test_trickle_sends_the_whole_file_piece_by_piece(simulator: Any) -> None:
    connection, response, whole = open_trickle(simulator, size=65536, seconds=0.01)
    with closing(connection):
        assert int(response.headers["content-length"]) == len(whole)
        assert response.read() == whole


def test_trickle_stops_as_soon_as_the_client_hangs_up(simulator: Any) -> None:
    sim = simulator
    connection, response, whole = open_trickle(sim, seconds=30)  # one byte, then 30 s to the next
    assert response.read(1) == whole[:1]
    sim.wait_until(lambda: sim.open_connections() == 1)  # the earlier downloads' connections are gone
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    sim.wait_until(lambda: sim.open_connections() == 0, timeout=10)  # long before the next byte is due


def test_trickle_stops_when_the_simulator_stops(simulator: Any) -> None:
    connection, response, whole = open_trickle(simulator, seconds=30)
    with closing(connection):
        assert response.read(1) == whole[:1]
        simulator.stop()
        with pytest.raises(http.client.IncompleteRead):
            response.read()


def test_hold_keeps_a_submit_answer_until_released(simulator: Any) -> None:
    """The job exists (and is billed) while its answer is still on the way:
    the moment a client's Stop or cancel must cope with."""
    sim = simulator
    rule = sim.add_fault("submit", "hold", after_processing=True)
    with api(sim) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, f"/v1/models/{T2I}", json={"prompt": "p"})
        sim.wait_until(lambda: sim.held(rule) == 1)
        [job] = sim.jobs.values()
        assert not pending.done() and sim.balance() == pytest.approx(99.92)
        assert status(client, job.request_id)["request_id"] == job.request_id  # other calls go on meanwhile
        sim.release(rule)
        assert pending.result(timeout=10).json()["request_id"] == job.request_id
    assert sim.held(rule) == 0
    assert [r.fault for r in sim.requests(route="submit")] == ["hold"]


def test_delay_and_hold_are_released_over_the_control_api(simulator: Any) -> None:
    sim = simulator
    control = httpx.Client(base_url=f"{sim.url}/_sim", headers={"Authorization": f"Bearer {sim.token}"}, verify=TLS)
    with control, api(sim) as client, ThreadPoolExecutor(2) as pool:
        [delay, hold] = control.post("/faults", json=[
            {"route": "model", "kind": "delay", "seconds": 60}, {"route": "model", "kind": "hold"}]).json()["faults"]
        first = pool.submit(client.get, f"/v1/models/{T2I}")
        second = pool.submit(client.get, f"/v1/models/{T2I}")
        sim.wait_until(lambda: sim.faults.held(delay["id"]) == 1 and sim.faults.held(hold["id"]) == 1)
        for rule in (delay, hold):
            assert control.post("/release", json={"id": rule["id"]}).status_code == 200
        assert first.result(timeout=10).status_code == second.result(timeout=10).status_code == 200


def test_stop_releases_held_requests(simulator: Any) -> None:
    rule = simulator.add_fault("status", "hold")
    with api(simulator) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, f"/v1/requests/{'0' * 8}/status")
        simulator.wait_until(lambda: simulator.held(rule) == 1)
        simulator.stop()  # the held request ends at once: answered (404, no such job) or cut off
        try:
            assert pending.result(timeout=10).status_code == 404
        except httpx.TransportError:
            pass


@pytest.mark.parametrize("kind", ["drop", "hold", "http_error"])
def test_the_model_route_can_be_unreachable_or_slow(simulator: Any, kind: str) -> None:
    sim = simulator
    rule = sim.add_fault("model", kind, status=503 if kind == "http_error" else None)
    with api(sim) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.get, f"/v1/models/{T2I}")
        if kind == "hold":
            sim.wait_until(lambda: sim.held(rule) == 1)
            assert not pending.done()
            sim.release(rule)
            assert pending.result(timeout=10).status_code == 200
        elif kind == "drop":
            with pytest.raises(httpx.RemoteProtocolError):
                pending.result(timeout=10)
        else:
            error_of(pending.result(timeout=10), 503, 500001)
    assert [r.fault for r in sim.requests(route="model")] == [kind]


def test_the_control_api_takes_every_new_fault_kind_as_json(simulator: Any) -> None:
    sim = simulator
    control = httpx.Client(base_url=f"{sim.url}/_sim", headers={"Authorization": f"Bearer {sim.token}"}, verify=TLS)
    rules = [
        {"route": "status", "kind": "json_body", "body": "[]", "times": 3},
        {"route": "result", "kind": "http_error", "status": 429, "retry_after": "Thu, 01 Jan 2099 00:00:00 GMT"},
        {"route": "submit", "kind": "hold", "after_processing": True},
        {"route": "file", "kind": "trickle", "size": 1, "seconds": 2},
        {"route": "any", "kind": "redirect", "host": "127.0.0.2"},
    ]
    with control:
        answer = control.post("/faults", json=rules)
        assert answer.status_code == 200, answer.text
        assert [rule["kind"] for rule in control.get("/faults").json()["faults"]] == [r["kind"] for r in rules]
        bad = control.post("/faults", json={"route": "status", "kind": "trickle"})
        assert bad.status_code == 422 and "only applies to route 'file'" in bad.json()["error_message"]
    assert faults.KINDS == faults.GENERIC_KINDS + faults.FILE_KINDS


# Job scripts: answers that look like success and are not.
def test_completed_with_an_error_beside_its_image(simulator: Any) -> None:
    sim = simulator
    sim.script_next_jobs(reason="safety: blocked", count=2)
    with api(sim) as client:
        request_id = submit(client, T2I, {"prompt": "p", "resolution": "0.5K"})
        done = finished_result(sim, client, request_id)
        assert status(client, request_id)["status"] == "completed"
        sim.configure(error_style="object")
        second = finished_result(sim, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K"}))
    assert done["status"] == "completed" and done["error"] == "safety: blocked"
    assert download(done["output"]["images"][0]).format == "PNG"
    assert second["error"] == {"message": "safety: blocked", "code": "completed_with_error"}


@pytest.mark.parametrize(("output", "expected"), [("no_images", {"images": []}), ("empty", {}), ("null", None)])
def test_completed_without_images(simulator: Any, output: str, expected: Any) -> None:
    simulator.script_next_jobs(output=output, reason="safety: blocked" if output == "no_images" else None)
    with api(simulator) as client:
        done = finished_result(simulator, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K"}))
    assert done["status"] == "completed" and done["output"] == expected
    assert done["error"] == ("safety: blocked" if output == "no_images" else None)


def test_completed_with_no_output_key_at_all(simulator: Any) -> None:
    simulator.script_next_jobs(output="absent")
    with api(simulator) as client:
        done = finished_result(simulator, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K"}))
    assert done["status"] == "completed" and "output" not in done and done["error"] is None


def test_malformed_output_urls(simulator: Any) -> None:
    simulator.script_next_jobs(output_urls=["{url}\tx", "http://127.0.0.1:1/a b.png", "not a url"])
    with api(simulator) as client:
        done = finished_result(simulator, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K"}))
    first, second, third = done["output"]["images"]
    assert first.endswith(".png\tx") and get(first[:-2]).status_code == 200  # the real file is still there
    assert (second, third) == ("http://127.0.0.1:1/a b.png", "not a url")


def test_one_job_mixes_orientations_and_sizes(simulator: Any) -> None:
    ratios = ["21:9", "9:16", "1:1"]
    simulator.script_next_jobs(aspect_ratios=ratios)
    with api(simulator) as client:
        body = {"prompt": "p", "resolution": "0.5K", "num_images": 4, "aspect_ratio": "4:3"}
        done = finished_result(simulator, client, submit(client, T2I, body))
    sizes = [download(url).size for url in done["output"]["images"]]
    assert sizes == [images.expected_size(ratio, "0.5K") for ratio in ratios + ratios[:1]]


def served(sim: Any, **script: Any) -> httpx.Response:
    sim.script_next_jobs(**script)
    answer = get(completed_file_url(sim))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert int(answer.headers["content-length"]) == len(answer.content)
    return answer


@pytest.mark.parametrize(("content", "signature"), [
    ("gif", b"GIF8"), ("corrupt_png", b"\x89PNG\r\n\x1a\n"), ("corrupt_jpeg", b"\xff\xd8\xff"),
])
def test_files_that_pass_for_an_image_at_a_glance(simulator: Any, content: str, signature: bytes) -> None:
    data = served(simulator, file_content=content).content
    assert data.startswith(signature)
    if content == "gif":
        assert Image.open(io.BytesIO(data)).format == "GIF"  # decodable, just not a format Gemini returns
    else:
        with pytest.raises((OSError, SyntaxError)):
            Image.open(io.BytesIO(data)).load()


def test_a_png_header_announcing_ten_billion_pixels(simulator: Any) -> None:
    data = served(simulator, file_content="huge_png").content
    assert data[12:16] == b"IHDR" and struct.unpack(">II", data[16:24]) == (100_000, 100_000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


def test_a_truncated_image_served_whole(simulator: Any) -> None:
    whole = get(completed_file_url(simulator)).content
    cut = served(simulator, file_content="truncated_image").content  # same inputs, so the same render
    assert cut == whole[: len(whole) // 2]
    with pytest.raises(OSError):
        Image.open(io.BytesIO(cut)).load()


def test_the_control_api_takes_every_new_script_field_as_json(simulator: Any) -> None:
    sim = simulator
    control = httpx.Client(base_url=f"{sim.url}/_sim", headers={"Authorization": f"Bearer {sim.token}"}, verify=TLS)
    scripts = [{"reason": "safety: blocked", "output": "no_images"}, {"output_urls": ["{url}\t"]},
               {"file_content": "huge_png"}, {"aspect_ratios": ["16:9", "9:16"]}]
    with control:
        assert control.post("/scripts", json=scripts).status_code == 200
        assert [s["remaining"] for s in control.get("/scripts").json()["scripts"]] == [1, 1, 1, 1]
        for bad in ({"output": "nothing"}, {"aspect_ratios": ["7:3"]}, {"output_urls": "x"}, {"file_content": "bmp"}):
            assert control.post("/scripts", json=bad).status_code == 422, bad
