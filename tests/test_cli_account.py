"""The account commands and a clean HOME, as a newcomer meets them: ``python <pack> login|whoami|logout``.

A HOME holding only a ``token.json`` as ``runcomfy login`` writes it is all
the setup a run needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PACK_ROOT), *args], capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.fixture
def clean_home(simulator, tmp_path):
    """Nothing of RunComfy but a CLI-format token.json in HOME, and the simulator's three bases."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCOMFY_") and k != "XDG_CONFIG_HOME"}
    env.update(HOME=str(tmp_path / "home"), RUNCOMFY_API_BASE_URL=simulator.url,
               RUNCOMFY_WWW_BASE_URL=simulator.www_url, RUNCOMFY_ACCOUNT_BASE_URL=simulator.api_url)
    token_file = tmp_path / "home" / ".config" / "runcomfy" / "token.json"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(json.dumps({"access_token": simulator.token, "refresh_token": None, "expires_at": None,
                                      "user_email": None}, indent=2))
    token_file.chmod(0o600)
    return env, token_file


def test_a_home_with_only_the_cli_sign_in_file_runs_a_job(simulator, clean_home, tmp_path):
    env, _ = clean_home
    done = run("text-to-image", "--prompt", "a fox", "--resolution", "0.5K", "--out", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr
    assert len(simulator.jobs) == 1 and simulator.token not in done.stdout + done.stderr


def test_whoami_says_who_how_much_and_where_the_token_comes_from(simulator, clean_home):
    env, token_file = clean_home
    done = run("whoami", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["signed in as default@simulator.invalid", "balance: $100.00",
                                        f"token from: the RunComfy CLI sign-in ({token_file})"]
    assert simulator.token not in done.stdout + done.stderr


def test_logout_removes_the_sign_in_file(simulator, clean_home):
    env, token_file = clean_home
    assert run("logout", env=env).returncode == 0 and not token_file.exists()
    after = run("whoami", env=env)
    assert after.returncode == 1 and "not signed in" in after.stderr


def test_login_with_the_simulator_approves_on_its_own_and_leaves_the_real_sign_in_alone(clean_home):
    env, token_file = clean_home
    before = token_file.read_text()
    done = run("login", "--simulator", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Open http://127.0.0.1:") and "/cli-auth?code=" in lines[0]
    assert lines[1] == "signed in as default@simulator.invalid"
    assert token_file.read_text() == before
