"""client/account: where the token comes from, token.json in the CLI's format, the balance refusal.

Each test has its own HOME (no RunComfy setup of this machine leaks in), and
the account calls go to the simulator's own www and api bases.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from helpers import jobs_for, settings_for
from packloader import pack_import

settings_mod = pack_import("client.config.settings")
paths = pack_import("client.config.paths")
saving = pack_import("client.account.saving")
errors = pack_import("client.errors")
cache = pack_import("client.account.cache")
T2I = pack_import("client").TEXT_TO_IMAGE
pytestmark = pytest.mark.anyio


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """A clean HOME and the pack's config file beside it."""
    return {"HOME": str(tmp_path / "home"), "RUNCOMFY_CONFIG": str(tmp_path / "pack" / "config.json")}


def cli_token_file(env: dict[str, str], token: str, folder: Path | None = None) -> Path:
    """A token.json as ``runcomfy login`` leaves it."""
    path = (folder or Path(env["HOME"]) / ".config" / "runcomfy") / "token.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"access_token": token, "refresh_token": None, "expires_at": None,
                                "user_email": None}, indent=2))
    path.chmod(0o600)
    return path


def legacy_config(env: dict[str, str], **values: Any) -> Path:
    path = Path(env["RUNCOMFY_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    return path


# -- the precedence table (README "Your API token") ------------------------------------------


@pytest.mark.parametrize("variables, files, token, kind", [
    ({"RUNCOMFY_TOKEN": "env-a"}, ("token.json", "config"), "env-a", "environment"),
    ({"RUNCOMFY_API_TOKEN": "env-b"}, ("token.json", "config"), "env-b", "environment"),
    ({"RUNCOMFY_TOKEN": "same-1", "RUNCOMFY_API_TOKEN": "same-1"}, (), "same-1", "environment"),
    ({}, ("token.json", "config"), "cli-file", "cli_sign_in"),
    ({}, ("config",), "old-place", "saved_here"),
    ({}, (), None, "none"),
])
def test_token_precedence(home, variables, files, token, kind):
    if "token.json" in files:
        cli_token_file(home, "cli-file")
    if "config" in files:
        legacy_config(home, api_token="old-place")
    chosen = settings_mod.load_settings({**home, **variables})
    assert (chosen.token, chosen.token_kind) == (token, kind)
    assert "env-a" not in repr(chosen) and "cli-file" not in repr(chosen)


def test_both_variables_set_and_different_is_an_error_naming_both(home):
    with pytest.raises(errors.ConfigurationError) as caught:
        settings_mod.load_settings({**home, "RUNCOMFY_TOKEN": "one-token", "RUNCOMFY_API_TOKEN": "two-token"})
    said = str(caught.value)
    assert "RUNCOMFY_TOKEN" in said and "RUNCOMFY_API_TOKEN" in said and "Nothing was sent" in said
    assert "one-token" not in said and "two-token" not in said


@pytest.mark.parametrize("where", ["RUNCOMFY_CONFIG_DIR", "XDG_CONFIG_HOME", "HOME"])
def test_token_json_is_found_where_the_cli_keeps_it(home, tmp_path, where):
    env = dict(home)
    if where == "RUNCOMFY_CONFIG_DIR":
        env[where] = str(tmp_path / "cli-dir")
        folder = tmp_path / "cli-dir"
    elif where == "XDG_CONFIG_HOME":
        env[where] = str(tmp_path / "xdg")
        folder = tmp_path / "xdg" / "runcomfy"
    else:
        folder = None
    path = cli_token_file(env, "where-token", folder)
    assert paths.token_file_path(env) == path
    assert settings_mod.load_settings(env).token == "where-token"


def test_the_macos_legacy_file_is_read_only_as_a_fallback(home):
    legacy = Path(home["HOME"]) / "Library" / "Application Support" / "runcomfy" / "token.json"
    assert paths.legacy_token_file_path(home, platform="darwin") == legacy
    assert paths.legacy_token_file_path(home, platform="linux") is None


def test_saving_writes_the_cli_format_owner_only_and_moves_the_old_token(home):
    config = legacy_config(home, api_token="old-place", reuse_results=False)
    path = saving.store_token("new-token-1234", env=home)
    assert path.read_text() == json.dumps({"access_token": "new-token-1234", "refresh_token": None,
                                           "expires_at": None, "user_email": None}, indent=2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = json.loads(config.read_text())
    assert "api_token" not in kept and kept["reuse_results"] is False  # never in two places
    assert "new-token-1234" not in config.read_text()  # only a one-way tag of it
    chosen = settings_mod.load_settings(home)
    assert (chosen.token, chosen.token_kind) == ("new-token-1234", "saved_here")
    cli_token_file(home, "after-runcomfy-login")  # the CLI signs in again: no longer "saved here"
    assert settings_mod.load_settings(home).token_kind == "cli_sign_in"
    assert saving.remove_token(home) is True and settings_mod.load_settings(home).token is None
    assert not path.exists()


def test_the_old_place_keeps_working_until_the_next_save(home):
    legacy_config(home, api_token="old-place")
    chosen = settings_mod.load_settings(home)
    assert (chosen.token, chosen.token_kind) == ("old-place", "saved_here")
    assert not paths.token_file_path(home).exists()


def test_a_world_writable_token_file_is_refused(home):
    path = cli_token_file(home, "some-token")
    path.chmod(0o666)
    with pytest.raises(errors.ConfigurationError, match="chmod 600"):
        settings_mod.load_settings(home)


# -- the balance check before paying ---------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_account_cache():
    cache.shared_account_cache().forget()
    yield
    cache.shared_account_cache().forget()


def account_settings(simulator: Any, **overrides: Any) -> Any:
    return settings_for(simulator, www_base_url=simulator.www_url, account_base_url=simulator.api_url, **overrides)


async def test_a_balance_below_the_estimate_refuses_before_the_submit(simulator):
    simulator.set_balance(0.10)
    jobs = jobs_for(account_settings(simulator))
    async with jobs.client:
        with pytest.raises(errors.InsufficientBalanceError) as caught:
            await jobs.run(T2I, {"prompt": "a fox", "resolution": "1K", "num_images": 2})
    said = str(caught.value)
    assert "$0.10" in said and "$0.16" in said and "Nothing was submitted" in said and "\n" not in said
    assert simulator.requests(route="submit") == [] and simulator.jobs == {}


async def test_enough_balance_runs_and_the_balance_is_asked_again_after_the_paid_job(simulator):
    jobs = jobs_for(account_settings(simulator))
    async with jobs.client:
        first = await jobs.run(T2I, {"prompt": "a fox", "resolution": "0.5K"})
        after = await cache.shared_account_cache().balance(jobs.client.settings)
    assert first.cost and after.usd == pytest.approx(100.0 - first.cost)
    assert len(simulator.requests(route="balance")) == 2  # before the job, and fresh after it


@pytest.mark.parametrize("outage", ["balance", "model"])
async def test_an_unknown_balance_or_price_never_blocks_a_run(simulator, outage):
    simulator.set_balance(0.07)  # below the base price $0.08 the estimate uses, above the $0.06 billed at 0.5K
    simulator.add_fault(outage, "http_error", status=503, times=None)
    jobs = jobs_for(account_settings(simulator))
    async with jobs.client:
        done = await jobs.run(T2I, {"prompt": "a fox", "resolution": "0.5K"})
    assert done.status == "completed" and len(simulator.requests(route="submit")) == 1


async def test_no_account_base_means_the_balance_is_not_asked(simulator):
    jobs = jobs_for(settings_for(simulator))
    async with jobs.client:
        await jobs.run(T2I, {"prompt": "a fox", "resolution": "0.5K"})
    assert simulator.requests(route="balance") == [] and simulator.requests(route="auth_me") == []


def test_a_custom_model_api_never_sends_its_token_to_runcomfy_com(home):
    chosen = settings_mod.load_settings({**home, "RUNCOMFY_API_BASE_URL": "http://127.0.0.1:9"})
    assert chosen.www_base_url is None and chosen.account_base_url is None
    default = settings_mod.load_settings(home)
    assert (default.www_base_url, default.account_base_url) == ("https://www.runcomfy.com", "https://api.runcomfy.net")
    cli = settings_mod.load_settings({**home, "RUNCOMFY_MODEL_API_BASE": "http://127.0.0.1:9/v1"})
    assert cli.base_url == "http://127.0.0.1:9"
    assert os.environ.get("RUNCOMFY_MODEL_API_BASE") is None
