"""Sign in with RunComfy from a real editor, against the simulator's three bases.

One ComfyUI per editor with no token anywhere (its own RunComfy sign-in folder, empty), one
fresh browser profile (tests/editor_sign_in.py): a denied, an expired and a cancelled sign-in,
then an approved one, a run, and the balance after it. The simulator plays RunComfy's page
through its control API. Screenshots for README: docs/editor-sign-in-code.png,
docs/editor-sign-in-denied.png, docs/editor-signed-in.png (taken in the current editor).
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from packloader import pack_import
from test_real_comfyui import (
    EDITORS, FRONTEND_ROOT, SIM_QUEUE_SECONDS, SIM_RUN_SECONDS, WORKFLOW_DIR, _skip_reason, find_chromium,
    run_editor_session, running_comfyui, skip_without_editor, usd,
)

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")]

DRIVER = Path(__file__).with_name("editor_sign_in.py")
WORKFLOW = WORKFLOW_DIR / "nano_banana_2_text_to_image.json"


@pytest.fixture(scope="module", params=EDITORS)
def signed_in(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    which, nodes_2 = request.param
    skip_without_editor(which)
    label = f"{which}-editor" + ("-nodes-2.0" if nodes_2 else "")
    base = tmp_path_factory.mktemp(f"comfyui-sign-in-{label}")
    extra = ("--front-end-root", FRONTEND_ROOT) if which == "current" else ()
    sign_in_dir = base / "runcomfy-sign-in"
    server = pack_import("simulator.server")
    with server.Simulator(queue_seconds=SIM_QUEUE_SECONDS, run_seconds=SIM_RUN_SECONDS) as simulator:
        simulator.configure(pricing="by_resolution")
        env = {"RUNCOMFY_API_BASE_URL": simulator.url, "RUNCOMFY_WWW_BASE_URL": simulator.www_url,
               "RUNCOMFY_ACCOUNT_BASE_URL": simulator.api_url, "RUNCOMFY_CONFIG": str(base / "runcomfy-config.json"),
               "RUNCOMFY_CONFIG_DIR": str(sign_in_dir), "RUNCOMFY_DATA_DIR": str(base / "data")}
        balance_before = simulator.balance()
        with running_comfyui(base, env, *extra) as comfy:
            assert comfy.http.post("/settings/Comfy.VueNodes.Enabled", json=nodes_2).status_code == 200
            seen = run_editor_session(comfy, {
                "url": comfy.url + "/", "chromium": find_chromium(), "nodes_2": nodes_2, "workflow": str(WORKFLOW),
                "control_url": simulator.url, "control_token": simulator.token, "shots": str(base / "shots"),
            }, f"{label} sign-in", script=DRIVER)
            log, history = comfy.log(), comfy.http.get("/history").json()
        yield {"seen": seen, "sim": simulator, "base": base, "sign_in_dir": sign_in_dir, "log": log,
               "history": history, "balance_before": balance_before, "which": which, "nodes_2": nodes_2}


def minted_token(session: dict[str, Any]) -> str:
    """The token the approval minted, as the pack stored it: RunComfy CLI's token.json."""
    return json.loads((session["sign_in_dir"] / "token.json").read_text())["access_token"]


def test_before_signing_in_the_panel_says_so(signed_in: dict[str, Any]):
    before = signed_in["seen"]["before"]
    assert before["runcomfy-account-identity"]["text"] == "Not signed in", before
    assert before["runcomfy-account-balance"]["text"] == "", before
    assert before["runcomfy-token-source"]["text"] == "Not set", before
    assert before["runcomfy-sign-in"]["disabled"] is False and before["runcomfy-sign-out"]["disabled"] is True


def test_sign_in_shows_a_code_and_a_link_to_runcomfys_page(signed_in: dict[str, Any]):
    seen, sim = signed_in["seen"], signed_in["sim"]
    codes = [seen[f"code_{state}"]["runcomfy-sign-in-code"]["text"].strip()
             for state in ("denied", "expired", "cancelled", "approved")]
    assert len(set(codes)) == 4 and all(re.fullmatch(r"[A-Z0-9-]{4,}", code) for code in codes), codes
    shown = seen["code_denied"]
    link = shown["runcomfy-sign-in-link"]
    assert link["shown"] and link["text"] == "Open RunComfy's sign-in page", link
    assert link["href"].startswith(sim.www_url) and codes[0] in link["href"], link
    assert shown["runcomfy-sign-in-waiting"]["text"] == "Waiting for you to approve it on RunComfy…"
    assert shown["runcomfy-sign-in-cancel"]["shown"] and shown["runcomfy-sign-in"]["disabled"] is True


@pytest.mark.parametrize("state, text", [
    ("denied", "The sign-in was denied on RunComfy's page; nothing was stored. Sign in again to retry."),
    ("expired", "The code expired before it was approved; sign in again for a new code."),
    ("cancelled", "Sign-in cancelled; nothing was stored."),
])
def test_a_sign_in_that_did_not_end_in_approval_says_so(signed_in: dict[str, Any], state: str, text: str):
    ended = signed_in["seen"][state]
    assert ended["runcomfy-sign-in-message"]["text"] == text, ended
    assert not ended["runcomfy-sign-in-code"]["shown"], "the code is gone once the sign-in ended"
    assert ended["runcomfy-account-identity"]["text"] == "Not signed in"
    assert ended["runcomfy-sign-in"]["disabled"] is False, "the user can start again"


def test_approving_signs_the_editor_in_without_a_reload(signed_in: dict[str, Any]):
    seen, sim = signed_in["seen"], signed_in["sim"]
    token = minted_token(signed_in)
    me = httpx.get(f"{sim.www_url}/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    panel = seen["signed_in"]
    assert panel["runcomfy-account-identity"]["text"] == f"Signed in as {me.get('email') or me['id']}", panel
    assert panel["runcomfy-account-balance"]["text"] == f"Balance: {usd(signed_in['balance_before'])}", panel
    path = signed_in["sign_in_dir"] / "token.json"
    # stored where and as RunComfy's CLI stores its own sign-in: `runcomfy whoami` works with it
    assert panel["runcomfy-token-source"]["text"] == f"RunComfy CLI sign-in ({path})", panel
    assert seen["reloads"] == 1, "the page was never reloaded"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(path.read_text())) == {"access_token", "refresh_token", "expires_at", "user_email"}


def test_a_run_then_succeeds_and_the_balance_drops_by_the_billed_cost(signed_in: dict[str, Any]):
    seen, sim = signed_in["seen"], signed_in["sim"]
    (submit,) = sim.requests(route="submit")
    assert submit.account == sim.account_name, "the job was paid by the signed-in account"
    after = sim.balance()
    assert after < signed_in["balance_before"]
    assert seen["after_run"]["runcomfy-account-balance"]["text"] == f"Balance: {usd(after)}", seen["after_run"]
    assert seen["run"]["after_run"][0]["badges"][-1].startswith("last run $"), seen["run"]["after_run"]


def test_the_token_never_reaches_the_browser_a_log_a_png_the_journal_or_comfys_settings(signed_in: dict[str, Any]):
    token = minted_token(signed_in)
    seen, base = signed_in["seen"], signed_in["base"]
    sign_in_answers = [r for r in seen["responses"] if "/sign-in" in r["url"]]
    assert sign_in_answers and len(seen["responses"]) > 10, [r["url"] for r in seen["responses"]]
    assert not [r["url"] for r in seen["responses"] if token in r["body"]]
    assert not [r for r in sign_in_answers if "device_code" in r["body"] or "access_token" in r["body"]]
    assert token not in signed_in["log"] and token not in json.dumps(signed_in["history"])
    leaks = [path for path in base.rglob("*") if path.is_file() and path.parent != signed_in["sign_in_dir"]
             and token.encode() in path.read_bytes()]
    assert not leaks, leaks  # saved PNGs, the journal, comfy.settings.json, screenshots' folder alike
    assert list((base / "output").rglob("*.png")), "the run saved images, which were searched too"
    ours = [error for error in seen["page_errors"] if "runcomfy" in error.lower()]  # the editor's own are not ours
    assert not ours, ours
