// The per-session POST token (docs/protocol.md section 12, tools/ferry --require-post-token):
// a forged POST (no token, a wrong one, a cross-site form with cookies) is refused 403 and the
// session goes on untouched; ferry's client (client-js, in Node) sends the token by itself on
// every transport; an official client works over WebSocket, and its polling POSTs are refused;
// with the option off (the default) the open packet is exactly Engine.IO's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WS from "ws";
import { io as officialIo } from "socket.io-client";
import { io } from "../../client-js/src/index.mjs";
import { startServer, bin } from "../lib/server.mjs";
import { rawConnect } from "../lib/rawhttp.mjs";

const ALL = "polling,websocket,sse,short-polling";
let srv;
before(async () => {
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--transports", ALL, "--require-post-token",
    "--allow-publish", "message", "--publish-rate", "0"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(20);
  assert.ok(cond(), `${what} within ${ms} ms`);
}

// A handshake on transport: the open packet's object.
async function handshake(url, transport, query = "") {
  if (transport === "sse") {
    const c = await rawConnect(new URL(url).port);
    c.write(`GET /socket.io/?EIO=4&transport=sse${query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    await until(() => /data: 0(\{.*\})/.test(c.buf.toString()), 10000, "the SSE open packet");
    const hs = JSON.parse(/data: 0(\{.*\})/.exec(c.buf.toString())[1]);
    hs.conn = c;
    return hs;
  }
  const r = await fetch(`${url}/socket.io/?EIO=4&transport=${transport}${query}`);
  assert.equal(r.status, 200);
  const t = await r.text();
  return JSON.parse(t.slice(1));
}

const post = (url, transport, sid, body, headers = {}) =>
  fetch(`${url}/socket.io/?EIO=4&transport=${transport}&sid=${sid}`, { method: "POST", body, headers: { "content-type": "text/plain;charset=UTF-8", ...headers } });

for (const transport of ["polling", "short-polling", "sse"])
  test(`${transport}: a POST without the session's token is refused 403, the session goes on; with it, 200`, async () => {
    const hs = await handshake(srv.url, transport, transport === "polling" ? "&ferry=1" : "");
    assert.match(hs.postToken, /^[A-Za-z0-9_-]{22}$/, "the open packet carries a token");
    assert.notEqual(hs.postToken, hs.sid);
    const forged = [
      {},
      { "x-ferry-post-token": "" },
      { "x-ferry-post-token": hs.postToken.slice(0, 21) },
      { "x-ferry-post-token": hs.postToken + "A" },
      { "x-ferry-post-token": (hs.postToken[0] === "A" ? "B" : "A") + hs.postToken.slice(1) },
      { "x-ferry-post-token": hs.sid },
      // A cross-site form: another Origin, the user's cookies, a form's content type.
      { origin: "http://evil.example", cookie: "session=victim", "content-type": "application/x-www-form-urlencoded" },
    ];
    for (const h of forged) {
      const r = await post(srv.url, transport, hs.sid, "40", h);
      assert.equal(r.status, 403, `refused: ${JSON.stringify(h)}`);
      assert.equal(r.headers.get("content-type"), "application/json");
      assert.deepEqual(await r.json(), { code: 4, message: "Bad post token" });
    }
    // The session is untouched: the real client's POST goes through and is answered.
    const ok = await post(srv.url, transport, hs.sid, "40", { "x-ferry-post-token": hs.postToken });
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), "ok");
    if (transport === "sse") {
      await until(() => hs.conn.buf.toString().includes("data: 40"), 10000, "the CONNECT answer on the stream");
      assert.ok(!hs.conn.ended, "the stream goes on");
      hs.conn.destroy();
    } else {
      const r = await fetch(`${srv.url}/socket.io/?EIO=4&transport=${transport}&sid=${hs.sid}`);
      assert.equal(r.status, 200, "the session is alive");
      assert.match(await r.text(), /40\{"sid"/, "the CONNECT was taken");
    }
  });

test("a forged POST's head cannot end the session as a second POST in flight", async () => {
  const hs = await handshake(srv.url, "polling");
  // The real client's POST is slow: its head is in, its body trickles.
  const c = await rawConnect(srv.port);
  c.write(`POST /socket.io/?EIO=4&transport=polling&sid=${hs.sid} HTTP/1.1\r\nHost: x\r\nX-Ferry-Post-Token: ${hs.postToken}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n4`);
  await sleep(200);
  const forged = await post(srv.url, "polling", hs.sid, "1");
  assert.equal(forged.status, 403);
  c.write("0");
  const r = await c.response();
  assert.equal(r.status, 200, "the real POST completes");
  assert.equal(r.text, "ok");
  c.destroy();
  const g = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${hs.sid}`);
  assert.equal(g.status, 200, "the session is alive");
});

// ferry's client on every transport: two of them in a room exchange numbered messages.
for (const transport of ["polling", "short-polling", "sse", "websocket", "auto"])
  test(`ferry's client (${transport}) sends the token itself: messages both ways`, async () => {
    const opts = { WebSocket: WS, storage: null, forceNew: true, reconnection: false };
    if (transport !== "auto") opts.transports = [transport];
    const a = io(srv.url, opts);
    const b = io(srv.url, opts);
    const errors = [];
    for (const s of [a, b]) {
      s.on("connect_error", (e) => errors.push(`connect_error ${e.message}`));
      s.on("disconnect", (r) => errors.push(`disconnect ${r}`));
    }
    await until(() => a.connected && b.connected, 15000, "both connected");
    const room = `pt-${transport}`;
    for (const s of [a, b]) assert.equal((await s.timeout(5000).emitWithAck("join", { room })).ok, true);
    const got = { a: [], b: [] };
    a.on("message", (d) => got.a.push(d.n));
    b.on("message", (d) => got.b.push(d.n));
    for (let n = 1; n <= 20; n++) {
      assert.equal((await a.timeout(5000).emitWithAck("publish", { room, event: "message", data: { n } })).ok, true);
      assert.equal((await b.timeout(5000).emitWithAck("publish", { room, event: "message", data: { n } })).ok, true);
    }
    await until(() => got.a.length === 20 && got.b.length === 20, 10000, "every message");
    const seq = Array.from({ length: 20 }, (_, i) => i + 1);
    assert.deepEqual(got.a, seq);
    assert.deepEqual(got.b, seq);
    if (transport !== "auto") assert.equal(a.io.engine.transport.name, transport);
    for (const s of [a, b]) s.off("disconnect").disconnect();
    assert.deepEqual(errors, []);
  });

test("official clients: over WebSocket they work; over polling their POSTs are refused", async () => {
  const ws = officialIo(srv.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  await new Promise((r, j) => (ws.once("connect", r), ws.once("connect_error", j)));
  assert.equal((await ws.timeout(5000).emitWithAck("join", { room: "x" })).ok, true);
  ws.disconnect();
  const pl = officialIo(srv.url, { forceNew: true, reconnection: false, transports: ["polling"] });
  const err = await new Promise((r) => (pl.once("connect_error", r), pl.once("connect", () => r(null))));
  assert.ok(err, "the polling client does not connect");
  pl.disconnect();
});

test("off by default: the open packet is Engine.IO's five keys, official polling clients work", async () => {
  const plain = await startServer(bin("tools/ferry/ferry"), ["--port", "0"]);
  try {
    const hs = await handshake(plain.url, "polling");
    assert.deepEqual(Object.keys(hs).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
    const s = officialIo(plain.url, { forceNew: true, reconnection: false, transports: ["polling"] });
    await new Promise((r, j) => (s.once("connect", r), s.once("connect_error", j)));
    assert.equal((await s.timeout(5000).emitWithAck("join", { room: "x" })).ok, true);
    s.disconnect();
    const r = await post(plain.url, "polling", hs.sid, "40");
    assert.equal(r.status, 200, "POSTs need no token");
  } finally {
    assert.equal(await plain.stop(), 0);
  }
});
