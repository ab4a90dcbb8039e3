/**
 * The one way the pack's editor code gets a text the user reads: t("badges.free").
 *
 * The texts are data in the pack's locales/<lang>/main.json, under "runcomfyNanoBanana2";
 * ComfyUI serves every pack's locales at GET /i18n (both the 1.27 and the 1.5x editor
 * load it). The language is the editor's own Comfy.Locale setting, read at each call so a
 * change shows at the next redraw; a missing text falls back to English, then to the key.
 * Placeholders are {name}, as in the editor's own vue-i18n messages.
 *
 * The server side words the node's status line and error headlines in the same
 * language: it reads the user setting RunComfy.EditorLocale, which this module keeps
 * equal to the language shown here (through ComfyUI's own /settings route), and falls
 * back to Comfy.Locale, then English (nodes/user_language.py).
 */
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const NAMESPACE = "runcomfyNanoBanana2";
const LANGUAGE_SETTING = "RunComfy.EditorLocale";
let catalog = {};
let toldServer; // the language the server last heard of; undefined until known

/** Load the translations once; every extension of the pack awaits this in init(). */
export const translationsReady = (async () => {
  try {
    const all = api.getCustomNodesI18n ? await api.getCustomNodesI18n() : await (await api.fetchApi("/i18n")).json();
    catalog = all ?? {};
  } catch (error) {
    console.warn("[RunComfy] translations unavailable, showing English keys", error);
  }
  try {
    toldServer = (await api.getSetting(LANGUAGE_SETTING)) ?? null;
  } catch {
    toldServer = null;
  }
  tellServer(editorLocale());
})();

/** Store the shown language where the server reads it, once per change (a language switch included). */
function tellServer(locale) {
  if (toldServer === undefined || locale === toldServer) return;
  toldServer = locale;
  Promise.resolve(api.storeSetting(LANGUAGE_SETTING, locale)).catch((error) => {
    console.warn("[RunComfy] cannot tell the server the editor's language; its messages stay English", error);
  });
}

/** The editor's language as its locale code (fr, zh-TW, ...), else the browser's. */
export function editorLocale() {
  const setting = app.extensionManager?.setting?.get?.("Comfy.Locale") ?? app.ui?.settings?.getSettingValue?.("Comfy.Locale");
  return setting || navigator.language || "en";
}

function lookup(locale, key) {
  let value = catalog[locale]?.[NAMESPACE];
  for (const part of key.split(".")) value = value?.[part];
  return typeof value === "string" ? value : undefined;
}

// Unicode bidi isolates (UAX #9): right-to-left, first-strong, and their end.
const RTL_ISOLATE = "\u2067";
const FIRST_STRONG_ISOLATE = "\u2068";
const POP_ISOLATE = "\u2069";
const ISOLATE_START = /^[\u2066\u2067\u2068]/;

/**
 * In a right-to-left language (its own "direction" entry: ar, fa, he) the editor still lays its page and
 * canvas out left to right, so a badge like "آخر تشغيل $0.08 · 6296916f…" would show as "0.08$" with the
 * id torn apart. The text becomes a right-to-left isolate and every value in it a first-strong one (a
 * value that is a text of ours already is one); nodes/user_language.py does the same for the status line.
 */
function directed(text, params, rightToLeft) {
  const value = (name) => {
    const shown = String(params[name]);
    return !rightToLeft || !shown || ISOLATE_START.test(shown) ? shown : `${FIRST_STRONG_ISOLATE}${shown}${POP_ISOLATE}`;
  };
  const filled = text.replace(/\{(\w+)\}/g, (match, name) => (name in params ? value(name) : match));
  return rightToLeft && filled ? `${RTL_ISOLATE}${filled}${POP_ISOLATE}` : filled;
}

/** The text for ``key`` in the editor's language, ``{name}`` filled from ``params``. */
export function t(key, params = {}) {
  const locale = editorLocale();
  tellServer(locale);
  const base = locale.split("-")[0];
  const find = (name) => lookup(locale, name) ?? lookup(base, name) ?? lookup("en", name);
  return directed(find(key) ?? key, params, find("direction") === "rtl");
}
