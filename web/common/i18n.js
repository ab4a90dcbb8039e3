/**
 * The one way the pack's editor code gets a text the user reads: t("badges.free").
 *
 * The texts are data in the pack's locales/<lang>/main.json, under "runcomfyNanoBanana2";
 * ComfyUI serves every pack's locales at GET /i18n (both the 1.27 and the 1.5x editor
 * load it). The language is the editor's own Comfy.Locale setting, read at each call so a
 * change shows at the next redraw; a missing text falls back to English, then to the key.
 * Placeholders are {name}, as in the editor's own vue-i18n messages.
 */
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const NAMESPACE = "runcomfyNanoBanana2";
let catalog = {};

/** Load the translations once; every extension of the pack awaits this in init(). */
export const translationsReady = (async () => {
  try {
    const all = api.getCustomNodesI18n ? await api.getCustomNodesI18n() : await (await api.fetchApi("/i18n")).json();
    catalog = all ?? {};
  } catch (error) {
    console.warn("[RunComfy] translations unavailable, showing English keys", error);
  }
})();

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

/** The text for ``key`` in the editor's language, ``{name}`` filled from ``params``. */
export function t(key, params = {}) {
  const locale = editorLocale();
  const base = locale.split("-")[0];
  const text = lookup(locale, key) ?? lookup(base, key) ?? lookup("en", key) ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
}
