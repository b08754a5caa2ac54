// The recovery log's bounds are per namespace (issue 14: "bounded by bytes and by age, per
// namespace"; ferry_namespace_set_recovery()). One ferry-test-sio with recovery on for 10 s and a
// 4000-byte log (--recovery-bytes): "/" has the server's bounds, "/own" its own (a 4000 ms window,
// a 1 MiB log). The same traffic missed in both namespaces at once:
// - bytes: 12 events of about 1 KB missed: "/" dropped the oldest of them (its offset is gone,
//   a new socket), "/own" replays all 12;
// - age: an event 4.5 s old when the client comes back (lost 2.5 s after it, so its saved socket
//   is still kept in both): "/own" dropped it by age ("gap", told to the app by ferry's client),
//   "/" (10 s) replays it.
// And the count bound, the same for every namespace: 10000 packets by default, oldest dropped
// first; --recovery-packets (recovery_max_packets) sets it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WS from "ws";
import { io as officialIo } from "socket.io-client";
import { io } from "../../client-js/src/index.mjs";
import { startSio } from "../lib/sio.mjs";

const BOUND = 4000;
const NSPS = ["/", "/own"];
let srv;
before(async () => {
  srv = await startSio(["--recovery", "10000", "--recovery-bytes", String(BOUND)]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
});

const until = (emitter, event, ms = 10000) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...a) => (clearTimeout(t), resolve(a[0])));
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const url = (nsp) => `${srv.url}${nsp === "/" ? "" : nsp}`;

// a and b (official clients on WebSocket) at `base`; a in a room of its own, where it got
// "before" from b. got: what a receives as "news".
async function inRoom(base, prefix) {
  const a = officialIo(base, { transports: ["websocket"], forceNew: true, reconnection: false });
  const b = officialIo(base, { transports: ["websocket"], forceNew: true, reconnection: false });
  await Promise.all([until(a, "connect"), until(b, "connect")]);
  const room = `${prefix}-${a.id}`;
  const got = [];
  a.on("news", (x) => got.push(x));
  await a.timeout(5000).emitWithAck("join", room);
  const first = until(a, "news");
  assert.equal(await b.timeout(5000).emitWithAck("to", room, "news", "before"), 1);
  await first;
  return { a, b, room, got, id: a.id };
}

test("bytes: the same ~12 KB missed in two namespaces: over the 4000-byte log of '/', within the 1 MiB of '/own'", async () => {
  const sides = await Promise.all(
    NSPS.map(async (nsp) => ({ nsp, ...(await inRoom(url(nsp), "r")) })),
  );
  try {
    for (const s of sides) {
      const gone = srv.disconnectOf(s.id);
      s.a.io.engine.close(); // lost, not left
      await gone;
    }
    // Each event alone is under 4000 bytes; the twelve are three times over it.
    const big = Array.from({ length: 12 }, (_, i) => `big-${i}-` + "x".repeat(BOUND / 4));
    for (const m of big) for (const s of sides) await s.b.timeout(5000).emitWithAck("to", s.room, "news", m);
    for (const s of sides) {
      const back = until(s.a, "connect");
      s.a.connect(); // with its pid and offset
      await back;
      await s.a.timeout(5000).emitWithAck("message-with-ack", "sync");
    }
    const [root, own] = sides;
    assert.equal(root.a.recovered, false, "'/': its offset left the 4000-byte log: a new socket");
    assert.notEqual(root.a.id, root.id);
    assert.deepEqual(root.got, ["before"], "'/': nothing replayed to a new socket");
    assert.equal(own.a.recovered, true, "'/own': recovered (its log holds 1 MiB)");
    assert.equal(own.a.id, own.id);
    assert.deepEqual(own.got, ["before", ...big], "'/own': all 12 replayed, once, in order");
  } finally {
    for (const s of sides) (s.a.disconnect(), s.b.disconnect());
  }
});

test("age: an event older than '/own''s 4000 ms window is dropped there ('gap'), kept by '/' (10 s)", { timeout: 60000 }, async () => {
  const sides = await Promise.all(
    NSPS.map(async (nsp) => {
      const a = io(url(nsp), { WebSocket: WS, storage: null, forceNew: true, reconnection: false, transports: ["websocket"] });
      const b = officialIo(url(nsp), { transports: ["websocket"], forceNew: true, reconnection: false });
      await Promise.all([until(a, "connect"), until(b, "connect")]);
      const room = `age-${a.id}`;
      const got = [];
      a.on("news", (x) => got.push(x));
      const failed = [];
      a.on("recovery_failed", (e) => failed.push(e));
      await a.timeout(8000).emitWithAck("join", room);
      const first = until(a, "news");
      assert.equal(await b.timeout(5000).emitWithAck("to", room, "news", "p1"), 1);
      await first;
      return { nsp, a, b, room, got, failed, id: a.id, off1: a._off };
    }),
  );
  try {
    // p2 reaches both clients; each will come back with p1's offset, as if p2 had been lost on
    // the way (written to a connection that died): p2 is what it needs from the log.
    const p2 = sides.map((s) => until(s.a, "news"));
    for (const s of sides) assert.equal(await s.b.timeout(5000).emitWithAck("to", s.room, "news", "p2"), 1);
    const t2 = Date.now(); // p2 is in both logs since before this
    await Promise.all(p2);
    for (const s of sides) assert.match(s.off1, /^\d+$/, `${s.nsp}: p1's offset`);
    // Lost 2.5 s after p2: the saved socket is kept until 6.5 s in "/own", 12.5 s in "/".
    await sleep(Math.max(0, t2 + 2500 - Date.now()));
    for (const s of sides) {
      const gone = srv.disconnectOf(s.id, 10000);
      const down = until(s.a, "disconnect");
      s.a.emit("close-session"); // the server ends the Engine.IO session: lost, not left
      await gone;
      await down;
    }
    // Back 4.5 s after p2: older than "/own"'s window, within "/"'s.
    await sleep(Math.max(0, t2 + 4500 - Date.now()));
    for (const s of sides) {
      s.got.length = 0;
      s.a._off = s.off1;
      const back = until(s.a, "connect");
      s.a.connect();
      await back;
      await s.a.timeout(8000).emitWithAck("message-with-ack", "sync");
    }
    const [root, own] = sides;
    assert.equal(root.a.recovered, true, "'/': recovered");
    assert.equal(root.a.id, root.id);
    assert.deepEqual(root.failed, []);
    assert.deepEqual(root.got, ["p2"], "'/': p2 replayed from its log");
    assert.equal(own.a.recovered, false, "'/own': not recovered");
    assert.notEqual(own.a.id, own.id);
    assert.deepEqual(own.failed.map((e) => e.reason), ["gap"], "'/own': p2 aged out of its log, and the app is told");
    assert.deepEqual(own.got, []);
  } finally {
    for (const s of sides) (s.a.disconnect(), s.b.disconnect());
  }
});

for (const [bound, cases] of [[null, [[9990, true], [10010, false]]], [10100, [[10010, true], [10110, false]]]])
test(`count: ${bound ?? "10000 (the default)"} packets at most: ${cases[0][0]} missed are replayed, ${cases[1][0]} are past the log`, { timeout: 120000 }, async () => {
  // The default 16 MiB: only the count acts.
  const big = await startSio(["--recovery", "60000", ...(bound ? ["--recovery-packets", String(bound)] : [])]);
  try {
    for (const [n, recovered] of cases) {
      const { a, b, room, got, id } = await inRoom(big.url, "count");
      const gone = big.disconnectOf(id);
      a.io.engine.close();
      await gone;
      // n - 1 events to a room nobody is in (logged all the same), then one to a's room.
      for (let i = 0; i < n - 1; i++) b.emit("to", "nobody", "x", i);
      assert.equal(await b.timeout(30000).emitWithAck("to", room, "news", "last"), 0);
      const back = until(a, "connect");
      a.connect();
      await back;
      await a.timeout(5000).emitWithAck("message-with-ack", "sync");
      assert.equal(a.recovered, recovered, `${n} missed: recovered ${recovered}`);
      assert.deepEqual(got, recovered ? ["before", "last"] : ["before"]);
      a.disconnect();
      b.disconnect();
    }
  } finally {
    assert.equal(await big.stop(), 0, "ferry-test-sio exits 0 (no leak)");
  }
});
