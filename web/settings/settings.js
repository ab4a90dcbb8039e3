/**
 * Settings → RunComfy: the account (token), what was spent, and the spending preferences.
 *
 * The entries render their own elements and never call the settings store's setter,
 * so nothing typed here lands in ComfyUI's comfy.settings.json; a pasted token goes
 * straight to the pack's server route, which checks it with RunComfy before storing it.
 * Written against the extension API that 1.27 and 1.5x share (settings whose type is
 * a render function).
 */
import { app } from "../../../scripts/app.js";
import { accountChanged, call, formatUsd, loadAccount, onAccountChangedWhileShown } from "../common/server.js";
import { t, translationsReady } from "../common/i18n.js";
import { box, button, element, line } from "../common/dom.js";
import { renderSignIn } from "../account/sign_in.js";

/** The panel's few styles, in the editor's colours where it defines them (1.5x), plain otherwise. */
function addStyles() {
  const style = element("style", {
    textContent: `
.runcomfy-setting { display:flex; flex-direction:column; gap:6px; align-items:flex-end; text-align:right;
  max-width:28rem; font-size:0.9rem; }
.runcomfy-setting input[type=password], .runcomfy-setting input[type=number], .runcomfy-setting input[type=url] { padding:4px 8px; border-radius:6px;
  border:1px solid var(--border-color, #555); background:var(--comfy-input-bg, #222); color:var(--input-text, #ddd); }
.runcomfy-button { padding:4px 10px; border-radius:6px; cursor:pointer; border:1px solid var(--border-color, #555);
  background:var(--comfy-input-bg, #333); color:var(--input-text, #ddd); white-space:nowrap; }
.runcomfy-button:hover:not(:disabled) { filter:brightness(1.25); }
.runcomfy-button:disabled, .runcomfy-setting input:disabled { opacity:0.45; cursor:default; }`,
  });
  document.head.append(style);
}

/** Each state of the token check: its text (looked up when shown, in the editor's language) and colour. */
const CHECK_TEXT = {
  valid: [() => t("settings.checkValid"), "#3fb56f"],
  rejected: [() => t("settings.checkRejected"), "#e5534b"],
  unreachable: [() => t("settings.checkUnreachable"), "#d99a26"],
  no_token: [() => t("settings.checkNoToken"), "#d99a26"],
  error: [() => t("settings.checkError"), "#e5534b"],
  // ComfyUI started with --offline / --disable-api-nodes: the server asked RunComfy nothing.
  offline: [(account) => t("settings.checkOffline", { flag: account.offline?.flag ?? "--offline" }), "#d99a26"],
};

function describeSource(token) {
  if (token.source === "environment") return t("settings.sourceEnvironment", { variable: token.variable });
  if (token.source === "cli_sign_in") return t("account.sourceCliSignIn", { path: token.path });
  if (token.source === "saved_here") return t("account.sourceSavedHere", { path: token.path });
  return t("settings.sourceNotSet");
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
    placeholder: t("settings.tokenPlaceholder"),
  });
  input.dataset.testid = "runcomfy-token-input";
  input.setAttribute("aria-label", t("settings.tokenLabel"));
  input.style.cssText = "width:18rem";
  const message = line("", "runcomfy-token-message");
  const save = button(t("settings.checkAndSave"), () => submit(), "runcomfy-token-save");
  const remove = button(t("settings.removeToken"), () => removeToken(), "runcomfy-token-remove");
  const recheck = button(t("settings.checkAgain"), () => show(loadAccount({ refresh: true })), "runcomfy-token-recheck");
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
      check.textContent = text(account);
      check.style.color = color;
      check.dataset.state = account.check?.state ?? "error";
      const notes = [];
      if (account.config_error) notes.push(account.config_error);
      else if (account.check && !["valid", "no_token", "offline"].includes(account.check.state)) notes.push(account.check.message);
      if (token.source === "environment") {
        notes.push(t("settings.environmentWins"));
        if (token.saved_in_file) notes.push(t("settings.alsoSaved", { path: token.config_path }));
      }
      detail.textContent = notes.join(" ");
      const fromEnvironment = token.source === "environment";
      input.disabled = save.disabled = fromEnvironment || Boolean(account.offline); // offline: nothing to check it with
      input.placeholder = fromEnvironment ? t("settings.setBy", { variable: token.variable }) : t("settings.tokenPlaceholder");
      remove.disabled = !token.set || token.source === "environment"; // token.json or the old config entry
      recheck.disabled = !token.set || Boolean(account.offline);
    } catch (error) {
      source.textContent = t("settings.cannotLoadAccount", { error: error.message });
    }
  }

  /** Send a change of the saved token; say what happened, then show the account as it now is. */
  async function send(method, body, said) {
    busy(true);
    try {
      const answer = await call(method, "/token", body);
      [message.textContent, message.style.color] = said(answer);
      accountChanged(answer.account);
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
    message.textContent = t("settings.checking");
    message.style.color = "";
    await send("POST", { token }, () => [
      t("settings.tokenSaved"), "#3fb56f",
    ]);
  }

  async function removeToken() {
    await send("DELETE", {}, (answer) => [answer.removed ? t("settings.tokenRemoved") : t("settings.noTokenSaved"), ""]);
  }

  show(loadAccount());
  onAccountChangedWhileShown(root, (account) => show(Promise.resolve(account))); // a sign-in or sign-out above
  return root;
}

function renderSpend() {
  const root = box("runcomfy-spend");
  const total = line("…", "runcomfy-spend-total");
  const refresh = button(t("settings.refresh"), () => show(loadAccount({ refresh: false })), "runcomfy-spend-refresh");
  root.append(total, refresh);
  async function show(promise) {
    try {
      const { spend } = await promise;
      const jobs = spend.session_jobs === 1 ? t("settings.oneJob") : t("badges.jobs", { count: spend.session_jobs });
      const params = { total: formatUsd(spend.session_total_usd), jobs, missing: spend.jobs_without_cost };
      total.textContent = spend.jobs_without_cost ? t("settings.spendLineMissing", params) : t("settings.spendLine", params);
    } catch (error) {
      total.textContent = t("settings.cannotLoadSpend", { error: error.message });
    }
  }
  show(loadAccount());
  return root;
}

function renderReuse() {
  const root = box("runcomfy-reuse");
  const toggle = element("input", { type: "checkbox" });
  toggle.dataset.testid = "runcomfy-reuse-toggle";
  toggle.setAttribute("aria-label", t("settings.reuseLabel"));
  const message = line("", "runcomfy-reuse-message");
  root.append(toggle, message);
  toggle.addEventListener("change", async () => {
    toggle.disabled = true;
    try {
      const { preferences } = await call("POST", "/preferences", { reuse_results: toggle.checked });
      toggle.checked = preferences.reuse_results;
      message.textContent = t("settings.saved");
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
  const input = element("input", { type: "number", min: "0.01", step: "0.01", placeholder: t("settings.limitPlaceholder") });
  input.dataset.testid = "runcomfy-limit-input";
  input.setAttribute("aria-label", t("settings.limitLabel"));
  input.style.cssText = "width:8rem";
  input.addEventListener("keydown", (event) => event.stopPropagation());
  const save = button(t("settings.save"), () => store(input.value.trim() === "" ? null : Number(input.value)), "runcomfy-limit-save");
  const off = button(t("settings.noLimit"), () => store(null), "runcomfy-limit-off");
  const message = line("", "runcomfy-limit-message");
  root.append(element("div", { style: "display:flex;gap:6px;align-items:center;flex-wrap:wrap;justify-content:flex-end" },
    ["US$", input, save, off]), message); // wraps instead of squeezing a longer label ("Aucune limite")
  async function store(value) {
    try {
      const { preferences } = await call("POST", "/preferences", { daily_spend_limit_usd: value });
      input.value = preferences.daily_spend_limit_usd ?? "";
      message.textContent = preferences.daily_spend_limit_usd === null ? t("settings.savedNoLimit") : t("settings.saved");
    } catch (error) {
      message.textContent = error.message;
    }
  }
  loadAccount().then(({ preferences }) => {
    if (preferences) input.value = preferences.daily_spend_limit_usd ?? "";
  }, (error) => (message.textContent = error.message));
  return root;
}

/**
 * The proxy for every call to RunComfy: which one is in use and where it was set (its
 * password shown as ***), and saving or removing the pack's own. The URL typed here goes to
 * the pack's route and into the per-user config file, never into ComfyUI's settings.
 */
function renderProxy() {
  const root = box("runcomfy-proxy");
  const state = line("…", "runcomfy-proxy-state");
  const detail = line("", "runcomfy-proxy-detail", "#999");
  const input = element("input", { type: "url", autocomplete: "off", spellcheck: false, placeholder: t("proxy.placeholder") });
  input.dataset.testid = "runcomfy-proxy-input";
  input.setAttribute("aria-label", t("proxy.inputLabel"));
  input.style.cssText = "width:18rem";
  const hint = line(t("proxy.credentials", { at: "@" }), "runcomfy-proxy-hint", "#999");
  const message = line("", "runcomfy-proxy-message");
  const save = button(t("proxy.save"), () => store(input.value.trim() || null), "runcomfy-proxy-save");
  const remove = button(t("proxy.remove"), () => store(null), "runcomfy-proxy-remove");
  const row = element("div", { style: "display:flex;gap:6px;flex-wrap:wrap;justify-content:flex-end" }, [save, remove]);
  root.append(state, detail, input, hint, row, message);
  input.addEventListener("keydown", (event) => {
    event.stopPropagation(); // typing must not trigger the editor's shortcuts
    if (event.key === "Enter") store(input.value.trim() || null);
  });

  function show(proxy) {
    if (proxy.error) state.textContent = proxy.error;
    else if (proxy.source_kind === "config_file") state.textContent = t("proxy.viaConfig", { proxy: proxy.in_use });
    else if (proxy.in_use) state.textContent = t("proxy.viaEnvironment", { proxy: proxy.in_use });
    else state.textContent = t("proxy.direct");
    const variables = proxy.environment.map((entry) => `${entry.variable}=${entry.value}`).join(", ");
    const notes = variables ? [t("proxy.environment", { variables })] : [];
    if (variables && proxy.saved) notes.push(t("proxy.savedWins"));
    detail.textContent = notes.join(" ");
    remove.disabled = !proxy.saved;
  }

  async function store(value) {
    input.value = ""; // the URL may hold a password: it leaves the page as soon as it is sent
    for (const control of [input, save, remove]) control.disabled = true;
    try {
      const answer = await call("POST", "/proxy", { proxy: value });
      show(answer.proxy);
      [message.textContent, message.style.color] = [value ? t("proxy.saved") : t("proxy.removed"), "#3fb56f"];
    } catch (error) {
      [message.textContent, message.style.color] = [error.message, "#e5534b"];
    }
    input.disabled = save.disabled = false;
  }

  call("GET", "/proxy").then((answer) => show(answer.proxy),
    (error) => (state.textContent = t("proxy.loadFailed", { error: error.message })));
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

app.registerExtension({
  name: "RunComfy.NanoBanana2.Settings",
  settings: [
    panelEntry("Account.SignIn", "Sign in",
      "Sign in with your RunComfy account, as RunComfy's CLI does (runcomfy login): the token stays on the ComfyUI server; this page only sees the code and the link.",
      renderSignIn, 11),
    panelEntry("Account.APIToken", "API token",
      "Your RunComfy API token stays on the ComfyUI server (in your per-user RunComfy config file); this page never sees it.",
      renderToken, 10),
    panelEntry("Spending.Session", "Spent this session",
      "The costs RunComfy reported for the jobs this ComfyUI ran since it started.", renderSpend, 9),
    panelEntry("Spending.ReuseResults", "Reuse results of identical requests",
      "Reuse the stored result of an identical request instead of paying for it again.", renderReuse, 8),
    panelEntry("Spending.DailyLimit", "Daily spend limit (US$)",
      "Refuse to submit more jobs once RunComfy reported this much spent today. Empty: no limit.", renderDailyLimit, 7),
    panelEntry("Network.Proxy", "Proxy",
      "An HTTP(S) proxy for every call to RunComfy (API, result files, account). Saved in your per-user RunComfy config file, never in ComfyUI's settings; wins over HTTPS_PROXY and HTTP_PROXY.",
      renderProxy, 6),
  ],
  async setup() {
    addStyles();
    await translationsReady; // the entries render when the dialog opens; their texts are loaded by then
  },
});
