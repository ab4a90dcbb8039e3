"""The pack's server routes over real HTTP, mounted like ComfyUI mounts them, against the simulator.

ComfyUI collects every route of every pack in one ``RouteTableDef`` and adds
each of them twice, under ``/api`` and bare, to one ``web.Application``. The
app below is built the same way, with no middleware in front, as when ComfyUI
runs with ``--enable-cors-header``: the routes' own checks are all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import stat
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest

web = pytest.importorskip("aiohttp.web")

from packloader import PACK_ROOT, load_pack, pack_import  # noqa: E402

pack = load_pack()
routes = pack_import("routes")
handlers = pack_import("routes.handlers")
billing = pack_import("simulator.billing")
T2I_MODEL = "google/nano-banana-2/text-to-image"
pytestmark = pytest.mark.anyio

PREFIX = handlers.PREFIX
RESOLUTIONS = ("0.5K", "1K", "2K", "4K")
JSON = {"Content-Type": "application/json"}


class Editor:
    """An HTTP client that behaves like the editor's page: same origin, JSON bodies."""

    def __init__(self, base: str, client: httpx.AsyncClient, answers: list[str]) -> None:
        self.base, self.client, self.answers = base, client, answers

    async def request(self, method: str, path: str, *, origin: str | None = "same", **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if origin == "same":
            headers["Origin"] = self.base
        elif origin is not None:
            headers["Origin"] = origin
        response = await self.client.request(method, path, headers=headers, **kwargs)
        self.answers.append(response.text)
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, origin=kwargs.pop("origin", None), **kwargs)

    async def send(self, method: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return await self.request(method, path, content=json.dumps(body), headers={**JSON, **kwargs.pop("headers", {})}, **kwargs)


def comfyui_like_app(env: dict[str, str]) -> Any:
    table = web.RouteTableDef()
    routes.add_routes(table, env)
    with_api_prefix = web.RouteTableDef()
    for route in table:
        with_api_prefix.route(route.method, "/api" + route.path)(route.handler, **route.kwargs)
    app = web.Application(client_max_size=100 * 1024 * 1024)
    app.add_routes(with_api_prefix)
    app.add_routes(table)
    return app


@contextlib.asynccontextmanager
async def serve(env: dict[str, str], answers: list[str] | None = None) -> AsyncIterator[Editor]:
    runner = web.AppRunner(comfyui_like_app(env))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30.0, trust_env=False) as client:
            yield Editor(base, client, answers if answers is not None else [])
    finally:
        await runner.cleanup()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "runcomfy" / "config.json"


@pytest.fixture
def sign_in_file(tmp_path: Path) -> Path:
    """Where RunComfy's CLI (and the pack) keep the token, under the test's own HOME."""
    return tmp_path / "home" / ".config" / "runcomfy" / "token.json"


@pytest.fixture
def env(simulator, config_path: Path, tmp_path: Path) -> dict[str, str]:
    """No token anywhere yet: the simulator's three bases, a HOME and a config file path that do not exist."""
    return {"RUNCOMFY_API_BASE_URL": simulator.url, "RUNCOMFY_WWW_BASE_URL": simulator.www_url,
            "RUNCOMFY_ACCOUNT_BASE_URL": simulator.api_url, "RUNCOMFY_CONFIG": str(config_path),
            "HOME": str(tmp_path / "home")}


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and body["error"], body
    return body["error"]


# -- price ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api", ""])
async def test_price_for_every_node_resolution_and_count_from_one_model_info_call_each(simulator, env, prefix):
    simulator.configure(pricing="by_resolution")  # the structured note: a listed price per resolution
    env["RUNCOMFY_API_TOKEN"] = simulator.token
    async with serve(env) as editor:
        for node_type in handlers.NODE_MODELS:
            for resolution in RESOLUTIONS:
                for count in range(1, 5):
                    response = await editor.get(f"{prefix}{PREFIX}/price",
                                                params={"node_type": node_type, "resolution": resolution, "num_images": count})
                    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
                    body = response.json()
                    assert body["known"] is True and body["reason"] is None and body["source"] == "listed", body
                    assert body["estimate_usd"] == pytest.approx(billing.PRICES_USD[resolution] * count, abs=1e-9)
                    assert body["model_id"] == handlers.NODE_MODELS[node_type] and body["price_unit"] == "output"
    assert len(simulator.requests(route="model")) == len(handlers.NODE_MODELS), "one model-info call per model, shared"


def test_every_paying_node_of_the_pack_has_a_model_for_its_price():
    paying = {name for name, cls in pack.NODE_CLASS_MAPPINGS.items() if "resolution" in cls.INPUT_TYPES()["required"]}
    assert set(handlers.NODE_MODELS) == paying  # Result by Request ID never pays: its badge says "free"


async def test_no_token_means_price_unknown_and_nothing_sent(simulator, env):
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2Edit",
                                                                "resolution": "1K", "num_images": 1})).json()
    assert body["known"] is False and body["estimate_usd"] is None
    assert body["reason"] == "No RunComfy API token is set"
    assert simulator.requests() == []


async def test_a_rejected_token_means_price_unknown(simulator, env):
    env["RUNCOMFY_API_TOKEN"] = "not-the-simulators-token"
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2TextToImage",
                                                                "resolution": "4K", "num_images": 2})).json()
    assert body["known"] is False and "rejected the API token" in body["reason"]


async def test_offline_means_price_unknown(simulator, env):
    env.update(RUNCOMFY_API_TOKEN=simulator.token, RUNCOMFY_API_BASE_URL=closed_port_url())
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2TextToImage",
                                                                "resolution": "1K", "num_images": 1})).json()
    assert body["known"] is False and "connection" in body["reason"].lower()


@pytest.mark.parametrize("model_info, reason", [
    ({"price_unit": "output", "pricing_note": "Price depends on resolution."}, "depends on resolution"),
    ({"base_price_usd": 0.02, "price_unit": "second", "pricing_note": ""}, "per 'second'"),
])
async def test_a_pricing_note_the_pack_cannot_read_means_price_unknown(simulator, env, model_info, reason):
    env["RUNCOMFY_API_TOKEN"] = simulator.token
    simulator.add_fault("model", "http_error", times=None, status=200, content_type="application/json",
                        body=json.dumps({"model_id": "google/nano-banana-2/text-to-image", **model_info}))
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2TextToImage",
                                                                "resolution": "1K", "num_images": 1})).json()
    assert body["known"] is False and body["estimate_usd"] is None and reason in body["reason"]


@pytest.mark.parametrize("pricing, known", [("prose", True), ("plain", True), ("missing", False), ("base_only", True),
                                            ("flat", True), ("by_resolution", True)])
async def test_each_way_the_simulator_can_price_is_read_or_called_unknown(simulator, env, pricing, known):
    simulator.configure(pricing=pricing)
    env["RUNCOMFY_API_TOKEN"] = simulator.token
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2Edit",
                                                                "resolution": "4K", "num_images": 3})).json()
    assert body["known"] is known
    if pricing == "flat":
        assert body["estimate_usd"] == pytest.approx(0.30)  # the simulator bills $0.10 an image at any resolution
    if pricing in ("prose", "plain"):  # a note in words: the base price, said to vary by resolution
        assert body["source"] == "base" and body["estimate_usd"] == pytest.approx(0.24)
        assert body["varies_by_resolution"] is True and body["pricing_note"]


@pytest.mark.parametrize("params, says", [
    ({"node_type": "KSampler", "resolution": "1K", "num_images": 1}, "Unknown node type 'KSampler'"),
    ({"node_type": "RunComfyNanoBanana2Edit", "resolution": "8K", "num_images": 1}, "resolution must be one of"),
    ({"node_type": "RunComfyNanoBanana2Edit", "resolution": "1K", "num_images": 0}, "num_images must be"),
    ({"node_type": "RunComfyNanoBanana2Edit", "resolution": "1K", "num_images": 5}, "num_images must be"),
    ({"node_type": "RunComfyNanoBanana2Edit", "resolution": "1K", "num_images": "two"}, "num_images must be"),
    ({}, "Unknown node type ''"),
])
async def test_bad_price_questions_get_a_400(simulator, env, params, says):
    async with serve(env) as editor:
        response = await editor.get(f"/api{PREFIX}/price", params=params)
    assert response.status_code == 400 and says in error_of(response)


# -- account -------------------------------------------------------------------------------


async def test_account_without_a_token(simulator, env, config_path, sign_in_file):
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/account")).json()
    assert body["token"] == {"set": False, "source": "none", "variable": None, "path": None, "conflict": None,
                             "sign_in_path": str(sign_in_file), "config_path": str(config_path),
                             "saved_in_file": False}
    assert body["check"]["state"] == "no_token"
    assert body["identity"]["state"] == "no_token" and body["balance"]["state"] == "no_token"
    assert body["preferences"] == {"reuse_results": True, "daily_spend_limit_usd": None}
    assert set(body["spend"]) == {"session_total_usd", "session_jobs", "jobs_without_cost"}
    assert simulator.requests() == []


async def test_account_with_a_token_in_the_environment(simulator, env):
    env["RUNCOMFY_API_TOKEN"] = simulator.token
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/account")).json()
        again = (await editor.get(f"/api{PREFIX}/account")).json()
        assert len(simulator.requests(route="auth_me")) == 1, "who-am-I is cached"
        assert len(simulator.requests(route="balance")) == 1, "the balance is cached"
        await editor.get(f"/api{PREFIX}/account", params={"refresh": "1"})
        assert len(simulator.requests(route="auth_me")) == 2, "refresh asks RunComfy again"
        assert len(simulator.requests(route="balance")) == 2
    assert body["token"]["source"] == "environment" and body["token"]["variable"] == "RUNCOMFY_API_TOKEN"
    assert body["check"]["state"] == "valid" and again["check"] == body["check"]
    assert body["identity"]["state"] == "signed_in" and body["identity"]["email"] == "default@simulator.invalid"
    assert body["identity"]["id"] == "usr_sim_default" and body["identity"]["checked_at"]
    assert body["balance"]["state"] == "known" and body["balance"]["usd"] == 100.0
    assert body["balance"]["currency"] == "USD"
    assert simulator.requests(route="model") == [], "the model info is no token check"


async def test_both_variables_set_and_different_are_named_and_nothing_is_sent(simulator, env):
    env.update(RUNCOMFY_API_TOKEN=simulator.token, RUNCOMFY_TOKEN=simulator.add_account())
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/account")).json()
        stored = await editor.send("POST", f"/api{PREFIX}/token", {"token": simulator.token})
        signing = await editor.send("POST", f"/api{PREFIX}/sign-in", {})
    assert "RUNCOMFY_TOKEN and RUNCOMFY_API_TOKEN are both set and differ" in body["token"]["conflict"]
    assert body["token"]["set"] is False and body["config_error"] == body["token"]["conflict"]
    assert stored.status_code == 409 and signing.status_code == 409
    assert simulator.requests() == []


async def test_account_states_rejected_and_unreachable(simulator, env):
    env["RUNCOMFY_API_TOKEN"] = "wrong-token-1234"
    async with serve(env) as editor:
        rejected = (await editor.get(f"/api{PREFIX}/account")).json()
    env["RUNCOMFY_WWW_BASE_URL"] = env["RUNCOMFY_ACCOUNT_BASE_URL"] = closed_port_url()
    async with serve(env) as editor:
        unreachable = (await editor.get(f"/api{PREFIX}/account")).json()
    assert rejected["check"]["state"] == "rejected" and "rejected the API token" in rejected["check"]["message"]
    assert rejected["identity"]["state"] == "rejected" and rejected["balance"]["state"] == "unknown"
    assert unreachable["check"]["state"] == "unreachable" and unreachable["identity"]["state"] == "unknown"
    assert unreachable["balance"]["state"] == "unknown" and unreachable["balance"]["message"]


async def test_an_account_without_email_is_named_by_its_id(simulator, env):
    env["RUNCOMFY_TOKEN"] = simulator.add_account(3.5, name="quiet", email=None)
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/account")).json()
    assert body["identity"]["email"] is None and body["identity"]["id"] == "usr_sim_quiet"
    assert body["check"]["message"] == "signed in as usr_sim_quiet" and body["balance"]["usd"] == 3.5


async def test_a_broken_config_file_is_reported_not_hidden(simulator, env, config_path):
    config_path.parent.mkdir(parents=True)
    config_path.write_text('{"api_token": ', encoding="utf-8")
    async with serve(env) as editor:
        body = (await editor.get(f"/api{PREFIX}/account")).json()
    assert "Cannot read config file" in body["config_error"] and body["check"]["state"] == "error"
    assert body["token"]["saved_in_file"] is None


# -- storing and removing the token --------------------------------------------------------------


async def test_an_accepted_token_is_stored_privately_and_used_at_once(simulator, env, config_path, sign_in_file):
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps({"download_hosts": ["cdn.example"], "reuse_results": False}), encoding="utf-8")
    async with serve(env) as editor:
        before = (await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2Edit",
                                                                  "resolution": "2K", "num_images": 3})).json()
        response = await editor.send("POST", f"/api{PREFIX}/token", {"token": f"  {simulator.token}\n"})
        after = (await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2Edit",
                                                                 "resolution": "2K", "num_images": 3})).json()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] is True
    assert body["account"]["token"]["source"] == "saved_here" and body["account"]["check"]["state"] == "valid"
    assert body["account"]["token"]["path"] == str(sign_in_file)
    assert body["account"]["identity"]["email"] == "default@simulator.invalid"
    assert stat.S_IMODE(sign_in_file.stat().st_mode) == 0o600
    assert json.loads(sign_in_file.read_text()) == {"access_token": simulator.token, "refresh_token": None,
                                                    "expires_at": None, "user_email": None}
    kept = json.loads(config_path.read_text())
    assert "api_token" not in kept and {k: kept[k] for k in ("download_hosts", "reuse_results")} == {
        "download_hosts": ["cdn.example"], "reuse_results": False}
    assert before["known"] is False and after["known"] is True
    assert after["estimate_usd"] == pytest.approx(3 * 0.08)  # the base price: the note is in words


async def test_a_wrong_token_is_refused_because_auth_me_refuses_it(simulator, env, config_path, sign_in_file):
    """The model info is not asked: RunComfy's may be public, so it proves nothing about a token."""
    async with serve(env) as editor:
        response = await editor.send("POST", f"/api{PREFIX}/token", {"token": "rc-not-a-real-token"})
    assert response.status_code == 422
    assert "rejected the API token" in error_of(response) and "Nothing was stored" in error_of(response)
    assert not config_path.exists() and not sign_in_file.exists()
    assert [r.route for r in simulator.requests()] == ["auth_me"] and simulator.requests()[0].status == 401


async def test_a_token_that_cannot_be_checked_is_not_stored(simulator, env, config_path, sign_in_file):
    env["RUNCOMFY_WWW_BASE_URL"] = closed_port_url()
    async with serve(env) as editor:
        response = await editor.send("POST", f"/api{PREFIX}/token", {"token": simulator.token})
    assert response.status_code == 502 and "Nothing was stored" in error_of(response)
    assert not config_path.exists() and not sign_in_file.exists()


async def test_the_environment_token_wins_and_the_answer_says_so(simulator, env, config_path, sign_in_file):
    env["RUNCOMFY_API_TOKEN"] = simulator.token
    async with serve(env) as editor:
        response = await editor.send("POST", f"/api{PREFIX}/token", {"token": simulator.add_account()})
        signing = await editor.send("POST", f"/api{PREFIX}/sign-in", {})
    assert response.status_code == 409 and "RUNCOMFY_API_TOKEN is set in ComfyUI's environment" in error_of(response)
    assert signing.status_code == 409 and error_of(signing) == error_of(response)
    assert not config_path.exists() and not sign_in_file.exists() and simulator.requests() == []


async def test_a_token_in_the_old_place_keeps_working_and_moves_on_the_next_save(
        simulator, env, config_path, sign_in_file):
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps({"api_token": simulator.token, "daily_spend_limit_usd": 3}), encoding="utf-8")
    other = simulator.add_account(7.0, name="other")
    async with serve(env) as editor:
        before = (await editor.get(f"/api{PREFIX}/account")).json()
        stored = await editor.send("POST", f"/api{PREFIX}/token", {"token": other})
    assert before["token"]["source"] == "saved_here" and before["token"]["path"] == str(config_path)
    assert before["identity"]["state"] == "signed_in" and before["token"]["saved_in_file"] is True
    assert stored.status_code == 200 and stored.json()["account"]["balance"]["usd"] == 7.0
    assert json.loads(sign_in_file.read_text())["access_token"] == other
    kept = json.loads(config_path.read_text())
    assert "api_token" not in kept and kept["daily_spend_limit_usd"] == 3  # never in two places


async def test_removing_the_token_signs_out_and_keeps_the_other_settings(simulator, env, config_path, sign_in_file):
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps({"api_token": simulator.token, "daily_spend_limit_usd": 3}), encoding="utf-8")
    sign_in_file.parent.mkdir(parents=True)
    sign_in_file.write_text(json.dumps({"access_token": simulator.token}), encoding="utf-8")
    async with serve(env) as editor:
        first = await editor.send("DELETE", f"/api{PREFIX}/token", {})
        second = await editor.send("DELETE", f"/api{PREFIX}/token", {})
    assert first.status_code == 200 and first.json()["removed"] is True
    assert first.json()["account"]["token"]["source"] == "none"
    assert first.json()["account"]["identity"]["state"] == "no_token"
    assert second.json()["removed"] is False
    assert json.loads(config_path.read_text()) == {"daily_spend_limit_usd": 3} and not sign_in_file.exists()


@pytest.mark.parametrize("content, says", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("{}", 'Send {"token"'),
    ('{"token": "abc", "extra": 1}', 'Send {"token"'),
    ('{"token": 12345}', "must be text"),
    ('{"token": ""}', "empty"),
    ('{"token": "   "}', "empty"),
    ('{"token": "abc def"}', "space or line break inside"),
    ('{"token": "abc\\tdef"}', "space or line break inside"),
    ('{"token": "t\\u00f6ken-abc"}', "not plain ASCII"),
    (json.dumps({"token": "x" * 600}), "too long"),
])
async def test_malformed_token_requests_are_refused_before_anything_is_sent(simulator, env, config_path, content, says):
    async with serve(env) as editor:
        response = await editor.request("POST", f"/api{PREFIX}/token", content=content, headers=JSON)
    assert response.status_code == 400 and says in error_of(response)
    assert simulator.requests() == [] and not config_path.exists()


async def test_an_oversized_body_is_refused(simulator, env, config_path):
    async with serve(env) as editor:
        response = await editor.request("POST", f"/api{PREFIX}/token", content=json.dumps({"token": "x" * 40000}),
                                        headers=JSON)
    assert response.status_code == 413 and "larger than 16 KiB" in error_of(response)
    assert simulator.requests() == [] and not config_path.exists()


# -- writes from elsewhere ------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/token", {"token": "attacker-token-123"}),
    ("DELETE", "/token", {}),
    ("POST", "/preferences", {"reuse_results": False}),
])
@pytest.mark.parametrize("origin, headers, status", [
    ("http://evil.example", JSON, 403),                                  # a script on another site
    ("http://127.0.0.1:1", JSON, 403),                                   # another local port is another site
    ("null", JSON, 403),                                                 # a sandboxed frame
    (None, JSON, 403),                                                   # no Origin at all
    ("same", {**JSON, "Sec-Fetch-Site": "cross-site"}, 403),             # the browser says so
    ("same", {**JSON, "Sec-Fetch-Site": "same-site"}, 403),
    ("same", {"Content-Type": "application/x-www-form-urlencoded"}, 415),  # what an HTML form can send
    ("same", {"Content-Type": "text/plain"}, 415),
    ("same", {"Content-Type": "multipart/form-data; boundary=x"}, 415),
])
async def test_state_changes_from_another_site_are_refused(simulator, env, config_path, method, path, body,
                                                           origin, headers, status):
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps({"api_token": simulator.token}), encoding="utf-8")
    before = config_path.read_bytes()
    async with serve(env) as editor:
        response = await editor.request(method, f"/api{PREFIX}{path}", origin=origin, headers=headers,
                                        content=json.dumps(body))
    assert response.status_code == status and error_of(response)
    assert config_path.read_bytes() == before
    assert simulator.requests() == []


async def test_another_site_cannot_probe_the_account(simulator, env):
    env["RUNCOMFY_API_TOKEN"] = simulator.token
    async with serve(env) as editor:
        foreign = await editor.get(f"/api{PREFIX}/account", origin="http://evil.example")
        fetched = await editor.get(f"/api{PREFIX}/account", headers={"Sec-Fetch-Site": "cross-site"})
        own = await editor.get(f"/api{PREFIX}/account", origin=editor.base, headers={"Sec-Fetch-Site": "same-origin"})
    assert foreign.status_code == 403 and fetched.status_code == 403 and own.status_code == 200
    assert "token" not in foreign.json() and "token" not in fetched.json()


async def test_a_proxy_forwarded_host_is_the_editors_origin(simulator, env):
    async with serve(env) as editor:
        response = await editor.send("POST", f"/api{PREFIX}/preferences", {"reuse_results": False},
                                     origin="https://comfy.example.org",
                                     headers={"X-Forwarded-Host": "comfy.example.org"})
    assert response.status_code == 200, response.text


# -- preferences ----------------------------------------------------------------------------------


async def test_preferences_are_stored_beside_the_token(simulator, env, config_path):
    config_path.parent.mkdir(parents=True)
    config_path.write_text(json.dumps({"api_token": simulator.token}), encoding="utf-8")
    async with serve(env) as editor:
        response = await editor.send("POST", f"/api{PREFIX}/preferences",
                                     {"reuse_results": False, "daily_spend_limit_usd": 2.5})
        account = (await editor.get(f"/api{PREFIX}/account")).json()
        cleared = await editor.send("POST", f"/api{PREFIX}/preferences", {"daily_spend_limit_usd": None})
    assert response.status_code == 200
    assert response.json() == {"preferences": {"reuse_results": False, "daily_spend_limit_usd": 2.5}}
    assert account["preferences"] == {"reuse_results": False, "daily_spend_limit_usd": 2.5}
    assert cleared.json()["preferences"] == {"reuse_results": False, "daily_spend_limit_usd": None}
    assert json.loads(config_path.read_text()) == {"api_token": simulator.token, "reuse_results": False,
                                                   "daily_spend_limit_usd": None}
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("body, says", [
    ({"reuse_results": "no"}, '"reuse_results" must be true or false'),
    ({"daily_spend_limit_usd": -1}, '"daily_spend_limit_usd" must be a positive number'),
    ({"daily_spend_limit_usd": "10"}, '"daily_spend_limit_usd" must be a positive number'),
    ({"api_token": "sneaky-token"}, "unknown: api_token"),
    ({}, "Send one or more of reuse_results, daily_spend_limit_usd"),
])
async def test_bad_preferences_are_refused(simulator, env, config_path, body, says):
    async with serve(env) as editor:
        response = await editor.send("POST", f"/api{PREFIX}/preferences", body)
    assert response.status_code == 400 and says in error_of(response)
    assert not config_path.exists()


# -- device sign-in -----------------------------------------------------------------------------


async def sign_in_ends(editor: Editor, *, deadline: float = 15.0) -> dict[str, Any]:
    """GET /sign-in until it is no longer pending (the server polls RunComfy meanwhile)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        state = (await editor.get(f"/api{PREFIX}/sign-in")).json()
        if state["state"] != "pending" or loop.time() > end:
            return state
        await asyncio.sleep(0.02)


@pytest.fixture
def fast_sign_in(simulator):
    simulator.configure(sign_in_poll_interval=0.02)
    return simulator


async def test_signing_in_shows_a_code_and_link_then_the_account_with_no_token_in_any_answer(
        fast_sign_in, env, sign_in_file, config_path, caplog):
    caplog.set_level(logging.DEBUG)
    simulator = fast_sign_in
    answers: list[str] = []
    async with serve(env, answers) as editor:
        idle = (await editor.get(f"/api{PREFIX}/sign-in")).json()
        started = await editor.send("POST", f"/api{PREFIX}/sign-in", {})
        assert started.status_code == 200, started.text
        body = started.json()
        pending = (await editor.get(f"/api{PREFIX}/sign-in")).json()
        simulator.approve_sign_in(body["user_code"])
        done = await sign_in_ends(editor)
    assert idle["state"] == "idle" and idle["user_code"] is None
    assert body["state"] == "pending" and body["verify_url"] == f"{simulator.www_url}/cli-auth?code={body['user_code']}"
    assert body["expires_at"] > 0 and body["poll_interval"] == pytest.approx(0.02)
    assert pending["state"] == "pending" and pending["user_code"] == body["user_code"]
    assert done["state"] == "authorized", done
    assert done["account"]["identity"]["email"] == "default@simulator.invalid"
    assert done["account"]["balance"]["usd"] == 100.0 and done["account"]["token"]["source"] == "cli_sign_in"
    token = json.loads(sign_in_file.read_text())["access_token"]
    assert token != simulator.token and stat.S_IMODE(sign_in_file.stat().st_mode) == 0o600
    assert not any(token in answer for answer in answers) and not any("device_code" in a for a in answers)
    assert not any(token in record.getMessage() for record in caplog.records)
    assert any("Signed in with RunComfy" in record.getMessage() for record in caplog.records)
    assert not config_path.exists() or "token_saved_here" not in config_path.read_text()


@pytest.mark.parametrize("action, state, says", [("deny", "denied", "denied"), ("expire", "expired", "expired")])
async def test_a_denied_or_expired_sign_in_says_so_and_stores_nothing(fast_sign_in, env, sign_in_file, action, state,
                                                                      says):
    async with serve(env) as editor:
        body = (await editor.send("POST", f"/api{PREFIX}/sign-in", {})).json()
        getattr(fast_sign_in, f"{action}_sign_in")(body["user_code"])
        done = await sign_in_ends(editor)
    assert done["state"] == state and says in done["message"] and "account" not in done
    assert not sign_in_file.exists()


async def test_a_cancelled_sign_in_stops_polling_and_stores_nothing_even_if_approved_later(
        fast_sign_in, env, sign_in_file):
    async with serve(env) as editor:
        body = (await editor.send("POST", f"/api{PREFIX}/sign-in", {})).json()
        cancelled = await editor.send("DELETE", f"/api{PREFIX}/sign-in", {})
        polls = len(fast_sign_in.requests(route="sign_in_poll"))
        fast_sign_in.approve_sign_in(body["user_code"])
        after = (await editor.get(f"/api{PREFIX}/sign-in")).json()
    assert cancelled.json()["state"] == "cancelled" and "cancelled" in cancelled.json()["message"]
    assert after["state"] == "cancelled" and not sign_in_file.exists()
    assert len(fast_sign_in.requests(route="sign_in_poll")) == polls


async def test_starting_again_replaces_a_pending_sign_in(fast_sign_in, env):
    async with serve(env) as editor:
        first = (await editor.send("POST", f"/api{PREFIX}/sign-in", {})).json()
        second = (await editor.send("POST", f"/api{PREFIX}/sign-in", {})).json()
        now = (await editor.get(f"/api{PREFIX}/sign-in")).json()
    assert first["user_code"] != second["user_code"] and now["user_code"] == second["user_code"]


async def test_a_sign_in_runcomfy_cannot_start_is_a_502(simulator, env):
    env["RUNCOMFY_WWW_BASE_URL"] = closed_port_url()
    async with serve(env) as editor:
        response = await editor.send("POST", f"/api{PREFIX}/sign-in", {})
        state = (await editor.get(f"/api{PREFIX}/sign-in")).json()
    assert response.status_code == 502 and "Could not start the sign-in" in error_of(response)
    assert state["state"] == "idle"


async def test_sign_in_from_another_site_is_refused(simulator, env):
    async with serve(env) as editor:
        response = await editor.send("POST", f"/api{PREFIX}/sign-in", {}, origin="http://evil.example")
    assert response.status_code == 403 and simulator.requests() == []


# -- the token never comes back -----------------------------------------------------------------


async def test_the_token_is_in_no_answer_and_no_log_record(simulator, env, config_path, caplog):
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    other_token = simulator.add_account()
    async with serve(env, answers) as editor:
        await editor.send("POST", f"/api{PREFIX}/token", {"token": simulator.token})
        await editor.get(f"/api{PREFIX}/account", params={"refresh": "1"})
        await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2Edit",
                                                        "resolution": "1K", "num_images": 1})
        await editor.send("POST", f"/api{PREFIX}/token", {"token": other_token + "x"})  # rejected
        await editor.send("POST", f"/api{PREFIX}/token", {"token": other_token + " x"})  # malformed
        await editor.send("POST", f"/api{PREFIX}/token", {"token": other_token}, origin="http://evil.example")
        await editor.send("POST", f"/api{PREFIX}/preferences", {"reuse_results": True})
        await editor.send("POST", f"/api{PREFIX}/token", {"token": other_token})  # replaces the first
        await editor.send("DELETE", f"/api{PREFIX}/token", {})
    assert len(answers) == 9
    records = [record.getMessage() for record in caplog.records]
    assert any("Stored the RunComfy API token" in message for message in records)
    for secret in (simulator.token, other_token):
        assert not any(secret in answer for answer in answers)
        assert not any(secret in message for message in records)
    assert not config_path.exists() or "api_token" not in json.loads(config_path.read_text())


async def test_a_bug_is_a_json_500_not_a_page(simulator, env, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(handlers, "load_settings", broken)
    async with serve(env) as editor:
        response = await editor.get(f"/api{PREFIX}/price", params={"node_type": "RunComfyNanoBanana2Edit",
                                                                   "resolution": "1K", "num_images": 1})
    assert response.status_code == 500 and "RuntimeError" in error_of(response)


@pytest.mark.parametrize("public_catalog", [False, True])
async def test_the_badge_against_a_plain_words_catalog_shows_the_base_then_what_was_billed_for_2k(
        simulator, env, config_path, public_catalog):
    """Issue 14.4: the real catalog's note is in words; once RunComfy billed a 2K job of this
    account, that job's cost per image is the 2K estimate, with when it was billed. The catalog
    entry is the simulator's default one (model_id, display_name, categories, base price, note
    in words), asked for with or without a token being needed."""
    from helpers import jobs_for, settings_for

    simulator.configure(public_catalog=public_catalog)
    served = httpx.get(f"{simulator.url}/v1/models/{T2I_MODEL}",
                       headers={} if public_catalog else {"Authorization": f"Bearer {simulator.token}"}).json()
    assert served == {"model_id": T2I_MODEL, "display_name": "Nano Banana 2 Text to Image",
                      "categories": ["text-to-image"], "base_price_usd": 0.08, "price_unit": "output",
                      "pricing_note": billing.PLAIN_NOTE}
    journal_module = pack_import("client.ledger.journal")
    config_path.parent.mkdir(parents=True)
    env["RUNCOMFY_API_TOKEN"] = simulator.token
    ask = {"node_type": "RunComfyNanoBanana2TextToImage", "resolution": "2K", "num_images": 2}
    async with serve(env) as editor:
        before = (await editor.get(f"/api{PREFIX}/price", params=ask)).json()
        journal = journal_module.Journal(config_path.parent / "journal.sqlite3")
        runner = jobs_for(settings_for(simulator), journal=journal)
        async with runner.client:
            job = await runner.run("google/nano-banana-2/text-to-image",
                                   {"prompt": "a lighthouse", "resolution": "2K", "num_images": 1})
        after = (await editor.get(f"/api{PREFIX}/price", params=ask)).json()
        other = (await editor.get(f"/api{PREFIX}/price", params={**ask, "resolution": "4K"})).json()
    assert before["source"] == "base" and before["known"] is True and before["model_id"] == T2I_MODEL
    assert before["per_image_usd"] == pytest.approx(0.08) and before["varies_by_resolution"] is True
    assert before["estimate_usd"] == pytest.approx(0.16) and before["pricing_note"] == billing.PLAIN_NOTE
    # what web/badges/badges.js draws from these fields, with the English text of locales/en
    texts = json.loads((PACK_ROOT / "locales" / "en" / "main.json").read_text(encoding="utf-8"))
    badges = texts["runcomfyNanoBanana2"]["badges"]
    assert badges["priceBaseVaries"].replace("{price}", f"${before['per_image_usd']:.2f}") == \
        "base $0.08/image · varies by resolution"
    assert job.cost == pytest.approx(billing.PRICES_USD["2K"])  # the simulator bills 2K above the base price
    assert after["source"] == "billed" and after["estimate_usd"] == pytest.approx(2 * billing.PRICES_USD["2K"])
    assert after["billed_on"] == job_day(journal, job.request_id)
    billed_text = badges["priceBilled"].replace("{price}", f"${after['estimate_usd']:.2f}")
    billed_text = billed_text.replace("{resolution}", after["resolution"]).replace("{date}", after["billed_on"])
    assert billed_text == f"≈ $0.24 · as billed for 2K on {job_day(journal, job.request_id)}"
    assert other["source"] == "base"  # nothing billed at 4K yet


def job_day(journal: Any, request_id: str) -> str:
    return journal.get(request_id).finished_at.astimezone().strftime("%m-%d")
