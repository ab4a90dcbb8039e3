/**
 * RunComfy Nano Banana 2 nodes in the editor: who bills them, the price of the next run,
 * and what the last run cost.
 *
 * Prices come from the pack's /price route (RunComfy's model info, read on the server);
 * the last run's cost from the ``runcomfy_runs`` the nodes put in their ``ui`` output.
 */
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { call, formatUsd, onAccountChanged } from "../common/server.js";
import { t, translationsReady } from "../common/i18n.js";
import { LOOK, STATE, badgeSource, redraw } from "./draw.js";

/** The pack's node classes; the category is no identity: the editor translates it. */
const NODE_PREFIX = "RunComfyNanoBanana2";
const PRICE_TTL_MS = 60_000;

const prices = new Map(); // "node type|resolution|count" -> {text, look, at, pending}

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

function estimateFor(node) {
  const resolution = widget(node, "resolution")?.value;
  const count = widget(node, "num_images")?.value;
  const key = `${node.type}|${resolution}|${count}`;
  let entry = prices.get(key);
  if (!entry || (!entry.pending && Date.now() - entry.at > PRICE_TTL_MS)) {
    entry = { text: entry?.text ?? t("badges.pricePending"), look: entry?.look ?? LOOK.unknown, at: Date.now(), pending: true };
    prices.set(key, entry);
    fetchPrice(entry, { node_type: node.type, resolution, num_images: count });
  }
  return entry;
}

async function fetchPrice(entry, query) {
  try {
    const answer = await call("GET", `/price?${new URLSearchParams(query)}`);
    entry.known = answer.known;
    entry.text = priceText(answer);
    entry.look = answer.known ? LOOK.estimate : LOOK.unknown;
    entry.reason = answer.reason;
    entry.tooltip = answer.pricing_note ? t("badges.priceNote", { note: answer.pricing_note }) : answer.reason ?? "";
  } catch (error) {
    Object.assign(entry, { known: false, text: t("badges.priceUnknown"), look: LOOK.unknown, reason: error.message,
      tooltip: error.message });
  }
  entry.pending = false;
  entry.at = Date.now();
  redraw();
}

/** The badge text for a /price answer: a listed price, what RunComfy billed, the base price, or ``price ?``. */
function priceText(answer) {
  if (!answer.known) return t("badges.priceUnknown");
  const price = formatUsd(answer.estimate_usd);
  if (answer.source === "billed") {
    return t("badges.priceBilled", { price, resolution: answer.resolution, date: answer.billed_on });
  }
  if (answer.source === "base") {
    const perImage = formatUsd(answer.per_image_usd);
    return answer.varies_by_resolution ? t("badges.priceBaseVaries", { price: perImage }) : t("badges.priceBase", { price: perImage });
  }
  return t("badges.priceEstimate", { price });
}

function forgetPrices() {
  prices.clear();
  redraw();
}

/** The inputs every run of a (list) execution shared: what the widgets must still show. */
function sharedInputs(runs) {
  const shared = { ...(runs[0].inputs ?? {}) };
  for (const run of runs.slice(1)) {
    for (const name of Object.keys(shared)) if (run.inputs?.[name] !== shared[name]) delete shared[name];
  }
  return shared;
}

function inputsUnchanged(node, inputs) {
  return Object.entries(inputs).every(([name, value]) => {
    const w = widget(node, name);
    return !w || w.value === value;
  });
}

/** A request id short enough for a badge; the whole id is in the node's info output and status line. */
function shortId(id) {
  return typeof id === "string" && id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

function lastRunText({ runs, reused }) {
  if (!runs.length) return t("badges.reusedCached");
  const costs = runs.map((run) => run.cost_usd);
  const cost = costs.every((c) => typeof c === "number") ? formatUsd(costs.reduce((a, b) => a + b, 0)) : t("badges.costNotReported");
  const which = runs.length === 1 ? shortId(runs[0].request_id) : t("badges.jobs", { count: runs.length });
  if (runs.every((run) => run.collected)) return t("badges.collected", { which });
  if (reused && runs.every((run) => run.reused)) return t("badges.reused", { which });
  return reused ? t("badges.reusedLast", { cost, which }) : t("badges.lastRun", { cost, which });
}

function currentInputs(node) {
  return Object.fromEntries((node.widgets ?? []).map((w) => [w.name, w.value]));
}

/** A node without a resolution widget collects a job that exists (Result by Request ID): it never pays. */
function collects(node) {
  return !widget(node, "resolution");
}

function describePrice(node) {
  const state = node[STATE];
  if (state.last && inputsUnchanged(node, state.last.inputs)) return { text: state.last.text, look: LOOK.lastRun };
  state.last = null; // the inputs changed: from now on the badge is about the next run
  return collects(node) ? { text: t("badges.free"), look: LOOK.estimate } : estimateFor(node);
}

function findNode(id) {
  if (id === undefined || id === null) return null;
  const graph = app.rootGraph ?? app.graph;
  return graph?.getNodeById?.(id) ?? graph?.getNodeById?.(Number(id)) ?? null;
}

/** A node that ran: its ``ui`` holds what RunComfy reported for each job. */
function onExecuted({ detail }) {
  const runs = detail?.output?.runcomfy_runs;
  const node = findNode(detail?.display_node ?? detail?.node);
  if (!Array.isArray(runs) || !runs.length || !node?.[STATE]) return;
  // reused: every job's images came from the result store (the same inputs were paid for before)
  const last = { runs, reused: runs.every((run) => run.reused), inputs: sharedInputs(runs) };
  node[STATE].last = { ...last, text: lastRunText(last) };
  prices.clear(); // a billed run may have taught the server a price for its resolution
  redraw();
}

/** Nodes ComfyUI will not run because nothing changed: no job, no charge. */
function onCached({ detail }) {
  for (const id of detail?.nodes ?? []) {
    const node = findNode(id);
    const state = node?.[STATE];
    if (!state) continue;
    const known = state.last && inputsUnchanged(node, state.last.inputs);
    const last = known ? { ...state.last, reused: true } : { runs: [], reused: true, inputs: currentInputs(node) };
    state.last = { ...last, text: lastRunText(last) };
  }
  redraw();
}

const ourNodeTypes = new Set();

app.registerExtension({
  name: "RunComfy.NanoBanana2.Badges",
  async init() {
    await translationsReady;
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name?.startsWith(NODE_PREFIX)) ourNodeTypes.add(nodeData.name);
  },
  async nodeCreated(node) {
    if (!ourNodeTypes.has(node.comfyClass ?? node.type)) return;
    node[STATE] = { last: null };
    node[STATE].badgeSources = [
      badgeSource(node, () => ({
        text: collects(node) ? t("badges.collectsPaidJob") : t("badges.billedPerImage"),
        look: LOOK.identity,
      })),
      badgeSource(node, () => describePrice(node)),
    ];
    for (const name of ["resolution", "num_images"]) {
      const w = widget(node, name);
      if (!w) continue;
      const original = w.callback;
      w.callback = function (...args) {
        const result = original?.apply(this, args);
        describePrice(node); // ask for the new price now, not at the next redraw
        redraw();
        return result;
      };
    }
    node.badges ??= [];
    node.badges.push(...node[STATE].badgeSources);
  },
  async setup() {
    api.addEventListener("executed", onExecuted);
    api.addEventListener("execution_cached", onCached);
    onAccountChanged(forgetPrices);
  },
});
