import { existsSync } from "node:fs";
import sparticuz from "@sparticuz/chromium";
import { type Browser, chromium } from "playwright-core";

/** A system Chromium when the machine has one (Debian's package), preferred to the bundled one. */
const SYSTEM_CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) =>
  existsSync(p),
);

/**
 * The Chromium the browser tests drive: the system's, else the one `@sparticuz/chromium` ships
 * inside its npm package (unpacked into the temporary directory on first use, about 1.6 s), so
 * `npm install && npm test` needs no apt and no download.
 */
export async function chromiumPath(): Promise<string> {
  return SYSTEM_CHROMIUM ?? (await sparticuz.executablePath());
}

/**
 * Chromium headless, with the flags this machine needs (its closed network refuses Chromium's
 * background connections). Playwright gives it a fresh profile.
 */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: await chromiumPath(),
    headless: true,
    args: [
      "--no-sandbox",
      "--no-zygote",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
