/**
 * The short report after a switch: per node, what did not carry over (nothing is dropped
 * silently), the price of one image on RunComfy next to Comfy's credit price, and how to undo.
 *
 * A plain dialog of the pack's own (the same in every editor version), closed by its button,
 * Escape or a click outside. Every text comes from t() in the editor's language.
 */
import { t } from "../common/i18n.js";
import { formatUsd } from "../common/server.js";

export const REPORT_ID = "runcomfy-switch-report";

function element(tag, style, text) {
  const node = document.createElement(tag);
  if (style) node.style.cssText = style;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** One line of a plan's report, in the editor's language. */
export function reportLine(item) {
  return t(`switching.report.${item.key}`, item.params ?? {});
}

/** The price line, or null unless both prices are known. */
export function priceLine(plan, runcomfyUsd) {
  if (runcomfyUsd == null || !plan.comfy_price) return null;
  return t("switching.price", {
    runcomfy: formatUsd(runcomfyUsd),
    credits: plan.comfy_price.credits,
    usd: formatUsd(plan.comfy_price.usd),
  });
}

/**
 * Show the report. ``switched``: [{from, to, plan, runcomfyUsd}], ``failures``: [{title, error}],
 * ``note``: a line shown when there is nothing else to say.
 */
export function showReport(switched, failures, note) {
  document.getElementById(REPORT_ID)?.remove();
  const backdrop = element("div", "position:fixed;inset:0;z-index:10000;background:rgba(0,0,0,.45);"
    + "display:flex;align-items:center;justify-content:center;");
  backdrop.id = REPORT_ID;
  const box = element("div", "max-width:560px;max-height:80vh;overflow:auto;padding:18px 22px;border-radius:8px;"
    + "background:var(--comfy-menu-bg,#222);color:var(--fg-color,#ddd);font:14px/1.45 sans-serif;"
    + "box-shadow:0 8px 30px rgba(0,0,0,.5);");
  box.setAttribute("role", "dialog");
  box.setAttribute("aria-modal", "true");
  const title = element("h3", "margin:0 0 10px;font-size:16px;", t("switching.reportTitle"));
  box.setAttribute("aria-label", title.textContent);
  box.append(title);
  if (note) box.append(element("div", "", note));
  for (const { from, to, plan, runcomfyUsd } of switched) {
    box.append(element("div", "font-weight:bold;margin-top:8px;", t("switching.reportNode", { from, to })));
    const list = element("ul", "margin:4px 0;padding-left:20px;");
    const lines = plan.report.map(reportLine);
    for (const line of lines.length ? lines : [t("switching.allCarried")]) list.append(element("li", "", line));
    box.append(list);
    const price = priceLine(plan, runcomfyUsd);
    if (price) box.append(element("div", "opacity:.85;", price));
  }
  for (const { title: name, error } of failures) {
    box.append(element("div", "color:#f88;margin-top:8px;", t("switching.failed", { title: name, error })));
  }
  if (switched.length) box.append(element("div", "margin-top:12px;opacity:.8;", t("switching.undoHint")));
  const close = element("button", "margin-top:14px;padding:4px 16px;cursor:pointer;", t("switching.close"));
  const dismiss = () => {
    backdrop.remove();
    document.removeEventListener("keydown", onKey, true);
  };
  const onKey = (event) => {
    if (event.key === "Escape") dismiss();
  };
  close.addEventListener("click", dismiss);
  backdrop.addEventListener("click", (event) => {
    if (event.target === backdrop) dismiss();
  });
  document.addEventListener("keydown", onKey, true);
  box.append(close);
  backdrop.append(box);
  document.body.append(backdrop);
  close.focus();
}
