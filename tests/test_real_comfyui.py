"""The pack inside a real ComfyUI, talking to the simulator: import, node definitions, templates, runs.

Runs only when ``COMFYUI_PATH`` points at a ComfyUI checkout; ComfyUI is
started with ``COMFYUI_PYTHON`` (default: this interpreter). Nothing of the
user's install is touched: ComfyUI runs against a temporary
``--base-directory`` (its own custom_nodes, input, output, user and temp
folders) and an in-memory database, with only this pack linked in.

Each example workflow is converted to the API format the way the editor does
it (headless Chromium via playwright, when ``COMFYUI_PYTHON`` can import
playwright and a Chromium is found; ``CHROMIUM_PATH`` names one) and, always,
by a small converter below that maps ``widgets_values`` to input names using
``/object_info``. When both are available they must agree. The workflows are
then queued with ``POST /prompt`` and followed through ``/history``; the
Result by Request ID example is queued with the request id of a job paid
earlier, as a user pastes it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from packloader import PACK_NAME, PACK_ROOT, pack_import
from test_locales import EDITOR_LOCALES, flatten

httpx = pytest.importorskip("httpx")
Image = pytest.importorskip("PIL.Image")

COMFYUI_PATH = os.environ.get("COMFYUI_PATH", "")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON") or sys.executable


def _skip_reason() -> str | None:
    if not COMFYUI_PATH:
        return "COMFYUI_PATH is not set: point it at a ComfyUI checkout (and COMFYUI_PYTHON at its python) to run this"
    if not (Path(COMFYUI_PATH) / "main.py").is_file():
        return f"COMFYUI_PATH={COMFYUI_PATH} has no main.py: it is not a ComfyUI checkout"
    return None


pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")]

T = TypeVar("T")
T2I, EDIT = "RunComfyNanoBanana2TextToImage", "RunComfyNanoBanana2Edit"
RESULT = "RunComfyNanoBanana2ResultByRequestId"
WORKFLOW_DIR = PACK_ROOT / "example_workflows"
GENERATING_WORKFLOWS = (
    "nano_banana_2_text_to_image",
    "nano_banana_2_edit",
    "nano_banana_2_multi_reference_edit",
    "nano_banana_2_generate_then_edit",
)
RESULT_WORKFLOW = "nano_banana_2_result_by_request_id"  # collects a paid job: never submits
WORKFLOWS = (*GENERATING_WORKFLOWS, RESULT_WORKFLOW)
# Submits each workflow must cause: one per generating node of ours, by model.
EXPECTED_SUBMITS = {
    "nano_banana_2_text_to_image": ["google/nano-banana-2/text-to-image"],
    "nano_banana_2_edit": ["google/nano-banana-2/edit"],
    "nano_banana_2_multi_reference_edit": ["google/nano-banana-2/edit"],
    "nano_banana_2_generate_then_edit": ["google/nano-banana-2/edit", "google/nano-banana-2/text-to-image"],
    RESULT_WORKFLOW: [],
}
# Reference image sizes the edit job must receive (example.png is 768×768, the crop 320×320,
# a 1K text-to-image result 1024×1024).
EXPECTED_REFERENCES = {
    "nano_banana_2_edit": [(768, 768)],
    "nano_banana_2_multi_reference_edit": [(768, 768), (320, 320)],
    "nano_banana_2_generate_then_edit": [(1024, 1024)],
}
# Editor-only nodes: never sent to the server.
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
# Values the editor stores after a widget without a matching input.
EXTRA_WIDGET_VALUE_OPTIONS = ("control_after_generate", "image_upload")
STARTUP_SECONDS = 180.0
RUN_SECONDS = 120.0
BROWSER_SECONDS = 240.0
SIM_QUEUE_SECONDS = 0.2
SIM_RUN_SECONDS = 0.5
TIMINGS: dict[str, float] = {}


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_workflow(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text(encoding="utf-8"))


class ComfyUI:
    """A ComfyUI subprocess on loopback with a temporary base directory."""

    def __init__(self, base: Path, port: int, process: subprocess.Popen, log_path: Path) -> None:
        self.base, self.port, self.process, self.log_path = base, port, process, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        if not self.alive():
            pytest.fail(f"ComfyUI exited with {self.process.returncode}; log:\n{self.log()[-4000:]}")
        try:
            return self.http.get("/system_stats").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.http.close()
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # its own session: only what we started
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def prepare_base_directory(base: Path) -> None:
    """custom_nodes with only this pack (a symlink named like a clone) and input/example.png.

    Kept as it is when it exists: a restarted ComfyUI finds the folders of the last one."""
    for folder in ("custom_nodes", "input", "output", "user", "temp"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if link.is_symlink():
        return
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    shipped = Path(COMFYUI_PATH) / "input" / "example.png"
    if shipped.is_file():
        shutil.copyfile(shipped, base / "input" / "example.png")
    else:  # an old checkout without it: the same size, so the expected reference sizes hold
        Image.new("RGB", (768, 768), (90, 150, 240)).save(base / "input" / "example.png")


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    server = pack_import("simulator.server")
    with server.Simulator(queue_seconds=SIM_QUEUE_SECONDS, run_seconds=SIM_RUN_SECONDS) as simulator:
        yield simulator


@contextlib.contextmanager
def running_comfyui(base: Path, env: dict[str, str], *extra_args: str) -> Iterator[ComfyUI]:
    """ComfyUI on a free loopback port with ``base`` as its --base-directory, stopped afterwards."""
    prepare_base_directory(base)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RUNCOMFY_")}
    environment.update(PYTHONUNBUFFERED="1", **env)
    port = free_loopback_port()
    command = [
        COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--base-directory", str(base), "--database-url", "sqlite:///:memory:", "--disable-auto-launch", *extra_args,
    ]
    log_path = base / f"comfyui-{port}.log"  # one per process: a restart keeps the last one's
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=COMFYUI_PATH, env=environment, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = ComfyUI(base, port, process, log_path)
    try:
        wait_for(server.ready, STARTUP_SECONDS, "ComfyUI to answer /system_stats", interval=0.25)
        TIMINGS.setdefault("startup", time.monotonic() - started)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def comfy(sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyUI]:
    base = tmp_path_factory.mktemp("comfyui-base")
    env = {
        "RUNCOMFY_API_BASE_URL": sim.url, "RUNCOMFY_WWW_BASE_URL": sim.www_url, "RUNCOMFY_ACCOUNT_BASE_URL": sim.api_url,
        "RUNCOMFY_API_TOKEN": sim.token,
        "RUNCOMFY_CONFIG": str(base / "no-runcomfy-config.json"),  # ignore the user's own config file
    }
    with running_comfyui(base, env) as server:
        try:
            yield server
        finally:
            print("\nreal ComfyUI timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def object_info(comfy: ComfyUI) -> dict[str, Any]:
    response = comfy.http.get("/object_info")
    assert response.status_code == 200
    return response.json()


# ------------------------------------------------------------------ conversion to the API format


def convert_workflow(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """UI format → API format the way the editor does it, for the nodes the examples use.

    ``widgets_values`` hold one value per widget input, in the node's input
    order, plus one extra value after a widget with ``control_after_generate``
    (seeds) or ``image_upload`` (LoadImage's upload button), which the editor
    does not send. A socket joined by a link becomes ``[source id, slot]``.
    """
    links = {link[0]: link for link in workflow["links"]}
    nodes = {node["id"]: node for node in workflow["nodes"]}
    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node.get("mode", 0) != 0:
            continue
        definition = object_info[node["type"]]
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        for section in ("required", "optional"):
            for name in definition.get("input_order", {}).get(section, []):
                kind, *rest = definition["input"][section][name]
                options = rest[0] if rest else {}
                if isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                    inputs[name] = values.pop(0)
                    for option in EXTRA_WIDGET_VALUE_OPTIONS:
                        if options.get(option):
                            values.pop(0)
        for slot in node.get("inputs", []):
            link = links.get(slot.get("link"))
            if link is not None:
                source = nodes[link[1]]
                assert source["type"] not in VIRTUAL_NODES, "reroutes/primitives are not converted here"
                inputs[slot["name"]] = [str(link[1]), link[2]]
        assert not values, f"{node['type']} {node['id']}: {len(values)} widget value(s) left over: {values}"
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


BROWSER_SCRIPT = r"""
import asyncio, json, sys
try:
    from playwright.async_api import async_playwright
except ImportError as exc:
    print(f"playwright not importable: {exc}"); sys.exit(3)
url, chromium, paths = sys.argv[1], sys.argv[2] or None, sys.argv[3:]
# window.app exists before the editor has restored its first workflow; a workflow loaded before
# that finished is replaced by it (the editor then sends an empty prompt), so wait for it.
READY = '''() => !!(window.app && window.app.graph && window.app.vueAppReady && window.LiteGraph
    && Object.keys(window.LiteGraph.registered_node_types).length > 0
    && window.app.extensionManager?.workflow?.activeWorkflow)'''
CONVERT = '''async (wf) => {
  const reg = window.LiteGraph.registered_node_types;
  const missing = [...new Set(wf.nodes.map(n => n.type))].filter(t => !(t in reg));
  document.querySelectorAll('.p-toast-message').forEach(e => e.remove());
  await window.app.loadGraphData(wf, true, true, null,
    {showMissingNodesDialog: false, showMissingModelsDialog: false});
  await new Promise(resolve => setTimeout(resolve, 300));  // let a validation toast render
  // The editor reports a workflow that fails its schema (zod) only as a toast, not on the console.
  const toasts = [...document.querySelectorAll('.p-toast-message')].map(e => e.innerText)
    .filter(text => /invalid|error/i.test(text));
  const saved = new Map(wf.nodes.map(n => [n.id, (n.widgets_values || []).length]));
  const widgetMismatch = window.app.graph.serialize().nodes
    .filter(n => (n.widgets_values || []).length !== saved.get(n.id))
    .map(n => `${n.id}:${n.type} editor saves ${JSON.stringify(n.widgets_values)}`);
  const errors = window.app.graph._nodes.filter(n => n.has_errors).map(n => `${n.id}:${n.type}`);
  const loaded = window.app.graph._nodes.map(n => n.id).sort((a, b) => a - b);
  const output = missing.length ? null : (await window.app.graphToPrompt()).output;
  return {missing, widgetMismatch, errors, toasts, loaded, output};
}'''
async def main():
    async with async_playwright() as p:
        try:
            browser = await p.chromium.launch(executable_path=chromium,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        except Exception as exc:
            print(f"cannot launch chromium: {exc}"); return 3
        try:
            page = await browser.new_page()
            await page.goto(url, wait_until="load", timeout=90000)
            await page.wait_for_function(READY, timeout=90000, polling=200)
            results = {}
            for path in paths:
                with open(path, encoding="utf-8") as f:
                    results[path] = await page.evaluate(CONVERT, json.load(f))
        finally:
            await browser.close()
    print("RESULT " + json.dumps(results))
    return 0
sys.exit(asyncio.run(main()))
"""


def find_chromium() -> str | None:
    if os.environ.get("CHROMIUM_PATH"):
        return os.environ["CHROMIUM_PATH"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def convert_in_browser(comfy: ComfyUI) -> tuple[dict[str, Any] | None, str]:
    """Each workflow's ``app.graphToPrompt().output`` from the real editor, or (None, why not)."""
    paths = [str(WORKFLOW_DIR / f"{name}.json") for name in WORKFLOWS]
    chromium = find_chromium() or ""  # empty: playwright's own browser, if installed
    try:
        done = subprocess.run(
            [COMFYUI_PYTHON, "-c", BROWSER_SCRIPT, comfy.url + "/", chromium, *paths],
            capture_output=True, text=True, timeout=BROWSER_SECONDS,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the headless editor did not finish within {BROWSER_SECONDS:.0f} s")
    if done.returncode == 3:
        return None, done.stdout.strip() or done.stderr.strip()[-300:]
    assert done.returncode == 0, f"headless editor failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    by_path = json.loads(line[len("RESULT "):])
    return {Path(path).stem: result for path, result in by_path.items()}, "headless editor"


@pytest.fixture(scope="module")
def api_prompts(comfy: ComfyUI, object_info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name → API-format prompt; the editor's when it can run, checked against the converter."""
    converted = {name: convert_workflow(load_workflow(name), object_info) for name in WORKFLOWS}
    started = time.monotonic()
    from_browser, source = convert_in_browser(comfy)
    if from_browser is None:
        print(f"\nAPI format from the converter in this test (no headless editor: {source})")
        return converted
    TIMINGS["browser conversion"] = time.monotonic() - started
    prompts = {}
    for name in WORKFLOWS:
        result = from_browser[name]
        assert not result["missing"], f"{name}: the editor does not know {result['missing']}"
        assert result["loaded"] == sorted(node["id"] for node in load_workflow(name)["nodes"]), (
            f"{name}: the editor's graph holds nodes {result['loaded']}, not the workflow's")
        assert not result["widgetMismatch"], f"{name}: widgets_values differ from the editor's: {result['widgetMismatch']}"
        assert not result["errors"], f"{name}: nodes flagged with errors in the editor: {result['errors']}"
        assert not result["toasts"], f"{name}: the editor complained while loading it: {result['toasts']}"
        editor = result["output"]
        assert set(editor) == set(converted[name]), f"{name}: editor sends nodes {sorted(editor)}"
        for node_id, node in editor.items():
            mine = converted[name][node_id]
            assert node["class_type"] == mine["class_type"]
            definition = object_info[node["class_type"]]["input"]
            for section in ("required", "optional"):
                for input_name in definition.get(section, {}):
                    assert node["inputs"].get(input_name) == mine["inputs"].get(input_name), (
                        f"{name} node {node_id} {input_name}: editor {node['inputs'].get(input_name)!r}, "
                        f"converter {mine['inputs'].get(input_name)!r}"
                    )
        prompts[name] = editor
    return prompts


# ------------------------------------------------------------------ running


def queue(comfy: ComfyUI, prompt: dict[str, Any], workflow: dict[str, Any]) -> str:
    body = {"prompt": prompt, "client_id": uuid.uuid4().hex, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
    response = comfy.http.post("/prompt", json=body)
    assert response.status_code == 200, f"POST /prompt: {response.status_code} {response.text[:2000]}"
    answer = response.json()
    assert not answer.get("node_errors"), answer["node_errors"]
    return answer["prompt_id"]


def wait_for_history(comfy: ComfyUI, prompt_id: str, *, succeed: bool = True) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        if not comfy.alive():
            pytest.fail(f"ComfyUI exited; log:\n{comfy.log()[-4000:]}")
        entry = comfy.http.get(f"/history/{prompt_id}").json().get(prompt_id)
        return entry if entry and entry.get("status", {}).get("completed") is not None else None

    entry = wait_for(finished, RUN_SECONDS, f"prompt {prompt_id} to finish")
    status = entry["status"]
    if succeed:
        assert status.get("status_str") == "success" and status.get("completed"), (
            f"prompt failed: {json.dumps(status.get('messages'))[:3000]}"
        )
    return entry


def run_workflow(comfy: ComfyUI, prompt: dict[str, Any], workflow: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    entry = wait_for_history(comfy, queue(comfy, prompt, workflow))
    return entry, time.monotonic() - started


def saved_images(comfy: ComfyUI, entry: dict[str, Any], prompt: dict[str, Any]) -> list[Path]:
    paths = []
    for node_id, node in prompt.items():
        if node["class_type"] != "SaveImage":
            continue
        images = entry["outputs"].get(node_id, {}).get("images", [])
        assert images, f"SaveImage {node_id} saved nothing"
        for image in images:
            assert image["type"] == "output"
            paths.append(comfy.base / "output" / image["subfolder"] / image["filename"])
    return paths


def single_runs(base: Path, history: dict[str, Any]) -> list[tuple[dict[str, Any], list[Path]]]:
    """(what the pack's node reported, the images the prompt saved) for every prompt in a
    ``/history`` answer that ran exactly one node of ours, in the order ComfyUI ran them."""
    found = []
    for entry in sorted(history.values(), key=lambda entry: entry["prompt"][0]):
        outputs = entry.get("outputs", {})
        runs = [run for output in outputs.values() for run in output.get("runcomfy_runs", [])]
        if len(runs) != 1:
            continue
        paths = [base / "output" / image["subfolder"] / image["filename"]
                 for output in outputs.values() for image in output.get("images", []) if image.get("type") == "output"]
        found.append((runs[0], paths))
    return found


def pixels(paths: list[Path]) -> list[tuple[tuple[int, int], bytes]]:
    """Decoded RGB pixels of saved images, to compare two runs' results exactly."""
    decoded = []
    for path in paths:
        with Image.open(path) as image:
            decoded.append((image.size, image.convert("RGB").tobytes()))
    return decoded


# ------------------------------------------------------------------ tests


def _mentions_pack(text: str) -> bool:
    lowered = text.lower()
    return any(mark in lowered for mark in (PACK_NAME.lower(), str(PACK_ROOT).lower(), "runcomfy"))


def test_pack_imports_without_failure_traceback_or_warning(comfy: ComfyUI):
    log = comfy.log()
    lines = log.splitlines()
    import_lines = [line for line in lines if line.rstrip().endswith(f"custom_nodes/{PACK_NAME}")]
    assert import_lines, f"the pack is missing from ComfyUI's import times:\n{log[-3000:]}"
    assert not any("IMPORT FAILED" in line for line in import_lines), import_lines
    assert "IMPORT FAILED" not in log and "Cannot import" not in log
    for index, line in enumerate(lines):
        if "Traceback" in line:
            block = "\n".join(lines[index : index + 60])
            assert not _mentions_pack(block), f"traceback involving the pack:\n{block}"
        if "warning" in line.lower() and _mentions_pack(line):
            pytest.fail(f"warning about the pack: {line}")


def test_object_info_defines_the_nodes_as_the_pack_does(comfy: ComfyUI, object_info: dict[str, Any]):
    classes = pack_import("nodes").NODE_CLASS_MAPPINGS
    widgets = ["prompt", "num_images", "seed", "aspect_ratio", "resolution", "output_format",
               "safety_tolerance", "limit_generations", "enable_web_search"]
    references = ["images"] + [f"images_{n}" for n in range(2, 21)]  # the editor shows them as they are needed
    expected_optional = {T2I: [], EDIT: [*references, "image_urls"]}
    for name in (T2I, EDIT):
        assert name in object_info, f"{name} is not in /object_info"
        info = object_info[name]
        assert info["input_order"]["required"] == widgets
        assert info["input_order"].get("optional", []) == expected_optional[name]
        assert info["output"] == ["IMAGE", "STRING"] and info["output_name"] == ["images", "info"]
        assert info["category"] == "RunComfy/Nano Banana 2"
        assert not info.get("api_node") and info["output_node"] is False  # no Comfy.org partner-node gate
        defined = json.loads(json.dumps(classes[name].INPUT_TYPES()))
        for section in ("required", "optional"):
            assert info["input"].get(section, {}) == defined.get(section, {}), f"{name} {section} inputs differ"
        assert info["input"]["required"]["seed"][1].get("control_after_generate") is True
        assert info["input"]["required"]["prompt"][1].get("multiline") is True
    info = object_info[RESULT]
    assert info["input_order"]["required"] == ["request_id"] and info["input"]["required"]["request_id"][0] == "STRING"
    assert info["output"] == ["IMAGE", "STRING"] and info["output_name"] == ["images", "info"]
    assert info["category"] == "RunComfy/Nano Banana 2" and not info.get("api_node") and info["output_node"] is False
    assert json.loads(json.dumps(classes[RESULT].INPUT_TYPES()))["required"] == info["input"]["required"]
    for name in ("SaveImage", "LoadImage", "PreviewAny", "ImageCrop"):
        assert name in object_info, f"core node {name} used by the examples is missing from this ComfyUI"


def test_browse_templates_lists_and_serves_the_examples(comfy: ComfyUI):
    listed = comfy.http.get("/workflow_templates").json()
    assert sorted(listed.get(PACK_NAME, [])) == sorted(WORKFLOWS)
    for name in WORKFLOWS:
        served = comfy.http.get(f"/api/workflow_templates/{PACK_NAME}/{name}.json")
        assert served.status_code == 200 and served.json() == load_workflow(name)
        thumbnail = comfy.http.get(f"/api/workflow_templates/{PACK_NAME}/{name}.jpg")
        assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff", f"{name}.jpg"


def test_help_pages_are_served(comfy: ComfyUI):
    for name in (T2I, EDIT, RESULT):
        page = comfy.http.get(f"/extensions/{PACK_NAME}/docs/{name}.md")
        assert page.status_code == 200 and page.text.startswith("# "), f"{name}.md: {page.status_code}"


def test_i18n_serves_all_14_locales_with_identical_key_sets(comfy: ComfyUI):
    """ComfyUI's GET /i18n, as both editors load it: every editor locale, each with English's keys."""
    served = comfy.http.get("/i18n").json()
    assert set(EDITOR_LOCALES) <= set(served), sorted(set(EDITOR_LOCALES) - set(served))

    def ours(tree: dict[str, Any]) -> set[str]:
        parts = {
            "nodeDefs": {k: v for k, v in tree.get("nodeDefs", {}).items() if k in (T2I, EDIT, RESULT)},
            "settings": {k: v for k, v in tree.get("settings", {}).items() if k.startswith("RunComfy_")},
            "main": {k: tree[k] for k in ("runcomfyNanoBanana2", "nodeCategories", "settingsCategories") if k in tree},
        }
        return set(flatten(parts))

    english = ours(served["en"])
    assert len(english) > 100 and any(key.startswith("nodeDefs.RunComfyNanoBanana2Edit.") for key in english)
    for lang in EDITOR_LOCALES:
        assert ours(served[lang]) == english, (lang, sorted(ours(served[lang]) ^ english)[:10])
    assert served["fr"]["nodeDefs"][EDIT]["display_name"] != served["en"]["nodeDefs"][EDIT]["display_name"]


def test_help_pages_are_served_in_every_editor_locale(comfy: ComfyUI):
    """The editor asks for <Node>/<locale>.md first; English is <Node>.md (the fallback)."""
    for name in (T2I, EDIT, RESULT):
        for lang in EDITOR_LOCALES:
            page = comfy.http.get(f"/extensions/{PACK_NAME}/docs/{name}/{lang}.md")
            if lang == "en":
                assert page.status_code == 404, "English is the fallback page, not a copy"
                continue
            title = json.loads((PACK_ROOT / "locales" / lang / "nodeDefs.json").read_text("utf-8"))[name]["display_name"]
            assert page.status_code == 200 and page.text.startswith(f"# {title}\n"), (name, lang, page.status_code)


def test_examples_convert_to_the_api_format(api_prompts: dict[str, dict[str, Any]]):
    for name, prompt in api_prompts.items():
        types = collections.Counter(node["class_type"] for node in prompt.values())
        ours = types[T2I] + types[EDIT]
        assert ours == len(EXPECTED_SUBMITS[name]), f"{name}: {dict(types)}"
        assert types[RESULT] == (name == RESULT_WORKFLOW), f"{name}: {dict(types)}"
        assert all(node["class_type"] not in VIRTUAL_NODES for node in prompt.values())


@pytest.mark.parametrize("name", GENERATING_WORKFLOWS)
def test_example_runs_to_saved_images(name: str, comfy: ComfyUI, sim: Any, api_prompts: dict[str, Any]):
    prompt, workflow = api_prompts[name], load_workflow(name)
    submits_before = len(sim.requests(route="submit"))
    files_before = len(sim.requests(route="file"))
    entry, seconds = run_workflow(comfy, prompt, workflow)
    TIMINGS[name] = seconds

    submits = sim.requests(route="submit")[submits_before:]
    assert sorted(record.model_id for record in submits) == EXPECTED_SUBMITS[name]
    assert all(record.status == 200 for record in submits), [(r.status, r.note) for r in submits]
    downloads = sim.requests(route="file")[files_before:]
    assert len(downloads) >= len(submits), "every job's image must be downloaded"
    assert not any(record.auth_header_sent for record in downloads), "a file download carried Authorization"

    jobs = {record.request_id: sim.job(record.request_id) for record in submits}
    edit_jobs = [job for job in jobs.values() if job.model_id.endswith("/edit")]
    if name in EXPECTED_REFERENCES:
        assert [image.size for image in edit_jobs[0].images] == EXPECTED_REFERENCES[name]
    sizes = collections.Counter(job.output_size for job in jobs.values())

    paths = saved_images(comfy, entry, prompt)
    assert len(paths) == sum(1 for node in prompt.values() if node["class_type"] == "SaveImage")
    for path in paths:
        assert path.is_file(), path
        raw = path.read_bytes()
        assert sim.token.encode() not in raw, f"{path.name} contains the token"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size in sizes, f"{path.name}: {image.format} {image.size}"
            text = dict(image.text)
        assert {"prompt", "workflow"} <= set(text), f"{path.name} lacks ComfyUI's metadata: {sorted(text)}"
        assert all(sim.token not in value for value in text.values())
        assert any(node.get("class_type") in (T2I, EDIT) for node in json.loads(text["prompt"]).values())

    for node_id, node in prompt.items():
        if node["class_type"] == "PreviewAny":
            shown = "".join(entry["outputs"][node_id]["text"])
            request_ids = [record.request_id for record in submits]
            assert any(request_id in shown for request_id in request_ids) and "completed" in shown, shown


def test_unchanged_workflow_is_not_billed_again(comfy: ComfyUI, sim: Any, api_prompts: dict[str, Any]):
    name = "nano_banana_2_text_to_image"
    prompt, workflow = api_prompts[name], load_workflow(name)
    run_workflow(comfy, prompt, workflow)  # billed only if no earlier test ran it
    submits = len(sim.requests(route="submit"))
    entry, seconds = run_workflow(comfy, prompt, workflow)
    TIMINGS["cached re-run"] = seconds
    assert len(sim.requests(route="submit")) == submits, "an unchanged graph was submitted (and billed) again"
    assert saved_images(comfy, entry, prompt)


def with_request_id(prompt: dict[str, Any], request_id: str) -> dict[str, Any]:
    """The prompt with ``request_id`` pasted into its Result by Request ID node, as a user does."""
    pasted = json.loads(json.dumps(prompt))
    for node in pasted.values():
        if node["class_type"] == RESULT:
            node["inputs"]["request_id"] = request_id
    return pasted


def preview_text(entry: dict[str, Any], prompt: dict[str, Any]) -> str:
    return "".join(text for node_id, node in prompt.items() if node["class_type"] == "PreviewAny"
                   for text in entry["outputs"][node_id]["text"])


def test_result_by_request_id_example_collects_an_earlier_run_for_free(
    comfy: ComfyUI, sim: Any, api_prompts: dict[str, Any]
):
    name = "nano_banana_2_text_to_image"
    paid_prompt = json.loads(json.dumps(api_prompts[name]))
    for node in paid_prompt.values():
        if node["class_type"] == T2I:
            node["inputs"]["seed"] = 1001  # a run of its own: neither ComfyUI's cache nor the journal has it
    before = len(sim.requests(route="submit"))
    paid_entry, _ = run_workflow(comfy, paid_prompt, load_workflow(name))
    (paid,) = sim.requests(route="submit")[before:]

    prompt = with_request_id(api_prompts[RESULT_WORKFLOW], paid.request_id)
    entry, seconds = run_workflow(comfy, prompt, load_workflow(RESULT_WORKFLOW))
    TIMINGS["collect by request id"] = seconds
    assert len(sim.requests(route="submit")) == before + 1, "collecting a request submitted a new (billed) job"
    assert pixels(saved_images(comfy, entry, prompt)) == pixels(saved_images(comfy, paid_entry, paid_prompt))
    (run,) = [run for output in entry["outputs"].values() for run in output.get("runcomfy_runs", [])]
    assert run["request_id"] == paid.request_id and run["collected"] is True
    shown = preview_text(entry, prompt)
    assert paid.request_id in shown and "completed" in shown and "not billed again" in shown, shown


def test_result_by_request_id_collects_a_job_comfyui_never_saw(comfy: ComfyUI, sim: Any, api_prompts: dict[str, Any]):
    """A job paid for whose images never arrived (here submitted straight to RunComfy): collected from it."""
    answer = httpx.post(f"{sim.url}/v1/models/google/nano-banana-2/text-to-image",
                        json={"prompt": "a lighthouse at dusk, watercolour", "num_images": 1, "output_format": "png"},
                        headers={"Authorization": f"Bearer {sim.token}"})
    assert answer.status_code == 200, answer.text
    request_id = answer.json()["request_id"]
    submits = len(sim.requests(route="submit"))
    prompt = with_request_id(api_prompts[RESULT_WORKFLOW], request_id)
    entry, _ = run_workflow(comfy, prompt, load_workflow(RESULT_WORKFLOW))
    assert len(sim.requests(route="submit")) == submits, "collecting a request submitted a new (billed) job"
    assert sim.requests(route="file", request_id=request_id), "the job's image was not downloaded from RunComfy"
    job_images = []
    for data in sim.job(request_id).files:
        with Image.open(io.BytesIO(data)) as image:
            job_images.append((image.size, image.convert("RGB").tobytes()))
    assert pixels(saved_images(comfy, entry, prompt)) == job_images
    assert request_id in preview_text(entry, prompt)


def test_result_by_request_id_example_as_shipped_is_refused_for_free(
    comfy: ComfyUI, sim: Any, api_prompts: dict[str, Any]
):
    """Queued before a request id is pasted: RunComfy's answer, with the id, and nothing billed."""
    prompt, workflow = api_prompts[RESULT_WORKFLOW], load_workflow(RESULT_WORKFLOW)
    placeholder = next(node["inputs"]["request_id"] for node in prompt.values() if node["class_type"] == RESULT)
    submits = len(sim.requests(route="submit"))
    entry = wait_for_history(comfy, queue(comfy, prompt, workflow), succeed=False)
    assert entry["status"]["status_str"] == "error"
    errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert errors and errors[0]["node_type"] == RESULT, entry["status"]["messages"]
    assert placeholder in errors[0]["exception_message"] and "does not know" in errors[0]["exception_message"]
    assert len(sim.requests(route="submit")) == submits


def test_token_appears_in_no_log_history_or_node_definition(comfy: ComfyUI, sim: Any):
    assert sim.token not in comfy.log(), "the token is in ComfyUI's log"
    assert sim.token not in comfy.http.get("/history").text, "the token is in ComfyUI's history"
    assert sim.token not in comfy.http.get("/object_info").text


# ------------------------------------------------------------------ the editor, as a new user sees it
#
# For each editor (the one ComfyUI's requirements pin, and COMFYUI_FRONTEND_ROOT's, e.g. the
# current comfyui-frontend-package unzipped, with and without Nodes 2.0): a fresh ComfyUI with
# no token anywhere and a fresh browser profile with no Comfy.org account. tests/editor_session.py
# does what the user does; the tests below check what it saw against the simulator.
# Then ComfyUI is stopped and started again as a new process on the same folders, RunComfy
# data folder and simulator, and a second session runs the text-to-image example once more.

FRONTEND_ROOT = os.environ.get("COMFYUI_FRONTEND_ROOT", "")
EDITOR_SESSION = Path(__file__).with_name("editor_session.py")
EDITOR_SESSION_SECONDS = 600.0
RESOLUTIONS = ("0.5K", "1K", "2K", "4K")
EDITORS = [
    pytest.param(("pinned", False), id="pinned-editor"),
    pytest.param(("current", False), id="current-editor"),
    pytest.param(("current", True), id="current-editor-nodes-2.0"),
]


def usd(value: float) -> str:
    """Dollars as the editor extension writes them: cents, or tenths of a cent when needed."""
    cents = round(value * 100)
    return f"${value:.2f}" if abs(value * 100 - cents) < 1e-6 else f"${value:.3f}"


RESTART_WORKFLOW = "nano_banana_2_text_to_image"


@dataclasses.dataclass
class EditorSession:
    """What the sessions saw, and what the two ComfyUI processes left (both stopped by now)."""

    result: dict[str, Any]  # the new user's session
    restart: dict[str, Any]  # the session after the restart
    base: Path  # ComfyUI's --base-directory, shared by both processes
    logs: list[str]  # each process's console
    histories: list[dict[str, Any]]  # each process's /history
    submits_before_restart: int
    sim: Any
    config_path: Path
    data_dir: Path
    shots: Path


def run_editor_session(comfy: ComfyUI, config: dict[str, Any], label: str,
                       script: Path = EDITOR_SESSION) -> dict[str, Any]:
    """A page driver (tests/editor_session.py, or ``script``) against ``comfy``; what it saw."""
    started = time.monotonic()
    try:
        done = subprocess.run([COMFYUI_PYTHON, str(script), json.dumps(config)],
                              capture_output=True, text=True, timeout=EDITOR_SESSION_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the editor session did not finish within {EDITOR_SESSION_SECONDS:.0f} s")
    TIMINGS[f"editor session {label}"] = time.monotonic() - started
    if "No module named 'playwright'" in done.stderr:
        pytest.skip("playwright is not installed in COMFYUI_PYTHON's environment")
    assert done.returncode == 0, (f"editor session failed (screenshots in {config['shots']}):\n{done.stdout[-2000:]}\n"
                                  f"{done.stderr[-4000:]}\nComfyUI log:\n{comfy.log()[-3000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    print(f"\neditor screenshots: {config['shots']}")
    return json.loads(line[len("RESULT "):])


def skip_without_editor(which: str) -> None:
    """Skip (saying what to set) when the editor ``which`` or a browser to drive it is missing."""
    if which == "current" and not FRONTEND_ROOT:
        pytest.skip("COMFYUI_FRONTEND_ROOT is not set: point it at an unzipped comfyui-frontend-package's "
                    "comfyui_frontend_package/static to check the current editor too")
    if not find_chromium():
        pytest.skip("no Chromium found (set CHROMIUM_PATH)")


@pytest.fixture(scope="module", params=EDITORS)
def editor(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EditorSession]:
    which, nodes_2 = request.param
    label = f"{which}-editor" + ("-nodes-2.0" if nodes_2 else "")
    skip_without_editor(which)
    base = tmp_path_factory.mktemp(f"comfyui-{label}")
    shots = base / "shots"
    config_path = base / "home" / "runcomfy" / "config.json"
    data_dir = base / "runcomfy-data"  # not the config's folder: RUNCOMFY_DATA_DIR must be followed
    extra = ("--front-end-root", FRONTEND_ROOT) if which == "current" else ()
    server = pack_import("simulator.server")
    with server.Simulator(queue_seconds=SIM_QUEUE_SECONDS, run_seconds=SIM_RUN_SECONDS) as simulator:
        simulator.configure(pricing="by_resolution")  # these checks follow a listed price per resolution
        env = {"RUNCOMFY_API_BASE_URL": simulator.url, "RUNCOMFY_WWW_BASE_URL": simulator.www_url, "RUNCOMFY_ACCOUNT_BASE_URL": simulator.api_url, "RUNCOMFY_CONFIG": str(config_path),
               "RUNCOMFY_CONFIG_DIR": str(config_path.parent), "RUNCOMFY_DATA_DIR": str(data_dir)}
        session = {"chromium": find_chromium(), "token": simulator.token, "nodes_2": nodes_2, "pack": PACK_NAME}
        with running_comfyui(base, env, *extra) as comfy:
            result = run_editor_session(comfy, {
                **session, "url": comfy.url + "/", "shots": str(shots), "collect": RESULT_WORKFLOW,
                "workflows": [str(WORKFLOW_DIR / f"{name}.json") for name in GENERATING_WORKFLOWS],
            }, label)
            first = (comfy.log(), comfy.http.get("/history").json())
        submits_before_restart = len(simulator.requests(route="submit"))
        with running_comfyui(base, env, *extra) as comfy:
            restart = run_editor_session(comfy, {
                **session, "url": comfy.url + "/", "shots": str(shots / "restart"), "restart": True,
                "workflows": [str(WORKFLOW_DIR / f"{RESTART_WORKFLOW}.json")],
            }, f"{label} after restart")
            second = (comfy.log(), comfy.http.get("/history").json())
        yield EditorSession(result, restart, base, [first[0], second[0]], [first[1], second[1]],
                            submits_before_restart, simulator, config_path, data_dir, shots)


def model_info(sim: Any, model_id: str) -> dict[str, Any]:
    """The simulator's own model info (GET /v1/models/{id}), as RunComfy answers it."""
    answer = httpx.get(f"{sim.url}/v1/models/{model_id}", headers={"Authorization": f"Bearer {sim.token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def model_pricing(sim: Any, model_id: str) -> Any:
    """The simulator's own model info, read the way the pack reads RunComfy's."""
    return pack_import("client.pricing.prices").read_pricing(model_info(sim, model_id), RESOLUTIONS)


def short(request_id: str) -> str:
    """A request id as the badges show it: its first 8 characters (the whole id is in the info output)."""
    return f"{request_id[:8]}…"


def submitted_id(sim: Any, shown: str) -> str:
    """The one submitted request id a badge's short id stands for."""
    (request_id,) = {r.request_id for r in sim.requests(route="submit") if r.request_id.startswith(shown.rstrip("…"))}
    return request_id


def reported_job(sim: Any, request_id: str) -> dict[str, Any]:
    """What RunComfy (the simulator) reports for a finished job, through the documented API."""
    answer = httpx.get(f"{sim.url}/v1/requests/{request_id}/result", params={"include_cost": "true"},
                       headers={"Authorization": f"Bearer {sim.token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


MODEL_OF = {T2I: "google/nano-banana-2/text-to-image", EDIT: "google/nano-banana-2/edit"}


def expected_estimate(sim: Any, node: dict[str, Any]) -> str:
    price = model_pricing(sim, MODEL_OF[node["type"]]).estimate(node["resolution"], node["num_images"])
    return f"≈ {usd(price)}"


def test_editor_runs_without_a_comfy_org_account(editor: EditorSession):
    result = editor.result
    assert result["version"], "the editor did not report its version"
    assert result["comfy_org_user"] in (None, {}), "the session must have no Comfy.org account"
    seen_by_name = {**result["workflows"], RESULT_WORKFLOW: result["collect"]}
    for name in WORKFLOWS:
        seen = seen_by_name[name]
        assert seen["sign_in_gate"] == 0, f"{name}: the editor asks to sign in to run"
        assert seen["run_buttons"] >= 1, f"{name}: no Run button"
    assert not [error for error in result["page_errors"] if "runcomfy" in error.lower()], result["page_errors"]


def test_without_a_token_the_price_is_unknown(editor: EditorSession):
    for node in editor.result["without_token"]:
        assert node["badges"][-2:] == ["RunComfy · billed per image", "price ?"], node


def test_the_token_is_set_in_settings_checked_and_stored_privately(editor: EditorSession):
    before, after = editor.result["settings"]["before"], editor.result["settings"]["after"]
    assert before["runcomfy-token-source"] == "Not set"
    assert before["runcomfy-token-check"] == "No token set: the nodes cannot run"
    token_file = editor.config_path.parent / "token.json"  # RunComfy CLI's sign-in file, in its format
    assert after["runcomfy-token-source"] == f"Saved here ({token_file})"
    assert after["runcomfy-token-check"] == "RunComfy accepts this token"
    assert after["input_value"] == "", "the pasted token stays in the page"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert json.loads(token_file.read_text())["access_token"] == editor.sim.token
    assert "api_token" not in (json.loads(editor.config_path.read_text()) if editor.config_path.exists() else {})
    assert (editor.shots / "settings-runcomfy.png").is_file()


def test_price_badges_follow_the_widgets_and_show_the_reported_cost_after_run(editor: EditorSession):
    request_ids = []
    for name in GENERATING_WORKFLOWS:
        seen = editor.result["workflows"][name]
        assert len(seen["loaded"]) == len(EXPECTED_SUBMITS[name])
        for node in seen["loaded"]:
            assert node["badges"][-2:] == ["RunComfy · billed per image", expected_estimate(editor.sim, node)], node
        changed = {node["id"]: node for node in seen["changed"]}
        first = changed[seen["loaded"][0]["id"]]
        assert first["num_images"] == seen["loaded"][0]["num_images"] + 1
        assert first["badges"][-1] == expected_estimate(editor.sim, first), "the badge did not follow num_images"
        for node in seen["after_run"]:
            text = node["badges"][-1]
            assert text.startswith("last run $") and " · " in text, text
            request_id = submitted_id(editor.sim, text.rsplit(" · ", 1)[1])
            job = reported_job(editor.sim, request_id)
            assert job.get("model_id", MODEL_OF[node["type"]]) == MODEL_OF[node["type"]]
            assert text == f"last run {usd(job['cost'])} · {short(request_id)}"
            assert changed[node["id"]]["badges"][-1] == f"≈ {usd(job['cost'])}", "the estimate was not what was billed"
            request_ids.append(request_id)
        if "changed_dom" in seen:  # Nodes 2.0 shows node.badges in the DOM
            for node in seen["changed"]:
                assert node["badges"][-1] in seen["changed_dom"][node["id"]]
            for node in seen["after_run"]:
                assert node["badges"][-1] in seen["after_run_dom"][node["id"]]
    assert len(set(request_ids)) == len(request_ids) == sum(len(ids) for ids in EXPECTED_SUBMITS.values())
    submitted = [record.request_id for record in editor.sim.requests(route="submit")]
    assert sorted(submitted) == sorted(request_ids), "a submit the badges do not show, or a second one"


def test_an_unchanged_rerun_is_reused_and_says_so(editor: EditorSession):
    last = editor.result["workflows"][GENERATING_WORKFLOWS[-1]]
    for before, after in zip(last["after_run"], last["after_rerun"]):
        cost_and_id = before["badges"][-1].removeprefix("last run ")
        assert after["badges"][-1] == f"reused, no new charge · last {cost_and_id}"


def test_settings_show_the_session_spend(editor: EditorSession):
    costs = [reported_job(editor.sim, record.request_id)["cost"] for record in editor.sim.requests(route="submit")]
    jobs = f"{len(costs)} jobs" if len(costs) != 1 else "1 job"
    assert editor.result["spend_panel"]["runcomfy-spend-total"] == (
        f"{usd(sum(costs))} reported by RunComfy for {jobs} since ComfyUI started"
    )


def paid_request_id(editor: EditorSession) -> str:
    """The request id of the new user's text-to-image run, from its badge ("last run $… · <short id>")."""
    badge = editor.result["workflows"][RESTART_WORKFLOW]["after_run"][0]["badges"][-1]
    return submitted_id(editor.sim, badge.rsplit(" · ", 1)[1])


def saved_by(editor: EditorSession, process: int, request_id: str, **flags: bool) -> list[Path]:
    """The images saved by the prompt of one process whose node reported ``request_id`` (and ``flags``)."""
    found = [paths for run, paths in single_runs(editor.base, editor.histories[process])
             if run["request_id"] == request_id and all(run[key] is value for key, value in flags.items())]
    assert found and found[0], f"no saved images of {request_id} {flags} in process {process + 1}'s history"
    return found[0]


def test_the_result_by_request_id_node_shows_what_it_costs(editor: EditorSession):
    seen = editor.result["collect"]
    (loaded,), (typed,), (after,) = seen["loaded"], seen["typed"], seen["after_run"]
    assert loaded["type"] == typed["type"] == RESULT
    assert loaded["badges"][-2:] == ["RunComfy · collects a paid job", "free"], loaded
    assert typed["request_id"] == paid_request_id(editor) and typed["badges"][-2:] == loaded["badges"][-2:], typed
    assert after["badges"][-2:] == ["RunComfy · collects a paid job",
                                    f"collected, no new charge · {short(paid_request_id(editor))}"], after
    if "typed_dom" in seen:  # Nodes 2.0 shows node.badges in the DOM
        for shown, node in ((seen["typed_dom"], typed), (seen["after_run_dom"], after)):
            assert all(text in shown[node["id"]] for text in node["badges"][-2:]), shown


def test_the_result_by_request_id_template_collects_an_earlier_run_for_free(editor: EditorSession):
    seen = editor.result["collect"]
    assert sorted(set(seen["template_titles"])) == sorted(WORKFLOWS), "Browse Templates lists other examples"
    request_id = paid_request_id(editor)
    generating = sum(len(EXPECTED_SUBMITS[name]) for name in GENERATING_WORKFLOWS)
    assert editor.submits_before_restart == generating, "collecting a request submitted a new (billed) job"
    assert any(request_id in text and "not billed again" in text for text in seen["info"] if text), seen["info"]
    collected = saved_by(editor, 0, request_id, collected=True)
    assert pixels(collected) == pixels(saved_by(editor, 0, request_id, collected=False, reused=False))
    assert seen["images_shown"] == [path.name for path in collected], "the editor does not show what was saved"


def test_after_a_restart_the_same_workflow_is_reused_not_billed(editor: EditorSession):
    seen = editor.restart["workflows"][RESTART_WORKFLOW]
    request_id = paid_request_id(editor)
    first = editor.result["workflows"][RESTART_WORKFLOW]["changed"][0]
    (after,) = seen["after_run"]
    assert seen["changed"][0]["num_images"] == first["num_images"], "not the same inputs as the paid run"
    assert after["badges"][-1] == f"reused, no new charge · {short(request_id)}", after
    if "after_run_dom" in seen:
        assert after["badges"][-1] in seen["after_run_dom"][after["id"]]
    assert len(editor.sim.requests(route="submit")) == editor.submits_before_restart, "billed again after a restart"
    reused = saved_by(editor, 1, request_id, reused=True)
    assert pixels(reused) == pixels(saved_by(editor, 0, request_id, collected=False, reused=False))
    assert seen["images_shown"] == [path.name for path in reused], "the editor does not show what was saved"
    assert editor.restart["spend_panel"]["runcomfy-spend-total"] == (
        "$0.00 reported by RunComfy for 0 jobs since ComfyUI started"), "a reused result counted as spend"
    assert editor.restart["spend_panel"]["runcomfy-token-source"] == f"Saved here ({editor.config_path.parent / 'token.json'})"
    assert (editor.data_dir / "journal.sqlite3").is_file(), "the journal is not in RUNCOMFY_DATA_DIR"
    assert not (editor.config_path.parent / "journal.sqlite3").exists(), "the journal ignored RUNCOMFY_DATA_DIR"


def test_the_token_is_in_no_editor_state_log_or_history(editor: EditorSession):
    token = editor.sim.token
    for log, history in zip(editor.logs, editor.histories):
        assert token not in log
        assert token not in json.dumps(history)
    user_files = [path for path in (editor.base / "user").rglob("*") if path.is_file()]
    for path in user_files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert token not in text, f"the token is in {path}"
        if path.name == "comfy.settings.json":  # only the language the pack's code shows (nodes/user_language.py)
            stored = {key for key in json.loads(text) if key.startswith("RunComfy.")}
            assert stored <= {"RunComfy.EditorLocale"}, "a RunComfy entry went through the editor's settings store"
    for path in (editor.base / "output").rglob("*.png"):
        assert token.encode() not in path.read_bytes()


# ------------------------------------------------------------------ the editor in the user's language
#
# For each editor above: one ComfyUI (token in its environment), then one fresh browser profile per
# language, with Comfy.Locale (and Nodes 2.0) already chosen on the server as a returning user has
# them. tests/editor_session.py (``locale``) opens the edit example, searches the node library by
# translated names, reads Settings -> RunComfy and presses the editor's Run button. The expected
# texts are the pack's own locale files; the Run button's label is each editor's (menu.run).

LOCALIZED = ("fr", "zh-TW", "zh", "ja")
RIGHT_TO_LEFT = "ar"  # looked at in the screenshots (current editor only)
RUN_LABEL = {"fr": "Exécuter", "zh-TW": "執行", "zh": "运行", "ja": "実行する", "ar": "تشغيل"}


def locale_texts(lang: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(nodeDefs, settings, the pack's main texts) of a shipped locale."""
    folder = PACK_ROOT / "locales" / lang
    read = lambda name: json.loads((folder / name).read_text(encoding="utf-8"))  # noqa: E731
    main = read("main.json")
    return read("nodeDefs.json"), read("settings.json"), {**main["runcomfyNanoBanana2"], "categories": main}


def shown(lang: str, key: str, **params: Any) -> str:
    """A text of the pack as the editor shows it in ``lang`` (for ar, fa, he with its bidi isolates), by the
    server side's rule (nodes/user_language.py); the editor code's t() must agree with it."""
    return pack_import("nodes.user_language").shown(lang, key, **params)


def shown_prefix(lang: str, key: str, param: str) -> str:
    """How a badge starts in ``lang`` up to the "$" of its amount ``param``: "last run $", "base $"."""
    text = shown(lang, key, **{param: "$"})
    return text[: text.index("$") + 1]


def unmarked(text: str) -> str:
    """``text`` without the bidi isolates a right-to-left locale puts around it and its values."""
    return re.sub("[\u2066-\u2069]", "", text)


def translated_part(title: str) -> str:
    """What a user types to find a node in their language: its title without the brand words."""
    return title.replace("Nano Banana 2", "").replace("(RunComfy)", "").replace("（RunComfy）", "").strip()


@dataclasses.dataclass
class LocalizedSessions:
    seen: dict[str, dict[str, Any]]  # locale -> what its session saw
    nodes_2: bool
    settings_file: Path
    sim: Any


@pytest.fixture(scope="module", params=EDITORS)
def localized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalizedSessions]:
    which, nodes_2 = request.param
    label = f"{which}-editor" + ("-nodes-2.0" if nodes_2 else "")
    skip_without_editor(which)
    base = tmp_path_factory.mktemp(f"comfyui-localized-{label}")
    extra = ("--front-end-root", FRONTEND_ROOT) if which == "current" else ()
    languages = LOCALIZED + ((RIGHT_TO_LEFT,) if (which, nodes_2) == ("current", False) else ())
    server = pack_import("simulator.server")
    with server.Simulator(queue_seconds=SIM_QUEUE_SECONDS, run_seconds=SIM_RUN_SECONDS) as simulator:
        env = {"RUNCOMFY_API_BASE_URL": simulator.url, "RUNCOMFY_WWW_BASE_URL": simulator.www_url, "RUNCOMFY_ACCOUNT_BASE_URL": simulator.api_url, "RUNCOMFY_API_TOKEN": simulator.token,
               "RUNCOMFY_CONFIG": str(base / "no-runcomfy-config.json"), "RUNCOMFY_DATA_DIR": str(base / "data")}
        seen = {}
        with running_comfyui(base, env, *extra) as comfy:
            for index, lang in enumerate(languages):
                for setting, value in (("Comfy.Locale", lang), ("Comfy.VueNodes.Enabled", nodes_2)):
                    assert comfy.http.post(f"/settings/{setting}", json=value).status_code == 200
                titles = json.loads((PACK_ROOT / "locales" / lang / "nodeDefs.json").read_text("utf-8"))
                seen[lang] = run_editor_session(comfy, {
                    "url": comfy.url + "/", "chromium": find_chromium(), "token": "", "nodes_2": nodes_2,
                    "pack": PACK_NAME, "workflows": [str(WORKFLOW_DIR / "nano_banana_2_edit.json")],
                    "shots": str(base / "shots" / lang), "locale": lang, "seed": 500 + index,
                    "searches": [translated_part(titles[name]["display_name"]) for name in (EDIT, T2I)],
                    "run_label": RUN_LABEL[lang], "last_run": shown_prefix(lang, "badges.lastRun", "cost"),
                    # RunComfy's base price in plain words, until the first run is billed at 1K: from then on
                    # the badge says what was billed (the sessions share one journal).
                    "price_prefix": shown_prefix(lang, "badges.priceBaseVaries" if index == 0 else "badges.priceBilled",
                                                 "price"),
                }, f"{label} {lang}")
                seen[lang]["shots"] = str(base / "shots" / lang)
            settings_file = base / "user" / "default" / "comfy.settings.json"
            yield LocalizedSessions(seen, nodes_2, settings_file, simulator)


def expected_price_badge(localized: LocalizedSessions, lang: str) -> str:
    """The edit node's price badge (1K, one image) as ``lang``'s session must see it: RunComfy's base price in
    plain words for the first language, then what the first run was billed (the sessions share one journal)."""
    first = list(localized.seen)[0]
    if lang == first:
        return shown(lang, "badges.priceBaseVaries", price=usd(model_info(localized.sim, MODEL_OF[EDIT])["base_price_usd"]))
    billed = reported_job(localized.sim, localized_request_id(localized, first))
    return shown(lang, "badges.priceBilled", price=usd(billed["cost"]), resolution="1K", date=time.strftime("%m-%d"))


def localized_request_id(localized: LocalizedSessions, lang: str) -> str:
    """The request id of ``lang``'s run, from its "last run $… · <short id>" badge."""
    badge = unmarked(localized.seen[lang]["localized"]["after_run"][0]["badges"][-1])
    return submitted_id(localized.sim, badge.rsplit(" · ", 1)[1])


def test_node_titles_labels_and_badges_are_in_the_editors_language(localized: LocalizedSessions):
    for lang, result in localized.seen.items():
        seen = result["localized"]
        assert seen["locale"] == lang and bool(seen["nodes_2"]) == localized.nodes_2
        defs, _, _ = locale_texts(lang)
        (node,) = [node for node in seen["nodes"] if node["type"] == EDIT]
        expected = defs[EDIT]
        assert node["title"] == expected["display_name"], (lang, node["title"])
        for name, label in node["widgets"].items():
            if name == "control_after_generate":  # the editor's own widget: 1.27 labels it from its own texts
                continue
            assert label == expected["inputs"][name]["name"], (lang, name, label)
        assert node["outputs"] == [expected["outputs"][str(i)]["name"] for i in range(2)], (lang, node["outputs"])
        (loaded,) = seen["loaded"]
        assert loaded["badges"][-2] == shown(lang, "badges.billedPerImage"), (lang, loaded["badges"])
        assert loaded["badges"][-1] == expected_price_badge(localized, lang), (lang, loaded["badges"])
        (after,) = seen["after_run"]
        request_id = localized_request_id(localized, lang)
        cost = usd(reported_job(localized.sim, request_id)["cost"])
        assert after["badges"][-1] == shown(lang, "badges.lastRun", cost=cost, which=short(request_id)), after
        if localized.nodes_2:  # what a person reads on the node (DOM)
            on_node = seen["after_run_dom"][after["id"]]
            assert shown(lang, "badges.billedPerImage") in on_node and after["badges"][-1] in on_node, on_node
        assert not [error for error in result["page_errors"] if "runcomfy" in error.lower()], result["page_errors"]


def test_the_node_library_finds_the_nodes_by_their_translated_names(localized: LocalizedSessions):
    for lang, result in localized.seen.items():
        defs, _, _ = locale_texts(lang)
        for name, (query, found) in zip((EDIT, T2I), result["localized"]["search"].items()):
            titles = [text.strip().splitlines()[0].strip() for text in found if text.strip()]
            assert defs[name]["display_name"] in titles, (lang, query, titles)


def test_settings_runcomfy_is_in_the_editors_language(localized: LocalizedSessions):
    for lang, result in localized.seen.items():
        settings_seen = result["localized"]["settings"]
        _, settings, texts = locale_texts(lang)
        dialog = settings_seen["dialog_text"]
        for category in ("Account", "Spending", "Network"):
            assert texts["categories"]["settingsCategories"][category] in dialog, (lang, category)
        for entry in settings.values():
            assert entry["name"] in dialog, (lang, entry["name"])
        panel = settings_seen["panel"]
        assert panel["runcomfy-token-check"] == shown(lang, "settings.checkValid"), panel
        assert panel["runcomfy-token-source"] == shown(lang, "settings.sourceEnvironment",
                                                       variable="RUNCOMFY_API_TOKEN"), panel
        # Every button of the panel, in whatever order the editor lays the entries out.
        keys = ("settings.checkAndSave", "settings.removeToken", "settings.checkAgain", "settings.refresh",
                "settings.save", "settings.noLimit", "proxy.save", "proxy.remove",
                "account.signIn", "account.signOut", "account.cancel")  # Cancel: of a sign-in, hidden until one starts
        me = httpx.get(f"{localized.sim.www_url}/api/auth/me", headers={"Authorization": f"Bearer {localized.sim.token}"})
        assert panel["runcomfy-account-identity"] == shown(lang, "account.signedInAs", name=me.json()["email"]), panel
        assert sorted(settings_seen["buttons"]) == sorted(shown(lang, key) for key in keys), (lang, settings_seen)


def test_a_run_succeeds_and_its_status_line_is_in_the_editors_language(localized: LocalizedSessions):
    texts_of = pack_import("nodes.user_language")
    for lang, result in localized.seen.items():
        seen = result["localized"]
        assert seen["run_buttons"] >= 1 and seen["images_shown"], (lang, seen["run_buttons"])
        lines = [event["text"] for event in seen["status_texts"]]
        request_id = localized_request_id(localized, lang)
        assert shown(lang, "status.submitted", id=request_id) in lines, (lang, lines)
        assert shown(lang, "status.running", id=request_id) in lines, (lang, lines)
        cost = reported_job(localized.sim, request_id)["cost"]
        finished = texts_of.finished_line(lang, "", model_id="google/nano-banana-2/edit", request_id=request_id,
                                          status="completed", cost=cost, reused_from=None, collected=False, count=1,
                                          width=1024, height=1024)
        assert lines[-1] == finished, (lang, lines[-1])
        assert unmarked(finished) == unmarked(texts_of.text(
            lang, "status.finished", model="google/nano-banana-2/edit · ", id=request_id, status="completed",
            price=f"${cost:.3f}", count=1, width=1024, height=1024)), "the marks changed more than the direction"
        assert seen["told_server"] == lang, "the editor did not tell the server its language"
    last = list(localized.seen)[-1]
    assert json.loads(localized.settings_file.read_text())["RunComfy.EditorLocale"] == last
