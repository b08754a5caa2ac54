// Issue 14: in the chaos run ferry's switching client once lost one message up (and so its echo
// down) within one live Engine.IO session. One ordering that does it, forced here with ferry's
// client on long-polling through a fetch that the test steers: a POST is on its way when the
// held poll is cut; the client drops that transport (aborting the POST on its side) and attaches
// a new polling transport; its client ping is answered (srx without the POST); then the POST of
// the transport it left reaches the server, on the new transport of the same kind, and is taken;
// then the client's resend (the POST's message again, and a new one queued meanwhile) arrives
// with tx= below what the server has taken. The server used to drop that resend whole and lose
// the new message; it now skips the repeated head and takes the rest (docs/protocol.md 5.3).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "../../client-js/src/index.mjs";
import { startSio } from "../lib/sio.mjs";

let srv;
before(async () => {
  srv = await startSio(["--recovery", "10000", "--transports", "polling"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
});

const within = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms))]);

test("ferry's client on polling: a POST of the left transport that arrives after the attach and its ping answer loses nothing", { timeout: 60000 }, async () => {
  const realFetch = globalThis.fetch;
  let armed = false; // the next POST carrying "late-1" is held (it is "on its way")
  let held = null; // that POST, sent for real once the attach's client ping is answered
  let heldSeen, heldDone;
  const heldAt = new Promise((r) => (heldSeen = r));
  const lateTaken = new Promise((r) => (heldDone = r));
  let cutGet = null; // fails the poll in flight, as a proxy cutting it
  const fetch = (url, o = {}) => {
    const u = String(url);
    if (o.method === "POST") {
      if (armed && String(o.body).includes('"late-1"')) {
        armed = false;
        held = { u, o: { ...o, signal: undefined } };
        heldSeen();
        // The client sees it fail only when it aborts it itself.
        return new Promise((_, rej) => o.signal?.addEventListener("abort", () => rej(new Error("aborted"))));
      }
      // The attach's client ping (ferry's "2c<id>:<rx>"): answered first, then the held POST
      // reaches the server, then the client gets the ping's "ok" (its resend waits for it).
      if (held && /(^|\x1e)2c\d+:\d+/.test(String(o.body))) {
        const late = held;
        held = null;
        return realFetch(u, o).then(async (r) => {
          const body = await r.text();
          // srx is set by the time the POST is answered; the pong itself rides the held poll.
          const lr = await realFetch(late.u, late.o);
          heldDone({ status: lr.status, body: await lr.text() });
          return new Response(body, { status: r.status, headers: r.headers });
        });
      }
      return realFetch(u, o);
    }
    const p = realFetch(u, o);
    return new Promise((res, rej) => {
      cutGet = () => rej(new Error("cut"));
      p.then(res, rej);
    });
  };
  const s = io(srv.url, { fetch, storage: null, forceNew: true, transports: ["polling"], reconnectionDelay: 100 });
  const switches = [];
  s.on("transport", (e) => switches.push(`${e.from}->${e.to} ${e.reason}`));
  let connects = 0, disconnects = 0;
  s.on("connect", () => connects++);
  s.on("disconnect", () => disconnects++);
  try {
    await within(new Promise((r) => s.once("connect", r)), 20000, "connect");
    const printed = (x) => srv.next((e) => e.event === "event" && e.id === s.id && e.args[0] === x, 20000);
    for (let i = 0; i < 3; i++) s.emit("message", `early-${i}`);
    await printed("early-2");
    armed = true;
    s.emit("message", "late-1");
    await within(heldAt, 20000, "the late POST goes out");
    cutGet(); // the held poll is cut: the client attaches a new polling transport
    s.emit("message", "late-2"); // queued while the attach waits for its ping's answer
    const late = await within(lateTaken, 20000, "the late POST reaches the server");
    assert.deepEqual(late, { status: 200, body: "ok" }, "the late POST was taken on the new transport");
    await printed("late-2");
    s.emit("message", "after");
    await printed("after");
    const got = srv.all("event").filter((e) => e.id === s.id && e.name === "message").map((e) => e.args[0]);
    assert.deepEqual(got, ["early-0", "early-1", "early-2", "late-1", "late-2", "after"], "every message taken once, in order");
    assert.ok(switches.includes("polling->polling poll-cut"), `the client attached after the cut (${switches.join(", ")})`);
    assert.deepEqual([connects, disconnects], [1, 0], "one session throughout");
  } finally {
    s.disconnect();
  }
});
