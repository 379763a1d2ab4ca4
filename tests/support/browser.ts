import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

/**
 * Debian's Chromium (installed by .ci/run), headless, with the flags this machine needs (its
 * closed network refuses Chromium's background connections). Playwright gives it a fresh profile.
 */
export const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) =>
  existsSync(p),
);

export async function launchBrowser(): Promise<Browser> {
  if (!CHROMIUM)
    throw new Error("Chromium is not installed: apt-get install chromium (.ci/run does)");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
