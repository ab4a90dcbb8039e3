/**
 * "Switch to RunComfy" on Comfy's own Nano Banana 2 nodes (GeminiNanoBanana2V2, GeminiNanoBanana2),
 * known to the backend or missing from it: in the node's context menu, and as one command for
 * the whole workflow (Edit menu, and the node menu when the workflow holds more than one).
 *
 * The server plans each node (routes/switching.py); every plan is fetched before the graph is
 * touched, then all nodes are replaced in one change, so one undo brings every Comfy node back.
 * A report lists what did not carry over and the two prices of one image.
 */
import { app } from "../../../scripts/app.js";
import { t, translationsReady } from "../common/i18n.js";
import { call } from "../common/server.js";
import { describeNode, replaceNode } from "./replace.js";
import { showReport } from "./report.js";

const COMMAND = "RunComfy.SwitchEveryNanoBanana2";
let comfyTypes = {}; // node type -> Comfy's display name, from the server's table

const loaded = call("GET", "/switching").then((answer) => {
  comfyTypes = answer.node_types ?? {};
}).catch((error) => console.warn("[RunComfy] switching is unavailable", error));

function graph() {
  return app.canvas?.graph ?? app.graph;
}

function isComfyNode(node) {
  return !!node && Object.hasOwn(comfyTypes, node.type);
}

function comfyNodes() {
  return (graph()?.nodes ?? []).filter(isComfyNode);
}

function changeTracker() {
  return app.extensionManager?.workflow?.activeWorkflow?.changeTracker;
}

async function runcomfyPrice(plan) {
  try {
    const query = new URLSearchParams({ node_type: plan.target_type, resolution: plan.widgets.resolution,
                                        num_images: "1" });
    const price = await call("GET", `/price?${query}`);
    return price.known ? price.estimate_usd : null;
  } catch {
    return null;
  }
}

/** Switch ``nodes`` (all of Comfy's when none are given) and show what happened. */
export async function switchNodes(nodes = comfyNodes()) {
  await loaded;
  if (!nodes.length) {
    showReport([], [], t("switching.noneFound"));
    return [];
  }
  const planned = await Promise.all(nodes.map(async (node) => {
    try {
      return { node, plan: await call("POST", "/switching/plan", describeNode(node)) };
    } catch (error) {
      return { node, error: error.message };
    }
  }));
  const target = graph();
  const tracker = changeTracker();
  const switched = [];
  const failures = planned.filter((entry) => entry.error).map(({ node, error }) => ({ title: node.title, error }));
  tracker?.beforeChange?.();
  try {
    for (const { node, plan } of planned.filter((entry) => entry.plan)) {
      const from = node.title || plan.source_title;
      try {
        const fresh = replaceNode(target, node, plan, window.LiteGraph);
        // A title of the user's own stays on the node: the report names both node kinds beside it.
        const kind = fresh.constructor?.title || plan.target_type;
        const label = from === plan.source_title ? from : `${from} (${plan.source_title})`;
        switched.push({ from: label, to: kind, plan });
      } catch (error) {
        failures.push({ title: from, error: error.message });
      }
    }
  } finally {
    tracker?.afterChange?.(); // the one undo step (1.27: checkState, 1.5x: captureCanvasState)
    target?.setDirtyCanvas?.(true, true);
  }
  for (const entry of switched) entry.runcomfyUsd = await runcomfyPrice(entry.plan);
  showReport(switched, failures);
  return switched;
}

function menuEntries(node) {
  if (!isComfyNode(node)) return [];
  const entries = [{ content: t("switching.menuEntry"), callback: () => switchNodes([node]) }];
  if (comfyNodes().length > 1) entries.push({ content: t("switching.commandAll"), callback: () => switchNodes() });
  return entries;
}

/** Editor 1.27 has no getNodeMenuItems hook: add the entries to LiteGraph's node menu instead. */
function addToLegacyNodeMenu() {
  const prototype = app.canvas?.constructor?.prototype;
  const original = prototype?.getNodeMenuOptions;
  if (!original || typeof app.collectNodeMenuItems === "function") return;
  prototype.getNodeMenuOptions = function (node) {
    const options = original.apply(this, arguments);
    const entries = menuEntries(node);
    if (entries.length) options.push(null, ...entries);
    return options;
  };
}

await translationsReady; // the command's label is read once, when the menu is built

app.registerExtension({
  name: "RunComfy.NanoBanana2.Switching",
  commands: [{ id: COMMAND, label: () => t("switching.commandAll"), icon: "pi pi-sync", function: () => switchNodes() }],
  menuCommands: [{ path: ["Edit"], commands: [COMMAND] }],
  getNodeMenuItems: (node) => menuEntries(node),
  async setup() {
    await loaded;
    addToLegacyNodeMenu();
  },
});
