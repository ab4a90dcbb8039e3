"""One user's session in the ComfyUI editor, in headless Chromium (run by tests/test_real_comfyui.py).

Runs under ComfyUI's python (which has playwright), not under pytest. Does
what a new user does, with a fresh browser profile and no Comfy.org account:
optionally switches on "Modern Node Design (Nodes 2.0)" in Settings, opens an
example workflow, reads the price badges, pastes the API token in Settings ->
RunComfy, then for every example workflow reads the badges, changes
num_images with the node's own widget, clicks Run and waits for the cost of
the run on the badge; then opens the Result by Request ID example from
Browse Templates, types the request id of the first run into its widget,
clicks Run and waits for "collected" on the badge; finally reads the session
spend in Settings. Prints one line ``RESULT <json>`` with everything it saw;
the test decides what is right.

With ``restart`` (the same ComfyUI folders and RunComfy data folder, a new
ComfyUI process, a new browser profile): no token is pasted (it is saved
already); each workflow is run once more with the same change to num_images,
waiting for "reused" on the badge, and the spend of the new session is read.

With ``locale`` (the editor's language already chosen: Comfy.Locale, and Nodes 2.0 when
asked, are set on the server before the page opens, as a returning user has them; the token
is in ComfyUI's environment): opens the first workflow and reads the node titles, widget
labels and badges; searches the node library for each of ``searches``; reads Settings ->
RunComfy; presses the editor's Run button (``run_label`` in that language), waits for the
translated "last run" badge and reads every status line the node sent; screenshots the graph
and the settings for docs/.

With ``price_badges`` (English, token in ComfyUI's environment): the edit example's price badge before any
job, after a job run at 2K and one more image, then Settings -> RunComfy -> Proxy saving ``proxy``.

Usage: python editor_session.py '<json: url, chromium, token, nodes_2, workflows, pack, collect, restart, shots,
                                        locale, searches, run_label, price_prefix, last_run, price_badges, proxy>'
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from playwright.sync_api import Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

# window.app is set before the editor restores its first workflow; loading ours before that
# finished would be replaced by it, so ready means a workflow is open.
READY = """() => !!(window.app && window.app.graph && window.app.vueAppReady && window.LiteGraph
    && Object.keys(window.LiteGraph.registered_node_types).length > 0
    && window.app.extensionManager?.workflow?.activeWorkflow)"""
# What node.badges say for the pack's nodes (functions are called as the editor calls them);
# Result by Request ID has a request_id widget instead of num_images and resolution.
BADGES = """() => (window.app.rootGraph ?? window.app.graph).nodes
    .filter(n => n.type.startsWith('RunComfyNanoBanana2'))
    .map(n => ({id: String(n.id), type: n.type,
                num_images: n.widgets.find(w => w.name === 'num_images')?.value,
                resolution: n.widgets.find(w => w.name === 'resolution')?.value,
                request_id: n.widgets.find(w => w.name === 'request_id')?.value,
                badges: (n.badges || []).map(b => (typeof b === 'function' ? b() : b)?.text)}))"""
# What a person sees on the node in Nodes 2.0 (DOM) for the same badges.
DOM_BADGES = """(ids) => Object.fromEntries(ids.map(id => {
    const root = document.querySelector(`[data-node-id="${id}"]`);
    return [id, root ? root.innerText : null]; }))"""
# Where a canvas widget is on the page; ``fromRight`` px from the node's right edge, or its middle.
WIDGET_POINT = """([id, name, fromRight]) => {
    const node = (window.app.rootGraph ?? window.app.graph).getNodeById(id) ?? window.app.graph.getNodeById(Number(id));
    const widget = node.widgets.find(w => w.name === name);
    const height = window.LiteGraph.NODE_WIDGET_HEIGHT ?? 20;
    const x = fromRight === null ? node.size[0] / 2 : node.size[0] - fromRight;
    const at = window.app.canvas.ds.convertOffsetToCanvas(
        [node.pos[0] + x, node.pos[1] + (widget.last_y ?? widget.y) + height / 2]);
    const box = window.app.canvas.canvas.getBoundingClientRect();
    const scale = window.app.canvas.canvas.width / box.width;
    return [box.left + at[0] / scale, box.top + at[1] / scale]; }"""
# Every image file a node saved, in the order the editor heard of them (its "executed" events).
LISTEN_FOR_SAVED = """() => { window.__savedImages = [];
    window.app.api.addEventListener('executed', ({detail}) => {
        for (const image of detail?.output?.images ?? []) window.__savedImages.push(image.filename); }); }"""
# Each named file painted: an <img> of Nodes 2.0, or an image the canvas draws on a node.
IMAGES_SHOWN = """(names) => names.every(name => {
    const nodes = (window.app.rootGraph ?? window.app.graph).nodes;
    const images = [...document.images, ...nodes.flatMap(n => n.imgs ?? [])];
    return images.some(i => i.src.includes(encodeURIComponent(name)) && i.complete && i.naturalWidth > 0); })"""
# The text PreviewAny shows after a run ('preview' in 1.27; 1.5x adds plain/markdown views and a mode).
PREVIEW_TEXT = """() => (window.app.rootGraph ?? window.app.graph).nodes.filter(n => n.type === 'PreviewAny')
    .map(n => (n.widgets ?? []).filter(w => w.name.startsWith('preview') && w.name !== 'preview_mode')
        .map(w => w.value).filter(v => typeof v === 'string' && v).join('\\n'))"""


# What the editor shows of each node, in its language: title, widget labels, socket names, badges.
NODE_TEXTS = """() => (window.app.rootGraph ?? window.app.graph).nodes.map(n => ({id: String(n.id), type: n.type,
    title: n.title, widgets: Object.fromEntries((n.widgets ?? []).map(w => [w.name, w.label ?? w.name])),
    inputs: Object.fromEntries((n.inputs ?? []).map(i => [i.name, i.label ?? i.localized_name ?? i.name])),
    outputs: (n.outputs ?? []).map(o => o.label ?? o.localized_name ?? o.name),
    badges: (n.badges ?? []).map(b => (typeof b === 'function' ? b() : b)?.text)}))"""
# Every status line the server sent to a node ("progress_text" events), in order.
LISTEN_FOR_STATUS = """() => { window.__statusTexts = [];
    window.app.api.addEventListener('progress_text', ({detail}) => window.__statusTexts.push(detail)); }"""


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
    """Switch it on in Settings; after a restart the server-side setting may be on already."""
    if page.evaluate("() => window.app.extensionManager.setting.get('Comfy.VueNodes.Enabled') === true"):
        return True
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


def saved_so_far(page: Page) -> int:
    return page.evaluate("() => window.__savedImages.length")


def wait_for_saved_images(page: Page, before: int) -> list[str]:
    """The files the run saved (after ``before`` known ones), once the editor shows each of them."""
    page.wait_for_function(f"() => window.__savedImages.length > {before}", timeout=60000)
    names = page.evaluate(f"() => window.__savedImages.slice({before})")
    page.wait_for_function(IMAGES_SHOWN, arg=names, timeout=30000)
    return names


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
        x, y = page.evaluate(WIDGET_POINT, [node_id, "num_images", 22])
        page.mouse.click(x, y)


def type_into_text_widget(page: Page, node_id: str, name: str, text: str, nodes_2: bool) -> None:
    """Replace a one-line text widget's value as a person does: click it, type, Enter."""
    if nodes_2:
        field = page.locator(f'[data-node-id="{node_id}"] [data-widget-name="{name}"] input')
        field.click()
        field.press("Control+A")
        field.press_sequentially(text)
        field.press("Enter")
    else:  # the canvas opens a small "Value" box over the widget
        x, y = page.evaluate(WIDGET_POINT, [node_id, name, None])
        page.mouse.click(x, y)
        field = page.locator(".graphdialog input").first
        field.wait_for(timeout=15000)
        field.press("Control+A")
        field.press_sequentially(text)
        field.press("Enter")
    page.wait_for_function(
        f"""() => ({BADGES})().find(n => n.id === {json.dumps(node_id)})?.{name} === {json.dumps(text)}""",
        timeout=15000,
    )


def open_template(page: Page, section: str, name: str) -> list[str]:
    """Open an example as a person does: Templates (sidebar) -> the pack's section (its folder name)
    -> the example's card. Returns the titles the section lists."""
    page.get_by_role("button", name=re.compile(r"^Templates")).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(section, exact=True).first.click()
    card = dialog.get_by_text(name, exact=True).first
    card.wait_for(timeout=15000)
    titles = dialog.get_by_text(re.compile(r"^nano_banana_2_")).all_inner_texts()
    card.click()
    dialog.wait_for(state="hidden", timeout=15000)
    return titles


def run_workflow(page: Page, path: str, nodes_2: bool, shots: Path, rerun: bool, expect: str = "last run $") -> dict:
    """Open a workflow, add an image on its first node, press Run; ``expect``: how the badge starts after."""
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
    run = press_run(page, seen, ids, nodes_2, expect, shots / f"{name}-price.png", shots / f"{name}-after-run.png")
    seen["info"] = page.evaluate(PREVIEW_TEXT)  # where a person copies the whole request id from
    if rerun:  # nothing changed: ComfyUI reuses the cached result, RunComfy is not asked again
        run.first.click()
        seen["after_rerun"] = wait_for_prices(page, "reused, no new charge", timeout=120000)
    return seen


def press_run(page: Page, seen: dict, ids: list[str], nodes_2: bool, expect: str, shot_before: Path,
              shot_after: Path, settled: str = "() => true") -> Locator:
    """Press Run as a person does, with what they see before (no sign-in gate, the button) and
    after: the badges once they start with ``expect``, the saved images, then ``settled``."""
    seen["sign_in_gate"] = page.get_by_text("Sign in to run").count()
    run = page.get_by_role("button", name="Run", exact=True)
    seen["run_buttons"] = run.count()
    page.screenshot(path=str(shot_before))
    before = saved_so_far(page)
    run.first.click()
    seen["after_run"] = wait_for_prices(page, expect, timeout=120000)
    if nodes_2:
        seen["after_run_dom"] = page.evaluate(DOM_BADGES, ids)
    seen["images_shown"] = wait_for_saved_images(page, before)
    page.wait_for_function(settled, timeout=30000)
    page.screenshot(path=str(shot_after))
    return run


def collect_by_request_id(page: Page, section: str, name: str, request_id: str, nodes_2: bool, shots: Path) -> dict:
    """Open the Result by Request ID example from Browse Templates, type a request id, press Run."""
    seen: dict = {"template_titles": open_template(page, section, name)}
    seen["loaded"] = wait_for_prices(page, "free")
    node = seen["loaded"][0]
    type_into_text_widget(page, node["id"], "request_id", request_id, nodes_2)
    seen["typed"] = badges(page)
    if nodes_2:
        seen["typed_dom"] = page.evaluate(DOM_BADGES, [node["id"]])
    press_run(page, seen, [node["id"]], nodes_2, "collected, no new charge", shots / f"{name}-typed.png",
              shots / f"{name}-after-run.png", settled=f"() => ({PREVIEW_TEXT})().some(text => text)")
    seen["info"] = page.evaluate(PREVIEW_TEXT)
    return seen


def whole_request_id(badge: str, info: list[str]) -> str:
    """The request id a badge shows shortened ("last run $0.08 · 6296916f…"), whole, from the info text."""
    prefix = badge.rsplit(" · ", 1)[1].removesuffix("…")
    found = {match for text in info for match in re.findall(r"request ([A-Za-z0-9_-]+)", text or "")}
    (request_id,) = [match for match in found if match.startswith(prefix)]
    return request_id


def open_node_search(page: Page, at: tuple[float, float] = (0.5, 0.92)) -> None:
    """Double-click the empty canvas at ``at`` (fractions of its width, height): the node search opens."""
    box = page.evaluate("() => { const r = window.app.canvas.canvas.getBoundingClientRect();"
                        " return [r.left, r.top, r.width, r.height]; }")
    for attempt in range(3):  # a double-click while the editor is busy redrawing may be taken as two clicks
        page.mouse.dblclick(box[0] + box[2] * at[0], box[1] + box[3] * at[1])
        try:
            page.get_by_role("option").first.wait_for(timeout=5000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def search_node_library(page: Page, query: str) -> list[str]:
    """Open the node search, type ``query``, read the results."""
    open_node_search(page)
    page.keyboard.type(query)
    page.wait_for_timeout(1500)  # the list filters as one types; nothing to wait for but the typing
    found = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    page.get_by_role("option").first.wait_for(state="hidden", timeout=15000)
    return found[:8]


def localized_settings(page: Page) -> dict:
    """Settings -> RunComfy as shown in the editor's language (opened with the editor's Ctrl+,)."""
    page.keyboard.press("Control+Comma")
    dialog = page.get_by_role("dialog")
    dialog.first.wait_for(timeout=15000)
    seen = {"panel": runcomfy_panel(page)}
    seen["dialog_text"] = dialog.first.inner_text()
    seen["buttons"] = page.locator("[data-testid^=runcomfy-] button").all_inner_texts()
    return seen


def localized_session(page: Page, config: dict, shots: Path) -> dict:
    """What a user of the editor in ``config['locale']`` sees, and a run (see the module docstring)."""
    locale = config["locale"]
    seen: dict = {"locale": page.evaluate("() => window.app.extensionManager.setting.get('Comfy.Locale')"),
                  "nodes_2": page.evaluate("() => window.app.extensionManager.setting.get('Comfy.VueNodes.Enabled')")}
    page.evaluate(LISTEN_FOR_STATUS)
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }",
                  json.loads(Path(config["workflows"][0]).read_text()))
    seen["loaded"] = wait_for_prices(page, config["price_prefix"])  # the base price in that language
    # A seed of this session's own: ComfyUI would otherwise reuse another session's cached run.
    page.evaluate("""([seed]) => { for (const n of (window.app.rootGraph ?? window.app.graph).nodes) {
        const w = (n.widgets ?? []).find(w => w.name === 'seed'); if (w) { w.value = seed; w.callback?.(seed); } } }""",
                  [config["seed"]])
    seen["nodes"] = page.evaluate(NODE_TEXTS)
    ours = [node["id"] for node in seen["nodes"] if node["type"].startswith("RunComfyNanoBanana2")]
    if config["nodes_2"]:
        seen["dom"] = page.evaluate(DOM_BADGES, ours)
    seen["search"] = {query: search_node_library(page, query) for query in config["searches"]}
    seen["settings"] = localized_settings(page)
    page.screenshot(path=str(shots / f"settings-{locale}.png"))
    page.keyboard.press("Escape")
    page.get_by_test_id("runcomfy-token-source").wait_for(state="hidden", timeout=15000)
    # Badges are drawn above the title: give the top row of nodes some room below the toolbar.
    page.evaluate("() => { window.app.canvas.ds.offset[1] += 70; window.app.canvas.setDirty(true, true); }")
    run = page.get_by_role("button", name=config["run_label"], exact=True)
    seen["run_buttons"] = run.count()
    before = saved_so_far(page)
    run.first.click()
    seen["after_run"] = wait_for_prices(page, config["last_run"], timeout=120000)
    seen["images_shown"] = wait_for_saved_images(page, before)
    page.wait_for_timeout(500)  # the last status line is drawn on the next frame
    if config["nodes_2"]:
        seen["after_run_dom"] = page.evaluate(DOM_BADGES, ours)
    seen["status_texts"] = page.evaluate("() => window.__statusTexts")
    seen["told_server"] = page.evaluate("() => window.app.api.getSetting('RunComfy.EditorLocale')")
    page.screenshot(path=str(shots / f"edit-{locale}.png"))
    return seen


def set_combo(page: Page, node_id: str, name: str, value: str) -> None:
    """Choose ``value`` in a dropdown widget as its menu does: the widget's value, then its callback."""
    page.evaluate("""([id, name, value]) => { const graph = window.app.rootGraph ?? window.app.graph;
        const node = graph.getNodeById(id) ?? graph.getNodeById(Number(id));
        const w = node.widgets.find(w => w.name === name); w.value = value; w.callback?.(value); }""",
                  [node_id, name, value])


def price_badges_session(page: Page, config: dict, shots: Path) -> dict:
    """The price badge before any job (RunComfy's base price in plain words), after a billed 2K job (what
    that job cost), and Settings -> RunComfy -> Proxy saving a URL with a password."""
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }",
                  json.loads(Path(config["workflows"][0]).read_text()))
    seen: dict = {"loaded": wait_for_prices(page, "base $")}
    node_id = seen["loaded"][0]["id"]
    if config["nodes_2"]:
        seen["loaded_dom_titles"] = page.evaluate(
            "(id) => [...document.querySelectorAll(`[data-node-id='${id}'] [title]`)].map(e => e.title)", node_id)
    page.evaluate("() => { window.app.canvas.ds.offset[1] += 70; window.app.canvas.setDirty(true, true); }")
    page.screenshot(path=str(shots / "price-base.png"))
    set_combo(page, node_id, "resolution", "2K")
    seen["two_k"] = wait_for_prices(page, "base $")
    page.get_by_role("button", name="Run", exact=True).first.click()
    seen["after_run"] = wait_for_prices(page, "last run $", timeout=120000)
    add_an_image(page, node_id, config["nodes_2"])
    page.wait_for_function(f"""() => ({BADGES})()[0].badges.at(-1).includes('as billed for 2K')""", timeout=30000)
    seen["billed"] = badges(page)
    page.screenshot(path=str(shots / "price-billed.png"))
    open_settings(page)
    runcomfy_panel(page)
    page.get_by_test_id("runcomfy-proxy-input").fill(config["proxy"])
    page.get_by_test_id("runcomfy-proxy-save").click()
    page.wait_for_function("() => document.querySelector('[data-testid=runcomfy-proxy-message]')?.innerText", timeout=15000)
    seen["proxy"] = page.evaluate("""() => Object.fromEntries(['state', 'message', 'detail'].map(k =>
        [k, document.querySelector(`[data-testid=runcomfy-proxy-${k}]`)?.innerText]))""")
    seen["proxy_input"] = page.get_by_test_id("runcomfy-proxy-input").input_value()
    seen["page_text"] = page.evaluate("() => document.body.innerText")
    page.get_by_test_id("runcomfy-proxy-state").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "price-settings-proxy.png"))
    return seen


@contextlib.contextmanager
def editor_page(config: dict, result: dict, shots: Path) -> Iterator[Page]:
    """The editor at ``config['url']`` in headless Chromium with a fresh profile, once it is ready
    (greetings closed, saved images listened for). Page errors go to ``result['page_errors']``
    and the editor's version to ``result['version']``; a failure leaves ``shots/failure.png``."""
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
            page.on("pageerror", lambda error: result["page_errors"].append(
                f"{error.message} | {(error.stack or '')[:2000]}"))
            page.goto(config["url"], wait_until="domcontentloaded", timeout=90000)
            page.wait_for_function(READY, timeout=90000, polling=200)
            close_greetings(page)
            page.evaluate(LISTEN_FOR_SAVED)
            result["version"] = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null")
            yield page
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            raise
        finally:
            context.close()


def main(config: dict) -> dict:
    shots = Path(config["shots"])
    shots.mkdir(parents=True, exist_ok=True)
    result: dict = {"workflows": {}, "page_errors": []}
    with editor_page(config, result, shots) as page:
        result["comfy_org_user"] = page.evaluate(
            "() => window.app.extensionManager?.user?.currentUser ?? null")
        if config.get("price_badges"):
            result["price_badges"] = price_badges_session(page, config, shots)
            return result
        if config.get("locale"):
            result["localized"] = localized_session(page, config, shots)
            return result
        if config["nodes_2"]:
            result["nodes_2"] = switch_on_nodes_2(page)
        if config.get("restart"):
            for path in config["workflows"]:
                result["workflows"][Path(path).stem] = run_workflow(
                    page, path, config["nodes_2"], shots, rerun=False, expect="reused, no new charge")
        else:
            first = config["workflows"][0]
            page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }",
                          json.loads(Path(first).read_text()))
            result["without_token"] = wait_for_prices(page, "price ?")
            result["settings"] = store_token(page, config["token"], str(shots / "settings-runcomfy.png"))
            for index, path in enumerate(config["workflows"]):
                rerun = index == len(config["workflows"]) - 1
                result["workflows"][Path(path).stem] = run_workflow(page, path, config["nodes_2"], shots, rerun)
            if config.get("collect"):
                paid = result["workflows"][Path(first).stem]
                request_id = whole_request_id(paid["after_run"][0]["badges"][-1], paid["info"])
                result["collect"] = collect_by_request_id(
                    page, config["pack"], config["collect"], request_id, config["nodes_2"], shots)
        open_settings(page)
        result["spend_panel"] = runcomfy_panel(page)
        page.screenshot(path=str(shots / "settings-spend.png"))
        close_dialog(page)
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))))
