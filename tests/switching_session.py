"""Switching from Comfy's Nano Banana 2 node in a real editor, in headless Chromium
(run by tests/test_real_comfyui_switching.py under ComfyUI's python, which has playwright).

A fresh browser profile, no Comfy.org account; the RunComfy token is in ComfyUI's
environment. What a person does, in order:

1. drops docs/examples/comfy_nano_banana_2_edit.json on the canvas (Comfy's node is a
   missing node on a backend without Comfy's API nodes), right-clicks that node, chooses
   "Switch to RunComfy", reads the report and closes it; presses Ctrl+Z (Comfy's node is
   back); chooses the whole-workflow command in the Edit menu; presses Run;
2. builds an edit node with six references: the six LoadImage nodes are placed, the edit
   node is added through the node search, and each reference is dragged with the mouse
   onto the edit node's last, free socket (a new one appears each time); presses Run; the
   workflow is serialised as Save writes it, loaded again and exported to the API format;
3. drops an edit workflow saved before the sockets grew (images … images_4) and presses Run.

The graph is read after each step (``STATE``); the test decides what is right. Prints one
line ``RESULT <json>``.

Usage: python switching_session.py '<json: url, chromium, nodes_2, comfy_workflow, old_workflow,
                                            references, shots>'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from playwright.sync_api import Page

from editor_session import (
    PREVIEW_TEXT, editor_page, open_node_search, saved_so_far, switch_on_nodes_2, wait_for_saved_images,
)

GRAPH = "(window.app.rootGraph ?? window.app.graph)"
# Everything the test checks of the graph: nodes (widgets by name, sockets and their links), links, groups.
STATE = f"""() => {{ const graph = {GRAPH};
    const linkOf = (id) => graph.getLink?.(id) ?? graph.links?.get?.(id) ?? graph.links?.[id];
    const nodes = graph.nodes.map(n => ({{id: Number(n.id), type: n.type, title: n.title, pos: [...n.pos], size: [...n.size],
        color: n.color ?? null, bgcolor: n.bgcolor ?? null, mode: n.mode,
        widgets: Object.fromEntries((n.widgets ?? []).map(w => [w.name, w.value])),
        inputs: (n.inputs ?? []).map(i => {{ const l = i.link != null ? linkOf(i.link) : null;
            return {{name: i.name, type: i.type, widget: !!i.widget, from: l ? [Number(l.origin_id), l.origin_slot] : null}}; }}),
        outputs: (n.outputs ?? []).map(o => ({{name: o.name, type: o.type,
            to: (o.links ?? []).map(linkOf).filter(Boolean).map(l => [Number(l.target_id), l.target_slot])}}))}}));
    const groups = (graph.groups ?? graph._groups ?? []).map(g => {{ g.recomputeInsideNodes?.();
        const inside = [...(g.nodes ?? g._nodes ?? g.children ?? [])].filter(c => c && c.id !== undefined && c.type)
            .map(c => Number(c.id));
        return {{title: g.title, bounding: [...(g._bounding ?? g.bounding)], nodes: inside}}; }});
    const registered = window.LiteGraph.registered_node_types;
    return {{nodes, groups, unknown: [...new Set(nodes.map(n => n.type))].filter(t => !(t in registered))}}; }}"""
# Where a point of a node (graph coordinates) is on the page.
TO_PAGE = """([x, y]) => { const at = window.app.canvas.ds.convertOffsetToCanvas([x, y]);
    const box = window.app.canvas.canvas.getBoundingClientRect(); const scale = window.app.canvas.canvas.width / box.width;
    return [box.left + at[0] / scale, box.top + at[1] / scale]; }"""
NODE = f"(id) => {GRAPH}.getNodeById(id)"
REPORT = "#runcomfy-switch-report"


def state(page: Page) -> dict:
    return page.evaluate(STATE)


def node_point(page: Page, node_id: int, dx: float, dy: float) -> list[float]:
    """A point ``dx``, ``dy`` from the node's top-left corner (below its title), on the page."""
    if page.evaluate("() => window.app.extensionManager.setting.get('Comfy.VueNodes.Enabled') === true"):
        box = page.locator(f'[data-node-id="{node_id}"] [data-testid="node-title"]').first.bounding_box()
        return [box["x"] + min(dx, box["width"] / 2), box["y"] + box["height"] / 2]
    pos = page.evaluate(f"(id) => [...({NODE})(id).pos]", node_id)
    return page.evaluate(TO_PAGE, [pos[0] + dx, pos[1] + dy])


def drop_file(page: Page, path: str) -> None:
    """Drag a workflow file from the desktop onto the canvas, as a person opens one."""
    page.evaluate("""([name, text]) => { const dt = new DataTransfer();
        dt.items.add(new File([text], name, {type: 'application/json'}));
        const target = window.app.canvas.canvas;
        for (const type of ['dragenter', 'dragover', 'drop'])
            target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt})); }""",
                  [Path(path).name, Path(path).read_text(encoding="utf-8")])
    ids = sorted(node["id"] for node in json.loads(Path(path).read_text(encoding="utf-8"))["nodes"])
    page.wait_for_function(f"() => JSON.stringify({GRAPH}.nodes.map(n => Number(n.id)).sort((a, b) => a - b)) === "
                           f"{json.dumps(json.dumps(ids, separators=(',', ':')))}", timeout=30000)


def close_missing_nodes_notice(page: Page, node_type: str) -> list[str]:
    """1.27 opens a "Some Nodes Are Missing" dialog, 1.5x a "Missing node" notice: read it and close it."""
    page.wait_for_function("(type) => document.body.innerText.includes(type)", arg=node_type, timeout=15000)
    seen = page.evaluate("""(type) => [...document.querySelectorAll('body *')]
        .filter(e => e.children.length < 8 && e.innerText?.includes(type) && /missing/i.test(e.innerText))
        .map(e => e.innerText).slice(-1)""", node_type)
    if page.get_by_role("dialog").count():
        page.keyboard.press("Escape")
        page.get_by_role("dialog").first.wait_for(state="hidden", timeout=15000)
    # 1.5x: the notice's close button (the one without a label, beside "View details").
    page.evaluate("""() => { const title = [...document.querySelectorAll('body *')]
            .find(e => e.children.length === 0 && e.textContent.startsWith('Missing node'));
        for (let box = title; box; box = box.parentElement) {
            const buttons = [...box.querySelectorAll('button')];
            if (buttons.length) { const close = buttons.find(b => !b.innerText.trim()); close?.click(); return; } } }""")
    return seen


def open_node_menu(page: Page, node_id: int) -> None:
    """Right-click the node; once more if a closing dialog took the first click."""
    entry = page.get_by_text("Switch to RunComfy", exact=True).first
    for attempt in range(3):
        x, y = node_point(page, node_id, 60, 40)
        page.mouse.click(x, y, button="right")
        try:
            entry.wait_for(timeout=5000)
            return
        except Exception:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")


def read_report(page: Page, shot: Path | None) -> str:
    report = page.locator(REPORT)
    report.wait_for(timeout=30000)
    page.wait_for_function(f"() => document.querySelector('{REPORT}')?.innerText.includes('Close')", timeout=15000)
    text = report.inner_text()
    if shot:
        page.screenshot(path=str(shot))
    report.get_by_role("button", name="Close").click()
    report.wait_for(state="hidden", timeout=15000)
    return text


def run_every_command(page: Page) -> None:
    """Edit → "Switch every Nano Banana 2 node to RunComfy": the top menu (1.27) or the logo menu (1.5x)."""
    logo = page.locator("[data-testid=comfy-menu-button], .comfyui-logo-wrapper, .comfy-menu-button-wrapper")
    logo.first.click()
    page.get_by_role("menuitem", name="Edit").first.hover()
    entry = page.get_by_role("menuitem", name="Switch every Nano Banana 2 node to RunComfy")
    entry.first.wait_for(timeout=15000)
    entry.first.click()


def press_ctrl_z(page: Page) -> None:
    """Ctrl+Z with the canvas focused (a click on an empty spot of it first), as a person presses it."""
    box = page.evaluate("() => { const r = window.app.canvas.canvas.getBoundingClientRect();"
                        " return [r.left, r.top, r.width, r.height]; }")
    page.mouse.click(box[0] + box[2] * 0.55, box[1] + box[3] * 0.93)
    page.keyboard.press("Control+z")


def press_run(page: Page) -> dict:
    """Press Run and wait until every saved image is shown; what the run left on the page."""
    seen = {"sign_in_gate": page.get_by_text("Sign in to run").count()}
    before = saved_so_far(page)
    page.get_by_role("button", name="Run", exact=True).first.click()
    seen["saved"] = wait_for_saved_images(page, before)
    seen["info"] = page.evaluate(PREVIEW_TEXT)
    seen["node_errors"] = page.evaluate("() => Object.keys(window.app.lastNodeErrors ?? {})")
    return seen


def switch_comfy_workflow(page: Page, config: dict, shots: Path) -> dict:
    path = config["comfy_workflow"]
    drop_file(page, path)
    seen: dict = {"opened": state(page)}
    comfy_id, comfy_type = next((node["id"], node["type"]) for node in seen["opened"]["nodes"]
                                if node["type"].startswith("GeminiNanoBanana2"))
    seen["missing_notice"] = close_missing_nodes_notice(page, comfy_type)
    open_node_menu(page, comfy_id)
    page.screenshot(path=str(shots / "switch-menu.png"))
    page.get_by_text("Switch to RunComfy", exact=True).first.click()
    seen["report"] = read_report(page, shots / "switch-report.png")
    seen["switched"] = state(page)
    press_ctrl_z(page)
    page.wait_for_function(f"() => ({NODE})({comfy_id})?.type.startsWith('GeminiNanoBanana2')", timeout=30000)
    seen["undone"] = state(page)
    run_every_command(page)
    seen["report_every"] = read_report(page, None)
    seen["switched_every"] = state(page)
    page.screenshot(path=str(shots / "switched.png"))
    seen["run"] = press_run(page)
    page.screenshot(path=str(shots / "switched-after-run.png"))
    return seen


def six_references_workflow(names: list[str]) -> dict:
    """Six LoadImage nodes (one reference each) and a SaveImage, nothing linked: the user's start."""
    nodes = [{"id": n + 1, "type": "LoadImage", "pos": [40 + 250 * (n % 2), 40 + 330 * (n // 2)], "size": [230, 310],
              "flags": {}, "order": n, "mode": 0, "title": f"Reference {n + 1}",
              "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": None},
                                        {"name": "MASK", "type": "MASK", "links": None}],
              "properties": {}, "widgets_values": [name, "image"]} for n, name in enumerate(names)]
    nodes.append({"id": 20, "type": "SaveImage", "pos": [1120, 40], "size": [320, 300], "flags": {}, "order": 10,
                  "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": None}], "outputs": [],
                  "properties": {}, "widgets_values": ["nano_banana_2/six_references"]})
    return {"last_node_id": 20, "last_link_id": 0, "nodes": nodes, "links": [], "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [90, 110]}}, "version": 0.4}


def slot_point(page: Page, node_id: int, slot: int, is_input: bool) -> list[float]:
    """The page point of a socket: its dot (Nodes 2.0) or where the canvas draws it."""
    if page.evaluate("() => window.app.extensionManager.setting.get('Comfy.VueNodes.Enabled') === true"):
        dot = page.locator(f'[data-slot-key="{node_id}-{"in" if is_input else "out"}-{slot}"]').first
        dot.scroll_into_view_if_needed()
        box = dot.bounding_box()
        return [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    at = page.evaluate(f"([id, slot, input]) => [...({NODE})(id).getConnectionPos(input, slot)]",
                       [node_id, slot, is_input])
    return page.evaluate(TO_PAGE, at)


def drag(page: Page, start: list[float], end: list[float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(start[0] + (end[0] - start[0]) * step / 10, start[1] + (end[1] - start[1]) * step / 10)
    page.mouse.up()


def add_node_by_search(page: Page, query: str, wanted_type: str, at: list[float]) -> int:
    """Double-click the empty canvas, type ``query``, click the result: the new node's id (placed at ``at``)."""
    box = page.evaluate("() => { const r = window.app.canvas.canvas.getBoundingClientRect();"
                        " return [r.left, r.top, r.width, r.height]; }")
    before = page.evaluate(f"() => {GRAPH}.nodes.length")
    open_node_search(page, (0.55, 0.9))
    page.keyboard.type(query)
    option = page.get_by_role("option").filter(has_text="Edit (RunComfy)").first
    option.wait_for(timeout=15000)
    option.click()
    page.wait_for_function(f"() => {GRAPH}.nodes.length === {before + 1}", timeout=15000)
    node_id = page.evaluate(f"""(type) => {{ const nodes = {GRAPH}.nodes.filter(n => n.type === type);
        return Number(nodes[nodes.length - 1].id); }}""", wanted_type)
    # 1.5x hangs a node added from the search on the pointer until a click puts it down; 1.27 placed it already.
    page.wait_for_timeout(300)  # it is attached on the frame after the search closed: nothing to wait on
    page.mouse.move(box[0] + box[2] * 0.5, box[1] + box[3] * 0.7, steps=5)
    page.mouse.move(box[0] + box[2] * 0.6, box[1] + box[3] * 0.8, steps=5)
    page.mouse.click(box[0] + box[2] * 0.6, box[1] + box[3] * 0.8)
    page.wait_for_function("() => !window.app.canvas.state?.ghostNodeId", timeout=15000)
    page.evaluate(f"([id, x, y]) => {{ const n = ({NODE})(id); n.pos = [x, y]; {GRAPH}.setDirtyCanvas(true, true); }}",
                  [node_id, *at])
    page.wait_for_timeout(300)  # the moved node is drawn (and, in Nodes 2.0, its DOM laid out) on the next frames
    return node_id


def reference_sockets(page: Page, node_id: int) -> list[dict]:
    return page.evaluate(f"""(id) => ({NODE})(id).inputs.map((input, slot) => ({{name: input.name, slot,
        linked: input.link != null, widget: !!input.widget}})).filter(i => !i.widget && /^images(_\\d+)?$/.test(i.name))""",
                         node_id)


def six_references(page: Page, config: dict, shots: Path) -> dict:
    names = config["references"]
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", six_references_workflow(names))
    page.wait_for_function(f"() => {GRAPH}.nodes.length === {len(names) + 1}", timeout=30000)
    edit = add_node_by_search(page, "Nano Banana 2 Edit", "RunComfyNanoBanana2Edit", [620, 40])
    seen: dict = {"edit_id": edit, "sockets": [reference_sockets(page, edit)]}
    page.evaluate(f"""([id, text]) => {{ const w = ({NODE})(id).widgets.find(w => w.name === 'prompt');
        w.value = text; w.callback?.(text); }}""", [edit, config["prompt"]])
    for n in range(len(names)):
        free = [socket for socket in reference_sockets(page, edit) if not socket["linked"]]
        target = free[0]
        drag(page, slot_point(page, n + 1, 0, False), slot_point(page, edit, target["slot"], True))
        page.wait_for_function(f"""() => {{ const i = ({NODE})({edit}).inputs.find(i => i.name === {json.dumps(target["name"])});
            return i && i.link != null; }}""", timeout=15000)
        page.wait_for_function(f"""() => ({NODE})({edit}).inputs.filter(i => !i.widget && /^images(_\\d+)?$/.test(i.name))
            .length >= Math.min(20, Math.max(4, {n + 2}))""", timeout=15000)
        seen["sockets"].append(reference_sockets(page, edit))
    drag(page, slot_point(page, edit, 0, False), slot_point(page, 20, 0, True))
    page.wait_for_function(f"() => ({NODE})(20).inputs[0].link != null", timeout=15000)
    seen["built"] = state(page)
    page.screenshot(path=str(shots / "references-6.png"))
    seen["run"] = press_run(page)
    saved = page.evaluate(f"() => JSON.stringify({GRAPH}.serialize())")  # what Save writes to the file
    seen["saved_workflow"] = json.loads(saved)
    page.evaluate("async (text) => { await window.app.loadGraphData(JSON.parse(text)); }", saved)
    page.wait_for_function(f"() => ({NODE})({edit})?.type === 'RunComfyNanoBanana2Edit'", timeout=30000)
    seen["reloaded"] = state(page)
    seen["api"] = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    return seen


def old_workflow(page: Page, config: dict, shots: Path) -> dict:
    path = config["old_workflow"]
    drop_file(page, path)
    seen: dict = {"opened": page.evaluate(f"() => {GRAPH}.serialize()"), "state": state(page)}
    seen["run"] = press_run(page)
    page.screenshot(path=str(shots / "old-workflow-after-run.png"))
    return seen


def main(config: dict) -> dict:
    shots = Path(config["shots"])
    shots.mkdir(parents=True, exist_ok=True)
    result: dict = {"page_errors": [], "step": "start"}
    with editor_page(config, result, shots) as page:
        if config["nodes_2"]:
            result["nodes_2"] = switch_on_nodes_2(page)
        for step, run in (("switch", switch_comfy_workflow), ("six", six_references), ("old", old_workflow)):
            result["step"] = step  # where a failure happened (shots/failure.png shows it)
            result[step] = run(page, config, shots)
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))))
