"""ComfyUI started with ``--offline`` (2026) or ``--disable-api-nodes`` (October 2025): no call to RunComfy.

The detection reads ComfyUI's parsed arguments (a fake ``comfy.cli_args`` here). The nodes
and routes then run against the simulator, whose log of all three bases (model API, www,
account API) must stay empty; a result already in the store is still reused.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from helpers import widget_defaults
from packloader import load_pack, pack_import
from test_routes import serve

pack = load_pack()
offline = pack_import("nodes.offline")
errors = pack_import("client.errors")
TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
ResultById = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2ResultByRequestId"]
FLAG_MESSAGE = ("ComfyUI runs with --offline: the RunComfy nodes make no calls to RunComfy. Restart ComfyUI "
                "without --offline to run them; reusing a stored result still works.")


def comfy_args(**flags: bool) -> types.SimpleNamespace:
    """ComfyUI's parsed arguments with only these flags (an older ComfyUI lacks ``offline``)."""
    return types.SimpleNamespace(listen="127.0.0.1", **flags)


@pytest.fixture
def run_offline(monkeypatch: pytest.MonkeyPatch):
    """Make the running "ComfyUI" one started with ``flag`` (its ``comfy.cli_args`` as loaded)."""

    def start(flag: str = "--offline") -> None:
        attribute = {"--offline": "offline", "--disable-api-nodes": "disable_api_nodes"}[flag]
        module = types.ModuleType("comfy.cli_args")
        module.args = comfy_args(**{attribute: True})
        monkeypatch.setitem(sys.modules, "comfy.cli_args", module)

    return start


@pytest.fixture
def every_base(account: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The account fixture with www and the account API on the simulator too: any call is logged."""
    monkeypatch.setenv("RUNCOMFY_WWW_BASE_URL", account.www_url)
    monkeypatch.setenv("RUNCOMFY_ACCOUNT_BASE_URL", account.api_url)
    return account


# -- the detection ------------------------------------------------------------------------------


@pytest.mark.parametrize("flags, expected", [
    ({}, None),
    ({"disable_api_nodes": False}, None),  # October 2025 without the flag
    ({"disable_api_nodes": True}, "--disable-api-nodes"),  # October 2025: the only switch
    ({"offline": True, "disable_api_nodes": True}, "--offline"),  # 2026: --offline (its alias set too)
    ({"offline": True}, "--offline"),
    ({"offline": False, "disable_api_nodes": False}, None),
    ({"offline": "yes"}, None),  # only a real store_true flag counts
])
def test_the_flag_is_read_from_comfyuis_arguments(flags, expected):
    assert offline.offline_flag(comfy_args(**flags)) == expected


def test_outside_comfyui_the_pack_is_online(monkeypatch):
    monkeypatch.delitem(sys.modules, "comfy.cli_args", raising=False)
    assert offline.offline_flag() is None


def test_inside_comfyui_its_loaded_arguments_decide(run_offline):
    run_offline("--disable-api-nodes")
    assert offline.offline_flag() == "--disable-api-nodes"


def test_the_refusal_is_one_line_that_names_the_flag_and_what_to_do():
    assert offline.offline_message("--offline") == FLAG_MESSAGE
    assert "\n" not in offline.offline_refusal("--disable-api-nodes", "nothing was stored")


# -- the nodes ----------------------------------------------------------------------------------


async def generate(prompt: str = "a lighthouse at dusk") -> Any:
    return await TextToImage().generate(unique_id="3", **{**widget_defaults(TextToImage), "prompt": prompt})


@pytest.mark.anyio
@pytest.mark.parametrize("flag", ["--offline", "--disable-api-nodes"])
async def test_offline_a_new_job_is_refused_before_any_call(every_base, run_offline, flag):
    run_offline(flag)
    with pytest.raises(errors.OfflineError) as refused:
        await generate()
    assert str(refused.value) == offline.offline_message(flag)
    assert every_base.requests() == []  # no token check, no catalog, no balance, no submit


@pytest.mark.anyio
async def test_offline_without_a_token_says_offline_not_how_to_sign_in(every_base, run_offline, monkeypatch):
    monkeypatch.delenv("RUNCOMFY_API_TOKEN")
    run_offline()
    with pytest.raises(errors.OfflineError, match="--offline"):
        await generate()
    assert every_base.requests() == []


@pytest.mark.anyio
async def test_offline_a_stored_result_of_the_same_inputs_is_still_reused(every_base, run_offline):
    images, info = await generate("the same inputs twice")
    assert len(every_base.requests(route="submit")) == 1
    before = len(every_base.requests())
    run_offline()
    again, again_info = await generate("the same inputs twice")
    assert len(every_base.requests()) == before  # not one call more
    assert "not billed again" in again_info and again.shape == images.shape
    assert bool((again == images).all())
    with pytest.raises(errors.OfflineError):
        await generate("other inputs")
    assert len(every_base.requests()) == before


@pytest.mark.anyio
async def test_offline_reuse_switched_off_is_refused(every_base, run_offline, tmp_path, monkeypatch):
    config = tmp_path / "reuse-off.json"
    config.write_text('{"reuse_results": false}', encoding="utf-8")
    monkeypatch.setenv("RUNCOMFY_CONFIG", str(config))
    await generate("fresh every time")  # stored, but the user asked for fresh images every run
    before = len(every_base.requests())
    run_offline()
    with pytest.raises(errors.OfflineError):
        await generate("fresh every time")
    assert len(every_base.requests()) == before


@pytest.mark.anyio
async def test_offline_result_by_request_id_returns_stored_images_and_refuses_others(every_base, run_offline):
    images, info = await generate("collect me later")
    (request_id,) = [record.request_id for record in every_base.requests(route="submit")]
    before = len(every_base.requests())
    run_offline()
    collected, collected_info = await ResultById().generate(unique_id="4", request_id=request_id)
    assert bool((collected == images).all()) and request_id in collected_info
    unknown = "0b6c1e9e-2f61-4f7a-9a43-6d3c1f0f8a11"
    with pytest.raises(errors.OfflineError):
        await ResultById().generate(unique_id="4", request_id=unknown)
    assert len(every_base.requests()) == before


# -- the routes ---------------------------------------------------------------------------------


@pytest.fixture
def route_env(simulator, tmp_path) -> dict[str, str]:
    return {"RUNCOMFY_API_BASE_URL": simulator.url, "RUNCOMFY_WWW_BASE_URL": simulator.www_url,
            "RUNCOMFY_ACCOUNT_BASE_URL": simulator.api_url, "RUNCOMFY_CONFIG": str(tmp_path / "config.json"),
            "HOME": str(tmp_path / "home"), "RUNCOMFY_API_TOKEN": simulator.token}


@pytest.mark.anyio
async def test_offline_the_routes_call_nobody_and_say_why(simulator, route_env, run_offline):
    run_offline("--disable-api-nodes")
    async with serve(route_env) as editor:
        account = (await editor.get("/runcomfy-nb2/account?refresh=1")).json()
        assert account["offline"] == {"flag": "--disable-api-nodes"}
        assert account["check"]["state"] == account["identity"]["state"] == account["balance"]["state"] == "offline"
        assert "--disable-api-nodes" in account["check"]["message"] and account["token"]["set"] is True
        price = (await editor.get("/runcomfy-nb2/price?node_type=RunComfyNanoBanana2TextToImage"
                                  "&resolution=1K&num_images=1")).json()
        assert price["known"] is False and "--disable-api-nodes" in price["reason"]
        route_env.pop("RUNCOMFY_API_TOKEN")  # a token to save: the check would call auth/me
        stored = await editor.send("POST", "/runcomfy-nb2/token", {"token": "rc_" + "a" * 40})
        assert stored.status_code == 409 and "--disable-api-nodes" in stored.json()["error"]
        assert "nothing was stored" in stored.json()["error"]
        signing = await editor.send("POST", "/runcomfy-nb2/sign-in", {})
        assert signing.status_code == 409 and "no sign-in was started" in signing.json()["error"]
    assert simulator.requests() == []


@pytest.mark.anyio
async def test_online_the_account_route_says_nothing_of_offline(simulator, route_env, monkeypatch):
    monkeypatch.delitem(sys.modules, "comfy.cli_args", raising=False)
    async with serve(route_env) as editor:
        account = (await editor.get("/runcomfy-nb2/account")).json()
    assert account["offline"] is None and account["check"]["state"] == "valid"
