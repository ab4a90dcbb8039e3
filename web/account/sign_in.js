/**
 * Settings → RunComfy → Sign in: who is signed in, the balance, and RunComfy's device sign-in.
 *
 * The sign-in is the one `runcomfy login` uses, run by ComfyUI's server (routes/account.py):
 * the server starts it, polls RunComfy and stores the token in RunComfy CLI's token.json. This
 * panel only ever sees the user code, the link and the state, so the token never reaches the
 * browser, not even while signing in. It asks the pack's server (a local, free call) once a
 * second; the server alone asks RunComfy, at the interval RunComfy gave.
 */
import { accountChanged, call, formatUsd, loadAccount, onAccountChangedWhileShown } from "../common/server.js";
import { t } from "../common/i18n.js";
import { AMBER, GREEN, RED, box, button, element, line } from "../common/dom.js";

const ASK_SERVER_EVERY_MS = 1000;

/** How a sign-in that ended says so: its text and colour (``pending`` is drawn with the code). */
const ENDED_TEXT = {
  authorized: [() => t("account.signedIn"), GREEN],
  denied: [() => t("account.denied"), RED],
  expired: [() => t("account.expired"), AMBER],
  cancelled: [() => t("account.cancelled"), ""],
  error: [(state) => t("account.failed", { error: state.message ?? "" }), RED],
};

function describeIdentity(account) {
  const identity = account.identity ?? {};
  if (identity.state === "signed_in") return [t("account.signedInAs", { name: identity.email || identity.id }), GREEN];
  if (identity.state === "rejected") return [t("account.tokenRejected"), RED];
  if (identity.state === "no_token" || !account.token?.set) return [t("account.notSignedIn"), AMBER];
  return [t("account.identityUnknown"), AMBER];
}

function describeBalance(account) {
  const balance = account.balance ?? {};
  if (balance.state === "known" && typeof balance.usd === "number") {
    const amount = balance.currency && balance.currency !== "USD" ? `${formatUsd(balance.usd)} ${balance.currency}` : formatUsd(balance.usd);
    return t("account.balance", { amount });
  }
  if (balance.state === "no_token" || !account.token?.set) return "";
  return t("account.balanceUnknown");
}

export function renderSignIn() {
  const root = box("runcomfy-account");
  const identity = line("…", "runcomfy-account-identity");
  const balance = line("", "runcomfy-account-balance");
  const signIn = button(t("account.signIn"), () => start(), "runcomfy-sign-in");
  const signOut = button(t("account.signOut"), () => leave(), "runcomfy-sign-out");
  const buttons = element("div", { style: "display:flex;gap:6px;flex-wrap:wrap;justify-content:flex-end" }, [signIn, signOut]);

  // The code and link of a sign-in under way, hidden otherwise.
  const prompt = line(t("account.approveThisCode"), "runcomfy-sign-in-prompt");
  const code = element("div", { style: "font:600 1.6rem/1.2 ui-monospace,monospace;letter-spacing:0.12em;direction:ltr" });
  code.dataset.testid = "runcomfy-sign-in-code";
  const link = element("a", { target: "_blank", rel: "noopener noreferrer", textContent: t("account.openSignInPage"),
    style: "color:var(--p-primary-color, #4ea1ff);text-decoration:underline" });
  link.dataset.testid = "runcomfy-sign-in-link";
  const waiting = line(t("account.waiting"), "runcomfy-sign-in-waiting", "#999");
  const cancel = button(t("account.cancel"), () => stop(), "runcomfy-sign-in-cancel");
  const pending = element("div", { style: "display:none;flex-direction:column;gap:6px;align-items:flex-end" },
    [prompt, code, link, waiting, cancel]);
  pending.dataset.testid = "runcomfy-sign-in-pending";
  const message = line("", "runcomfy-sign-in-message");
  root.append(identity, balance, buttons, pending, message);

  let following = null; // the timer of a sign-in this panel is following
  let blocked = false; // the account as last shown forbids a sign-in (a token in the environment, offline)

  function showAccount(account) {
    const [text, color] = describeIdentity(account);
    identity.textContent = text;
    identity.style.color = color;
    identity.dataset.state = account.identity?.state ?? "unknown";
    balance.textContent = describeBalance(account);
    balance.dataset.state = account.balance?.state ?? "unknown";
    const fromEnvironment = account.token?.source === "environment";
    blocked = fromEnvironment || Boolean(account.offline);
    signIn.disabled = blocked || following !== null;
    signIn.title = fromEnvironment ? t("account.environmentWins", { variable: account.token.variable }) : "";
    signOut.disabled = !account.token?.set || fromEnvironment;
    signOut.title = fromEnvironment ? t("account.environmentWins", { variable: account.token.variable }) : "";
  }

  function showSignIn(state) {
    const underWay = state.state === "pending";
    pending.style.display = underWay ? "flex" : "none";
    if (underWay) {
      code.textContent = state.user_code ?? "";
      if (state.verify_url) link.href = state.verify_url;
      message.textContent = "";
    } else {
      code.textContent = ""; // an ended code is of no use: never leave it where it could be typed
      link.removeAttribute("href");
      signIn.disabled = blocked; // the user may start again at once
    }
    if (!underWay && ENDED_TEXT[state.state]) {
      const [text, color] = ENDED_TEXT[state.state];
      [message.textContent, message.style.color] = [text(state), color];
    }
    message.dataset.state = state.state;
    if (state.account) accountChanged(state.account); // signed in: who and how much, no reload
  }

  function follow() {
    clearTimeout(following);
    following = setTimeout(async () => {
      if (!root.isConnected) {
        following = null; // the dialog closed: the server goes on; a panel opened later picks it up
        return;
      }
      try {
        const state = await call("GET", "/sign-in");
        following = state.state === "pending" ? following : null;
        showSignIn(state);
        if (following !== null) follow();
        else showAccount(await loadAccount());
      } catch (error) {
        [message.textContent, message.style.color] = [error.message, RED];
        follow(); // the pack's server is local: ask again
      }
    }, ASK_SERVER_EVERY_MS);
  }

  async function start() {
    signIn.disabled = true;
    [message.textContent, message.style.color] = [t("account.starting"), ""];
    try {
      const state = await call("POST", "/sign-in", {});
      showSignIn(state);
      if (state.state === "pending") {
        following = 0;
        follow();
      }
    } catch (error) {
      [message.textContent, message.style.color] = [error.message, RED];
    }
    signIn.disabled = following !== null;
  }

  async function stop() {
    cancel.disabled = true;
    try {
      clearTimeout(following);
      following = null;
      showSignIn(await call("DELETE", "/sign-in", {}));
    } catch (error) {
      [message.textContent, message.style.color] = [error.message, RED];
    }
    cancel.disabled = false;
    showAccount(await loadAccount());
  }

  async function leave() {
    signOut.disabled = true;
    try {
      const answer = await call("DELETE", "/token", {});
      [message.textContent, message.style.color] = [answer.removed ? t("account.signedOut") : t("settings.noTokenSaved"), ""];
      accountChanged(answer.account);
    } catch (error) {
      [message.textContent, message.style.color] = [error.message, RED];
      showAccount(await loadAccount());
    }
  }

  onAccountChangedWhileShown(root, showAccount);
  loadAccount().then(showAccount, (error) => (identity.textContent = t("settings.cannotLoadAccount", { error: error.message })));
  // A sign-in started before the dialog was last closed is still followed by the server: show it again.
  call("GET", "/sign-in").then((state) => {
    if (state.state !== "pending") return;
    showSignIn(state);
    following = 0;
    signIn.disabled = true;
    follow();
  }, () => {});
  return root;
}
