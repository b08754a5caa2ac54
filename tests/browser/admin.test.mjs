// The admin page (/ferry/admin, tools/ferry --admin-token) in headless Chromium: sessions the
// test creates on several transports (one through tools/ferry-proxy refusing WebSocket, which
// falls back) must show up in the counts by transport, the fallback reasons, the rooms with their
// sizes, the slowest sessions and a session's transport history. Without the token the page
// shows no data; without --admin-token there is no page. FERRY_SCREENSHOTS=1 (make screenshots)
// writes docs/img/admin.png for the README.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import WS from "ws";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, root } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";

const TOKEN = "admin-token-for-the-test-0123";
let srv, browser, proxy;
const clients = [];

before(async () => {
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--admin-token", TOKEN,
    "--transports", "polling,websocket,sse,short-polling", "--allow-join", "*",
    "--ping-interval", "1000", "--ping-timeout", "5000"]);
  proxy = await startProxy(srv.url, ["--websocket", "refuse", "--quiet"]);
  browser = await launchChromium();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await browser?.close();
  await proxy?.stop();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

// ferry's client in Node: joins room, resolves once on the wanted transport.
async function client(url, room, { transports, want } = {}) {
  const { io } = await import("../../client-js/src/index.mjs");
  const s = io(url, { WebSocket: WS, storage: null, forceNew: true, auth: { name: `t-${room}` }, ...(transports ? { transports } : {}) });
  clients.push(s);
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no connect on ${want} in 20 s`)), 20000);
    const check = () => {
      if (s.connected && s.io.engine?.transport?.name === want) (clearTimeout(t), resolve());
    };
    s.on("connect", check);
    s.on("transport", check);
  });
  await new Promise((resolve) => s.emit("join", { room }, () => resolve()));
  return s;
}

test("the admin page shows the test's sessions: counts by transport, fallback reasons, rooms, slowest sessions, history", async () => {
  await client(srv.url, "room-ws", { want: "websocket" });
  await client(srv.url, "room-ws", { want: "websocket" });
  await client(srv.url, "room-sp", { transports: ["short-polling"], want: "short-polling" });
  await client(proxy.url, "room-fallback", { want: "sse" }); // WebSocket refused: ws-refused, promoted to sse

  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const t0 = Date.now();
  await page.goto(`${srv.url}/ferry/admin#token=${TOKEN}`);
  const card = (t) => page.locator(`.card[data-transport="${t}"] b`);
  await page.waitForFunction(() => document.querySelectorAll(".card").length === 4, null, { timeout: 20000 });
  const loadMs = Date.now() - t0;
  // The page's own client is a session too (on /ferry-admin): at least the test's.
  await page.waitForFunction(() => {
    const n = (t) => Number(document.querySelector(`.card[data-transport="${t}"] b`)?.textContent ?? -1);
    return n("websocket") >= 2 && n("short-polling") >= 1 && n("sse") >= 1;
  }, null, { timeout: 20000 });
  assert.ok(Number(await card("short-polling").textContent()) >= 1);
  await page.waitForFunction(() => document.querySelector("#legend")?.textContent.includes("ws-refused"), null, { timeout: 20000 });
  const rooms = await page.$$eval("#rooms tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(rooms.find((r) => r[0] === "room-ws"), ["room-ws", "2"], JSON.stringify(rooms));
  assert.deepEqual(rooms.find((r) => r[0] === "room-sp"), ["room-sp", "1"]);
  assert.deepEqual(rooms.find((r) => r[0] === "room-fallback"), ["room-fallback", "1"]);
  // Round trips appear once the sessions answered a server ping (every second here).
  await page.waitForFunction(() => [...document.querySelectorAll("#slow tr td:nth-child(3)")].filter((td) => / ms$/.test(td.textContent)).length >= 4, null, { timeout: 20000 });
  const slow = await page.$$eval("#slow tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.ok(slow.length >= 4, JSON.stringify(slow));
  for (const r of slow) assert.match(r[0], /^[A-Za-z0-9_-]{6}…$/, "session ids shortened");
  const rtts = slow.map((r) => r[2]).filter((x) => / ms$/.test(x)).map((x) => parseInt(x, 10));
  assert.deepEqual(rtts, [...rtts].sort((a, b) => b - a), "slowest first");
  assert.ok(slow.some((r) => r[1] === "sse") && slow.some((r) => r[1] === "short-polling"), JSON.stringify(slow));
  // The SSE session's history: opened on polling, the ws-refused report, the upgrade to sse.
  await page.locator("#slow tr", { hasText: "sse" }).first().click();
  await page.waitForFunction(() => /upgrade/.test(document.querySelector("#hist")?.textContent), null, { timeout: 10000 });
  const hist = await page.$$eval("#hist tr", (trs) => trs.map((tr) => [...tr.children].slice(1).map((td) => td.textContent).join(" ")));
  assert.ok(hist.includes("open none → polling "), hist.join("\n"));
  assert.ok(hist.includes("report polling → polling ws-refused"), hist.join("\n"));
  assert.ok(hist.includes("upgrade polling → sse probe"), hist.join("\n"));
  if (process.env.FERRY_SCREENSHOTS === "1") await page.screenshot({ path: path.join(root, "docs/img/admin.png") });
  assert.ok(loadMs < 15000, `the page loads and shows its first picture in ${loadMs} ms`);
  assert.deepEqual(errors, [], "no script errors");
  await ctx.close();
});

test("a wrong token shows no data; the data is pushed only to sockets that gave the token", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${srv.url}/ferry/admin#token=not-the-token-at-all`);
  await page.waitForFunction(() => document.querySelector("#err")?.textContent === "wrong token", null, { timeout: 20000 });
  assert.equal(await page.locator("#app").isHidden(), true);
  assert.equal(await page.locator(".card").count(), 0);
  await ctx.close();
  // No token, no page: a server without --admin-token answers 404.
  const plain = await startServer(bin("tools/ferry/ferry"), ["--port", "0"]);
  try {
    assert.equal((await fetch(`${plain.url}/ferry/admin`)).status, 404);
  } finally {
    assert.equal(await plain.stop(), 0);
  }
});
