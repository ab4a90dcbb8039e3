"""client/config/settings.py: where the token, base URL and preferences come from, and the config file.

The token is checked when it is loaded, its errors never show it; the file is
written owner-only and atomically.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from packloader import PACK_ROOT, pack_import

config = pack_import("client.config.settings")
errors = pack_import("client.errors")


def test_missing_token_message_says_how_to_set_one(tmp_path):
    settings = config.load_settings({"RUNCOMFY_CONFIG": str(tmp_path / "none.json")})
    with pytest.raises(errors.MissingTokenError) as caught:
        settings.require_token()
    assert "RUNCOMFY_API_TOKEN" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://model-api.runcomfy.net", True),
        ("http://127.0.0.1:8189", True),
        ("http://localhost:8189/", True),
        ("http://[::1]:8189", True),
        ("http://model-api.runcomfy.net", False),
        ("http://192.168.1.5:8189", False),
        ("ftp://model-api.runcomfy.net", False),
    ],
)
def test_plain_http_only_on_loopback(url, ok, tmp_path):
    env = {"RUNCOMFY_API_BASE_URL": url, "RUNCOMFY_CONFIG": str(tmp_path / "none.json")}
    if ok:
        assert config.load_settings(env).base_url == url.rstrip("/")
    else:
        with pytest.raises(errors.ConfigurationError):
            config.load_settings(env)


def test_config_file_inside_the_pack_is_refused():
    inside = PACK_ROOT / "client" / "model" / "schemas" / "nano-banana-2-edit.json"
    with pytest.raises(errors.ConfigurationError, match="inside the node pack"):
        config.load_settings({"RUNCOMFY_CONFIG": str(inside)})


def test_account_fingerprint_changes_with_the_token_and_hides_it(tmp_path):
    first = config.Settings(token="token-one-abcdef")
    second = config.Settings(token="token-two-abcdef")
    assert first.account_fingerprint() != second.account_fingerprint()
    assert "token-one" not in first.account_fingerprint()
    assert first.account_fingerprint() == config.Settings(token="token-one-abcdef").account_fingerprint()


def test_a_pasted_token_loses_only_its_surrounding_whitespace():
    assert config.check_token_text("  rc_AbC-123._~xyz\n") == "rc_AbC-123._~xyz"


@pytest.mark.parametrize("text, says", [
    ("", "empty"),
    ("   \n\t", "empty"),
    ("x" * 513, "too long (513 characters, at most 512)"),
    ("abc def", "space or line break inside (character 4)"),
    ("abc\ndef", "space or line break inside (character 4)"),
    ("abc\u00a0def", "space or line break inside (character 4)"),
    ("abc\u2011def", "not plain ASCII (character 4)"),
    ("t\u00f6ken", "not plain ASCII (character 2)"),
    ("abc\x00def", "not plain ASCII (character 4)"),
    (None, "must be text"),
])
def test_bad_token_text_is_named_without_the_token(text, says):
    with pytest.raises(errors.ConfigurationError) as caught:
        config.check_token_text(text)
    message = str(caught.value)
    assert says in message and "\n" not in message
    if isinstance(text, str) and len(text.strip()) > 3:
        assert text.strip() not in message


def env_for(tmp_path, **extra):
    return {"RUNCOMFY_CONFIG": str(tmp_path / "runcomfy" / "config.json"), **extra}


def write_config(tmp_path, values):
    path = tmp_path / "runcomfy" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def test_preferences_default_to_reuse_and_no_limit(tmp_path):
    settings = config.load_settings(env_for(tmp_path))
    assert settings.reuse_results is True and settings.daily_spend_limit_usd is None


def test_preferences_are_read_from_the_config_file(tmp_path):
    write_config(tmp_path, {"reuse_results": False, "daily_spend_limit_usd": 5})
    settings = config.load_settings(env_for(tmp_path))
    assert settings.reuse_results is False and settings.daily_spend_limit_usd == 5.0


@pytest.mark.parametrize("values, says", [
    ({"reuse_results": "yes"}, '"reuse_results" in {path} must be true or false'),
    ({"reuse_results": 1}, '"reuse_results" in {path} must be true or false'),
    ({"daily_spend_limit_usd": 0}, '"daily_spend_limit_usd" in {path} must be a positive number'),
    ({"daily_spend_limit_usd": -3}, '"daily_spend_limit_usd" in {path} must be a positive number'),
    ({"daily_spend_limit_usd": "5"}, '"daily_spend_limit_usd" in {path} must be a positive number'),
    ({"daily_spend_limit_usd": True}, '"daily_spend_limit_usd" in {path} must be a positive number'),
])
def test_a_mistyped_preference_is_a_one_line_error_naming_the_file(tmp_path, values, says):
    path = write_config(tmp_path, values)
    with pytest.raises(errors.ConfigurationError) as caught:
        config.load_settings(env_for(tmp_path))
    assert says.format(path=path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_new_config_file_is_private_and_holds_what_was_written(tmp_path):
    env = env_for(tmp_path)
    path = config.update_config_file({"api_token": "tok-one-1234"}, env=env)
    assert path == tmp_path / "runcomfy" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"api_token": "tok-one-1234"}
    assert config.load_settings(env).token == "tok-one-1234"
    assert [p.name for p in path.parent.iterdir()] == ["config.json"], "no temporary file left behind"


def test_updates_keep_other_keys_and_tighten_a_loose_file(tmp_path):
    path = write_config(tmp_path, {"base_url": "http://127.0.0.1:9", "download_hosts": ["a.example"], "api_token": "old-token"})
    os.chmod(path, 0o644)
    config.update_config_file({"reuse_results": False}, env=env_for(tmp_path))
    assert json.loads(path.read_text()) == {
        "base_url": "http://127.0.0.1:9", "download_hosts": ["a.example"], "api_token": "old-token", "reuse_results": False,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config.update_config_file({}, remove=("api_token",), env=env_for(tmp_path))
    assert "api_token" not in json.loads(path.read_text())


def test_an_unreadable_config_file_is_not_overwritten(tmp_path):
    path = write_config(tmp_path, {})
    path.write_text('{"api_token": "half', encoding="utf-8")
    with pytest.raises(errors.ConfigurationError, match="Cannot read config file"):
        config.update_config_file({"reuse_results": True}, env=env_for(tmp_path))
    assert path.read_text() == '{"api_token": "half'


def test_writing_through_a_symlink_updates_its_target(tmp_path):
    real = write_config(tmp_path, {"download_hosts": []})
    link = tmp_path / "link.json"
    link.symlink_to(real)
    config.update_config_file({"api_token": "linked-token"}, env={"RUNCOMFY_CONFIG": str(link)})
    assert link.is_symlink() and json.loads(real.read_text())["api_token"] == "linked-token"


def test_a_config_file_inside_the_pack_is_never_written():
    inside = PACK_ROOT / "runcomfy-config.json"
    with pytest.raises(errors.ConfigurationError, match="inside the node pack folder"):
        config.update_config_file({"api_token": "x-token"}, env={"RUNCOMFY_CONFIG": str(inside)})
    assert not inside.exists()
