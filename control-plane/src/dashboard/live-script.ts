/**
 * The dashboard's only script: follows the page's server-sent events, each `{id, html}`, and
 * swaps that element's contents. The server renders every fragment with the same components
 * as the page, so the page is pushed, never reloaded.
 */
export const LIVE_SCRIPT = `
(() => {
  const url = document.body.dataset.live;
  if (!url) return;
  const source = new EventSource(url);
  source.addEventListener("fragment", (e) => {
    const { id, html } = JSON.parse(e.data);
    const el = document.getElementById(id);
    if (el && el.innerHTML !== html) el.innerHTML = html;
    document.body.dataset.updated = String(Date.now());
  });
})();
`;
