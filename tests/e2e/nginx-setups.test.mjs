// Debian's nginx in front of ferry, in the three setups of tests/e2e/nginx/: a correct reverse
// proxy (every transport works), nginx as people first deploy it (no Upgrade headers,
// proxy_buffering on) and a short proxy_read_timeout (held requests and silent streams cut).
// Each test checks the client's view and nginx's own access log.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Socket } from "engine.io-client";
import { once } from "../lib/server.mjs";
import { startEngine } from "../lib/events.mjs";
import { startNginx } from "../lib/nginx.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";

let eng;
before(async () => {
  eng = await startEngine(["--transports", "polling,websocket,sse,short-polling",
    "--ping-interval", "20000", "--ping-timeout", "20000"]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

async function extEcho(c, n, prefix, ms = 15000) {
  const got = [];
  const all = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`only ${got.length}/${n} echoes`)), ms);
    c.on("message", (m) => {
      got.push(String(m));
      if (got.length === n) (clearTimeout(t), resolve(got));
    });
  });
  for (let i = 0; i < n; i++) c.send(`${prefix}${i}`);
  return all;
}
const expected = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

// Opens an event stream and resolves when the connection ends: {ms, opened}.
function streamLife(url) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let body = "";
    const req = http.get(url, { headers: { accept: "text/event-stream" }, agent: false }, (res) => {
      res.on("data", (d) => (body += d));
      res.on("error", () => {});
      res.on("close", () => resolve({ ms: Date.now() - t0, opened: body.includes("data: 0{") }));
    });
    req.on("error", reject);
    setTimeout(() => (req.destroy(), reject(new Error("stream still open after 15 s"))), 15000).unref();
  });
}

async function withNginx(name, fn) {
  const ngx = await startNginx(name, eng.url);
  try {
    await fn(ngx);
  } finally {
    const log = await ngx.stop();
    assert.doesNotMatch(log, /\[(emerg|alert|crit)\]/, log);
  }
}

test("nginx as a correct reverse proxy: all four transports carry every message in order", async () => {
  await withNginx("good", async (ngx) => {
    for (const transport of ["polling", "websocket", "sse", "short-polling"]) {
      const c = new ExtClient(`${ngx.url}/engine.io/`, { transport });
      await c.open();
      assert.deepEqual(await extEcho(c, 20, `${transport}-`), expected(20, `${transport}-`), transport);
      // A burst from the server arrives whole and in order on every transport.
      const got = [];
      const burst = new Promise((r) => c.on("message", (m) => (got.push(String(m)), got.length === 50 && r())));
      c.send("cmd:burst 50");
      await burst;
      assert.deepEqual(got, expected(50, "burst "), transport);
      c.finish("test done");
    }
    // The official client upgrades to WebSocket through it.
    const s = new Socket(ngx.url, { path: "/engine.io/", transports: ["polling", "websocket"] });
    await once(s, "upgrade", 10000);
    assert.equal(s.transport.name, "websocket");
    s.close();
    assert.match(ngx.accessLog(), /"GET \/engine\.io\/\?[^"]*transport=websocket[^"]*" 101 /);
  });
});

test("nginx as first deployed: the upgrade never happens (no Upgrade header), polling and SSE still work", async () => {
  await withNginx("naive", async (ngx) => {
    const s = new Socket(ngx.url, { path: "/engine.io/", transports: ["polling", "websocket"] });
    await once(s, "open");
    await once(s, "upgradeError", 10000);
    assert.equal(s.transport.name, "polling");
    const got = [];
    const all = new Promise((r) => s.on("message", (m) => (got.push(m), got.length === 10 && r())));
    for (let i = 0; i < 10; i++) s.send(`naive-${i}`);
    await all;
    assert.deepEqual(got, expected(10, "naive-"));
    s.close();
    // The WebSocket request reached ferry as a plain GET, which refused it.
    assert.match(ngx.accessLog(), /"GET \/engine\.io\/\?[^"]*transport=websocket[^"]*" 400 /);
    assert.doesNotMatch(ngx.accessLog(), /" 101 /);
    // SSE: buffered by default, but ferry's X-Accel-Buffering: no makes nginx pass it live.
    const c = new ExtClient(`${ngx.url}/engine.io/`, { transport: "sse" });
    await c.open(5000);
    assert.deepEqual(await extEcho(c, 10, "sse-"), expected(10, "sse-"));
    c.finish("test done");
  });
});

test("nginx with a 3 s proxy_read_timeout: a held long-poll gets 504, a silent SSE stream is cut, short-polling survives", async () => {
  await withNginx("short-timeout", async (ngx) => {
    const poll = new ExtClient(`${ngx.url}/engine.io/`, { transport: "polling" });
    await poll.open();
    const t0 = Date.now();
    assert.equal(await once(poll, "close", 15000), "transport error");
    const held = Date.now() - t0;
    assert.ok(held >= 2500 && held < 12000, `held poll cut after ${held} ms`);
    // nginx writes its access line after the answer has gone out: wait for it (bounded).
    const line504 = /"GET \/engine\.io\/\?[^"]*sid=[^"]*" 504 /;
    for (let i = 0; i < 50 && !line504.test(ngx.accessLog()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(ngx.accessLog(), line504);

    // A new SSE session's stream: the open event comes, then nothing for 3 s (heartbeat 20 s),
    // and nginx closes the connection.
    const life = await streamLife(`${ngx.url}/engine.io/?EIO=4&transport=sse&ferry=1`);
    assert.ok(life.opened, "the open event came through");
    assert.ok(life.ms >= 2500 && life.ms < 12000, `stream cut after ${life.ms} ms`);

    const short = new ExtClient(`${ngx.url}/engine.io/`, { transport: "short-polling" });
    await short.open();
    let closed = false;
    short.on("close", () => (closed = true));
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(closed, false, "short polls are never held long enough to be cut");
    assert.deepEqual(await extEcho(short, 5, "short-"), expected(5, "short-"));
    short.finish("test done");
  });
});
