// The official engine.io-client over WebSocket against ferry: sessions opened directly on
// WebSocket (transports: ['websocket']) and the client's default, polling then the probe
// upgrade. Echo of text and binary, messages sent during the upgrade (once, in order),
// heartbeats, a stalled client, and the refusals around an upgraded session.
// The server side is observed through ferry-test-engine's event lines (tests/lib/events.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "engine.io-client";
import WebSocket from "ws";
import { once } from "../lib/server.mjs";
import { startEngine } from "../lib/events.mjs";
import { messages, bytes } from "../lib/client.mjs";

// Generous heartbeats for the shared server: under ASan on a loaded 2-core machine a 200 ms
// pong deadline is missed now and then, which closed sessions in the middle of unrelated tests.
// The stall test runs its own server with short values, since it measures them.
const PING_INTERVAL = 1000;
const PING_TIMEOUT = 2000;
const STALL_INTERVAL = 300;
const STALL_TIMEOUT = 200;

let eng;
before(async () => {
  eng = await startEngine([
    "--ping-interval", String(PING_INTERVAL), "--ping-timeout", String(PING_TIMEOUT),
    "--max-payload", "100000", "--cors", "http://good.example",
  ]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const wsUrl = (query = "") => `ws://127.0.0.1:${eng.port}${eng.path}?EIO=4&transport=websocket${query}`;

async function open(opts = {}) {
  const socket = new Socket(eng.url, { path: eng.path, ...opts });
  await once(socket, "open");
  const ev = await eng.next((e) => e.event === "open" && e.sid === socket.id);
  return { socket, ev };
}

// The next message of a raw `ws` client, as text.
const nextText = (ws) => new Promise((resolve) => ws.once("message", (d) => resolve(d.toString())));

test("transports: ['websocket']: the session opens on WebSocket and echoes text and binary", async () => {
  const { socket, ev } = await open({ transports: ["websocket"] });
  assert.equal(socket.transport.name, "websocket");
  assert.equal(ev.transport, "websocket");
  const got = messages(socket, 2);
  socket.send("héllo ✓");
  socket.send(new Uint8Array([0, 1, 2, 255]));
  const [text, bin] = await got;
  assert.equal(text, "héllo ✓");
  assert.deepEqual(bytes(bin), [0, 1, 2, 255]);
  socket.close();
  assert.equal((await eng.closeOf(ev.sid)).reason, "transport close");
});

test("a WebSocket-only handshake announces no upgrades and the spec's five keys", async () => {
  const ws = new WebSocket(wsUrl());
  const text = await nextText(ws);
  assert.equal(text[0], "0");
  const open = JSON.parse(text.slice(1));
  assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
  assert.deepEqual(open.upgrades, []);
  assert.equal(open.pingInterval, PING_INTERVAL);
  ws.close();
  await eng.closeOf(open.sid);
});

test("defaults: polling, then the probe upgrade to WebSocket; echo on both", async () => {
  const { socket, ev } = await open();
  assert.equal(ev.transport, "polling");
  assert.equal(socket.transport.name, "polling");
  const upgraded = once(socket, "upgrade");
  socket.send("before");
  assert.equal((await messages(socket, 1))[0], "before");
  await upgraded;
  assert.equal(socket.transport.name, "websocket");
  const got = messages(socket, 2);
  socket.send("after ✓");
  socket.send(new Uint8Array([9, 8, 7]));
  const [text, bin] = await got;
  assert.equal(text, "after ✓");
  assert.deepEqual(bytes(bin), [9, 8, 7]);
  socket.close();
  assert.equal((await eng.closeOf(ev.sid)).reason, "transport close");
});

test("messages sent during the upgrade arrive once and in order, both ways", async () => {
  const socket = new Socket(eng.url, { path: eng.path });
  const N = 60;
  const got = messages(socket, N + N, 8000);
  socket.on("open", () => {
    // The server queues a burst while the client probes; the client keeps sending too.
    socket.send(`cmd:burst ${N}`);
  });
  let sent = 0;
  const sendSome = () => {
    while (sent < N) socket.send(`c${sent++}`);
  };
  socket.on("upgrading", sendSome);
  socket.on("upgrade", sendSome);
  await once(socket, "open");
  const sid = socket.id;
  await once(socket, "upgrade");
  const all = await got;
  const burst = all.filter((m) => m.startsWith("burst "));
  const echoed = all.filter((m) => m.startsWith("c"));
  assert.deepEqual(burst, Array.from({ length: N }, (_, i) => `burst ${i}`));
  assert.deepEqual(echoed, Array.from({ length: N }, (_, i) => `c${i}`));
  // The server saw each client message once, in order.
  const seen = [];
  for (let i = 0; i < N + 1; i++) seen.push((await eng.messageOf(sid)).text);
  assert.deepEqual(seen.slice(1), Array.from({ length: N }, (_, i) => `c${i}`));
  socket.close();
  await eng.closeOf(sid);
});

test("after the upgrade, polling requests for the sid are refused; a second WebSocket is closed", async () => {
  const { socket, ev } = await open();
  await once(socket, "upgrade");
  const res = await fetch(`${eng.url}${eng.path}?EIO=4&transport=polling&sid=${ev.sid}`);
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 3, message: "Bad request" });
  // As the reference server: 101, then closed at once.
  const dup = new WebSocket(wsUrl(`&sid=${ev.sid}`));
  await once(dup, "open");
  await once(dup, "close");
  // The session itself is untouched.
  socket.send("still here");
  assert.equal((await messages(socket, 1))[0], "still here");
  socket.close();
  await eng.closeOf(ev.sid);
});

test("heartbeats keep an idle WebSocket session alive", async () => {
  const { socket, ev } = await open({ transports: ["websocket"] });
  for (let i = 0; i < 3; i++) await once(socket, "ping", 2000);
  assert.equal(eng.all("close").filter((e) => e.sid === ev.sid).length, 0, "still open after 3 pings");
  socket.close();
  await eng.closeOf(ev.sid);
});

test("a WebSocket client that stalls its pongs is closed within pingInterval + pingTimeout", async () => {
  const stall = await startEngine(["--ping-interval", String(STALL_INTERVAL), "--ping-timeout", String(STALL_TIMEOUT)]);
  let socket;
  try {
    // The lower bound is measured from before the session exists, the upper one from the open
    // the client saw: on a loaded machine the open arrives late, and either origin alone would
    // make a correct server look early or late.
    const t0 = Date.now();
    socket = new Socket(stall.url, { path: stall.path, transports: ["websocket"] });
    const send = socket._sendPacket.bind(socket);
    socket._sendPacket = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
    await once(socket, "open");
    const opened = Date.now();
    const closed = await stall.closeOf(socket.id, 5000);
    const now = Date.now();
    assert.equal(closed.reason, "ping timeout");
    assert.ok(now - t0 >= STALL_INTERVAL + STALL_TIMEOUT - 50, `not before the deadline (${now - t0} ms)`);
    assert.ok(now - opened < STALL_INTERVAL + STALL_TIMEOUT + 1000, `closed ${now - opened} ms after open`);
  } finally {
    socket?.close();
    assert.equal(await stall.stop(), 0, "the stall server exits cleanly");
  }
});

test("bad WebSocket requests: 400 before any 101, origin checked, oversized message 1009", async () => {
  // transport=websocket without the upgrade headers.
  const res = await fetch(wsUrl().replace("ws:", "http:"));
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 3, message: "Bad request" });
  // An origin outside the allowlist: 403 (code 4), never upgraded.
  const evil = new WebSocket(wsUrl(), { origin: "http://evil.example" });
  const [, resp] = await once(evil, "unexpected-response");
  assert.equal(resp.statusCode, 403);
  evil.on("error", () => {});
  const good = new WebSocket(wsUrl(), { origin: "http://good.example" });
  const first = await nextText(good);
  const sid = JSON.parse(first.slice(1)).sid;
  // A message over maxPayload is closed with 1009 and the session ends with a transport error.
  good.send("4" + "x".repeat(100001));
  const [code] = await once(good, "close");
  assert.equal(code, 1009);
  assert.equal((await eng.closeOf(sid)).reason, "transport error");
});

test("an undecodable packet on WebSocket closes the session with a parse error", async () => {
  const ws = new WebSocket(wsUrl());
  const sid = JSON.parse((await nextText(ws)).slice(1)).sid;
  ws.send("x-not-a-packet");
  await once(ws, "close");
  assert.equal((await eng.closeOf(sid)).reason, "parse error");
});

test("a second WebSocket while the first is still probing gets 101 and is closed; the probe goes on", async () => {
  const res = await fetch(`${eng.url}${eng.path}?EIO=4&transport=polling`);
  const sid = JSON.parse((await res.text()).slice(1)).sid;
  const ws = new WebSocket(wsUrl(`&sid=${sid}`));
  await once(ws, "open");
  ws.send("2probe");
  assert.equal(await nextText(ws), "3probe");
  const dup = new WebSocket(wsUrl(`&sid=${sid}`));
  await once(dup, "open");
  await once(dup, "close");
  ws.send("5");
  ws.send("4probe survived");
  assert.equal(await nextText(ws), "4probe survived");
  ws.close();
  await eng.closeOf(sid);
});

test("permessage-deflate on engine WebSockets when the server enables it (off by default)", async () => {
  // Off by default: the client's offer is declined.
  const plain = new Socket(eng.url, { path: eng.path, transports: ["websocket"], perMessageDeflate: { threshold: 0 } });
  await once(plain, "open");
  assert.equal(plain.transport.ws.extensions, "");
  plain.close();
  const deng = await startEngine(["--ws-deflate", "100"]);
  try {
    const socket = new Socket(deng.url, { path: deng.path, transports: ["websocket"], perMessageDeflate: { threshold: 0 } });
    await once(socket, "open");
    assert.match(socket.transport.ws.extensions, /permessage-deflate/);
    const text = "deflate me ".repeat(3000);
    const got = messages(socket, 2);
    socket.send(text);
    socket.send("short");
    const [a, b] = await got;
    assert.equal(a, text);
    assert.equal(b, "short");
    const sid = socket.id; // the client forgets it on close
    socket.close();
    assert.equal((await deng.closeOf(sid)).reason, "transport close");
  } finally {
    assert.equal(await deng.stop(), 0);
  }
});
