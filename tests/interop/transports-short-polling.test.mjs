// Short-polling on the wire (docs/protocol.md "transport=short-polling"): the handshake
// announces the interval, a GET is answered at once with what is queued or a noop, upstream is
// POST as in polling, and the rules of one GET/POST at a time and of unknown sids hold.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEngine } from "../lib/events.mjs";

const INTERVAL = 700;
let eng;
before(async () => {
  eng = await startEngine(["--transports", "polling,websocket,sse,short-polling", "--short-poll-interval", String(INTERVAL)]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const url = (q) => `${eng.url}${eng.path}?${new URLSearchParams({ EIO: "4", transport: "short-polling", ...q })}`;

async function handshake() {
  const res = await fetch(url({}));
  assert.equal(res.status, 200);
  const body = await res.text();
  assert.equal(body[0], "0");
  return JSON.parse(body.slice(1));
}

test("the handshake announces the interval and the upgrades", async () => {
  const hs = await handshake();
  assert.equal(hs.shortPollInterval, INTERVAL);
  assert.deepEqual(hs.upgrades, ["websocket", "sse"]);
  assert.equal((await eng.next((e) => e.event === "open" && e.sid === hs.sid)).transport, "short-polling");
  await fetch(url({ sid: hs.sid }), { method: "POST", body: "1" });
  await eng.closeOf(hs.sid);
});

test("a GET with nothing queued is answered at once with a noop", async () => {
  const hs = await handshake();
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const res = await fetch(url({ sid: hs.sid }));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "6");
    // A held GET would wait for the next ping (25 s by default): 3 s tells the two apart even
    // on a loaded machine, where a plain round trip has taken over 200 ms.
    assert.ok(Date.now() - t0 < 3000, "not held");
  }
  await fetch(url({ sid: hs.sid }), { method: "POST", body: "1" });
  await eng.closeOf(hs.sid);
});

test("a GET returns everything queued; upstream by POST", async () => {
  const hs = await handshake();
  const post = await fetch(url({ sid: hs.sid }), { method: "POST", body: "4one\x1e4two\x1ebAQID" });
  assert.equal(post.status, 200);
  assert.equal(await post.text(), "ok");
  // The echoes are queued once the server has seen the three messages.
  for (let i = 0; i < 3; i++) await eng.messageOf(hs.sid);
  const res = await fetch(url({ sid: hs.sid }));
  assert.equal(await res.text(), "4one\x1e4two\x1ebAQID");
  await fetch(url({ sid: hs.sid }), { method: "POST", body: "1" });
  assert.equal((await eng.closeOf(hs.sid)).reason, "transport close");
});

test("bad input: an undecodable POST closes the session; the sid is then unknown", async () => {
  const hs = await handshake();
  const post = await fetch(url({ sid: hs.sid }), { method: "POST", body: "abc" });
  assert.equal(post.status, 400);
  assert.deepEqual(await post.json(), { code: 3, message: "Bad request" });
  assert.equal((await eng.closeOf(hs.sid)).reason, "parse error");
  const res = await fetch(url({ sid: hs.sid }));
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 1, message: "Session ID unknown" });
});

test("bad input: a session on short-polling refuses long-polling requests", async () => {
  const hs = await handshake();
  const res = await fetch(`${eng.url}${eng.path}?EIO=4&transport=polling&sid=${hs.sid}`);
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 3, message: "Bad request" });
  await fetch(url({ sid: hs.sid }), { method: "POST", body: "1" });
  await eng.closeOf(hs.sid);
});
