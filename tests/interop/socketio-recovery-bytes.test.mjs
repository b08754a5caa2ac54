// The connection-state recovery log is bounded in bytes (recovery_max_bytes) as well as in
// count (issue 9, defect 3): 10,000 packets at max_payload would pin gigabytes. With a small
// byte bound, a client that missed more bytes than the bound holds cannot resume from its
// offset (it was dropped, oldest first) and connects as a new socket, as with the reference
// server; a client that missed less is recovered with every packet, in order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startSio } from "../lib/sio.mjs";

const BOUND = 4000;
let srv;
before(async () => {
  srv = await startSio(["--recovery", "10000", "--recovery-bytes", String(BOUND)]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const connected = (s) => new Promise((resolve) => s.once("connect", resolve));

async function dropAndMiss(missed) {
  // The test reconnects A itself once everything was missed: an automatic reconnection could
  // come back in the middle of the loop below, before the bound dropped the offset.
  const a = io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  const b = io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  await Promise.all([connected(a), connected(b)]);
  const room = `r-${a.id}`;
  const got = [];
  a.on("news", (...args) => got.push(args[0]));
  await a.timeout(5000).emitWithAck("join", room);
  const first = new Promise((r) => a.once("news", r));
  assert.equal(await b.timeout(5000).emitWithAck("to", room, "news", "before"), 1);
  await first;
  const id = a.id;
  const gone = srv.next((e) => e.event === "disconnect" && e.id === id);
  a.io.engine.close();
  await gone;
  for (const m of missed) await b.timeout(5000).emitWithAck("to", room, "news", m);
  const back = connected(a);
  a.connect(); // with its pid and offset, as the automatic reconnection does
  await back;
  await a.timeout(5000).emitWithAck("message-with-ack", "sync");
  const result = { recovered: a.recovered, sameId: a.id === id, got: got.slice(1) };
  a.disconnect();
  b.disconnect();
  return result;
}

test("missed packets within the byte bound are replayed", async () => {
  const r = await dropAndMiss(["small-1", "small-2"]);
  assert.equal(r.recovered, true);
  assert.equal(r.sameId, true);
  assert.deepEqual(r.got, ["small-1", "small-2"]);
});

test("more missed bytes than the bound: the offset is gone, a new socket connects", async () => {
  // Each packet alone is under the bound; together they are three times over it, so the
  // oldest logged packets (the client's offset among them) are dropped.
  const big = Array.from({ length: 12 }, (_, i) => `big-${i}-` + "x".repeat(BOUND / 4));
  const r = await dropAndMiss(big);
  assert.equal(r.recovered, false);
  assert.equal(r.sameId, false);
  assert.deepEqual(r.got, [], "nothing replayed to a new socket");
});
