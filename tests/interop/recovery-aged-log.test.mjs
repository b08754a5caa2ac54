// Connection-state recovery when the namespace's log has aged out (issue 14, found by the long
// make chaos run: a Chromium client that had its 10,000 and then sat in a quiet room tried to
// recover 1476 times, each new session closed at once with "cannot catch up from the recovery
// log (limit reached)"). A socket lost while it had everything meant for it, in a namespace
// where nothing was logged since, needs nothing from the log: it is recovered, and its session
// stays open, even when every logged packet is older than the window and the log is empty.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startSio, MODES } from "../lib/sio.mjs";

const WINDOW = 1500;
let srv;
before(async () => {
  srv = await startSio(["--recovery", String(WINDOW)]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const connected = (socket) => new Promise((resolve) => socket.once("connect", resolve));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const mode of ["polling", "websocket"]) {
  test(`${mode}: recovered after the log aged out, and the session stays open`, { timeout: 30000 }, async () => {
    const a = io(srv.url, { ...MODES[mode], forceNew: true, reconnection: false });
    const b = io(srv.url, { ...MODES[mode], forceNew: true, reconnection: false });
    await Promise.all([connected(a), connected(b)]);
    const id = a.id;
    // The log gets packets meant for B only (its echoes), so A's offset is behind the log's end.
    const echoes = [];
    b.on("message-back", (x) => echoes.push(x));
    for (let i = 0; i < 3; i++) b.emit("message", `b-${i}`);
    while (echoes.length < 3) await sleep(20);
    // Every logged packet older than the window: the loss below prunes them all.
    await sleep(WINDOW + 300);
    const gone = srv.next((e) => e.event === "disconnect" && e.id === id);
    a.io.engine.close(); // a dropped connection, not a disconnect on purpose
    assert.equal((await gone).reason, "transport close");
    // Connected, or refused / cut at once (the bug: the session closed under the recovery).
    const back = new Promise((resolve) => {
      a.once("connect", () => resolve("connect"));
      a.once("connect_error", (e) => resolve(`connect_error: ${e.message}`));
      a.once("disconnect", (r) => resolve(`disconnect: ${r}`));
      setTimeout(() => resolve("nothing within 10 s"), 10000);
    });
    a.connect(); // with its pid (and no offset: it received no event), as a reconnection does
    assert.equal(await back, "connect");
    assert.equal(a.recovered, true, "socket.recovered");
    assert.equal(a.id, id, "same socket id");
    // The session it was recovered on is not closed under it: an ack comes back on it.
    let lost = null;
    a.once("disconnect", (reason) => (lost = reason));
    assert.equal(await a.timeout(5000).emitWithAck("message-with-ack", "still-here"), "still-here");
    await sleep(500);
    assert.equal(lost, null, "the recovered socket stayed connected");
    a.disconnect();
    b.disconnect();
  });
}
