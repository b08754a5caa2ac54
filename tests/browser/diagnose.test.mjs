// The diagnosis page (/ferry/diagnose, served by tools/ferry) in headless Chromium through
// tools/ferry-proxy with two different faults: the page must name each in plain words and
// say which transport ferry's client will use. Also the page straight against the server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, buildDir } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";

let srv, browser;
before(async () => {
  srv = await startServer(bin("tools/ferry/ferry"), ["--host", "127.0.0.1", "--port", "0",
    "--transports", "polling,websocket,sse,short-polling"]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

// Opens the page at base, waits for its verdict, returns the lines it shows.
async function runPage(base, screenshot) {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 560 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/ferry/diagnose?wait=5`);
  await page.locator("#choice").waitFor({ state: "visible", timeout: 40000 });
  const lines = await page.$$eval("#results li", (lis) => lis.map((li) => li.textContent));
  const choice = await page.textContent("#choice");
  if (screenshot) await page.screenshot({ path: screenshot });
  await ctx.close();
  assert.deepEqual(errors, [], "no script errors");
  return { lines, choice, text: lines.join("\n") };
}

test("straight to the server: WebSocket works, streams are live, ferry's client will use websocket", async () => {
  const r = await runPage(srv.url);
  assert.match(r.text, /^WebSocket works/m);
  assert.match(r.text, /^Streams arrive live/m);
  assert.match(r.text, /^A held request survives at least/m);
  assert.match(r.text, /^Messages of 1 MB get through/m);
  // A duration reads "840 ms" below a second and "1.3 s" above (a loaded machine).
  const dur = String.raw`(\d+ ms|\d+(\.\d)? s)`;
  assert.match(r.text, new RegExp(`Round trip per transport: polling ${dur}, websocket ${dur}, sse ${dur}\\.`));
  assert.match(r.choice, /ferry's client will use websocket/);
});

test("behind a proxy that strips the Upgrade header: the page says so and picks SSE", async () => {
  const proxy = await startProxy(srv.url, ["--websocket", "strip"]);
  const r = await runPage(proxy.url, path.join(buildDir, "diagnose.png"));
  const stats = await proxy.stop();
  assert.match(r.text, /^WebSocket upgrade stripped/m);
  assert.match(r.text, /^Streams arrive live/m);
  assert.match(r.choice, /ferry's client will use sse: the upgrade is stripped on the way/);
  assert.ok(stats.upgradesStripped >= 1, "the proxy did strip the upgrade");
});

test("behind a buffering proxy that also cuts long responses: buffered streams and held requests cut", async () => {
  const proxy = await startProxy(srv.url, ["--buffer", "65536", "--max-response-ms", "2000"]);
  const r = await runPage(proxy.url);
  await proxy.stop();
  assert.match(r.text, /^WebSocket works/m);
  assert.match(r.text, /^Streams are buffered/m);
  assert.match(r.text, /^Held requests are cut after [23]\.\d s/m);
  assert.match(r.text, /^Silent connections are cut after about [23]\.\d s/m);
  assert.match(r.choice, /ferry's client will use websocket/);
});
