"""The price badge and the proxy entry in real editors, in English, against the simulator.

One ComfyUI per editor (token in its environment, the simulator's default plain-words
pricing: a base price per image and a note that it varies), one fresh browser profile
(tests/editor_session.py, ``price_badges``): the edit example's badge before any job, a
job run at 2K, the badge for the next run once that job was billed, then
Settings -> RunComfy -> Network -> Proxy saving a URL with a password. Screenshots:
docs/editor-price-base.png, docs/editor-price-billed.png, docs/editor-price-settings-proxy.png.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from packloader import PACK_NAME, pack_import
from test_real_comfyui import (
    EDIT, EDITORS, FRONTEND_ROOT, MODEL_OF, SIM_QUEUE_SECONDS, SIM_RUN_SECONDS, WORKFLOW_DIR, _skip_reason,
    find_chromium, model_info, reported_job, run_editor_session, running_comfyui, short, skip_without_editor,
    submitted_id, usd,
)

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")]

PROXY_PASSWORD = "s3cret-proxy-word"
PROXY = f"http://alice:{PROXY_PASSWORD}@127.0.0.1:9"  # nothing listens: saving it asks nobody


@pytest.fixture(scope="module", params=EDITORS)
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    which, nodes_2 = request.param
    skip_without_editor(which)
    label = f"{which}-editor" + ("-nodes-2.0" if nodes_2 else "")
    base = tmp_path_factory.mktemp(f"comfyui-badges-{label}")
    extra = ("--front-end-root", FRONTEND_ROOT) if which == "current" else ()
    config_path = base / "runcomfy-config.json"
    server = pack_import("simulator.server")
    with server.Simulator(queue_seconds=SIM_QUEUE_SECONDS, run_seconds=SIM_RUN_SECONDS) as simulator:
        env = {"RUNCOMFY_API_BASE_URL": simulator.url, "RUNCOMFY_API_TOKEN": simulator.token,
               "RUNCOMFY_CONFIG": str(config_path), "RUNCOMFY_DATA_DIR": str(base / "data")}
        with running_comfyui(base, env, *extra) as comfy:
            assert comfy.http.post("/settings/Comfy.VueNodes.Enabled", json=nodes_2).status_code == 200
            result = run_editor_session(comfy, {
                "url": comfy.url + "/", "chromium": find_chromium(), "token": "", "nodes_2": nodes_2,
                "pack": PACK_NAME, "workflows": [str(WORKFLOW_DIR / "nano_banana_2_edit.json")],
                "shots": str(base / "shots"), "price_badges": True, "proxy": PROXY,
            }, f"{label} badges")
            log = comfy.log()
        yield {"seen": result["price_badges"], "sim": simulator, "nodes_2": nodes_2, "config_path": config_path,
               "log": log, "base": base}


def test_before_any_job_the_badge_is_the_base_price_in_plain_words(session: dict[str, Any]):
    seen, sim = session["seen"], session["sim"]
    info = model_info(sim, MODEL_OF[EDIT])
    (loaded,) = seen["loaded"]
    assert loaded["badges"][-2:] == ["RunComfy · billed per image",
                                     f"base {usd(info['base_price_usd'])}/image · varies by resolution"], loaded
    (two_k,) = seen["two_k"]  # no job yet: the base price does not claim to know what 2K costs
    assert two_k["resolution"] == "2K" and two_k["badges"][-1] == loaded["badges"][-1], two_k
    if session["nodes_2"]:  # RunComfy's note is the badge's tooltip
        assert f"RunComfy's pricing note: {info['pricing_note']}" in seen["loaded_dom_titles"], seen["loaded_dom_titles"]


def test_after_a_billed_2k_job_the_badge_says_what_it_was_billed(session: dict[str, Any]):
    seen, sim = session["seen"], session["sim"]
    (after,) = seen["after_run"]
    request_id = submitted_id(sim, after["badges"][-1].rsplit(" · ", 1)[1])
    job = reported_job(sim, request_id)
    assert after["badges"][-1] == f"last run {usd(job['cost'])} · {short(request_id)}"
    (billed,) = seen["billed"]
    assert billed["resolution"] == "2K" and billed["num_images"] == after["num_images"] + 1
    per_image = job["cost"] / after["num_images"]
    assert billed["badges"][-1] == (
        f"≈ {usd(per_image * billed['num_images'])} · as billed for 2K on {time.strftime('%m-%d')}"), billed
    assert len(sim.requests(route="submit")) == 1, "one run, one submit"


def test_the_proxy_entry_saves_the_url_and_shows_its_password_masked(session: dict[str, Any]):
    seen = session["seen"]
    masked = "http://alice:***@127.0.0.1:9"
    assert seen["proxy"]["message"] == "Saved. The nodes use it from their next run.", seen["proxy"]
    assert masked in seen["proxy"]["state"], seen["proxy"]
    assert seen["proxy_input"] == "", "the URL with its password stays in the page"
    assert PROXY_PASSWORD not in seen["page_text"] and PROXY_PASSWORD not in session["log"]
    saved = json.loads(session["config_path"].read_text())
    assert saved["proxy"] == PROXY and stat.S_IMODE(session["config_path"].stat().st_mode) == 0o600
    settings = Path(session["base"]) / "user" / "default" / "comfy.settings.json"
    assert PROXY_PASSWORD not in (settings.read_text() if settings.is_file() else "")
