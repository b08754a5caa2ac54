// client-js (ferry's own client, the classic bundle ferry.min.js as client-js/build.mjs makes it)
// in headless Chromium against tools/ferry with all four transports, directly and through
// tools/ferry-proxy's faults: the transport it ends on, the reason codes of each switch, and
// sequence-numbered messages both ways (the page and a Node client publish to each other
// through ferry's relay) with none lost, duplicated or reordered across the switches.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import WS from "ws";
import { io } from "../../client-js/src/index.mjs";
import { startServer, bin, root } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";
import { startToggleProxy } from "../lib/toggle-proxy.mjs";

const WAIT = 20000;
let srv, browser, out;

// The page and the bundle are served by tools/ferry from a static folder (a page the test
// fulfilled itself would not be a loopback page, and Chromium's local network access checks
// would block its WebSocket).
before(async () => {
  out = mkdtempSync(path.join(tmpdir(), "ferry-client-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), out]);
  writeFileSync(path.join(out, "client-test.html"), '<!doctype html><meta charset="utf-8"><script src="/ferry.min.js"></script>\n');
  srv = await startServer(bin("tools/ferry/ferry"), ["--host", "127.0.0.1", "--port", "0", "--static", out,
    "--transports", "polling,websocket,sse,short-polling", "--allow-publish", "message", "--publish-rate", "0"]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
  rmSync(out, { recursive: true, force: true });
});

// A page on `base` (the server or a proxy in front of it) with the bundle, connected with opts
// and in `room`; it joins again on every connect and logs switches and received sequence tags.
async function openPage(base, room, opts = {}, context) {
  context ||= await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${base}/client-test.html`);
  await start(page, room, opts);
  return { page, context, errors };
}
async function start(page, room, opts) {
  await page.evaluate(async ({ room, opts }) => {
    window.log = { sw: [], got: [] };
    const s = (window.s = ferry.io(location.origin, { auth: { name: "browser" }, ...opts }));
    log.at = {};
    s.on("transport", (e) => (log.sw.push(`${e.from || "-"}>${e.to}:${e.reason}`), (log.at[e.reason] = Date.now())));
    s.on("message", (d) => log.got.push(d.seq));
    s.on("connect", () => s.emit("join", { room }));
    await new Promise((res, rej) => (s.once("connect", res), s.once("connect_error", rej)));
    const r = await s.emitWithAck("join", { room });
    if (!r.ok) throw new Error(r.error);
  }, { room, opts });
}
const transportOf = (page) => page.evaluate(() => s.io.engine.transport.name);
const switchesOf = (page) => page.evaluate(() => log.sw);

async function nodePeer(room) {
  const s = io(srv.url, { WebSocket: WS, transports: ["websocket"], storage: null, forceNew: true, auth: { name: "node" } });
  s.got = [];
  s.on("message", (d) => s.got.push(d.seq));
  await new Promise((res, rej) => (s.once("connect", res), s.once("connect_error", rej)));
  const r = await s.emitWithAck("join", { room });
  assert.ok(r.ok, r.error);
  return s;
}

// n messages each way, one every gapMs from each side, during(i) called before the i-th.
async function exchange(page, peer, room, n, { gapMs = 50, during = async () => {}, tag = "x" } = {}) {
  const fromPage = page.evaluate(async ({ room, n, gapMs, tag }) => {
    for (let i = 0; i < n; i++) {
      s.emit("publish", { room, event: "message", data: { seq: `b${tag}-${i}` } });
      await new Promise((r) => setTimeout(r, gapMs));
    }
  }, { room, n, gapMs, tag });
  for (let i = 0; i < n; i++) {
    await during(i);
    peer.emit("publish", { room, event: "message", data: { seq: `n${tag}-${i}` } });
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await fromPage;
  const want = (p) => Array.from({ length: n }, (_, i) => `${p}${tag}-${i}`);
  await page.waitForFunction(({ n, tag }) => log.got.filter((x) => x.startsWith(`n${tag}-`)).length >= n, { n, tag }, { timeout: WAIT })
    .catch(() => {});
  const t0 = Date.now();
  while (peer.got.filter((x) => x.startsWith(`b${tag}-`)).length < n && Date.now() - t0 < WAIT) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 200)); // a duplicate would show here
  const pageGot = (await page.evaluate(() => log.got)).filter((x) => x.startsWith(`n${tag}-`));
  assert.deepEqual(pageGot, want("n"), "server to browser: none lost, duplicated or reordered");
  assert.deepEqual(peer.got.filter((x) => x.startsWith(`b${tag}-`)), want("b"), "browser to server: none lost, duplicated or reordered");
}

async function scenario(name, { proxyArgs, toggle, opts = {}, want, during, across = true, check }) {
  let px = null;
  if (proxyArgs) px = await startProxy(srv.url, [...proxyArgs, "--quiet"]);
  if (toggle) px = await startToggleProxy(srv.port);
  const room = "r-" + name.replace(/\W+/g, "-");
  const peer = await nodePeer(room);
  const p = await openPage(px ? px.url : srv.url, room, opts);
  try {
    const ext = await p.page.evaluate(() => s.io.engine.ext.includes("resume"));
    // Across the switches, unless a session has to end on the way (a server without the
    // resume extension cannot keep it, across: "ext"): then only once the transport is reached.
    if ((across === true || (across === "ext" && ext)) && (ext || !toggle)) await exchange(p.page, peer, room, 60, { gapMs: toggle ? 150 : 50, during: during && ((i) => during(i, px)), tag: "a" });
    else if (toggle && !ext) return "skip";
    const t0 = Date.now();
    while ((await transportOf(p.page)) !== want && Date.now() - t0 < WAIT) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await transportOf(p.page), want, `ends on ${want}: ${(await switchesOf(p.page)).join(" ")}`);
    // In the room on this session (a session that ended on the way joined again on connect).
    await p.page.waitForFunction(() => s.connected, null, { timeout: WAIT });
    assert.ok((await p.page.evaluate((room) => s.emitWithAck("join", { room }), room)).ok);
    await exchange(p.page, peer, room, 30, { tag: "z" });
    assert.deepEqual(p.errors, [], "no script errors");
    await check?.(p.page);
    return await switchesOf(p.page);
  } finally {
    await p.context.close();
    peer.disconnect();
    await px?.stop();
  }
}

for (const t of ["polling", "short-polling", "sse", "websocket"])
  test(`forced ${t}: the page connects on it and stays there`, async () => {
    const sw = await scenario(`forced-${t}`, { opts: { transports: [t] }, want: t });
    assert.deepEqual(sw, [`->${t}:forced`]);
  });

test("automatic with nothing in the way: starts on polling, ends on websocket", async () => {
  const sw = await scenario("auto", { want: "websocket" });
  assert.deepEqual(sw, ["->polling:start", "polling>websocket:promoted"]);
});

test("WebSocket refused by the proxy: ends on sse", async () => {
  const sw = await scenario("ws-refused", { proxyArgs: ["--websocket", "refuse"], want: "sse" });
  assert.deepEqual(sw, ["->polling:start", "polling>sse:promoted"]);
});

test("WebSocket accepted, then mute: demoted within 10 s without ending the session, then up to sse", async (t) => {
  let mutedAt = 0;
  const sw = await scenario("ws-mute", {
    toggle: true,
    want: "sse", // the re-probe finds WebSocket still mute and SSE working
    during: async (i, px) => {
      if (i === 15) (px.state.mute = true), (mutedAt = Date.now());
    },
    check: async (page) => {
      const at = await page.evaluate(() => log.at["ws-mute"]);
      assert.ok(at - mutedAt <= 10000, `left the mute WebSocket after ${at - mutedAt} ms`);
      assert.equal(await page.evaluate(() => s.io.engine.sid === s.io.engine.hs.sid && s.connected), true);
    },
  });
  if (sw === "skip") return t.skip("the server does not offer the session-resume extension yet");
  assert.deepEqual(sw, ["->polling:start", "polling>websocket:promoted", "websocket>polling:ws-mute", "polling>sse:promoted"]);
});

test("SSE buffered by the proxy (and WebSocket refused): stays on long-polling", async () => {
  const sw = await scenario("sse-buffered", { proxyArgs: ["--websocket", "refuse", "--buffer", "65536"], want: "polling" });
  assert.deepEqual(sw, ["->polling:start"]);
});

test("long polls cut by the proxy again and again: ends on short-polling", async () => {
  const sw = await scenario("poll-cut", { proxyArgs: ["--max-response-ms", "700", "--websocket", "refuse"], opts: { transports: ["polling", "short-polling"] }, want: "short-polling", across: "ext" });
  assert.ok(sw.some((x) => x.endsWith(">short-polling:poll-cut")), sw.join(" "));
});

test("the winner is remembered for the origin: the reload starts on it (remembered)", async () => {
  const context = await browser.newContext();
  const peer = await nodePeer("r-reload");
  try {
    const p = await openPage(srv.url, "r-reload", {}, context);
    const t0 = Date.now();
    while ((await transportOf(p.page)) !== "websocket" && Date.now() - t0 < WAIT) await new Promise((r) => setTimeout(r, 100));
    await p.page.reload();
    await start(p.page, "r-reload", {});
    assert.equal(await transportOf(p.page), "websocket");
    assert.deepEqual(await switchesOf(p.page), ["->websocket:remembered"]);
    await exchange(p.page, peer, "r-reload", 20, { tag: "r" });
  } finally {
    await context.close();
    peer.disconnect();
  }
});
