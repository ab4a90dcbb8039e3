"""Offline means offline, in a real ComfyUI: started with ``--disable-api-nodes`` (the October
2025 checkout, ``COMFYUI_PATH``) or ``--offline`` (``COMFYUI_2026_PATH``), the pack makes no
call to RunComfy and says why, and a result stored by an earlier online run is still returned.

Each case runs ComfyUI once online to fill the result store, then restarts it with the flag
and the same data folder. The simulator's log (all three bases) must not grow while offline.
A 2026 checkout whose ``comfy/cli_args.py`` has no ``--offline`` yet is run from a temporary
copy with that one flag added (``--disable-api-nodes`` kept), as a stand-in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

import test_real_comfyui as harness
from test_real_comfyui import RESULT, wait_for_history
from test_real_comfyui_stop import COMFYUI_2026_PATH, comfy_env, comfyui_at, queue, text_to_image

CASES = [pytest.param(path, flag, id=f"{label}{flag}") for label, path, flag in (
    ("oct2025", harness.COMFYUI_PATH, "--disable-api-nodes"),
    ("2026", COMFYUI_2026_PATH, "--offline")) if path]
OFFLINE_ARGUMENT = 'parser.add_argument("--offline", action="store_true", help="Make no calls to online services.")\n'

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(
    not CASES or harness._skip_reason() is not None,
    reason=harness._skip_reason() or "COMFYUI_PATH / COMFYUI_2026_PATH are not set")]

sim = harness.sim
EDITOR_OFFLINE = Path(__file__).with_name("editor_offline.py")


def settings_panel(comfy: Any, shot: Path) -> dict[str, Any] | None:
    """Settings -> RunComfy as the editor shows it (tests/editor_offline.py); None without a browser."""
    chromium = harness.find_chromium()
    if not chromium:
        return None
    config = {"url": comfy.url + "/", "chromium": chromium, "shot": str(shot)}
    done = subprocess.run([harness.COMFYUI_PYTHON, str(EDITOR_OFFLINE), json.dumps(config)],
                          capture_output=True, text=True, timeout=harness.BROWSER_SECONDS)
    if "No module named 'playwright'" in done.stderr:
        return None
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    print(f"\nscreenshot: {shot}")
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])


def with_flag(checkout: str, flag: str, scratch: Path) -> str:
    """``checkout`` itself when its ComfyUI knows ``flag``, else a copy with it added (the stand-in)."""
    cli_args = Path(checkout) / "comfy" / "cli_args.py"
    source = cli_args.read_text(encoding="utf-8")
    if f'"{flag}"' in source:
        return checkout
    assert flag == "--offline", f"{checkout} has no {flag}"
    copy = scratch / "comfyui-with-offline"
    shutil.copytree(checkout, copy, symlinks=True)
    anchor = 'parser.add_argument("--disable-api-nodes"'
    assert anchor in source, "no --disable-api-nodes to put --offline beside"
    (copy / "comfy" / "cli_args.py").write_text(source.replace(anchor, OFFLINE_ARGUMENT + anchor, 1),
                                                 encoding="utf-8")
    return str(copy)


def result_by_id(request_id: str) -> dict[str, Any]:
    return {"1": {"class_type": RESULT, "inputs": {"request_id": request_id}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "collected"}}}


def runs_of(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [run for output in entry["outputs"].values() for run in output.get("runcomfy_runs", [])]


def error_of(entry: dict[str, Any]) -> str:
    assert entry["status"]["status_str"] == "error", entry["status"]
    (message,) = [data["exception_message"] for event, data in entry["status"]["messages"] if event == "execution_error"]
    return message


@pytest.mark.parametrize("checkout, flag", CASES)
def test_offline_calls_nobody_says_why_and_still_reuses_a_stored_result(checkout, flag, sim, tmp_path):
    checkout = with_flag(checkout, flag, tmp_path)
    base = tmp_path / "base"
    env = comfy_env(sim, base)
    prompt = text_to_image(f"stored while online {uuid.uuid4().hex}")
    with comfyui_at(checkout, base, env) as online:
        submits = len(sim.requests(route="submit"))
        first = wait_for_history(online, queue(online, prompt))
        (run,) = runs_of(first)
        assert len(sim.requests(route="submit")) == submits + 1 and not run["reused"]

    with comfyui_at(checkout, base, env, flag) as offline:
        calls = len(sim.requests())
        reused = wait_for_history(offline, queue(offline, prompt))
        (again,) = runs_of(reused)
        assert again["reused"] and again["request_id"] == run["request_id"]

        refused = wait_for_history(offline, queue(offline, text_to_image(f"new while offline {uuid.uuid4().hex}")),
                                   succeed=False)
        message = error_of(refused).strip()
        assert message.startswith(f"ComfyUI runs with {flag}: the RunComfy nodes make no calls to RunComfy."), message
        assert "\n" not in message

        collected = wait_for_history(offline, queue(offline, result_by_id(run["request_id"])))
        (collect,) = runs_of(collected)
        assert collect["request_id"] == run["request_id"] and collect["reused"]
        unknown = wait_for_history(offline, queue(offline, result_by_id(str(uuid.uuid4()))), succeed=False)
        assert f"ComfyUI runs with {flag}" in error_of(unknown)

        account = offline.http.get("/runcomfy-nb2/account", params={"refresh": "1"}).json()
        assert account["offline"] == {"flag": flag} and account["check"]["state"] == "offline"
        price = offline.http.get("/runcomfy-nb2/price", params={
            "node_type": harness.T2I, "resolution": "2K", "num_images": "1"}).json()
        assert flag in (price.get("reason") or "")
        check_settings_panel(offline, flag, tmp_path / f"settings-offline{flag}.png")
        assert len(sim.requests()) == calls, [(r.base, r.route) for r in sim.requests()[calls:]]
    if harness.FRONTEND_ROOT:  # the current editor too (COMFYUI_FRONTEND_ROOT)
        with comfyui_at(checkout, base, env, flag, "--front-end-root", harness.FRONTEND_ROOT) as current:
            calls = len(sim.requests())
            check_settings_panel(current, flag, tmp_path / f"settings-offline{flag}-current-editor.png")
            assert len(sim.requests()) == calls


def check_settings_panel(comfy: Any, flag: str, shot: Path) -> None:
    """One offline line in Settings -> RunComfy, and nothing to check a token with."""
    panel = settings_panel(comfy, shot)
    if panel is None:
        return
    assert panel["panel"]["runcomfy-token-check"].startswith(f"Offline: ComfyUI runs with {flag},"), panel
    assert panel["save_disabled"], panel
    assert not [error for error in panel["page_errors"] if "runcomfy" in error.lower()], panel["page_errors"]
