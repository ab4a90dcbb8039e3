"""A new user signs in with RunComfy from the editor, in headless Chromium (run by
tests/test_real_comfyui_sign_in.py under ComfyUI's python, which has playwright).

Fresh browser profile, a ComfyUI with no token anywhere. In Settings -> RunComfy the user
presses "Sign in with RunComfy" four times: the first code is denied on "RunComfy's page",
the second expires, the third is cancelled from the panel, the fourth is approved. The
simulator's control API plays RunComfy's page (``/_sim/sign-ins``). After the approval the
panel must say who is signed in and the balance without a reload; then the user runs an
example workflow and opens Settings again to read the new balance.

Every answer of the pack's routes the page received is kept (``responses``) so the test can
check that the token never reached the browser. Prints ``RESULT <json>``; the test decides.

Usage: python editor_sign_in.py '<json: url, chromium, control_url, control_token, workflow, nodes_2, shots>'
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from playwright.sync_api import Page

from editor_session import close_dialog, editor_page, open_settings, run_workflow, switch_on_nodes_2

PANEL = """() => Object.fromEntries([...document.querySelectorAll('[data-testid^=runcomfy-account], [data-testid^=runcomfy-sign-], [data-testid=runcomfy-token-source]')]
    .map(e => [e.dataset.testid, {text: e.innerText, state: e.dataset.state ?? null, href: e.href ?? null,
                                   shown: e.offsetParent !== null, disabled: e.disabled ?? null}]))"""


def settle(config: dict, action: str, user_code: str) -> dict:
    """What the person does on RunComfy's page: approve, deny, or let the code expire."""
    request = urllib.request.Request(
        config["control_url"] + "/_sim/sign-ins", method="POST",
        data=json.dumps({"action": action, "user_code": user_code}).encode(),
        headers={"Authorization": f"Bearer {config['control_token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def open_runcomfy(page: Page) -> dict:
    open_settings(page)
    page.get_by_text("RunComfy", exact=True).first.click()
    page.wait_for_function("() => { const e = document.querySelector('[data-testid=runcomfy-account-identity]');"
                           " return e && e.dataset.state; }", timeout=30000)
    return page.evaluate(PANEL)


def press_sign_in(page: Page) -> dict:
    """Press the button; the code and the link appear."""
    page.get_by_test_id("runcomfy-sign-in").click()
    page.wait_for_function("() => { const code = document.querySelector('[data-testid=runcomfy-sign-in-code]');"
                           " return code && code.offsetParent !== null && code.innerText.trim(); }", timeout=30000)
    return page.evaluate(PANEL)


def wait_for_ending(page: Page, state: str) -> dict:
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=runcomfy-sign-in-message]')?.dataset.state === {json.dumps(state)}",
        timeout=60000)
    return page.evaluate(PANEL)


def main(config: dict) -> dict:
    shots = Path(config["shots"])
    shots.mkdir(parents=True, exist_ok=True)
    result: dict = {"page_errors": [], "responses": []}
    with editor_page(config, result, shots) as page:

        def keep(response) -> None:
            if "/runcomfy-nb2/" in response.url:
                try:
                    result["responses"].append({"url": response.url, "body": response.text()})
                except Exception as error:  # a body the browser no longer holds
                    result["responses"].append({"url": response.url, "body": f"<unread: {error}>"})

        page.on("response", keep)
        if config["nodes_2"]:
            result["nodes_2"] = switch_on_nodes_2(page)
        result["before"] = open_runcomfy(page)
        page.screenshot(path=str(shots / "not-signed-in.png"))

        for action, state in (("deny", "denied"), ("expire", "expired")):
            shown = press_sign_in(page)
            result[f"code_{state}"] = shown
            if action == "deny":
                page.screenshot(path=str(shots / "sign-in-code.png"))
            settle(config, action, shown["runcomfy-sign-in-code"]["text"].strip())
            result[state] = wait_for_ending(page, state)
            page.screenshot(path=str(shots / f"sign-in-{state}.png"))

        result["code_cancelled"] = press_sign_in(page)
        page.get_by_test_id("runcomfy-sign-in-cancel").click()
        result["cancelled"] = wait_for_ending(page, "cancelled")

        shown = press_sign_in(page)
        result["code_approved"] = shown
        result["approved_on_page"] = settle(config, "approve", shown["runcomfy-sign-in-code"]["text"].strip())
        page.wait_for_function("() => document.querySelector('[data-testid=runcomfy-account-identity]')"
                               "?.dataset.state === 'signed_in' && document.querySelector("
                               "'[data-testid=runcomfy-account-balance]')?.dataset.state === 'known'",
                               timeout=60000)
        result["signed_in"] = page.evaluate(PANEL)
        result["reloads"] = page.evaluate("() => performance.getEntriesByType('navigation').length")
        page.screenshot(path=str(shots / "signed-in.png"))
        close_dialog(page)

        result["run"] = run_workflow(page, config["workflow"], config["nodes_2"], shots, rerun=False)
        open_runcomfy(page)
        page.wait_for_function(
            "(before) => document.querySelector('[data-testid=runcomfy-account-balance]')?.innerText !== before",
            arg=result["signed_in"]["runcomfy-account-balance"]["text"], timeout=60000)
        result["after_run"] = page.evaluate(PANEL)
        page.screenshot(path=str(shots / "balance-after-run.png"))
        close_dialog(page)
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))))
