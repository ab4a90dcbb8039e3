/**
 * The pack's server routes as the editor sees them (routes/ in the pack, under /runcomfy-nb2).
 *
 * The API token never reaches the browser: every number and state the editor shows
 * comes from these routes, which talk to RunComfy. One account request is shared by
 * everything that asks within a moment, and a change of account is announced once,
 * so the badges ask again for prices the settings panel may have changed.
 */
import { api } from "../../../scripts/api.js";
import { t } from "./i18n.js";

export const ROUTES = "/runcomfy-nb2";

export async function call(method, path, body) {
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
  if (!response.ok) throw new Error(data?.error ?? t("server.httpError", { status: response.status }));
  return data;
}

export function formatUsd(value) {
  const cents = Math.round(value * 100);
  return Math.abs(value * 100 - cents) < 1e-6 ? `$${value.toFixed(2)}` : `$${value.toFixed(3)}`;
}

let accountRequest = null;

/** The account state, shared by every asker (one request when the settings dialog opens). */
export function loadAccount({ refresh = false } = {}) {
  const fresh = accountRequest && Date.now() - accountRequest.at < 1500;
  if (!fresh || refresh) {
    accountRequest = { at: Date.now(), promise: call("GET", `/account${refresh ? "?refresh=1" : ""}`) };
  }
  return accountRequest.promise;
}

const accountListeners = new Set();

/** Call ``listener`` whenever the account changed (a token saved or removed, a sign-in). */
export function onAccountChanged(listener) {
  accountListeners.add(listener);
}

/**
 * ``listener`` for each change of account while ``element`` is on the page: a Settings panel
 * is rendered anew each time the dialog opens, and an old one must not linger as a listener.
 */
export function onAccountChangedWhileShown(element, listener) {
  const once = (account) => {
    if (element.isConnected) listener(account);
    else accountListeners.delete(once);
  };
  accountListeners.add(once);
}

/** The account is now ``account`` (as a route answered it): tell everyone who shows something of it. */
export function accountChanged(account) {
  accountRequest = { at: Date.now(), promise: Promise.resolve(account) };
  for (const listener of accountListeners) listener(account);
}
