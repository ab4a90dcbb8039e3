"""Settings -> RunComfy in the editor of a ComfyUI started offline (run by tests/test_real_comfyui_offline.py).

Runs under ComfyUI's python (which has playwright), with a fresh browser profile: opens
the editor, opens Settings -> RunComfy as a person does, waits until the token check says
"offline", reads the panel and screenshots it. Prints ``RESULT <json>``.

Usage: python editor_offline.py '<json: url, chromium, shot>'
"""

from __future__ import annotations

import json
import sys
import tempfile

from playwright.sync_api import sync_playwright

from editor_session import READY, close_greetings, open_settings, runcomfy_panel

ARGUMENTS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]


def main(config: dict) -> dict:
    result: dict = {"page_errors": []}
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="fresh-profile-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=config["chromium"] or None, headless=True, args=ARGUMENTS,
            viewport={"width": 1600, "height": 1000})
        page = context.pages[0] if context.pages else context.new_page()
        try:
            page.set_default_timeout(30000)
            page.on("pageerror", lambda error: result["page_errors"].append(f"{error} {error.stack or ''}"[:600]))
            page.goto(config["url"], wait_until="domcontentloaded", timeout=90000)
            page.wait_for_function(READY, timeout=90000, polling=200)
            close_greetings(page)
            result["version"] = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null")
            open_settings(page)
            runcomfy_panel(page)
            page.wait_for_function("() => document.querySelector('[data-testid=runcomfy-token-check]')"
                                   "?.dataset.state === 'offline'", timeout=30000)
            result["panel"] = runcomfy_panel(page)
            result["save_disabled"] = page.get_by_test_id("runcomfy-token-save").is_disabled()
            page.screenshot(path=config["shot"])
        finally:
            context.close()
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))))
