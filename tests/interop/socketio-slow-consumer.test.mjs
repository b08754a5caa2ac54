// A broadcast that overflows slow consumers' send queues: those sessions are closed (reason
// "transport error" for the app), the others in the room still get every packet exactly once,
// and the room keeps working.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startSio, offersWebSocket, WS_ABSENT } from "../lib/sio.mjs";

let srv;
before(async () => {
  srv = await startSio(["--queue-bytes", "4000"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

// A raw polling client that joins a room and then never polls again.
async function slowClient(room) {
  const base = `${srv.url}/socket.io/?EIO=4&transport=polling`;
  const sid = JSON.parse((await (await fetch(base)).text()).slice(1)).sid;
  const url = `${base}&sid=${sid}`;
  await fetch(url, { method: "POST", body: "40" });
  const conn = await srv.next((e) => e.event === "connect" && e.sid === sid);
  await fetch(url); // the CONNECT reply and "auth": the queue is empty again
  await fetch(url, { method: "POST", body: `42["join","${room}"]` });
  await srv.next((e) => e.event === "event" && e.id === conn.id && e.name === "join");
  return conn.id;
}

test("slow consumers are closed during a broadcast; the others receive it once", async (t) => {
  if (!(await offersWebSocket(srv.url))) return t.skip(WS_ABSENT);
  const slow = [];
  for (let i = 0; i < 3; i++) slow.push(await slowClient("big"));
  // The fast ones are on WebSocket: their queue is written out every loop turn.
  const fast = [0, 1].map(() => io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false }));
  await Promise.all(fast.map((s) => new Promise((r) => s.once("auth", r))));
  const got = [[], []];
  fast.forEach((s, i) => s.on("big", (x) => got[i].push(x.length)));
  await Promise.all(fast.map((s) => s.timeout(3000).emitWithAck("join", "big")));
  // Three packets of 1500 bytes: the third overflows the 4000-byte queues nobody reads.
  const payload = "x".repeat(1500);
  for (let i = 0; i < 3; i++) {
    const n = await fast[0].timeout(3000).emitWithAck("to", "big", "big", payload);
    assert.equal(n, 5, "queued for all five (the third time, three queues overflow)");
  }
  for (const id of slow) {
    const d = await srv.disconnectOf(id);
    assert.equal(d.reason, "transport error");
  }
  await Promise.all(fast.map((s) => s.timeout(3000).emitWithAck("message-with-ack", "sync")));
  assert.deepEqual(got, [[1500, 1500, 1500], [1500, 1500, 1500]]);
  // The room still works without the closed sessions.
  assert.equal(await fast[1].timeout(3000).emitWithAck("to", "big", "big", "y"), 2);
  for (const s of fast) s.disconnect();
});
