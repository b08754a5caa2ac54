// Connection-state recovery (recovery_ms) with the official socket.io-client: a client whose
// connection drops comes back with the same id and rooms (socket.recovered), and gets what was
// broadcast to its rooms meanwhile, once and in order; a client that left on purpose, or whose
// offset is unknown, starts afresh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startSio, MODES } from "../lib/sio.mjs";

let srv;
before(async () => {
  srv = await startSio(["--recovery", "5000"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

function connected(socket) {
  return new Promise((resolve) => socket.once("connect", resolve));
}

// [transport before the cut, transport after]: each of the official client's two as before and
// as after, and an upgraded session (polling then WebSocket) that comes back on polling.
const PAIRS = [["polling", "polling"], ["websocket", "websocket"], ["polling", "websocket"], ["websocket", "polling"], ["upgrade", "polling"]];
for (const [mode, post] of PAIRS) {
  test(`${mode} -> cut -> ${post}: a dropped connection is recovered with its id, rooms and missed packets`, async () => {
    // A comes back by a.connect() once the missed packets are sent: an automatic reconnection
    // could connect before the test listens for it (and before the packets were missed).
    const a = io(srv.url, { ...MODES[mode], forceNew: true, reconnection: false });
    const b = io(srv.url, { ...MODES[mode], forceNew: true, reconnection: false });
    await Promise.all([connected(a), connected(b)]);
    if (mode === "upgrade" && a.io.engine.transport.name !== "websocket")
      await new Promise((r) => a.io.engine.once("upgrade", r));
    assert.equal(a.recovered, false);
    const got = [];
    a.on("news", (...args) => got.push(args));
    await a.timeout(3000).emitWithAck("join", "room1");
    const id = a.id;
    const first = new Promise((r) => a.once("news", r));
    assert.equal(await b.timeout(3000).emitWithAck("to", "room1", "news", "before"), 1);
    await first;
    // Drop A's connection (not a disconnect on purpose): the server keeps its state.
    const gone = srv.next((e) => e.event === "disconnect" && e.id === id);
    a.io.engine.close();
    assert.equal((await gone).reason, "transport close");
    // Broadcast while A is away: to its room, to everyone, and to a room it is not in.
    assert.equal(await b.timeout(3000).emitWithAck("to", "room1", "news", "missed-1"), 0);
    await b.timeout(3000).emitWithAck("broadcast", "news", "missed-2");
    await b.timeout(3000).emitWithAck("to", "elsewhere", "news", "not-for-a");
    a.io.opts.transports = [post]; // the next Engine.IO session starts on this one
    a.io.opts.upgrade = false;
    const back = connected(a);
    a.connect(); // with its pid and offset, as the automatic reconnection does
    await back;
    assert.equal(a.io.engine.transport.name, post);
    assert.equal(a.recovered, true, "socket.recovered");
    assert.equal(a.id, id, "same socket id");
    const conn = await srv.next((e) => e.event === "connect" && e.id === id && e.recovered === true);
    assert.equal(conn.nsp, "/");
    // The missed packets came first, each once (the last argument is the offset).
    await a.timeout(3000).emitWithAck("message-with-ack", "sync");
    assert.deepEqual(got.map((g) => g[0]), ["before", "missed-1", "missed-2"]);
    for (const g of got) assert.match(g[g.length - 1], /^\d+$/);
    // It is still in its room.
    assert.equal(await b.timeout(3000).emitWithAck("to", "room1", "news", "after"), 1);
    a.disconnect();
    b.disconnect();
  });
}

test("a client that left on purpose is not recovered", async () => {
  const a = io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  await connected(a);
  const id = a.id;
  a.disconnect();
  await srv.next((e) => e.event === "disconnect" && e.id === id);
  a.connect();
  await connected(a);
  assert.equal(a.recovered, false);
  assert.notEqual(a.id, id);
  a.disconnect();
});

test("an unknown pid or offset starts a fresh socket", async () => {
  const a = io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false,
    auth: { pid: "nonexistent-pid-00000", offset: "1" } });
  await connected(a);
  assert.equal(a.recovered, false);
  const c = await srv.next((e) => e.event === "connect" && e.id === a.id);
  assert.equal(c.recovered, false);
  a.disconnect();
});

// Issue 14: per-socket data the app set comes back with the socket; a socket still connected on
// a session the server has not yet seen die is taken over; a namespace's own window.
test("the socket's data comes back with it (ferry_namespace_keep_socket_data)", async () => {
  const a = io(`${srv.url}/kept`, { transports: ["websocket"], forceNew: true, reconnection: false });
  await connected(a);
  const id = a.id;
  assert.equal(await a.timeout(3000).emitWithAck("count"), 1);
  assert.equal(await a.timeout(3000).emitWithAck("count"), 2);
  const gone = srv.disconnectOf(id);
  a.io.engine.close();
  await gone;
  a.connect();
  await connected(a);
  assert.equal(a.recovered, true);
  assert.equal(a.id, id);
  assert.equal(await a.timeout(3000).emitWithAck("count"), 3, "the counter set before the cut");
  // Leaving on purpose: not recovered, a new counter (the old one is released: no leak at stop).
  a.disconnect();
  await srv.disconnectOf(id);
  a.connect();
  await connected(a);
  assert.equal(a.recovered, false);
  assert.equal(await a.timeout(3000).emitWithAck("count"), 1);
  a.disconnect();
});

test("a CONNECT with the pid of a socket still connected elsewhere takes it over", async () => {
  const a = io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  await connected(a);
  await a.timeout(3000).emitWithAck("join", "room-t");
  const { _pid: pid, _lastOffset: offset, id } = a;
  assert.match(pid, /^[A-Za-z0-9_-]{20}$/);
  const oldGone = new Promise((r) => a.once("disconnect", r));
  // The same client on a new connection, before the server saw the old one go.
  const b = io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false, auth: { pid, offset } });
  await connected(b);
  const conn = await srv.next((e) => e.event === "connect" && e.id === b.id && e.auth.pid === pid);
  assert.equal(conn.recovered, true, "the server recovered it");
  assert.equal(conn.id, id, "with the old id");
  assert.equal(await oldGone, "io server disconnect", "the old connection is told it is replaced");
  const c = io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  await connected(c);
  assert.equal(await c.timeout(3000).emitWithAck("to", "room-t", "x"), 1, "the new one has the room");
  b.disconnect();
  c.disconnect();
});

test("a namespace's own window (ferry_namespace_set_recovery): /short forgets after 300 ms", async () => {
  const a = io(`${srv.url}/short`, { transports: ["websocket"], forceNew: true, reconnection: false });
  await connected(a);
  const id = a.id;
  const gone = srv.disconnectOf(id);
  a.io.engine.close();
  await gone;
  await new Promise((r) => setTimeout(r, 700));
  a.connect();
  await connected(a);
  assert.equal(a.recovered, false);
  assert.notEqual(a.id, id);
  a.disconnect();
});
