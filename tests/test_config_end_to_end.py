"""client/config/settings.py end to end (issue 8 §9 and §11): odd config files and badly pasted tokens, as users meet them.

Each case is run the way a user meets it: the command line in a new process
(or a node in this one) against the simulator, with the token in the
environment or in the config file. A bad setup is one line that names where
the problem is, never shows the token, and sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys

import pytest

from packloader import PACK_ROOT, load_pack, pack_import
from userenv import apply_env, pack_env

pack = load_pack()
config = pack_import("client.config.settings")
errors = pack_import("client.errors")
TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
RUN = ("text-to-image", "--prompt", "a lighthouse", "--resolution", "0.5K")


@pytest.fixture
def config_path(tmp_path):
    return tmp_path / "runcomfy" / "config.json"


@pytest.fixture
def bare_env(config_path):
    """A user's environment with no RunComfy variable except where the config file is."""
    config_path.parent.mkdir()
    return pack_env(config_path)


def write(path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def cli(env: dict, tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PACK_ROOT), *args, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, env=env,
    )


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The command's error line: exit status 2, and nothing else on stderr."""
    message = done.stderr.strip()
    assert done.returncode == 2 and message.startswith("error: ") and "\n" not in message, done.stderr
    return message


def shows_part_of(text: str, token: str) -> bool:
    """Whether any 8 characters of the token in a row appear in ``text``."""
    return any(token[i : i + 8] in text for i in range(len(token) - 7))


# -- §11: the config file -------------------------------------------------------------


def test_a_config_file_with_a_byte_order_mark_works(simulator, bare_env, config_path, tmp_path):
    write(config_path, "\ufeff" + json.dumps({"api_token": simulator.token, "base_url": simulator.url}))
    done = cli(bare_env, tmp_path, *RUN)
    assert done.returncode == 0, done.stderr
    assert len(simulator.requests(route="submit")) == 1 and len(list((tmp_path / "out").iterdir())) == 1


def refusal(env: dict) -> str:
    """The one-line ConfigurationError ``load_settings`` raises for this environment."""
    with pytest.raises(errors.ConfigurationError) as caught:
        config.load_settings(env)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("value", ["true", "12345", '["tok"]'])
def test_a_token_in_the_config_file_that_is_not_text_is_a_one_line_error_naming_the_file(
    bare_env, config_path, value
):
    write(config_path, f'{{"api_token": {value}}}')
    message = refusal(bare_env)
    assert f'"api_token" in {config_path} must be text' in message
    assert "12345" not in message and "tok" not in message.replace("token", "")


@pytest.mark.parametrize("value", ['"ftp://example.com"', '"http://example.com"', '"no url"', "42", "null"])
def test_a_bad_base_url_in_the_config_file_is_blamed_on_the_file(bare_env, config_path, value):
    write(config_path, f'{{"api_token": "tok-1234-abcd", "base_url": {value}}}')
    message = refusal(bare_env)
    assert f'"base_url" in {config_path}' in message and "RUNCOMFY_API_BASE_URL" not in message
    assert "tok-1234-abcd" not in message


@pytest.mark.parametrize("values", [{"api_token": True}, {"base_url": "ftp://example.com"}])
def test_a_config_file_error_stops_the_command_line_before_anything_is_sent(
    simulator, bare_env, config_path, tmp_path, values
):
    write(config_path, json.dumps({"api_token": simulator.token, "base_url": simulator.url, **values}))
    message = one_line_error(cli(bare_env, tmp_path, *RUN))
    assert f"{next(iter(values))}\" in {config_path}" in message and not shows_part_of(message, simulator.token)
    assert simulator.requests() == []


def test_a_bad_base_url_in_the_environment_is_blamed_on_the_variable(bare_env, config_path):
    bare_env.update(RUNCOMFY_API_BASE_URL="http://example.com", RUNCOMFY_API_TOKEN="tok-1234-abcd")
    message = refusal(bare_env)
    assert "RUNCOMFY_API_BASE_URL uses plain http" in message and str(config_path) not in message


def test_the_environment_base_url_wins_over_the_config_file(simulator, bare_env, config_path, tmp_path):
    write(config_path, json.dumps({"api_token": simulator.token, "base_url": "https://elsewhere.invalid"}))
    bare_env["RUNCOMFY_API_BASE_URL"] = simulator.url
    assert cli(bare_env, tmp_path, *RUN).returncode == 0
    assert len(simulator.requests(route="submit")) == 1


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("token_in", ["environment", "file"])
def test_a_world_writable_config_file_is_refused_with_the_chmod_to_run(
    simulator, bare_env, config_path, tmp_path, token_in
):
    values = {"base_url": simulator.url}
    if token_in == "file":
        values["api_token"] = simulator.token
    else:
        bare_env["RUNCOMFY_API_TOKEN"] = simulator.token
    write(config_path, json.dumps(values))
    config_path.chmod(0o666)
    message = one_line_error(cli(bare_env, tmp_path, *RUN))
    assert f"run: chmod 600 {config_path}" in message and not shows_part_of(message, simulator.token)
    assert simulator.requests() == []
    config_path.chmod(0o600)
    assert cli(bare_env, tmp_path, *RUN).returncode == 0  # the advice works


# -- §9: tokens pasted badly ------------------------------------------------------------

BAD_PASTES = {
    "a line break inside": lambda token: token[:20] + "\n" + token[20:],
    "a zero-width space inside": lambda token: token[:20] + "\u200b" + token[20:],
    "smart quotes around": lambda token: "\u201c" + token + "\u201d",
}
PASTES_AND_SOURCES = [
    *((paste, source) for paste in BAD_PASTES for source in ("RUNCOMFY_API_TOKEN", "file")),
    ("a zero-width space inside", "RUNCOMFY_TOKEN"),  # the older variable is checked the same way
]


@pytest.mark.parametrize("paste, source", PASTES_AND_SOURCES)
def test_a_badly_pasted_token_is_a_one_line_error_that_never_shows_it_and_sends_nothing(
    simulator, bare_env, config_path, tmp_path, paste, source
):
    token = BAD_PASTES[paste](simulator.token)
    bare_env["RUNCOMFY_API_BASE_URL"] = simulator.url
    if source == "file":
        write(config_path, json.dumps({"api_token": token}, ensure_ascii=False))
    else:
        bare_env[source] = token
    message = one_line_error(cli(bare_env, tmp_path, *RUN))
    assert "API token" in message and (str(config_path) if source == "file" else source) in message
    assert not shows_part_of(message, simulator.token)
    assert simulator.requests() == []


def test_a_token_with_only_a_trailing_line_break_is_accepted(simulator, bare_env, tmp_path):
    bare_env.update(RUNCOMFY_API_BASE_URL=simulator.url, RUNCOMFY_API_TOKEN=simulator.token + "\n")
    done = cli(bare_env, tmp_path, *RUN)
    assert done.returncode == 0, done.stderr
    assert len(simulator.requests(route="submit")) == 1


@pytest.fixture
def node_env(simulator, monkeypatch, config_path):
    """This test process aimed at the simulator, with no token yet (for nodes run in-process)."""
    apply_env(monkeypatch, pack_env(config_path, RUNCOMFY_API_BASE_URL=simulator.url))
    return monkeypatch


def node_inputs() -> dict:
    widgets = {name: spec[1]["default"] for name, spec in TextToImage.INPUT_TYPES()["required"].items()}
    return {**widgets, "prompt": "a lighthouse", "resolution": "0.5K"}


def everything_logged(caplog) -> str:
    """Every captured record as a console would print it, tracebacks included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def log_everything_at_debug(caplog) -> None:
    for name in (None, "httpx", "httpcore", "runcomfy", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)


@pytest.mark.parametrize("paste", ["a line break inside", "smart quotes around"])
def test_a_node_with_a_badly_pasted_token_says_so_before_any_call_and_logs_nothing_of_it(
    simulator, node_env, caplog, paste
):
    token = BAD_PASTES[paste](simulator.token)
    node_env.setenv("RUNCOMFY_API_TOKEN", token)
    log_everything_at_debug(caplog)
    with pytest.raises(errors.ConfigurationError) as caught:
        asyncio.run(TextToImage().generate(unique_id="5", **node_inputs()))
    message = str(caught.value)
    assert "RUNCOMFY_API_TOKEN" in message and "\n" not in message and "billed" not in message
    assert not shows_part_of(message + everything_logged(caplog), simulator.token)
    assert simulator.requests() == []


def test_debug_logging_of_a_whole_job_never_shows_the_token(simulator, node_env, caplog, config_path):
    """httpx and httpcore at DEBUG, as a user chasing a problem would set them, over a job
    (submit, polls, downloads) and a reuse of it from the journal and the store."""
    node_env.setenv("RUNCOMFY_API_TOKEN", simulator.token)
    log_everything_at_debug(caplog)
    images, info = asyncio.run(TextToImage().generate(unique_id="5", **node_inputs()))
    again, info_again = asyncio.run(TextToImage().generate(unique_id="5", **node_inputs()))
    assert images.shape[0] == 1 and "reused" in info_again and len(simulator.requests(route="submit")) == 1
    logged = everything_logged(caplog)
    assert "httpcore" in logged and "send_request_headers" in logged  # the request layer really was logged
    assert {record.name for record in caplog.records} >= {"httpx", "runcomfy"}
    assert not shows_part_of(logged + info + info_again, simulator.token)
    assert not any(shows_part_of(repr(record.args), simulator.token) for record in caplog.records)
