// The official engine.io-client, forced to long-polling, against ferry: the handshake, echo in
// both directions (text and binary), batching, heartbeats, and closing from either side.
// The server side is observed through ferry-test-engine's event lines (tests/lib/events.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "engine.io-client";
import { startServer, bin, once } from "../lib/server.mjs";
import { startEngine } from "../lib/events.mjs";
import { messages, bytes } from "../lib/client.mjs";

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;

let eng;
before(async () => {
  eng = await startEngine(["--ping-interval", String(PING_INTERVAL), "--ping-timeout", String(PING_TIMEOUT)]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

function connect(opts = {}) {
  return new Socket(eng.url, { path: eng.path, transports: ["polling"], ...opts });
}

// Open a client and wait until both sides agree the session is open.
async function open(opts) {
  const socket = connect(opts);
  await once(socket, "open");
  const ev = await eng.next((e) => e.event === "open" && e.sid === socket.id);
  return { socket, ev };
}


test("handshake: sid, transport and the server's ping settings", async () => {
  const { socket, ev } = await open();
  assert.equal(socket.transport.name, "polling");
  assert.match(socket.id, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(ev.transport, "polling");
  assert.equal(socket._pingInterval, PING_INTERVAL);
  assert.equal(socket._pingTimeout, PING_TIMEOUT);
  socket.close();
  await eng.closeOf(ev.sid);
});

test("text echo in both directions, UTF-8 intact", async () => {
  const { socket, ev } = await open();
  const text = "héllo ✓ 🚢 \u0000 end";
  socket.send(text);
  const seen = await eng.messageOf(socket.id);
  assert.equal(seen.text, text, "the server got the exact text");
  assert.equal(await once(socket, "message"), text, "and echoed it back");
  socket.close();
  await eng.closeOf(ev.sid);
});

test("binary echo in both directions", async () => {
  const { socket, ev } = await open();
  socket.send(new Uint8Array([1, 2, 3, 255]));
  const seen = await eng.messageOf(socket.id);
  assert.equal(seen.binary, "AQID/w==", "the server got the bytes as binary");
  assert.deepEqual(bytes(await once(socket, "message")), [1, 2, 3, 255]);
  socket.send("cmd:binary");
  await eng.messageOf(socket.id);
  assert.deepEqual(bytes(await once(socket, "message")), [0, 1, 2, 255], "server-initiated binary");
  socket.close();
  await eng.closeOf(ev.sid);
});

test("many messages in one payload, both directions, in order", async () => {
  const { socket, ev } = await open();
  // Upstream: sent in one tick, the client batches them into one POST body.
  const got = messages(socket, 50);
  for (let i = 0; i < 50; i++) socket.send(`up ${i}`);
  for (let i = 0; i < 50; i++) assert.equal((await eng.messageOf(socket.id)).text, `up ${i}`);
  assert.deepEqual(await got, Array.from({ length: 50 }, (_, i) => `up ${i}`));
  // Downstream: the server queues 300 messages at once; they arrive in order, none twice.
  const burst = messages(socket, 300);
  socket.send("cmd:burst 300");
  assert.deepEqual(await burst, Array.from({ length: 300 }, (_, i) => `burst ${i}`));
  socket.close();
  await eng.closeOf(ev.sid);
});

test("server-initiated close reaches the client", async () => {
  const { socket, ev } = await open();
  const closed = once(socket, "close");
  socket.send("cmd:close");
  const [reason] = await closed;
  assert.equal(reason, "transport close", "the client saw the server's close packet");
  assert.equal((await eng.closeOf(ev.sid)).reason, "forced close");
});

test("heartbeats keep an idle session alive", async () => {
  // Its own server: a pong timeout that a loaded sanitizer build can meet (600 ms), and five
  // ping rounds, past pingInterval + pingTimeout (800 ms) more than once.
  const hb = await startEngine(["--ping-interval", "200", "--ping-timeout", "600"]);
  try {
    const socket = new Socket(hb.url, { path: hb.path, transports: ["polling"] });
    await once(socket, "open");
    const sid = socket.id;
    await hb.next((e) => e.event === "open" && e.sid === sid);
    for (let i = 0; i < 5; i++) await once(socket, "ping", 3000);
    assert.equal(hb.all("close").filter((e) => e.sid === sid).length, 0, "still open after 5 pings");
    socket.close();
    assert.equal((await hb.closeOf(sid)).reason, "transport close");
  } finally {
    assert.equal(await hb.stop(), 0);
  }
});

test("a client that stalls its pongs is closed within pingInterval + pingTimeout", async () => {
  // The server's clock starts at its handshake, between these two instants: the lower bound is
  // measured from before the request (a loaded machine may deliver "open" late), the upper one
  // from "open".
  const requested = Date.now();
  const socket = connect();
  // Drop the client's pongs; everything else goes out as usual.
  const send = socket._sendPacket.bind(socket);
  socket._sendPacket = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
  await once(socket, "open");
  const opened = Date.now();
  const sid = socket.id;
  await eng.next((e) => e.event === "open" && e.sid === sid);
  const closed = await eng.closeOf(sid, 5000);
  const now = Date.now();
  const elapsed = now - opened;
  assert.equal(closed.reason, "ping timeout");
  // The first ping goes out after pingInterval; the pong is due pingTimeout later. Allow the
  // client's own scheduling and a sanitizer build some slack, but not another whole cycle.
  assert.ok(now - requested >= PING_INTERVAL + PING_TIMEOUT - 50, `not before the deadline (${now - requested} ms)`);
  assert.ok(elapsed < PING_INTERVAL + PING_TIMEOUT + 400, `closed ${elapsed} ms after open`);
  socket.close();
});

test("a client closing is seen by the server as 'transport close'", async () => {
  const { socket, ev } = await open();
  socket.send("last words");
  await eng.messageOf(ev.sid);
  socket.close();
  assert.equal((await eng.closeOf(ev.sid)).reason, "transport close");
});

test("the server closed from inside a message callback exits clean", async () => {
  const own = await startEngine([]);
  const socket = new Socket(own.url, { path: own.path, transports: ["polling"] });
  await once(socket, "open");
  const sid = socket.id;
  const closed = once(socket, "close");
  socket.send("cmd:shutdown");
  assert.equal((await own.closeOf(sid)).reason, "server shutting down");
  await closed;
  assert.equal(await own.exited(), 0, "the process ends by itself, exit 0, no leak");
});

test("examples/echo echoes over polling", async () => {
  const echo = await startServer(bin("examples/echo/ferry-echo"), ["--port", "0"]);
  try {
    const socket = new Socket(echo.url, { path: "/engine.io/", transports: ["polling"] });
    await once(socket, "open");
    socket.send("hello ✓");
    assert.equal(await once(socket, "message"), "hello ✓");
    socket.close();
  } finally {
    assert.equal(await echo.stop(), 0, "echo exits cleanly");
  }
});
