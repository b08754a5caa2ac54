// Issue 14: cuts in the SSE upgrade from long-polling (docs/protocol.md 3.7) never leave a
// request of the client hanging nor end the session: a raw client (ferry's extensions, no
// client library) holds a poll, opens the probe stream, POSTs "2probe", reads "3probe", and a
// cut hits the probe's stream, the held poll or a POST of the probe (its connection dropped
// with its body half sent, as a proxy dropping it does). Checked: the "5" POST (or the next
// request) is answered within BOUND_MS (a client waits its request timeout, 10 s, for an
// answer that never comes), and the session goes on, on polling after a failed probe or on
// SSE after a completed one, with a message echoed once by ferry-test-engine. Before the fix
// a POST of the probe cut under it closed the whole session (its next request: 400 "Session ID
// unknown").
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { startServer, bin } from "../lib/server.mjs";

const BOUND_MS = 1000;
const SEP = "\x1e";

let srv;
before(async () => {
  srv = await startServer(bin("tests/servers/ferry-test-engine"), ["--port", "0", "--transports", "polling,websocket,sse"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-engine exits 0 on SIGTERM (no leak)");
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, ms, what) => {
  let t;
  return Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
};

// A session on polling with a poll held and the SSE probe stream open.
async function setup() {
  const hs = await (await fetch(`${srv.url}/engine.io/?EIO=4&transport=polling&ferry=1`)).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const q = (tr) => `${srv.url}/engine.io/?EIO=4&transport=${tr}&sid=${encodeURIComponent(sid)}`;
  const s = { sid, poll: q("polling"), sse: q("sse"), events: [] };
  s.get = http.get(s.poll, { agent: false }, (res) => {
    let b = "";
    res.on("data", (d) => (b += d));
    res.on("end", () => (s.getAnswer = b));
    res.on("error", () => {});
  });
  s.get.on("error", () => {});
  await sleep(100); // held by now (nothing is queued)
  s.waiters = [];
  s.stream = http.get(s.sse, { headers: { accept: "text/event-stream" }, agent: false }, (res) => {
    assert.equal(res.statusCode, 200, "the probe stream opens");
    let buf = "";
    res.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const data = /^data: (.*)$/m.exec(buf.slice(0, i));
        buf = buf.slice(i + 2);
        if (data) s.events.push(data[1]);
      }
      for (const w of s.waiters) w();
    });
    res.on("error", () => {});
  });
  s.stream.on("error", () => {});
  s.event = (want, ms) => within(new Promise((r) => { const w = () => s.events.includes(want) && r(); s.waiters.push(w); w(); }), ms, `the event ${want}`);
  await sleep(100);
  return s;
}

async function probe(s) {
  const r = await fetch(s.sse, { method: "POST", body: "2probe" });
  assert.equal(r.status, 200, await r.text());
  await s.event("3probe", 5000);
}

// A POST whose connection is dropped with its body half sent.
async function cutPost(url) {
  const u = new URL(url);
  const c = net.connect(srv.port, "127.0.0.1");
  await new Promise((r) => c.on("connect", r));
  c.write(`POST ${u.pathname}${u.search} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n4he`);
  await sleep(100);
  c.destroy();
  await sleep(100);
}

async function timed(url, body) {
  const t0 = Date.now();
  const r = await within(fetch(url, { method: "POST", body }), 10000, `the POST ${body}`);
  return { status: r.status, text: await r.text(), ms: Date.now() - t0 };
}

// The session goes on on polling: a message is echoed on a poll, once.
async function echoOnPolling(s, text) {
  const p = await timed(s.poll, `4${text}`);
  assert.equal(p.status, 200, `a POST on polling is taken (${p.text})`);
  const got = [];
  // A poll still held (no upgrade began) takes the echo.
  if (!s.get.destroyed) {
    await within(new Promise((r) => s.get.on("close", r)), 5000, "the held poll's answer");
    for (const p of (s.getAnswer ?? "").split(SEP)) if (p.startsWith("4")) got.push(p);
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !got.includes(`4${text}`)) {
    const r = await within(fetch(s.poll), 5000, "a poll");
    const body = await r.text();
    assert.equal(r.status, 200, `a poll is answered (${body})`);
    for (const p of body.split(SEP)) if (p.startsWith("4")) got.push(p);
  }
  assert.deepEqual(got, [`4${text}`], "the echo came on polling, once");
}

test("sse probe: its stream cut after 3probe: the 5 POST is answered at once, the session goes on on polling", { timeout: 30000 }, async (t) => {
  const s = await setup();
  await probe(s);
  s.stream.destroy();
  await sleep(100);
  const five = await timed(s.sse, "5");
  t.diagnostic(`5 answered ${five.status} in ${five.ms} ms`);
  assert.equal(five.status, 400, "the 5 of a probe that is gone is refused");
  assert.ok(five.ms < BOUND_MS, `answered in ${five.ms} ms`);
  await echoOnPolling(s, "after-stream-cut");
  s.get.destroy();
});

test("sse probe: the held poll cut after 3probe: the 5 POST is answered at once, the session is on SSE", { timeout: 30000 }, async (t) => {
  const s = await setup();
  await probe(s);
  s.get.destroy();
  await sleep(100);
  const five = await timed(s.sse, "5");
  t.diagnostic(`5 answered ${five.status} in ${five.ms} ms`);
  assert.equal(five.status, 200, five.text);
  assert.ok(five.ms < BOUND_MS, `answered in ${five.ms} ms`);
  const m = await timed(s.sse, "4after-poll-cut");
  assert.equal(m.status, 200, m.text);
  await s.event("4after-poll-cut", 5000);
  assert.equal(s.events.filter((e) => e === "4after-poll-cut").length, 1, "the echo came on the stream, once");
  s.stream.destroy();
});

for (const when of ["before 2probe", "after 3probe"]) {
  test(`sse probe: a POST of the probe cut under it (${when}): the probe fails, the session goes on on polling`, { timeout: 30000 }, async (t) => {
    const s = await setup();
    if (when === "after 3probe") await probe(s);
    await cutPost(s.sse);
    // The probe is gone: its 5 is refused at once (it used to find no session at all).
    const five = await timed(s.sse, "5");
    t.diagnostic(`5 answered ${five.status} in ${five.ms} ms: ${five.text}`);
    assert.ok(five.ms < BOUND_MS, `answered in ${five.ms} ms`);
    assert.doesNotMatch(five.text, /Session ID unknown/, "the session was not closed by the cut POST");
    assert.equal(five.status, 400, "the 5 of a failed probe is refused");
    await echoOnPolling(s, `after-post-cut-${when.replace(/ /g, "-")}`);
    s.get.destroy();
    s.stream.destroy();
  });
}
