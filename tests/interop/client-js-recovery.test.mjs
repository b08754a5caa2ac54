// Connection-state recovery with ferry's client (client-js) on every transport, before and after
// the cut (issue 14): the Engine.IO session is lost (the server closes it), the client comes
// back on a new session, maybe on another transport, and gets its id, rooms and every event it
// missed, once and in order. A reconnection past the window is told so: socket.recovered is
// false and "recovery_failed" carries the server's reason.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WS from "ws";
import { io as officialIo } from "socket.io-client";
import { io } from "../../client-js/src/index.mjs";
import { startSio } from "../lib/sio.mjs";

const ALL = ["polling", "websocket", "sse", "short-polling"];
let srv, b;
before(async () => {
  srv = await startSio(["--recovery", "10000", "--transports", ALL.join(",")]);
  b = officialIo(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  await new Promise((r) => b.once("connect", r));
});
after(async () => {
  b.disconnect();
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
});

function until(emitter, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...a) => (clearTimeout(t), resolve(a[0])));
  });
}
const ack = (s, ...args) => s.timeout(8000).emitWithAck(...args);

// [transports before the cut, transports after]: each alone, each to the next one, and a
// session upgraded from polling to WebSocket that comes back on SSE.
const CASES = [
  ...ALL.map((t) => [[t], [t]]),
  ...ALL.map((t, i) => [[t], [ALL[(i + 1) % 4]]]),
  [["polling", "websocket"], ["sse"]],
];

for (const [pre, post] of CASES) {
  test(`ferry's client: ${pre.join("+")} -> cut -> ${post.join("+")}: recovered with every missed event`, async () => {
    const a = io(srv.url, { WebSocket: WS, storage: null, forceNew: true, reconnection: false, transports: pre });
    try {
      await until(a, "connect");
      if (pre.length > 1) await new Promise((r) => (a.io.engine.transport?.name === "websocket" ? r() : a.io.on("transport", (e) => e.to === "websocket" && r())));
      assert.equal(a.recovered, false);
      const room = `rc-${a.id}`;
      const got = [];
      a.on("news", (x) => got.push(x));
      const failed = [];
      a.on("recovery_failed", (e) => failed.push(e));
      await ack(a, "join", room);
      const first = until(a, "news");
      assert.equal(await ack(b, "to", room, "news", "before"), 1);
      await first;
      const id = a.id;
      // The server ends the Engine.IO session (the client's transport does not matter).
      const gone = srv.disconnectOf(id, 10000);
      const down = until(a, "disconnect");
      a.emit("close-session");
      await gone;
      await down;
      assert.equal(await ack(b, "to", room, "news", "missed-1"), 0);
      await ack(b, "broadcast", "news", "missed-2");
      await ack(b, "to", "elsewhere", "news", "not-for-a");
      a.io.o.transports = post; // the next session starts on another transport
      const back = until(a, "connect");
      a.connect();
      await back;
      assert.equal(a.recovered, true, "socket.recovered");
      assert.equal(a.id, id, "same id");
      assert.deepEqual(failed, []);
      assert.equal(a.io.engine.transport?.name ?? post[0], post[0]);
      await ack(a, "message-with-ack", "sync");
      assert.deepEqual(got, ["before", "missed-1", "missed-2"]);
      assert.equal(await ack(b, "to", room, "news", "after"), 1, "still in its room");
    } finally {
      a.disconnect();
    }
  });
}

test("ferry's client past the window: recovered === false and recovery_failed {reason: 'expired'}", async () => {
  const a = io(`${srv.url}/short`, { WebSocket: WS, storage: null, forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await until(a, "connect");
    const id = a.id;
    const gone = srv.disconnectOf(id, 10000);
    const down = until(a, "disconnect");
    a.emit("close-session");
    await gone;
    await down;
    await new Promise((r) => setTimeout(r, 700)); // /short keeps a lost socket 300 ms
    a.emit("message", "never-left"); // while disconnected: it never left the client
    const order = [];
    a.on("recovery_failed", () => order.push("recovery_failed"));
    a.on("connect", () => order.push(`connect (recovered ${a.recovered})`));
    const failed = until(a, "recovery_failed");
    const back = until(a, "connect");
    a.connect();
    // "close-session" was sent and never confirmed: the new socket cannot know it (unconfirmed).
    assert.deepEqual(await failed, { reason: "expired", unconfirmed: 1 });
    await back;
    assert.deepEqual(order, ["recovery_failed", "connect (recovered false)"], "told before connect (docs/client.md)");
    assert.equal(a.recovered, false);
    assert.notEqual(a.id, id);
    // The emit that never left goes out once, on the new socket (docs/reliability.md).
    await a.timeout(8000).emitWithAck("message-with-ack", "sync");
    await srv.next((e) => e.event === "event" && e.id === a.id && e.args[0] === "sync");
    const taken = srv.all("event").filter((e) => e.id === a.id).map((e) => e.args[0]);
    assert.deepEqual(taken, ["never-left", "sync"]);
  } finally {
    a.disconnect();
  }
});

test("ferry's client with a server that has recovery off: recovery_failed {reason: 'off'}", async () => {
  const off = await startSio([]);
  const a = io(off.url, { WebSocket: WS, storage: null, forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await until(a, "connect");
    a._pid = "x".repeat(20); // as if it had been connected to a server with recovery on
    const down = until(a, "disconnect");
    a.emit("close-session");
    await down;
    const failed = until(a, "recovery_failed");
    a.connect();
    assert.deepEqual(await failed, { reason: "off" });
    assert.equal(a.recovered, false);
  } finally {
    a.disconnect();
    assert.equal(await off.stop(), 0);
  }
});

test("ferry's client with an offset the server never gave: recovery_failed {reason: 'invalid'}", async () => {
  const a = io(srv.url, { WebSocket: WS, storage: null, forceNew: true, reconnection: false, transports: ["websocket"] });
  try {
    await until(a, "connect");
    const id = a.id;
    const gone = srv.disconnectOf(id, 10000);
    const down = until(a, "disconnect");
    a.emit("close-session");
    await gone;
    await down;
    a._off = "not-a-number";
    const failed = until(a, "recovery_failed");
    a.connect();
    assert.deepEqual(await failed, { reason: "invalid", unconfirmed: 1 }); // "close-session", unconfirmed
    assert.equal(a.recovered, false);
    assert.notEqual(a.id, id);
  } finally {
    a.disconnect();
  }
});
