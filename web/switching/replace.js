/**
 * Replace one of Comfy's Nano Banana 2 nodes with the pack's node, following a plan the server
 * made (routes/switching.py, switching/plan.py): the editor only moves what the plan says.
 *
 * Works on a node the backend knows and on a missing node alike: both keep the saved widget
 * values, socket names and links. The new node takes the old one's id, position, width, title
 * (when the user gave one), colours and mode; links go where the plan says. The caller wraps
 * all replacements in one change of the workflow, so one undo restores every Comfy node.
 */
import { ensureSocket } from "../references/references.js";

/** What the plan route needs to know of ``node`` (never anything of the account). */
export function describeNode(node) {
  const saved = node.serialize?.() ?? {};
  return {
    node_type: node.type,
    widgets_values: saved.widgets_values ?? node.widgets_values ?? [],
    linked_inputs: (node.inputs ?? []).filter((input) => input.link != null).map((input) => input.name),
    output_links: (node.outputs ?? []).map((output) => (output.links ?? []).length),
  };
}

function linkOf(graph, id) {
  return graph.getLink?.(id) ?? graph.links?.get?.(id) ?? graph.links?.[id];
}

/** Every link end the plan keeps, read before the old node (and its links) go away. */
function linksToKeep(graph, node, plan) {
  const incoming = plan.inputs.map(({ from, to }) => {
    const input = node.inputs.find((candidate) => candidate.name === from);
    const link = input?.link != null ? linkOf(graph, input.link) : null;
    return link ? { to, origin: link.origin_id, slot: link.origin_slot } : null;
  });
  const outgoing = plan.outputs.flatMap(({ from, to }) =>
    (node.outputs?.[from]?.links ?? []).map((id) => linkOf(graph, id)).filter(Boolean)
      .map((link) => ({ from: to, target: link.target_id, slot: link.target_slot })));
  return { incoming: incoming.filter(Boolean), outgoing };
}

function setWidget(node, name, value) {
  const widget = node.widgets?.find((candidate) => candidate.name === name);
  if (widget) widget.value = value;
}

/** Swap ``node`` for the plan's node; returns the new node. Synchronous: no await between steps. */
export function replaceNode(graph, node, plan, LiteGraph) {
  const links = linksToKeep(graph, node, plan);
  const fresh = LiteGraph.createNode(plan.target_type);
  if (!fresh) throw new Error(`${plan.target_type} is not registered in this editor`);
  const customTitle = node.title && node.title !== plan.source_title && node.title !== node.type;
  const { id, pos, size, color, bgcolor, mode } = node;
  graph.remove(node);
  fresh.id = id;
  fresh.pos = [pos[0], pos[1]];
  if (customTitle) fresh.title = node.title;
  if (color) fresh.color = color;
  if (bgcolor) fresh.bgcolor = bgcolor;
  if (mode != null) fresh.mode = mode;
  graph.add(fresh);
  for (const [name, value] of Object.entries(plan.widgets)) setWidget(fresh, name, value);
  for (const { to, origin, slot } of links.incoming) {
    const source = graph.getNodeById(origin);
    const target = ensureSocket(fresh, to);
    if (source && target >= 0) source.connect(slot, fresh, target);
  }
  for (const { from, target, slot } of links.outgoing) {
    const destination = graph.getNodeById(target);
    if (destination) fresh.connect(from, destination, slot);
  }
  fresh.setSize?.([Math.max(fresh.size[0], size?.[0] ?? 0), fresh.computeSize()[1]]);
  return fresh;
}
