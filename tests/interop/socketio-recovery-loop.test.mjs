// The long chaos run (docs/reliability.md, Run 1) saw a recovery loop: a socket that had every
// packet meant for it, lost after packets meant for others only, came back once those packets
// had left the log (the exchange over, the log aged out). The server accepted its recovery
// (nothing it needed was missing), then its replay started at the client's offset, found the log
// no longer held what followed it, and closed the session it had just recovered it on ("cannot
// catch up from the recovery log"): the client came back with the same offset 1476 times. The
// replay starts where the recovery found the log whole (what lies between was not meant for
// it): the socket is recovered and stays. recovery-aged-log.test.mjs empties the log by age with
// a client that has no offset; here the log's byte bound empties it (a packet alone over the
// bound goes at once) after the client received an event (its offset behind the log's end).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startSio } from "../lib/sio.mjs";

const BOUND = 2000;
let srv;
before(async () => {
  srv = await startSio(["--recovery", "60000", "--recovery-bytes", String(BOUND)]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const connected = (s) => new Promise((resolve) => s.once("connect", resolve));
// The reconnection's outcome, bounded: connected, or why not (the session closed under it).
const reconnected = (s, ms = 10000) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`no CONNECT within ${ms} ms`)), ms);
  s.io.engine.once("close", (why) => (clearTimeout(t), reject(new Error(`the session closed: ${why}`))));
  s.once("connect", () => (clearTimeout(t), resolve()));
});

for (const transport of ["websocket", "polling"]) {
  test(`${transport}: a recovery whose log went empty after packets not meant for it recovers and stays`, async () => {
    const a = io(srv.url, { transports: [transport], forceNew: true, reconnection: false });
    const b = io(srv.url, { transports: [transport], forceNew: true, reconnection: false });
    await Promise.all([connected(a), connected(b)]);
    const got = [];
    a.on("news", (x) => got.push(x));
    const roomA = `a-${a.id}`, roomB = `b-${b.id}`;
    await a.timeout(5000).emitWithAck("join", roomA);
    await b.timeout(5000).emitWithAck("join", roomB);
    const first = new Promise((r) => a.once("news", r));
    assert.equal(await b.timeout(5000).emitWithAck("to", roomA, "news", "before"), 1);
    await first; // A's offset: this packet
    // A packet for B alone, over the log's bound by itself: the log is empty after it.
    assert.equal(await b.timeout(5000).emitWithAck("to", roomB, "other", "x".repeat(2 * BOUND)), 1);
    const id = a.id;
    const gone = srv.next((e) => e.event === "disconnect" && e.id === id);
    a.io.engine.close(); // lost, not left: it may recover
    await gone;
    let disconnects = 0;
    a.connect(); // with its pid and offset, as the automatic reconnection does
    await reconnected(a);
    a.on("disconnect", () => disconnects++);
    assert.equal(a.recovered, true, "nothing meant for it was missed: recovered");
    assert.equal(a.id, id, "the same socket");
    // It stays: the session is not closed under it, and it hears what comes next, once.
    assert.equal(await a.timeout(5000).emitWithAck("message-with-ack", "sync"), "sync");
    const next = new Promise((r) => a.once("news", r));
    assert.equal(await b.timeout(5000).emitWithAck("to", roomA, "news", "after"), 1);
    await next;
    assert.deepEqual(got, ["before", "after"]);
    assert.equal(disconnects, 0, "not disconnected after its recovery");
    assert.equal(srv.all("connect").filter((e) => e.id === id).length, 2, "one connect, one recovery");
    assert.doesNotMatch(srv.stderr(), /cannot catch up/);
    a.disconnect();
    b.disconnect();
  });
}
