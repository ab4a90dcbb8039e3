/**
 * The few element builders the pack's Settings panels share: plain DOM, so they render the
 * same in the 1.27 and 1.5x editors, and every piece a test reads carries a data-testid.
 */

export function element(tag, properties = {}, children = []) {
  const node = Object.assign(document.createElement(tag), properties);
  for (const child of children) node.append(child);
  return node;
}

/** One entry's right-aligned column (styled by the Settings panel's ``.runcomfy-setting``). */
export function box(testId) {
  const div = element("div", { className: "runcomfy-setting" });
  div.dataset.testid = testId;
  return div;
}

export function button(label, onClick, testId) {
  const b = element("button", { type: "button", textContent: label });
  b.dataset.testid = testId;
  b.className = "runcomfy-button";
  b.addEventListener("click", onClick);
  return b;
}

export function line(text, testId, color) {
  const span = element("div", { textContent: text });
  span.dataset.testid = testId;
  if (color) span.style.color = color;
  return span;
}

/** The colours of a state line: good, needs attention, failed. */
export const GREEN = "#3fb56f";
export const AMBER = "#d99a26";
export const RED = "#e5534b";
