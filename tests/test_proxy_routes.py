"""Settings > RunComfy > Proxy through the pack's routes: saved in the config file, never shown with its password."""

from __future__ import annotations

import json
import stat

import pytest

pytest.importorskip("aiohttp.web")

from packloader import pack_import  # noqa: E402
from test_routes import PREFIX, error_of, serve  # noqa: E402  - the same ComfyUI-like app and editor client

pytestmark = pytest.mark.anyio
PASSWORD = "routes-pr0xy-pass"


@pytest.fixture
def env(tmp_path):
    return {"RUNCOMFY_API_BASE_URL": "https://model-api.runcomfy.net", "RUNCOMFY_CONFIG": str(tmp_path / "c" / "config.json")}


async def test_a_saved_proxy_is_used_and_shown_without_its_password(env, tmp_path):
    answers: list[str] = []
    async with serve(env, answers) as editor:
        empty = (await editor.get(f"{PREFIX}/proxy")).json()["proxy"]
        assert empty["in_use"] is None and empty["saved"] is None and empty["source"] == "none"
        saved = await editor.send("POST", f"{PREFIX}/proxy", {"proxy": f"http://carol:{PASSWORD}@proxy.lan:3128"})
        assert saved.status_code == 200
        state = saved.json()["proxy"]
        assert state["in_use"] == state["saved"] == "http://carol:***@proxy.lan:3128"
        assert "config file" in state["source"]
        again = (await editor.get(f"/api{PREFIX}/proxy")).json()["proxy"]
        assert again == state
        removed = (await editor.send("POST", f"{PREFIX}/proxy", {"proxy": None})).json()["proxy"]
        assert removed["saved"] is None and removed["in_use"] is None
    assert all(PASSWORD not in text for text in answers)
    config = tmp_path / "c" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and "proxy" not in json.loads(config.read_text())


async def test_the_environment_proxy_shows_and_the_saved_one_wins(env):
    env["HTTPS_PROXY"] = f"http://dave:{PASSWORD}@corp.proxy:8080"
    env["NO_PROXY"] = "localhost"
    answers: list[str] = []
    async with serve(env, answers) as editor:
        state = (await editor.get(f"{PREFIX}/proxy")).json()["proxy"]
        assert state["in_use"] == "http://dave:***@corp.proxy:8080" and "HTTPS_PROXY" in state["source"]
        assert {"variable": "NO_PROXY", "value": "localhost"} in state["environment"]
        state = (await editor.send("POST", f"{PREFIX}/proxy", {"proxy": "http://other.proxy:3128"})).json()["proxy"]
        assert state["in_use"] == "http://other.proxy:3128" and "config file" in state["source"]
    assert all(PASSWORD not in text for text in answers)


@pytest.mark.parametrize("body", [{"proxy": "socks5://x:1080"}, {"proxy": 3128}, {"url": "http://x:1"},
                                  {"proxy": f"ftp://u:{PASSWORD}@x"}])
async def test_a_proxy_that_cannot_be_used_is_refused_and_nothing_is_saved(env, tmp_path, body):
    answers: list[str] = []
    async with serve(env, answers) as editor:
        response = await editor.send("POST", f"{PREFIX}/proxy", body)
        assert response.status_code == 400 and error_of(response)
    assert not (tmp_path / "c" / "config.json").exists()
    assert all(PASSWORD not in text for text in answers)


async def test_changing_the_proxy_needs_the_editors_origin(env, tmp_path):
    async with serve(env) as editor:
        response = await editor.request("POST", f"{PREFIX}/proxy", origin="https://evil.example",
                                        content=json.dumps({"proxy": "http://evil:1"}),
                                        headers={"Content-Type": "application/json"})
        assert response.status_code == 403
    assert not (tmp_path / "c" / "config.json").exists()
