/**
 * Badges drawn above a node's title, in the editor's own style, for both node designs.
 *
 * A badge source is a function in node.badges: the classic canvas calls it on every
 * draw. "Modern Node Design (Nodes 2.0)" (1.5x) renders node.badges as DOM once and
 * does not observe them, so a changed text is also written into the node's DOM badge.
 */
import { app } from "../../../scripts/app.js";

export const STATE = Symbol("runcomfy");

export const LOOK = {
  identity: { fgColor: "#ffffff", bgColor: "#5a36d6" },
  estimate: { fgColor: "#1d1a10", bgColor: "#f2c744" },
  unknown: { fgColor: "#ffffff", bgColor: "#6b6b6b" },
  lastRun: { fgColor: "#ffffff", bgColor: "#22804c" },
};

/** Show changed badge texts: the canvas redraws from node.badges, the DOM nodes are patched. */
export function redraw() {
  const graph = app.rootGraph ?? app.graph;
  for (const node of graph?.nodes ?? graph?._nodes ?? []) {
    for (const source of node[STATE]?.badgeSources ?? []) source.syncDom();
  }
  app.canvas?.setDirty?.(true, true);
  app.graph?.setDirtyCanvas?.(true, true);
}

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

/** A badge source for node.badges: rebuilt only when its text changes. */
export function badgeSource(node, describe) {
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
  source.syncDom = () => patchDomBadge(node, texts, source(), describe().tooltip);
  return source;
}

/** Nodes 2.0 draws badges as DOM: the text is patched, and a tooltip (e.g. RunComfy's pricing note) set. */
function patchDomBadge(node, oldTexts, badge, tooltip) {
  const root = document.querySelector(`[data-node-id="${CSS.escape(String(node.id))}"]`);
  if (!root) return; // the classic canvas: nothing in the DOM
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const shown = text.nodeValue.trim();
    if (shown === badge.text && text.parentElement) text.parentElement.title = tooltip ?? "";
    if (shown === badge.text || !oldTexts.has(shown)) continue;
    text.parentElement.title = tooltip ?? "";
    text.nodeValue = text.nodeValue.replace(shown, badge.text);
    text.parentElement.style.color = badge.fgColor;
    text.parentElement.style.backgroundColor = badge.bgColor;
  }
}
