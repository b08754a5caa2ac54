// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core,
// with the background traffic, sync and QUIC turned off so that every request a test sees is
// one the page made.
import { chromium } from "playwright-core";

export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--no-first-run", "--disable-quic"];

export function launchChromium(options = {}) {
  return chromium.launch({ executablePath: "/usr/bin/chromium", ...options,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])] });
}
