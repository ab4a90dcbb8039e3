/**
 * The edit node's reference sockets grow as they are used, like Comfy's own Nano Banana 2 node.
 *
 * The backend declares every socket (images, images_2 … images_20: nodes/edit.py), so any
 * of them may be linked in a prompt. The editor shows the four that saved workflows already
 * have, then one free socket past the last linked one: linking images_4 adds images_5, and
 * so on up to the model's 20; unlinking the last ones takes the empty sockets above four
 * away again. References are sent in socket order, then frame order.
 *
 * A classic node with optional sockets, not ComfyUI's own Autogrow: the October 2025
 * backend's Autogrow is an early prototype (no fixed names) that editor 1.27 does not
 * grow, while plain inputs added and removed with addInput/removeInput behave the same in
 * 1.27 and 1.5x, Nodes 2.0 included, and are saved, reloaded and exported like any socket.
 */
import { app } from "../../../scripts/app.js";

const NODE = "RunComfyNanoBanana2Edit";
const ALWAYS_SHOWN = 4; // images … images_4: what every workflow saved before this change has
const SOCKET = /^images(?:_(\d+))?$/;

/** 1 for ``images``, n for ``images_n``; null for anything else. */
export function socketNumber(name) {
  const match = SOCKET.exec(name ?? "");
  if (!match) return null;
  return match[1] === undefined ? 1 : Number(match[1]);
}

export function socketName(number) {
  return number === 1 ? "images" : `images_${number}`;
}

/** How many reference sockets the node definition declares (20 today). */
function declaredSockets(nodeData) {
  const optional = nodeData?.input?.optional ?? {};
  return Math.max(ALWAYS_SHOWN, ...Object.keys(optional).map(socketNumber).filter((n) => n !== null));
}

function referenceInputs(node) {
  return (node.inputs ?? [])
    .map((input, slot) => ({ input, slot, number: input.widget ? null : socketNumber(input.name) }))
    .filter((entry) => entry.number !== null);
}

/** The slot of socket ``name``, added first if the node does not show it yet (the switch links into it). */
export function ensureSocket(node, name) {
  const number = socketNumber(name);
  const found = () => (node.inputs ?? []).findIndex((input) => input.name === name && !input.widget);
  if (number === null || found() !== -1) return found();
  for (let n = 1; n <= number; n++) {
    if (!referenceInputs(node).some((entry) => entry.number === n)) addSocket(node, n);
  }
  return found();
}

function addSocket(node, number) {
  const name = socketName(number);
  node.addInput(name, "IMAGE", { shape: 7, localized_name: name }); // shape 7: optional, as the editor draws it
}

/** Show sockets 1 … max(4, last linked + 1), capped at the declared count; keep every linked one. */
export function fitSockets(node) {
  const max = node.constructor?.runcomfyReferenceSockets ?? 20;
  const entries = referenceInputs(node);
  const lastLinked = Math.max(0, ...entries.filter((e) => e.input.link != null).map((e) => e.number));
  const wanted = Math.min(max, Math.max(ALWAYS_SHOWN, lastLinked + 1));
  let changed = false;
  for (const entry of [...entries].reverse()) {
    const duplicate = entries.some((other) => other.number === entry.number && other.slot < entry.slot);
    if ((entry.number > wanted || duplicate) && entry.input.link == null) {
      node.removeInput(entry.slot);
      changed = true;
    }
  }
  for (let n = 1; n <= wanted; n++) {
    if (!referenceInputs(node).some((entry) => entry.number === n)) {
      addSocket(node, n);
      changed = true;
    }
  }
  if (changed) {
    node.setSize?.([node.size[0], node.computeSize()[1]]);
    node.setDirtyCanvas?.(true, true);
  }
  return changed;
}

app.registerExtension({
  name: "RunComfy.NanoBanana2.References",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    nodeType.runcomfyReferenceSockets = declaredSockets(nodeData);
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      fitSockets(this);
      return result;
    };
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = configured?.apply(this, arguments);
      fitSockets(this); // a saved node keeps its sockets; the editor may have added the declared rest
      return result;
    };
    const changed = nodeType.prototype.onConnectionsChange;
    nodeType.prototype.onConnectionsChange = function (side, slot) {
      const result = changed?.apply(this, arguments);
      const input = side === 1 ? this.inputs?.[slot] : null; // 1: LiteGraph.INPUT
      if (input && !input.widget && socketNumber(input.name) !== null && !app.configuringGraph) {
        // After the editor finished this connection (it still holds the slot index).
        queueMicrotask(() => fitSockets(this));
      }
      return result;
    };
  },
});
