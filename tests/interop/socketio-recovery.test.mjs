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

for (const mode of ["polling", "websocket"]) {
  test(`${mode}: a dropped connection is recovered with its id, rooms and missed packets`, async () => {
    const a = io(srv.url, { ...MODES[mode], forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
    const b = io(srv.url, { ...MODES[mode], forceNew: true, reconnection: false });
    await Promise.all([connected(a), connected(b)]);
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
    await connected(a);
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
