"""One user's session in the ComfyUI editor, in headless Chromium (run by tests/test_real_comfyui.py).

Runs under ComfyUI's python (which has playwright), not under pytest. Does
what a new user does, with a fresh browser profile and no Comfy.org account:
optionally switches on "Modern Node Design (Nodes 2.0)" in Settings, opens an
example workflow, reads the price badges, pastes the API token in Settings ->
RunComfy, then for every example workflow reads the badges, changes
num_images with the node's own widget, clicks Run and waits for the cost of
the run on the badge; finally reads the session spend in Settings. Prints one
line ``RESULT <json>`` with everything it saw; the test decides what is right.

Usage: python editor_session.py '<json: url, chromium, token, nodes_2, workflows, shots>'
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

# window.app is set before the editor restores its first workflow; loading ours before that
# finished would be replaced by it, so ready means a workflow is open.
READY = """() => !!(window.app && window.app.graph && window.app.vueAppReady && window.LiteGraph
    && Object.keys(window.LiteGraph.registered_node_types).length > 0
    && window.app.extensionManager?.workflow?.activeWorkflow)"""
# What node.badges say for the pack's nodes (functions are called as the editor calls them).
BADGES = """() => (window.app.rootGraph ?? window.app.graph).nodes
    .filter(n => n.type.startsWith('RunComfyNanoBanana2'))
    .map(n => ({id: String(n.id), type: n.type,
                num_images: n.widgets.find(w => w.name === 'num_images').value,
                resolution: n.widgets.find(w => w.name === 'resolution').value,
                badges: (n.badges || []).map(b => (typeof b === 'function' ? b() : b)?.text)}))"""
# What a person sees on the node in Nodes 2.0 (DOM) for the same badges.
DOM_BADGES = """(ids) => Object.fromEntries(ids.map(id => {
    const root = document.querySelector(`[data-node-id="${id}"]`);
    return [id, root ? root.innerText : null]; }))"""
NUM_IMAGES_ARROW = """(id) => {
    const node = (window.app.rootGraph ?? window.app.graph).getNodeById(id) ?? window.app.graph.getNodeById(Number(id));
    const widget = node.widgets.find(w => w.name === 'num_images');
    const height = window.LiteGraph.NODE_WIDGET_HEIGHT ?? 20;
    const at = window.app.canvas.ds.convertOffsetToCanvas(
        [node.pos[0] + node.size[0] - 22, node.pos[1] + (widget.last_y ?? widget.y) + height / 2]);
    const box = window.app.canvas.canvas.getBoundingClientRect();
    const scale = window.app.canvas.canvas.width / box.width;
    return [box.left + at[0] / scale, box.top + at[1] / scale]; }"""


def close_greetings(page: Page) -> None:
    """A first start greets with a dialog (templates, what's new); close it as a person would."""
    dialogs = page.get_by_role("dialog")
    for _ in range(20):
        page.wait_for_timeout(250)
        if dialogs.count() == 0 or not dialogs.first.is_visible():
            continue
        page.keyboard.press("Escape")


def open_settings(page: Page) -> None:
    """The Settings dialog, as a person opens it: the sidebar button (1.5x) or the logo menu (1.2x)."""
    button = page.get_by_role("button", name=re.compile(r"^Settings \("))  # "Settings (Ctrl + ,)" in the sidebar
    if button.count():
        button.first.click()
    else:
        page.locator(".comfyui-logo-wrapper, .comfy-menu-button-wrapper").first.click()
        page.get_by_role("menuitem", name="Settings").click()
    page.get_by_placeholder("Search Settings...").wait_for(timeout=15000)


def close_dialog(page: Page) -> None:
    page.keyboard.press("Escape")
    page.get_by_placeholder("Search Settings...").wait_for(state="hidden", timeout=15000)


def switch_on_nodes_2(page: Page) -> bool:
    open_settings(page)
    page.get_by_placeholder("Search Settings...").fill("Nodes 2.0")
    switch = page.get_by_role("switch", name="Modern Node Design (Nodes 2.0)")
    switch.click()
    page.wait_for_function("() => window.app.extensionManager.setting.get('Comfy.VueNodes.Enabled') === true")
    close_dialog(page)
    return True


def runcomfy_panel(page: Page) -> dict:
    page.get_by_text("RunComfy", exact=True).first.click()
    page.get_by_test_id("runcomfy-token-source").wait_for(timeout=15000)
    page.wait_for_function("() => !document.querySelector('[data-testid=runcomfy-spend-total]')"
                           ".innerText.startsWith('…')", timeout=15000)
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-testid^=runcomfy-]')]
        .filter(e => e.tagName === 'DIV').map(e => [e.dataset.testid, e.innerText]))""")


def store_token(page: Page, token: str, shot: str) -> dict:
    open_settings(page)
    before = runcomfy_panel(page)
    page.get_by_test_id("runcomfy-token-input").fill(token)
    page.get_by_test_id("runcomfy-token-save").click()
    page.wait_for_function("() => document.querySelector('[data-testid=runcomfy-token-check]')"
                           "?.dataset.state === 'valid'", timeout=30000)
    page.get_by_text("Saved: RunComfy accepted the token").wait_for(timeout=15000)
    after = runcomfy_panel(page)
    after["input_value"] = page.get_by_test_id("runcomfy-token-input").input_value()
    page.screenshot(path=shot)
    close_dialog(page)
    return {"before": before, "after": after}


def badges(page: Page) -> list[dict]:
    return page.evaluate(BADGES)


def wait_for_prices(page: Page, prefix: str, timeout: float = 30000) -> list[dict]:
    page.wait_for_function(
        f"""() => ({BADGES})().every(n => (n.badges[n.badges.length - 1] || '').startsWith({json.dumps(prefix)}))""",
        timeout=timeout,
    )
    return badges(page)


def add_an_image(page: Page, node_id: str, nodes_2: bool) -> None:
    """Click the '+' / right arrow of num_images, as a person would."""
    if nodes_2:
        page.locator(f'[data-node-id="{node_id}"] [aria-label="num_images"] button[aria-label="Increment"]').click()
    else:
        x, y = page.evaluate(NUM_IMAGES_ARROW, node_id)
        page.mouse.click(x, y)


def run_workflow(page: Page, path: str, nodes_2: bool, shots: Path, rerun: bool) -> dict:
    name = Path(path).stem
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", json.loads(Path(path).read_text()))
    seen: dict = {"loaded": wait_for_prices(page, "≈ $")}
    first = seen["loaded"][0]
    add_an_image(page, first["id"], nodes_2)
    page.wait_for_function(
        f"""() => {{ const n = ({BADGES})().find(n => n.id === {json.dumps(first["id"])});
                    return n.num_images === {first["num_images"] + 1} && n.badges.at(-1).startsWith('≈ $')
                           && n.badges.at(-1) !== {json.dumps(first["badges"][-1])}; }}""",
        timeout=30000,
    )
    seen["changed"] = badges(page)
    ids = [node["id"] for node in seen["changed"]]
    if nodes_2:
        seen["changed_dom"] = page.evaluate(DOM_BADGES, ids)
    seen["sign_in_gate"] = page.get_by_text("Sign in to run").count()
    run = page.get_by_role("button", name="Run", exact=True)
    seen["run_buttons"] = run.count()
    page.screenshot(path=str(shots / f"{name}-price.png"))
    run.first.click()
    seen["after_run"] = wait_for_prices(page, "last run $", timeout=120000)
    if nodes_2:
        seen["after_run_dom"] = page.evaluate(DOM_BADGES, ids)
    page.screenshot(path=str(shots / f"{name}-after-run.png"))
    if rerun:  # nothing changed: ComfyUI reuses the cached result, RunComfy is not asked again
        run.first.click()
        seen["after_rerun"] = wait_for_prices(page, "reused, no new charge", timeout=120000)
    return seen


def main(config: dict) -> dict:
    shots = Path(config["shots"])
    shots.mkdir(parents=True, exist_ok=True)
    result: dict = {"workflows": {}, "page_errors": []}
    arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="fresh-profile-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=config["chromium"] or None, headless=True, args=arguments,
            viewport={"width": 1600, "height": 1000},
        )
        page = context.pages[0] if context.pages else context.new_page()
        try:
            page.set_default_timeout(30000)
            page.on("pageerror", lambda error: result["page_errors"].append(str(error)))
            page.goto(config["url"], wait_until="domcontentloaded", timeout=90000)
            page.wait_for_function(READY, timeout=90000, polling=200)
            close_greetings(page)
            result["version"] = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null")
            result["comfy_org_user"] = page.evaluate(
                "() => window.app.extensionManager?.user?.currentUser ?? null")
            if config["nodes_2"]:
                result["nodes_2"] = switch_on_nodes_2(page)
            first = config["workflows"][0]
            page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", json.loads(Path(first).read_text()))
            result["without_token"] = wait_for_prices(page, "price ?")
            result["settings"] = store_token(page, config["token"], str(shots / "settings-runcomfy.png"))
            for index, path in enumerate(config["workflows"]):
                rerun = index == len(config["workflows"]) - 1
                result["workflows"][Path(path).stem] = run_workflow(page, path, config["nodes_2"], shots, rerun)
            open_settings(page)
            result["spend_panel"] = runcomfy_panel(page)
            page.screenshot(path=str(shots / "settings-spend.png"))
            close_dialog(page)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            raise
        finally:
            context.close()
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))))
