"""The simulator's account bases, by raw HTTP: who am I, the balance, the device sign-in.

Each base answers only its own routes, so a client that sends a call to the
wrong base fails here as it would against RunComfy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from simhelpers import TLS, T2I, api, finished_result, submit

PACK_ROOT = Path(__file__).resolve().parents[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start(sim: Any) -> dict[str, Any]:
    answer = httpx.post(f"{sim.www_url}/api/cli-auth/start", verify=TLS)
    assert answer.status_code == 200, answer.text
    return answer.json()


def poll(sim: Any, device_code: str) -> httpx.Response:
    return httpx.post(f"{sim.www_url}/api/cli-auth/poll", json={"device_code": device_code}, verify=TLS)


def test_three_bases_each_answer_only_their_own_routes(simulator: Any) -> None:
    assert len({simulator.url, simulator.www_url, simulator.api_url}) == 3
    me = httpx.get(f"{simulator.www_url}/api/auth/me", headers=bearer(simulator.token), verify=TLS)
    assert me.status_code == 200 and me.json()["id"] == "usr_sim_default"
    assert set(me.json()) == {"id", "email", "token_type", "token_created_at"}
    balance = httpx.get(f"{simulator.api_url}/prod/v2/balance", headers=bearer(simulator.token), verify=TLS)
    assert balance.json() == {"balance_usd": 100.0, "currency": "USD"}
    for base, path in ((simulator.url, "/api/auth/me"), (simulator.url, "/prod/v2/balance"),
                       (simulator.api_url, "/api/auth/me"), (simulator.www_url, "/prod/v2/balance"),
                       (simulator.www_url, f"/v1/models/{T2I}")):
        assert httpx.get(base + path, headers=bearer(simulator.token), verify=TLS).status_code == 404
    assert [r.base for r in simulator.requests(route="unknown")] == ["model", "model", "api", "www", "www"]


def test_auth_me_and_balance_refuse_a_wrong_token_with_401(simulator: Any) -> None:
    for url in (f"{simulator.www_url}/api/auth/me", f"{simulator.api_url}/prod/v2/balance"):
        assert httpx.get(url, headers=bearer("not-a-token"), verify=TLS).status_code == 401
        assert httpx.get(url, verify=TLS).status_code == 401


def test_balance_drops_by_what_a_job_bills(simulator: Any) -> None:
    with api(simulator) as client:
        done = finished_result(simulator, client, submit(client, T2I, {"prompt": "p", "resolution": "2K"}), include_cost="true")
    balance = httpx.get(f"{simulator.api_url}/prod/v2/balance", headers=bearer(simulator.token), verify=TLS).json()
    assert balance["balance_usd"] == pytest.approx(100.0 - done["cost"])


def test_an_account_without_email_reports_its_id_only(simulator: Any) -> None:
    token = simulator.add_account(5.0, name="quiet", email=None)
    me = httpx.get(f"{simulator.www_url}/api/auth/me", headers=bearer(token), verify=TLS).json()
    assert me["email"] is None and me["id"] == "usr_sim_quiet"


def test_an_approved_sign_in_mints_a_fresh_token_for_the_account_once(simulator: Any) -> None:
    started = start(simulator)
    assert set(started) == {"device_code", "user_code", "verify_url", "expires_in", "poll_interval"}
    assert started["verify_url"] == f"{simulator.www_url}/cli-auth?code={started['user_code']}"
    assert poll(simulator, started["device_code"]).json() == {"status": "pending"}
    simulator.approve_sign_in(started["user_code"])
    granted = poll(simulator, started["device_code"])
    assert granted.status_code == 200 and granted.json()["status"] == "authorized"
    token = granted.json()["access_token"]
    assert token != simulator.token
    me = httpx.get(f"{simulator.www_url}/api/auth/me", headers=bearer(token), verify=TLS).json()
    assert me["id"] == "usr_sim_default" and me["token_type"] == "cli"
    spent = poll(simulator, started["device_code"])
    assert spent.status_code == 410 and "access_token" not in spent.json()
    second = start(simulator)
    simulator.approve_sign_in(second["user_code"])
    assert poll(simulator, second["device_code"]).json()["access_token"] != token  # a new token each login


@pytest.mark.parametrize("action, state", [("deny", "denied"), ("expire", "expired")])
def test_denied_and_expired_sign_ins_answer_410(simulator: Any, action: str, state: str) -> None:
    started = start(simulator)
    getattr(simulator, f"{action}_sign_in")(started["user_code"])
    answer = poll(simulator, started["device_code"])
    assert answer.status_code == 410 and answer.json() == {"status": state}


def test_a_sign_in_expires_when_its_time_is_up(simulator: Any) -> None:
    started = start(simulator)
    simulator.advance(started["expires_in"] + 1)
    assert poll(simulator, started["device_code"]).json() == {"status": "expired"}
    assert simulator.pending_sign_ins() == []


def test_the_control_api_settles_sign_ins_and_names_no_token(simulator: Any) -> None:
    started = start(simulator)
    control = httpx.Client(base_url=simulator.url, headers=bearer(simulator.token), verify=TLS)
    assert control.get("/_sim/sign-ins").json() == {"pending": [started["user_code"]]}
    settled = control.post("/_sim/sign-ins", json={"action": "approve", "user_code": started["user_code"]})
    assert settled.json() == {"user_code": started["user_code"], "state": "authorized", "account": "default"}
    assert "token" not in settled.text.lower().replace("user_code", "")
    assert control.post("/_sim/sign-ins", json={"action": "deny"}).status_code == 404  # none pending any more
    assert httpx.post(f"{simulator.url}/_sim/sign-ins", json={"action": "deny"}, verify=TLS).status_code == 401


def test_auto_approval_settles_a_sign_in_on_its_first_poll(simulator: Any) -> None:
    simulator.configure(sign_in_auto="approve")
    answer = poll(simulator, start(simulator)["device_code"])
    assert answer.json()["status"] == "authorized" and answer.json()["access_token"]


def test_the_command_line_prints_three_bases_and_settles_a_sign_in() -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    process = subprocess.Popen(
        [sys.executable, str(PACK_ROOT), "simulator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        process.stdout.readline()  # "listening on"
        for _ in range(4):
            name, value = process.stdout.readline().strip().split("=", 1)
            lines[name] = value
        assert set(lines) == {"RUNCOMFY_API_BASE_URL", "RUNCOMFY_API_TOKEN", "RUNCOMFY_WWW_BASE_URL",
                              "RUNCOMFY_ACCOUNT_BASE_URL"}
        started = httpx.post(f"{lines['RUNCOMFY_WWW_BASE_URL']}/api/cli-auth/start", verify=TLS).json()
        done = subprocess.run(
            [sys.executable, str(PACK_ROOT), "simulator", "sign-in", "deny", "--code", started["user_code"]],
            capture_output=True, text=True, timeout=60, env={**env, **lines},
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"sign-in {started['user_code']}: denied"
        answer = httpx.post(f"{lines['RUNCOMFY_WWW_BASE_URL']}/api/cli-auth/poll",
                            json={"device_code": started["device_code"]}, verify=TLS)
        assert answer.status_code == 410 and answer.json()["status"] == "denied"
    finally:
        process.terminate()
        process.wait(timeout=5)
