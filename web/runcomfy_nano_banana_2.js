/**
 * RunComfy Nano Banana 2 in the ComfyUI editor: price badges on the nodes,
 * the last run's cost, and a "RunComfy" category in Settings for the account.
 *
 * The API token never reaches the browser: every number and state here comes
 * from the pack's own server routes (routes/ in the pack, under /runcomfy-nb2),
 * which talk to RunComfy. The Settings entries render their own elements and
 * never call the settings store's setter, so nothing typed there lands in
 * ComfyUI's comfy.settings.json; a pasted token goes straight to the server,
 * which checks it with RunComfy before storing it in the per-user config file.
 *
 * Written against the extension API that 1.27 and 1.5x share (registerExtension,
 * settings with a render function, nodeCreated, node.badges, api events); only
 * scripts/app.js and scripts/api.js are imported.
 */
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const ROUTES = "/runcomfy-nb2";
const NODE_CATEGORY = "RunComfy/Nano Banana 2";
const PRICE_TTL_MS = 60_000;
const STATE = Symbol("runcomfy");

const LOOK = {
  identity: { fgColor: "#ffffff", bgColor: "#5a36d6" },
  estimate: { fgColor: "#1d1a10", bgColor: "#f2c744" },
  unknown: { fgColor: "#ffffff", bgColor: "#6b6b6b" },
  lastRun: { fgColor: "#ffffff", bgColor: "#22804c" },
};

// ---------------------------------------------------------------- server calls

async function call(method, path, body) {
  const init = { method, cache: "no-store", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await api.fetchApi(ROUTES + path, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new Error(data?.error ?? `the ComfyUI server answered HTTP ${response.status}`);
  return data;
}

function formatUsd(value) {
  const cents = Math.round(value * 100);
  return Math.abs(value * 100 - cents) < 1e-6 ? `$${value.toFixed(2)}` : `$${value.toFixed(3)}`;
}

/** Show changed badge texts: the canvas redraws from node.badges, the DOM nodes are patched. */
function redraw() {
  const graph = app.rootGraph ?? app.graph;
  for (const node of graph?.nodes ?? graph?._nodes ?? []) {
    for (const source of node[STATE]?.badgeSources ?? []) source.syncDom();
  }
  app.canvas?.setDirty?.(true, true);
  app.graph?.setDirtyCanvas?.(true, true);
}

// ---------------------------------------------------------------- badges

/** A badge in the editor's own style: its LGraphBadge where exposed (1.5x), else drawn alike. */
class CanvasBadge {
  constructor({ text, fgColor, bgColor }) {
    Object.assign(this, { text, fgColor, bgColor, fontSize: 12, padding: 6, height: 20, cornerRadius: 5 });
  }

  get visible() {
    return this.text.length > 0;
  }

  getWidth(ctx) {
    const font = ctx.font;
    ctx.font = `${this.fontSize}px sans-serif`;
    const width = ctx.measureText(this.text).width + this.padding * 2;
    ctx.font = font;
    return width;
  }

  draw(ctx, x, y) {
    const width = this.getWidth(ctx);
    ctx.save();
    ctx.fillStyle = this.bgColor;
    ctx.beginPath();
    if (ctx.roundRect) ctx.roundRect(x, y, width, this.height, this.cornerRadius);
    else ctx.rect(x, y, width, this.height);
    ctx.fill();
    ctx.font = `${this.fontSize}px sans-serif`;
    ctx.fillStyle = this.fgColor;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    ctx.fillText(this.text, x + this.padding, y + this.height / 2 + 1);
    ctx.restore();
  }
}

function makeBadge(text, look) {
  const EditorBadge = window.LGraphBadge;
  return EditorBadge ? new EditorBadge({ text, ...look }) : new CanvasBadge({ text, ...look });
}

/**
 * A badge source for node.badges: called on every canvas draw, rebuilt only when its text changes.
 *
 * "Modern Node Design (Nodes 2.0)" (1.5x) renders node.badges as DOM once and does not
 * observe them (they are plain objects, outside Vue's reactivity), so a changed text is
 * also written into the node's DOM badge; the next render of the node reads the same text.
 */
function badgeSource(node, describe) {
  let shown = null;
  const texts = new Set(); // every text this badge showed, to find it in the DOM
  const source = () => {
    const { text, look } = describe();
    if (!shown || shown.text !== text || shown.bgColor !== look.bgColor) {
      shown = makeBadge(text, look);
      texts.add(text);
    }
    return shown;
  };
  source.syncDom = () => patchDomBadge(node, texts, source());
  return source;
}

function patchDomBadge(node, oldTexts, badge) {
  const root = document.querySelector(`[data-node-id="${CSS.escape(String(node.id))}"]`);
  if (!root) return; // the classic canvas: nothing in the DOM
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const shown = text.nodeValue.trim();
    if (shown === badge.text || !oldTexts.has(shown)) continue;
    text.nodeValue = text.nodeValue.replace(shown, badge.text);
    text.parentElement.style.color = badge.fgColor;
    text.parentElement.style.backgroundColor = badge.bgColor;
  }
}

// ---------------------------------------------------------------- prices

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
    entry = { text: entry?.text ?? "price …", look: entry?.look ?? LOOK.unknown, at: Date.now(), pending: true };
    prices.set(key, entry);
    fetchPrice(entry, { node_type: node.type, resolution, num_images: count });
  }
  return entry;
}

async function fetchPrice(entry, query) {
  try {
    const answer = await call("GET", `/price?${new URLSearchParams(query)}`);
    entry.known = answer.known;
    entry.text = answer.known ? `≈ ${formatUsd(answer.estimate_usd)}` : "price ?";
    entry.look = answer.known ? LOOK.estimate : LOOK.unknown;
    entry.reason = answer.reason;
  } catch (error) {
    Object.assign(entry, { known: false, text: "price ?", look: LOOK.unknown, reason: error.message });
  }
  entry.pending = false;
  entry.at = Date.now();
  redraw();
}

function forgetPrices() {
  prices.clear();
  redraw();
}

// ---------------------------------------------------------------- the last run

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
  if (!runs.length) return "reused cached result, no new charge";
  const costs = runs.map((run) => run.cost_usd);
  const cost = costs.every((c) => typeof c === "number") ? formatUsd(costs.reduce((a, b) => a + b, 0)) : "cost not reported";
  const which = runs.length === 1 ? shortId(runs[0].request_id) : `${runs.length} jobs`;
  if (runs.every((run) => run.collected)) return `collected, no new charge · ${which}`;
  if (reused && runs.every((run) => run.reused)) return `reused, no new charge · ${which}`;
  return reused ? `reused, no new charge · last ${cost} · ${which}` : `last run ${cost} · ${which}`;
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
  return collects(node) ? { text: "free", look: LOOK.estimate } : estimateFor(node);
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

// ---------------------------------------------------------------- the settings panel

let accountRequest = null;

/** The account state, shared by the panel's entries (one request when the dialog opens). */
function loadAccount({ refresh = false } = {}) {
  const fresh = accountRequest && Date.now() - accountRequest.at < 1500;
  if (!fresh || refresh) {
    accountRequest = { at: Date.now(), promise: call("GET", `/account${refresh ? "?refresh=1" : ""}`) };
  }
  return accountRequest.promise;
}

function element(tag, properties = {}, children = []) {
  const node = Object.assign(document.createElement(tag), properties);
  for (const child of children) node.append(child);
  return node;
}

/** The panel's few styles, in the editor's colours where it defines them (1.5x), plain otherwise. */
function addStyles() {
  const style = element("style", {
    textContent: `
.runcomfy-setting { display:flex; flex-direction:column; gap:6px; align-items:flex-end; text-align:right;
  max-width:28rem; font-size:0.9rem; }
.runcomfy-setting input[type=password], .runcomfy-setting input[type=number] { padding:4px 8px; border-radius:6px;
  border:1px solid var(--border-color, #555); background:var(--comfy-input-bg, #222); color:var(--input-text, #ddd); }
.runcomfy-button { padding:4px 10px; border-radius:6px; cursor:pointer; border:1px solid var(--border-color, #555);
  background:var(--comfy-input-bg, #333); color:var(--input-text, #ddd); }
.runcomfy-button:hover:not(:disabled) { filter:brightness(1.25); }
.runcomfy-button:disabled, .runcomfy-setting input:disabled { opacity:0.45; cursor:default; }`,
  });
  document.head.append(style);
}

function box(testId) {
  const div = element("div", { className: "runcomfy-setting" });
  div.dataset.testid = testId;
  return div;
}

function button(label, onClick, testId) {
  const b = element("button", { type: "button", textContent: label });
  b.dataset.testid = testId;
  b.className = "runcomfy-button";
  b.addEventListener("click", onClick);
  return b;
}

function line(text, testId, color) {
  const span = element("div", { textContent: text });
  span.dataset.testid = testId;
  if (color) span.style.color = color;
  return span;
}

const CHECK_TEXT = {
  valid: ["RunComfy accepts this token", "#3fb56f"],
  rejected: ["RunComfy rejected this token", "#e5534b"],
  unreachable: ["Cannot reach RunComfy to check the token", "#d99a26"],
  no_token: ["No token set: the nodes cannot run", "#d99a26"],
  error: ["Cannot check the token", "#e5534b"],
};

function describeSource(token) {
  if (token.source === "environment") return `Set by the ${token.variable} environment variable of ComfyUI`;
  if (token.source === "config_file") return `Saved in ${token.config_path}`;
  return "Not set";
}

function renderToken() {
  const root = box("runcomfy-token");
  const source = line("…", "runcomfy-token-source");
  const check = line("", "runcomfy-token-check");
  const detail = line("", "runcomfy-token-detail", "#999");
  const input = element("input", {
    type: "password",
    autocomplete: "off",
    spellcheck: false,
    placeholder: "Paste a new RunComfy API token",
  });
  input.dataset.testid = "runcomfy-token-input";
  input.setAttribute("aria-label", "RunComfy API token");
  input.style.cssText = "width:18rem";
  const message = line("", "runcomfy-token-message");
  const save = button("Check and save", () => submit(), "runcomfy-token-save");
  const remove = button("Remove saved token", () => removeToken(), "runcomfy-token-remove");
  const recheck = button("Check again", () => show(loadAccount({ refresh: true })), "runcomfy-token-recheck");
  const row = element("div", { style: "display:flex;gap:6px;flex-wrap:wrap;justify-content:flex-end" }, [save, remove, recheck]);
  root.append(source, check, detail, input, row, message);
  input.addEventListener("keydown", (event) => {
    event.stopPropagation(); // typing a token must not trigger the editor's shortcuts
    if (event.key === "Enter") submit();
  });

  function busy(on) {
    for (const control of [input, save, remove, recheck]) control.disabled = on;
  }

  async function show(promise) {
    try {
      const account = await promise;
      const token = account.token;
      source.textContent = describeSource(token);
      const [text, color] = CHECK_TEXT[account.check?.state] ?? CHECK_TEXT.error;
      check.textContent = text;
      check.style.color = color;
      check.dataset.state = account.check?.state ?? "error";
      const notes = [];
      if (account.config_error) notes.push(account.config_error);
      else if (account.check && !["valid", "no_token"].includes(account.check.state)) notes.push(account.check.message);
      if (token.source === "environment") {
        notes.push(`The environment variable wins over a saved token: change it where ComfyUI is started.`);
        if (token.saved_in_file) notes.push(`A token is also saved in ${token.config_path} (unused while the variable is set).`);
      }
      detail.textContent = notes.join(" ");
      const fromEnvironment = token.source === "environment";
      input.disabled = save.disabled = fromEnvironment;
      input.placeholder = fromEnvironment ? `Set by ${token.variable}` : "Paste a new RunComfy API token";
      remove.disabled = !token.saved_in_file;
      recheck.disabled = !token.set;
    } catch (error) {
      source.textContent = `Cannot load the account state: ${error.message}`;
    }
  }

  /** Send a change of the saved token; say what happened, then show the account as it now is. */
  async function send(method, body, said) {
    busy(true);
    try {
      const answer = await call(method, "/token", body);
      [message.textContent, message.style.color] = said(answer);
      accountRequest = { at: Date.now(), promise: Promise.resolve(answer.account) };
      forgetPrices();
    } catch (error) {
      message.textContent = error.message;
      message.style.color = "#e5534b";
    }
    busy(false);
    await show(loadAccount());
  }

  async function submit() {
    const token = input.value;
    input.value = ""; // the secret leaves the page as soon as it is sent
    message.textContent = "Checking the token with RunComfy…";
    message.style.color = "";
    await send("POST", { token }, () => [
      "Saved: RunComfy accepted the token. The nodes use it from their next run.", "#3fb56f",
    ]);
  }

  async function removeToken() {
    await send("DELETE", {}, (answer) => [answer.removed ? "Removed the saved token." : "No token was saved.", ""]);
  }

  show(loadAccount());
  return root;
}

function renderSpend() {
  const root = box("runcomfy-spend");
  const total = line("…", "runcomfy-spend-total");
  const refresh = button("Refresh", () => show(loadAccount({ refresh: false })), "runcomfy-spend-refresh");
  root.append(total, refresh);
  async function show(promise) {
    try {
      const { spend } = await promise;
      const jobs = spend.session_jobs === 1 ? "1 job" : `${spend.session_jobs} jobs`;
      const missing = spend.jobs_without_cost ? `, ${spend.jobs_without_cost} without a reported cost` : "";
      total.textContent = `${formatUsd(spend.session_total_usd)} reported by RunComfy for ${jobs} since ComfyUI started${missing}`;
    } catch (error) {
      total.textContent = `Cannot load the session spend: ${error.message}`;
    }
  }
  show(loadAccount());
  return root;
}

function renderReuse() {
  const root = box("runcomfy-reuse");
  const toggle = element("input", { type: "checkbox" });
  toggle.dataset.testid = "runcomfy-reuse-toggle";
  toggle.setAttribute("aria-label", "Reuse stored results of identical requests");
  const message = line("", "runcomfy-reuse-message");
  root.append(toggle, message);
  toggle.addEventListener("change", async () => {
    toggle.disabled = true;
    try {
      const { preferences } = await call("POST", "/preferences", { reuse_results: toggle.checked });
      toggle.checked = preferences.reuse_results;
      message.textContent = "Saved.";
    } catch (error) {
      message.textContent = error.message;
    }
    toggle.disabled = false;
  });
  loadAccount().then(({ preferences }) => {
    if (preferences) toggle.checked = preferences.reuse_results;
    else toggle.disabled = true;
  }, (error) => (message.textContent = error.message));
  return root;
}

function renderDailyLimit() {
  const root = box("runcomfy-limit");
  const input = element("input", { type: "number", min: "0.01", step: "0.01", placeholder: "no limit" });
  input.dataset.testid = "runcomfy-limit-input";
  input.setAttribute("aria-label", "Daily spend limit in US dollars");
  input.style.cssText = "width:8rem";
  input.addEventListener("keydown", (event) => event.stopPropagation());
  const save = button("Save", () => store(input.value.trim() === "" ? null : Number(input.value)), "runcomfy-limit-save");
  const off = button("No limit", () => store(null), "runcomfy-limit-off");
  const message = line("", "runcomfy-limit-message");
  root.append(element("div", { style: "display:flex;gap:6px;align-items:center" }, ["US$", input, save, off]), message);
  async function store(value) {
    try {
      const { preferences } = await call("POST", "/preferences", { daily_spend_limit_usd: value });
      input.value = preferences.daily_spend_limit_usd ?? "";
      message.textContent = preferences.daily_spend_limit_usd === null ? "Saved: no daily limit." : "Saved.";
    } catch (error) {
      message.textContent = error.message;
    }
  }
  loadAccount().then(({ preferences }) => {
    if (preferences) input.value = preferences.daily_spend_limit_usd ?? "";
  }, (error) => (message.textContent = error.message));
  return root;
}

/** Settings entries whose element is ours: the value in ComfyUI's settings store is never set. */
function panelEntry(id, name, tooltip, render, sortOrder) {
  return {
    id: `RunComfy.${id}`,
    category: ["RunComfy", ...id.split(".")],
    name,
    tooltip,
    type: () => render(),
    defaultValue: "",
    sortOrder,
  };
}

// ---------------------------------------------------------------- registration

const ourNodeTypes = new Set();

app.registerExtension({
  name: "RunComfy.NanoBanana2",
  settings: [
    panelEntry("Account.APIToken", "API token",
      "Your RunComfy API token stays on the ComfyUI server (in your per-user RunComfy config file); this page never sees it.",
      renderToken, 10),
    panelEntry("Spending.Session", "Spent this session",
      "The costs RunComfy reported for the jobs this ComfyUI ran since it started.", renderSpend, 9),
    panelEntry("Spending.ReuseResults", "Reuse results of identical requests",
      "Reuse the stored result of an identical request instead of paying for it again.", renderReuse, 8),
    panelEntry("Spending.DailyLimit", "Daily spend limit (US$)",
      "Refuse to submit more jobs once RunComfy reported this much spent today. Empty: no limit.", renderDailyLimit, 7),
  ],
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.category === NODE_CATEGORY) ourNodeTypes.add(nodeData.name);
  },
  async nodeCreated(node) {
    if (!ourNodeTypes.has(node.comfyClass ?? node.type)) return;
    node[STATE] = { last: null };
    node[STATE].badgeSources = [
      badgeSource(node, () => ({
        text: collects(node) ? "RunComfy · collects a paid job" : "RunComfy · billed per image",
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
    addStyles();
    api.addEventListener("executed", onExecuted);
    api.addEventListener("execution_cached", onCached);
  },
});
