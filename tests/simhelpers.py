"""Helpers for the simulator's own tests: raw HTTP calls, no pack client.

Tests synchronise on the simulator's own state (``sim.advance`` moves its
clock, ``sim.wait_until`` polls with a deadline), never on a bare sleep.
"""

from __future__ import annotations

import base64
import io
import ssl
from typing import Any

import httpx
from PIL import Image

from packloader import pack_import

catalog = pack_import("simulator.catalog")

T2I = catalog.TEXT_TO_IMAGE
EDIT = catalog.EDIT
LONG = 30.0  # seconds a scripted phase lasts; tests step over it with sim.advance()
# Everything here is plain http on loopback; one shared TLS context spares every
# httpx client the ~50 ms of loading the CA bundle.
TLS = ssl.create_default_context()


def other_token(token: str) -> str:
    """A token of the same shape that differs from ``token`` in its first character.

    Replacing that character with a fixed letter would return ``token`` itself
    whenever the random token happens to start with that letter (1 run in 64).
    """
    return ("x" if token[0] != "x" else "y") + token[1:]


def api(sim: Any, token: str | None = None, **kwargs: Any) -> httpx.Client:
    """A client for /v1 with the simulator's token (or ``token``)."""
    return httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer {token or sim.token}"}, verify=TLS, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    """A one-off GET without the API token (how a CDN file is fetched)."""
    return httpx.get(url, verify=TLS, **kwargs)


def submit(client: httpx.Client, model: str, body: dict[str, Any]) -> str:
    response = client.post(f"/v1/models/{model}", json=body)
    assert response.status_code == 200, response.text
    return response.json()["request_id"]


def status(client: httpx.Client, request_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/requests/{request_id}/status")
    assert response.status_code == 200, response.text
    return response.json()


def result(client: httpx.Client, request_id: str, **params: str) -> dict[str, Any]:
    response = client.get(f"/v1/requests/{request_id}/result", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def finished_result(sim: Any, client: httpx.Client, request_id: str, **params: str) -> dict[str, Any]:
    """Skip the job's timers, wait (with a deadline) for its render, then read /result."""
    sim.advance_to_finish(request_id)
    sim.wait_until(lambda: sim.state(request_id) in ("completed", "failed", "cancelled"), timeout=15)
    return result(client, request_id, **params)


def image_uri(size: tuple[int, int] = (300, 200), colour: tuple[int, int, int] = (220, 20, 20), fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def download(url: str) -> Image.Image:
    response = get(url)  # no Authorization header, as a CDN download
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def error_of(response: httpx.Response, status_code: int, error_code: int) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert body["error_code"] == error_code and body["error_message"]
    return body


def completed_file_url(sim: Any, **body: Any) -> str:
    """The first file URL of a finished 0.5K text-to-image job."""
    with api(sim) as client:
        done = finished_result(sim, client, submit(client, T2I, {"prompt": "p", "resolution": "0.5K", **body}))
    return done["output"]["images"][0]
