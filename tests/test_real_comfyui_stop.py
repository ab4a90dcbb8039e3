"""Stop (``POST /interrupt``, what the editor's Stop button sends) in a real ComfyUI, on both
interrupt contracts: ``InterruptProcessingException`` as an ``Exception`` (``COMFYUI_PATH``,
ComfyUI of October 2025) and as a ``BaseException`` (``COMFYUI_2026_PATH``: a checkout with
ComfyUI's 2026 contract). Each checkout is tested when its variable is set.

The simulator holds the job queued (it is cancelled, nothing billed) or running (it cannot be
cancelled and may still be billed); its request log says what reached RunComfy: exactly one
submit, one cancel for that request id. ``/history`` must name the request id, and ComfyUI must
run the next prompt. Reuses the harness of ``test_real_comfyui``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

import test_real_comfyui as harness
from test_real_comfyui import T2I, wait_for, wait_for_history

COMFYUI_2026_PATH = os.environ.get("COMFYUI_2026_PATH", "")
# (checkout, the base class its InterruptProcessingException must have)
CHECKOUTS = [pytest.param((path, base), id=label) for label, path, base in (
    ("oct2025-exception", harness.COMFYUI_PATH, "Exception"),
    ("2026-base-exception", COMFYUI_2026_PATH, "BaseException")) if path]
HELD_SECONDS = 3600.0  # a job the simulator keeps queued or running until the test moves its clock
WAIT_SECONDS = 120.0

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(
    not CHECKOUTS or harness._skip_reason() is not None,
    reason=harness._skip_reason() or "COMFYUI_PATH / COMFYUI_2026_PATH are not set")]

sim = harness.sim  # the module's simulator (queue 0.2 s, run 0.5 s unless a job is scripted)


@contextlib.contextmanager
def comfyui_at(checkout: str, base: Path, env: dict[str, str], *args: str) -> Iterator[harness.ComfyUI]:
    """``harness.running_comfyui`` from another checkout (the harness reads ``COMFYUI_PATH``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "COMFYUI_PATH", checkout)
        with harness.running_comfyui(base, env, *args) as server:
            yield server


def comfy_env(sim: Any, base: Path) -> dict[str, str]:
    return {
        "RUNCOMFY_API_BASE_URL": sim.url, "RUNCOMFY_WWW_BASE_URL": sim.www_url,
        "RUNCOMFY_ACCOUNT_BASE_URL": sim.api_url, "RUNCOMFY_API_TOKEN": sim.token,
        "RUNCOMFY_CONFIG": str(base / "no-runcomfy-config.json"), "RUNCOMFY_DATA_DIR": str(base / "runcomfy-data"),
    }


@pytest.fixture(scope="module", params=CHECKOUTS)
def comfy(request: pytest.FixtureRequest, sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    checkout, contract = request.param
    source = (Path(checkout) / "comfy" / "model_management.py").read_text(encoding="utf-8")
    assert f"class InterruptProcessingException({contract}):" in source, f"{checkout} has not the {contract} contract"
    base = tmp_path_factory.mktemp("comfyui-stop")
    with comfyui_at(checkout, base, comfy_env(sim, base)) as server:
        yield server


def text_to_image(*prompts: str) -> dict[str, Any]:
    """An API-format prompt: one text-to-image node per prompt text, each into a SaveImage."""
    graph: dict[str, Any] = {}
    for number, text in enumerate(prompts):
        node, save = str(2 * number + 1), str(2 * number + 2)
        graph[node] = {"class_type": T2I, "inputs": {
            "prompt": text, "num_images": 1, "seed": 7 + number, "aspect_ratio": "1:1", "resolution": "1K",
            "output_format": "png", "safety_tolerance": 4, "limit_generations": True, "enable_web_search": False}}
        graph[save] = {"class_type": "SaveImage", "inputs": {"images": [node, 0], "filename_prefix": f"stop{number}"}}
    return graph


def queue(comfy: Any, prompt: dict[str, Any]) -> str:
    answer = comfy.http.post("/prompt", json={"prompt": prompt, "client_id": uuid.uuid4().hex})
    assert answer.status_code == 200, answer.text[:2000]
    return answer.json()["prompt_id"]


def submitted_ids(sim: Any, before: int) -> list[str]:
    return [record.request_id for record in sim.requests(route="submit")[before:] if record.status == 200]


def held_jobs(sim: Any, before: int, count: int, state: str) -> list[str]:
    """The request ids of ``count`` new jobs, once each is in ``state`` and polled there."""
    def ready() -> list[str] | None:
        ids = submitted_ids(sim, before)
        if len(ids) < count or any(sim.state(rid) != state for rid in ids):
            return None
        polled = {record.request_id for record in sim.requests() if record.route in ("status", "result")}
        return ids if all(rid in polled for rid in ids) else None

    return wait_for(ready, WAIT_SECONDS, f"{count} job(s) {state} and polled")


def stop(comfy: Any, prompt_id: str) -> None:
    """What the Stop button sends."""
    assert comfy.http.post("/interrupt", json={"prompt_id": prompt_id}).status_code == 200


def history_text(entry: dict[str, Any]) -> str:
    return json.dumps(entry["status"].get("messages", []), ensure_ascii=False)


def cancels(sim: Any, request_id: str) -> list[Any]:
    return [record for record in sim.requests(route="cancel") if record.request_id == request_id]


def runs_again(comfy: Any, sim: Any, text: str) -> None:
    before = len(sim.requests(route="submit"))
    entry = wait_for_history(comfy, queue(comfy, text_to_image(text)))
    assert entry["status"]["status_str"] == "success"
    assert len(submitted_ids(sim, before)) == 1


def test_stop_while_queued_cancels_the_job(comfy: Any, sim: Any):
    sim.script_next_jobs(queue_seconds=HELD_SECONDS)
    before = len(sim.requests(route="submit"))
    prompt_id = queue(comfy, text_to_image(f"a held queued job {uuid.uuid4().hex}"))
    (request_id,) = held_jobs(sim, before, 1, "in_queue")
    stop(comfy, prompt_id)
    entry = wait_for_history(comfy, prompt_id, succeed=False)
    assert entry["status"]["status_str"] == "error" and not entry["status"]["completed"]
    assert len(submitted_ids(sim, before)) == 1, "Stop made the pack submit again"
    assert len(cancels(sim, request_id)) == 1 and sim.state(request_id) == "cancelled"
    text = history_text(entry)
    assert request_id in text and "nothing is billed" in text, text[:3000]
    runs_again(comfy, sim, f"after a queued stop {uuid.uuid4().hex}")


def test_stop_while_running_says_it_may_still_be_billed(comfy: Any, sim: Any):
    sim.script_next_jobs(queue_seconds=0.0, run_seconds=HELD_SECONDS)
    before = len(sim.requests(route="submit"))
    prompt_id = queue(comfy, text_to_image(f"a held running job {uuid.uuid4().hex}"))
    (request_id,) = held_jobs(sim, before, 1, "in_progress")
    stop(comfy, prompt_id)
    entry = wait_for_history(comfy, prompt_id, succeed=False)
    assert entry["status"]["status_str"] == "error"
    assert len(submitted_ids(sim, before)) == 1, "Stop made the pack submit again"
    assert len(cancels(sim, request_id)) == 1 and sim.state(request_id) == "in_progress"
    text = history_text(entry)
    assert request_id in text and "may be billed" in text, text[:3000]
    sim.advance_to_finish(request_id)  # let it end, as RunComfy would
    runs_again(comfy, sim, f"after a running stop {uuid.uuid4().hex}")


def test_stop_ends_two_waiting_nodes_and_cancels_both_jobs(comfy: Any, sim: Any):
    sim.script_next_jobs(queue_seconds=HELD_SECONDS, count=2)
    before = len(sim.requests(route="submit"))
    tag = uuid.uuid4().hex
    prompt_id = queue(comfy, text_to_image(f"first of two {tag}", f"second of two {tag}"))
    request_ids = held_jobs(sim, before, 2, "in_queue")
    stop(comfy, prompt_id)
    entry = wait_for_history(comfy, prompt_id, succeed=False)
    assert entry["status"]["status_str"] == "error"
    assert len(submitted_ids(sim, before)) == 2, "Stop made the pack submit again"
    for request_id in request_ids:  # the node ComfyUI did not report ends too: its job is cancelled
        wait_for(lambda: sim.state(request_id) == "cancelled", WAIT_SECONDS, f"{request_id} cancelled")
        # Once the first node ended, ComfyUI closes the prompt's loop and cancels the other node's
        # task, its cancel call too: answered or not, the node asks again (free, safe to repeat).
        assert 1 <= len(cancels(sim, request_id)) <= 2
    assert any(request_id in history_text(entry) for request_id in request_ids)
    runs_again(comfy, sim, f"after stopping two {tag}")
