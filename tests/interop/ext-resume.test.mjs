// ferry's session-resume extensions on the server (docs/protocol.md sections 5-9): the "ext"
// key, client pings answered in order, attach (rx=) from every transport to every transport
// with messages in flight both ways, gaps and bad rx, malformed client pings, reports reaching
// the app, the replay buffer's byte bound, promotion from sse, and a lost WebSocket that the
// session survives. Official clients: the open packet's keys are checked here; the official
// interop suites cover the rest.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEngine } from "../lib/events.mjs";
import { ResumeClient } from "../lib/ferry-resume-client.mjs";

const ALL = ["polling", "short-polling", "sse", "websocket"];
const QUEUE_BYTES = 20000;

let eng; // every transport, slow heartbeats
let small; // a small bound on what a session pins
before(async () => {
  const common = ["--transports", ALL.join(","), "--ping-interval", "20000", "--ping-timeout", "20000", "--short-poll-interval", "30"];
  eng = await startEngine(common);
  small = await startEngine([...common, "--queue-bytes", String(QUEUE_BYTES)]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
  assert.equal(await small.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const base = (srv) => `${srv.url}${srv.path}`;

async function open(srv, transport) {
  const c = new ResumeClient(base(srv), transport);
  const hs = await c.open();
  await srv.next((e) => e.event === "open" && e.sid === hs.sid);
  return c;
}

// Resolve once pred(messages so far) holds; reject after ms with what came.
function until(c, pred, ms = 15000) {
  const got = [];
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`waited ${ms} ms; got ${got.length}: ${JSON.stringify(got.slice(-8))}`)), ms);
    const on = (m) => {
      got.push(typeof m === "string" ? m : `bin:${m.toString("hex")}`);
      if (pred(got)) {
        clearTimeout(t);
        c.off("message", on);
        resolve(got);
      }
    };
    c.on("message", on);
  });
}

async function stats(srv) {
  return (await fetch(`${srv.url}/__stats`)).json();
}

async function rawGet(srv, query) {
  const res = await fetch(`${srv.url}${srv.path}?${new URLSearchParams({ EIO: "4", ...query })}`);
  return { status: res.status, body: await res.text() };
}

test("an extension session's open packet lists the extensions; an official one has the spec's five keys", async () => {
  for (const t of ["polling", "websocket"]) {
    const c = await open(eng, t);
    assert.deepEqual(c.handshake.ext, ["resume", "ping", "report", "tabs"], t);
    assert.equal(typeof c.handshake.shortPollInterval, "number");
    c.close();
    await eng.closeOf(c.sid);
  }
  const r = await rawGet(eng, { transport: "polling" });
  assert.equal(r.status, 200);
  assert.match(r.body, /^0\{"sid":"[\w-]{22}","upgrades":\["websocket"\],"pingInterval":20000,"pingTimeout":20000,"maxPayload":1000000\}$/);
  const sse = await open(eng, "sse");
  assert.deepEqual(sse.handshake.upgrades, ["websocket"], "an sse session may be promoted to websocket");
  sse.close();
  await eng.closeOf(sse.sid);
});

test("client pings are answered in order with the session's packets, on every transport", async () => {
  for (const t of ALL) {
    const c = await open(eng, t);
    const order = [];
    c.on("message", (m) => order.push(m));
    c.on("pong", (id, srx) => order.push(`pong ${id}:${srx}`));
    c.send("cmd:burst 5");
    const srx = await c.ping();
    assert.equal(srx, 1, `${t}: the server took one message`);
    assert.deepEqual(order, ["burst 0", "burst 1", "burst 2", "burst 3", "burst 4", "pong 1:1"], `${t}: the answer comes after what was queued before it`);
    c.close();
    await eng.closeOf(c.sid);
  }
});

// Messages both ways across an attach from `from` to `to`: numbered "up k" from the client
// (echoed by the server) and bursts from the server, some of them in flight on the old
// transport when the client leaves it. None lost, duplicated or reordered either way.
async function attachMidFlow(from, to, hard) {
  const c = await open(eng, from);
  const N = 20;
  let k = 0;
  const sendUp = (n) => {
    for (let i = 0; i < n; i++) c.send(`up ${++k}`);
  };
  const wantUp = Array.from({ length: 2 * N }, (_, i) => `up ${i + 1}`);
  const wantBurst = Array.from({ length: 30 }, (_, i) => `burst ${i}`);
  const done = until(c, (got) => got.filter((m) => m.startsWith("up ")).length >= 2 * N && got.filter((m) => m.startsWith("burst ")).length >= 30);
  // First half, and wait until some of it came back, so that the flow is under way.
  const some = until(c, (got) => got.length >= 3);
  sendUp(N);
  c.send("cmd:burst 30");
  await some;
  const r = await c.attach(to, { hard });
  assert.ok(r.status === 200 || r.status === 101, `${from} -> ${to}: attach answered ${r.status}`);
  sendUp(N);
  const got = await done;
  assert.deepEqual(got.filter((m) => m.startsWith("up ")), wantUp, `${from} -> ${to}: echoes once each, in order`);
  assert.deepEqual(got.filter((m) => m.startsWith("burst ")), wantBurst, `${from} -> ${to}: server messages once each, in order`);
  // What the server took: every client message once, in order (its event lines may trail
  // the echoes on the wire).
  await eng.next((e) => e.event === "message" && e.sid === c.sid && e.text === `up ${2 * N}`, 10000);
  const seen = eng.events.events.filter((e) => e.event === "message" && e.sid === c.sid && /^up /.test(e.text)).map((e) => e.text);
  assert.deepEqual(seen, wantUp, `${from} -> ${to}: the server took each client message once, in order`);
  c.close();
  const closed = await eng.closeOf(c.sid);
  assert.equal(closed.reason, "transport close", `${from} -> ${to}: the session lived until the client closed it`);
}

for (const from of ALL)
  for (const to of ALL)
    test(`attach ${from} -> ${to} mid-flow: nothing lost, duplicated or reordered`, async () => {
      await attachMidFlow(from, to, false);
    });

test("a WebSocket whose connection died: the session waits, and an attach on polling resumes it", async () => {
  await attachMidFlow("websocket", "polling", true);
  await attachMidFlow("sse", "websocket", true);
  await attachMidFlow("polling", "sse", true);
});

test("attach with a gap, or rx beyond what was sent: 400 and the session closes", async () => {
  // Gap: more than the bound was sent and never acknowledged, so the oldest left.
  const c = await open(small, "polling");
  for (let round = 0; round < 4; round++) {
    // 10 KB at a time: the queue alone stays under the bound (over it is a slow consumer).
    const big = until(c, (got) => got.length >= 10);
    for (let i = 0; i < 10; i++) c.send("cmd:big 1000");
    await big;
  }
  const st = await stats(small);
  assert.ok(st.replayDropped > 0, "the replay buffer dropped its oldest");
  assert.ok(st.pinnedBytes <= QUEUE_BYTES, `a session pins at most --queue-bytes (${st.pinnedBytes})`);
  const r = await rawGet(small, { transport: "polling", sid: c.sid, rx: "0" });
  assert.equal(r.status, 400);
  assert.equal(r.body, JSON.stringify({ code: 3, message: "Bad request" }));
  assert.equal((await small.closeOf(c.sid)).reason, "transport error");
  c.leg.stop(true);

  // Within the bound: an attach a few messages back replays exactly those.
  const d = await open(small, "polling");
  const got = until(d, (g) => g.length >= 40);
  for (let i = 0; i < 40; i++) d.send(`m${i}`);
  await got;
  const again = until(d, (g) => g.length >= 5);
  d.rx -= 5; // pretend the last five never arrived
  const a = await d.attach("sse");
  assert.equal(a.status, 200);
  assert.deepEqual(await again, ["m35", "m36", "m37", "m38", "m39"]);
  d.close();
  await small.closeOf(d.sid);

  // rx beyond what was sent.
  for (const t of ["polling", "sse"]) {
    const e = await open(eng, "websocket");
    const one = until(e, (g) => g.length >= 1);
    e.send("hello");
    await one;
    const q = { transport: t, sid: e.sid, rx: "2" };
    const res = t === "sse"
      ? await fetch(`${eng.url}${eng.path}?${new URLSearchParams({ EIO: "4", ...q })}`, { headers: { Accept: "text/event-stream" } })
      : await fetch(`${eng.url}${eng.path}?${new URLSearchParams({ EIO: "4", ...q })}`);
    assert.equal(res.status, 400, `rx beyond on ${t}`);
    assert.equal((await eng.closeOf(e.sid)).reason, "transport error");
    e.leg.stop(true);
  }

  // An unknown sid is unknown as usual; garbage rx is a bad request that closes the session.
  const u = await rawGet(eng, { transport: "polling", sid: "AAAAAAAAAAAAAAAAAAAAAA", rx: "0" });
  assert.equal(u.status, 400);
  assert.equal(u.body, JSON.stringify({ code: 1, message: "Session ID unknown" }));
  const g = await open(eng, "websocket");
  const gr = await rawGet(eng, { transport: "polling", sid: g.sid, rx: "-1" });
  assert.equal(gr.status, 400);
  assert.equal((await eng.closeOf(g.sid)).reason, "transport error");
  g.leg.stop(true);
});

test("a malformed client ping closes the session with parse error", async () => {
  for (const bad of ["c", "c1", "c:1", "cx:1", "c12345678901:0", "c1:", "c1:x", "c1:1", "c1:-1"]) {
    const c = await open(eng, "polling");
    c.leg.send("2" + bad);
    assert.equal((await eng.closeOf(c.sid)).reason, "parse error", `2${bad}`);
    c.leg.stop(true);
  }
});

test("an official-style ping from the client still closes the session (no extension asked)", async () => {
  const r = await rawGet(eng, { transport: "polling" });
  const sid = JSON.parse(r.body.slice(1)).sid;
  await eng.next((e) => e.event === "open" && e.sid === sid);
  const p = await fetch(`${eng.url}${eng.path}?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "2c1:0" });
  assert.equal(p.status, 200);
  assert.equal((await eng.closeOf(sid)).reason, "transport error", "v4: only the server pings");
});

test("reports reach the app; malformed ones and those over 30 a minute are ignored", async () => {
  const c = await open(eng, "polling");
  const before = await stats(eng);
  c.report({ from: "", to: "polling", reason: "remembered" });
  c.report({ from: "polling", to: "websocket", reason: "promoted", ms: 830 });
  const r1 = await eng.next((e) => e.event === "report" && e.sid === c.sid);
  assert.deepEqual([r1.from, r1.to, r1.reason, r1.ms], ["", "polling", "remembered", -1]);
  const r2 = await eng.next((e) => e.event === "report" && e.sid === c.sid);
  assert.deepEqual([r2.from, r2.to, r2.reason, r2.ms], ["polling", "websocket", "promoted", 830]);
  const bad = [
    "not json",
    "[]",
    { from: "polling", to: "carrier-pigeon", reason: "promoted" },
    { from: "polling", to: "websocket", reason: "Promoted" },
    { from: "polling", to: "websocket", reason: "x".repeat(33) },
    { from: "polling", to: "websocket", reason: "" },
    { from: "polling", to: "websocket" },
    { from: "polling", to: "websocket", reason: "promoted", ms: 1.5 },
    { from: "polling", to: "websocket", reason: "promoted", ms: "12" },
    { from: 1, to: "websocket", reason: "promoted" },
    { from: "polling", to: "websocket", reason: "promoted", pad: "y".repeat(600) },
  ];
  for (const b of bad) c.report(b);
  // Up to 30 a minute: 2 + 11 taken so far; 20 more, of which 17 pass.
  for (let i = 0; i < 20; i++) c.report({ from: "sse", to: "polling", reason: "sse-buffered", ms: i });
  await c.ping(); // everything before it was handled
  const after = await stats(eng);
  const reports = eng.events.events.filter((e) => e.event === "report" && e.sid === c.sid);
  assert.equal(reports.length, 2 + 17, "only well-formed reports within the rate reach the app");
  assert.deepEqual(reports.slice(2).map((r) => r.ms), Array.from({ length: 17 }, (_, i) => i));
  assert.equal(after.reports - before.reports, 19);
  assert.equal(after.reportsIgnored - before.reportsIgnored, 11 + 3);
  c.close();
  await eng.closeOf(c.sid);
});

test("promotion by probe from sse to websocket on an extension session", async () => {
  const c = await open(eng, "sse");
  const echo = until(c, (g) => g.includes("after"));
  // The probe: a WebSocket with the sid, 2probe, 3probe, then 5.
  const { default: WebSocket } = await import("ws");
  const ws = new WebSocket(c.url("websocket").replace(/^http/, "ws"));
  const probe = new Promise((resolve, reject) => {
    ws.on("message", (d) => (String(d) === "3probe" ? resolve() : null));
    ws.on("error", reject);
  });
  await new Promise((resolve) => ws.on("open", resolve));
  ws.send("2probe");
  await probe;
  c.leg.stop(true);
  ws.send("5");
  ws.on("message", (d) => {
    const s = String(d);
    if (s[0] === "4") c.emit("message", s.slice(1));
    if (s[0] === "2") ws.send("3");
  });
  ws.send("4after");
  await echo;
  ws.send("1");
  assert.equal((await eng.closeOf(c.sid)).reason, "transport close");
  ws.terminate();
});
