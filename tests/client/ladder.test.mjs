// The transport ladder of client-js's engine against an in-memory server with switchable faults
// (fake-server.mjs), under mock timers: every promotion and demotion with its reason code, the
// attach that keeps the session, and messages numbered both ways across every switch with none
// lost, duplicated or reordered.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../client-js/src/engine.mjs";
import { FakeServer } from "./fake-server.mjs";

// Each test on its own origin: cut polls are counted per page and origin.
let origin;
let n = 0;
beforeEach(() => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1e12 });
  origin = `http://ferry${++n}.test/`;
});
afterEach(() => mock.timers.reset());

const settle = () => new Promise((r) => setImmediate(r));
// Advance the fake clock by ms, letting promises run between steps.
async function run(ms, step = 25) {
  await settle();
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(step);
    await settle();
    await settle();
  }
}
async function until(cond, ms = 30000, what = "condition") {
  for (let t = 0; t < ms && !cond(); t += 25) await run(25);
  assert.ok(cond(), `${what} within ${ms} ms (fake time)`);
}

function memStore() {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k), m };
}

function client(srv, o = {}) {
  const e = new Engine(origin, { fetch: srv.fetch, WebSocket: srv.WebSocket, storage: null, ...o });
  const c = { e, switches: [], got: [], closed: null };
  e.on("transport", (ev) => c.switches.push(`${ev.from || "-"}>${ev.to}:${ev.reason}`));
  e.on("message", (m) => c.got.push(m));
  e.on("close", (r) => (c.closed = r));
  return c;
}

// n messages each way, numbered; the server echoes the client's ("echo:c<i>") and sends its own
// ("s<i>"); every one must arrive once and in order.
function exchange(srv, c, from, n) {
  for (let i = from; i < from + n; i++) {
    c.e.send("c" + i);
    srv.send(srv.last, "s" + i);
  }
}
function checkOrder(c, srv, n) {
  const mine = c.got.filter((m) => m.startsWith("s"));
  const echoes = c.got.filter((m) => m.startsWith("echo:"));
  const want = (p) => Array.from({ length: n }, (_, i) => p + i);
  assert.deepEqual(mine, want("s"), "server messages: none lost, duplicated or reordered");
  assert.deepEqual(echoes, want("echo:c"), "echoes of client messages: none lost, duplicated or reordered");
  assert.deepEqual(srv.last.got, want("c"), "the server took every client message once, in order");
}

test("starts on long-polling at once and promotes to websocket (reasons start, promoted; reported)", async () => {
  const srv = new FakeServer();
  const c = client(srv);
  await until(() => c.e.transport.name === "websocket", 5000, "websocket");
  assert.deepEqual(c.switches, ["->polling:start", "polling>websocket:promoted"]);
  exchange(srv, c, 0, 5);
  await run(200);
  checkOrder(c, srv, 5);
  await run(3000);
  assert.deepEqual(srv.reports.map((r) => r.reason), ["start", "promoted"], "decisions reported with the report extension");
  c.e.close();
  srv.close();
});

test("WebSocket refused: probed, refused, SSE promoted instead (ws-refused, promoted)", async () => {
  const srv = new FakeServer();
  srv.f.wsRefuse = true;
  const c = client(srv);
  const probes = [];
  c.e.on("probe", (p) => probes.push(p.reason));
  await until(() => c.e.transport.name === "sse", 5000, "sse");
  assert.deepEqual(probes, ["ws-refused"]);
  assert.deepEqual(c.switches, ["->polling:start", "polling>sse:promoted"]);
  exchange(srv, c, 0, 5);
  await run(200);
  checkOrder(c, srv, 5);
  c.e.close();
  srv.close();
});

// The mute WebSocket's close never reaches the server, which holds the probe and refuses the SSE
// probe meanwhile (ferry: until its 10 s upgrade timeout; then the WebSocket, probed first, held
// it again: the session stayed on polling). An attach to polling abandons the server's probe.
test("WebSocket accepted but mute at the probe: ws-mute after the probe timeout, an attach to polling drops the server's probe, then SSE", async () => {
  const srv = new FakeServer();
  srv.f.wsMute = true;
  const c = client(srv);
  const probes = [];
  c.e.on("probe", (p) => probes.push(p.reason));
  await until(() => c.e.readyState === "open", 5000, "open");
  exchange(srv, c, 0, 3);
  const t0 = Date.now();
  await until(() => c.e.transport.name === "sse", 10000, "sse");
  assert.ok(Date.now() - t0 < 4000, `on SSE ${Date.now() - t0} ms after the start (the probe timeout is 3 s)`);
  assert.deepEqual(probes, ["ws-mute"], "SSE not refused");
  assert.deepEqual(c.switches, ["->polling:start", "polling>polling:ws-mute", "polling>sse:promoted"]);
  assert.deepEqual(srv.last.attaches, [{ kind: "polling", rx: srv.last.attaches[0].rx }]);
  exchange(srv, c, 3, 3);
  await run(500);
  checkOrder(c, srv, 6);
  c.e.close();
  srv.close();
});

test("SSE buffered and WebSocket refused: stays on long-polling (sse-buffered) and works", async () => {
  const srv = new FakeServer();
  srv.f.wsRefuse = srv.f.sseBuffer = true;
  const c = client(srv);
  const probes = [];
  c.e.on("probe", (p) => probes.push(p.reason));
  await until(() => probes.length === 2, 10000, "two failed probes");
  assert.deepEqual(probes, ["ws-refused", "sse-buffered"]);
  assert.equal(c.e.transport.name, "polling");
  exchange(srv, c, 0, 5);
  await run(300);
  checkOrder(c, srv, 5);
  c.e.close();
  srv.close();
});

test("a WebSocket that goes mute mid-session is left within 10 s by attach, session and messages kept", async () => {
  const srv = new FakeServer();
  const c = client(srv);
  await until(() => c.e.transport.name === "websocket", 5000, "websocket");
  const sid = c.e.sid;
  exchange(srv, c, 0, 5);
  await run(100);
  srv.f.wsMute = true;
  const t0 = Date.now();
  exchange(srv, c, 5, 5); // sent into the mute WebSocket: lost there, resent after the attach
  await until(() => c.e.transport.name !== "websocket", 10000, "demotion");
  assert.ok(Date.now() - t0 <= 10000, `left in ${Date.now() - t0} ms`);
  assert.equal(c.e.transport.name, "polling");
  assert.equal(c.e.sid, sid, "same Engine.IO session");
  assert.equal(c.closed, null, "the session did not close");
  assert.ok(c.switches.includes("websocket>polling:ws-mute"), c.switches.join(" "));
  exchange(srv, c, 10, 5);
  await run(500);
  checkOrder(c, srv, 15);
  c.e.close();
  srv.close();
});

test("after a demotion, better transports are re-probed with backoff and the session climbs back", async () => {
  const srv = new FakeServer();
  const c = client(srv, { reprobe: 2000 });
  await until(() => c.e.transport.name === "websocket", 5000, "websocket");
  srv.f.wsMute = true;
  await until(() => c.e.transport.name === "polling", 10000, "demotion");
  // Still mute: the re-probe of websocket fails, SSE passes.
  await until(() => c.e.transport.name === "sse", 15000, "sse");
  srv.f.wsMute = false; // the network heals
  await until(() => c.e.transport.name === "websocket", 60000, "websocket again");
  const sid = c.e.sid;
  exchange(srv, c, 0, 5);
  await run(300);
  checkOrder(c, srv, 5);
  assert.equal(srv.last.sid, sid);
  assert.deepEqual(c.switches.slice(-2), ["polling>sse:promoted", "sse>websocket:promoted"]);
  c.e.close();
  srv.close();
});

test("a mute SSE stream is demoted to polling (sse-mute), messages kept", async () => {
  const srv = new FakeServer();
  srv.f.wsRefuse = true;
  const c = client(srv);
  await until(() => c.e.transport.name === "sse", 5000, "sse");
  exchange(srv, c, 0, 3);
  await run(100);
  srv.f.sseBuffer = true; // from now on the stream delivers nothing
  exchange(srv, c, 3, 3);
  await until(() => c.e.transport.name === "polling", 10000, "demotion");
  assert.ok(c.switches.includes("sse>polling:sse-mute"), c.switches.join(" "));
  srv.f.sseBuffer = false;
  await run(500);
  checkOrder(c, srv, 6);
  c.e.close();
  srv.close();
});

test("held polls cut again and again: steps down to short-polling (poll-cut) and works there", async () => {
  const srv = new FakeServer();
  srv.f.wsRefuse = srv.f.sseRefuse = true;
  srv.f.pollCutMs = 300;
  const c = client(srv);
  await until(() => c.e.transport.name === "short-polling", 10000, "short-polling");
  assert.ok(c.switches.includes("polling>short-polling:poll-cut"), c.switches.join(" "));
  assert.equal(c.closed, null);
  exchange(srv, c, 0, 5);
  await run(3000);
  checkOrder(c, srv, 5);
  c.e.close();
  srv.close();
});

test("the winner is remembered per origin and used first on the next start (remembered)", async () => {
  const srv = new FakeServer();
  const storage = memStore();
  const a = client(srv, { storage });
  await until(() => a.e.transport.name === "websocket", 5000, "websocket");
  a.e.close();
  const saved = JSON.parse([...storage.m.values()][0]);
  assert.equal(saved.t, "websocket");
  assert.ok(saved.exp - Date.now() > 23 * 3600e3 && saved.exp - Date.now() <= 24 * 3600e3, "expires in 24 h");
  const b = client(srv, { storage });
  await until(() => b.e.readyState === "open", 3000, "open");
  assert.deepEqual(b.switches, ["->websocket:remembered"]);
  assert.deepEqual(srv.requests.filter((r) => r.startsWith("GET")).length, srv.requests.filter((r) => r.startsWith("GET")).length);
  b.e.close();
  // Expired: ignored.
  mock.timers.tick(25 * 3600e3);
  const d = client(srv, { storage });
  await until(() => d.e.readyState === "open", 3000, "open");
  assert.equal(d.switches[0], "->polling:start");
  d.e.close();
  srv.close();
});

test("a remembered transport that does not open falls back to polling within 3 s", async () => {
  const srv = new FakeServer();
  const storage = memStore();
  storage.setItem(`ferry:transport:${origin}engine.io/`, JSON.stringify({ t: "websocket", why: "remembered", exp: Date.now() + 1e6 }));
  srv.f.wsMute = true;
  const c = client(srv, { storage });
  const t0 = Date.now();
  await until(() => c.e.readyState === "open", 5000, "open");
  assert.ok(Date.now() - t0 <= 3100, `opened after ${Date.now() - t0} ms`);
  assert.equal(c.e.transport.name, "polling");
  assert.deepEqual(c.switches[0], "->polling:ws-mute");
  assert.equal(storage.m.size, 0, "the bad memory is forgotten");
  c.e.close();
  srv.close();
});

test("without the extension (a plain Engine.IO server): websocket only, no pings, no reports", async () => {
  const srv = new FakeServer({ ext: false });
  const c = client(srv);
  await until(() => c.e.transport.name === "websocket", 5000, "websocket");
  await run(5000);
  assert.deepEqual(srv.reports, []);
  assert.deepEqual(srv.requests.filter((r) => r.includes("sse")), [], "sse never tried");
  exchange(srv, c, 0, 3);
  await run(100);
  checkOrder(c, srv, 3);
  c.e.close();
  srv.close();
});

test("forced transports: each one alone opens on it (forced)", async () => {
  for (const t of ["polling", "short-polling", "sse", "websocket"]) {
    const srv = new FakeServer();
    const c = client(srv, { transports: [t] });
    await until(() => c.e.readyState === "open", 5000, t);
    await run(3000);
    assert.deepEqual(c.switches, [`->${t}:forced`]);
    exchange(srv, c, 0, 3);
    await run(2500);
    checkOrder(c, srv, 3);
    c.e.close();
    srv.close();
  }
});

test("forced transports: a mute WebSocket or SSE stream is attached again on the same transport, never on one the app did not allow; messages kept", async () => {
  for (const [t, mute, why] of [["websocket", "wsMute", "ws-mute"], ["sse", "sseBuffer", "sse-mute"]]) {
    const srv = new FakeServer();
    const c = client(srv, { transports: [t] });
    await until(() => c.e.readyState === "open", 5000, t);
    const sid = c.e.sid;
    exchange(srv, c, 0, 3);
    await run(100);
    srv.f[mute] = true;
    // (the fake mute also swallows what an attach flushes while it lasts, so nothing is sent
    // while mute here, and a second attach may follow; messages across a mute attach: the
    // mid-session tests above)
    await until(() => c.switches.length > 1, 10000, `${t} left`);
    srv.f[mute] = false;
    exchange(srv, c, 3, 3);
    await until(() => c.got.length === 12, 15000, "every message after the attach (3 + 3 echoes)");
    assert.equal(c.switches[1], `${t}>${t}:${why}`);
    assert.deepEqual(c.switches.filter((x) => !x.endsWith(`>${t}:${why}`)), [`->${t}:forced`]);
    assert.equal(c.e.transport.name, t);
    assert.equal(c.e.sid, sid, "same Engine.IO session");
    checkOrder(c, srv, 6);
    c.e.close();
    srv.close();
  }
});

test("binary messages both ways on every transport", async () => {
  for (const t of ["polling", "short-polling", "sse", "websocket"]) {
    const srv = new FakeServer();
    const c = client(srv, { transports: [t] });
    await until(() => c.e.readyState === "open", 5000, t);
    c.e.send(new Uint8Array([1, 2, 255]));
    await run(2500);
    assert.deepEqual([...new Uint8Array(srv.last.got[0])], [1, 2, 255], t);
    assert.deepEqual([...new Uint8Array(c.got[0])], [1, 2, 255], t);
    c.e.close();
    srv.close();
  }
});

test("a hidden tab's timers that fire late in a burst do not declare the server dead; a visible one's do", async () => {
  for (const hidden of [true, false]) {
    globalThis.document = { hidden };
    try {
      const srv = new FakeServer();
      const c = client(srv, { transports: ["polling"] });
      await until(() => c.e.readyState === "open", 5000, "open");
      // 60 s of timers at once, as a throttled background tab runs them: the heartbeat's
      // deadline (46 s) comes before the server's ping (sent at 25 s) was read.
      mock.timers.tick(60000);
      await run(2000);
      if (hidden) assert.equal(c.closed, null, "hidden: one grace period, then the ping that came counts");
      else assert.equal(c.closed, "ping timeout");
      c.e.close();
      srv.close();
    } finally {
      delete globalThis.document;
    }
  }
});

// Upstream POSTs are the same on SSE and long-polling: a failed one is not the stream's failure.
test("a failed POST on SSE (502 not taken, or taken and its answer lost) attaches SSE again (post-error), once more if that attach is lost, not polling; messages kept", async () => {
  const srv = new FakeServer();
  srv.f.wsRefuse = true;
  const c = client(srv);
  await until(() => c.e.transport.name === "sse", 5000, "sse");
  exchange(srv, c, 0, 3);
  await run(500);
  srv.f.postFail = 1;
  exchange(srv, c, 3, 3);
  await until(() => c.switches.length > 2, 5000, "a switch");
  await run(1000);
  srv.f.postLost = 1;
  exchange(srv, c, 6, 3);
  await until(() => c.switches.length > 3, 5000, "a switch");
  await run(1000);
  // The SSE attach after it lost on the way too (no status): SSE is attached once more.
  srv.f.postFail = srv.f.sseDrop = 1;
  exchange(srv, c, 9, 3);
  await until(() => c.switches.length > 4, 5000, "a switch");
  await run(1000);
  assert.deepEqual(c.switches, ["->polling:start", "polling>sse:promoted", "sse>sse:post-error", "sse>sse:post-error", "sse>sse:sse-refused"]);
  assert.equal(c.e.transport.name, "sse");
  checkOrder(c, srv, 12);
  c.e.close();
  srv.close();
});

// A reset stream is resumed; one that cannot be resumed is attached again; SSE is left only when
// that fails too (or twice in a row with no client-ping answer on SSE between).
test("a cut SSE stream whose resumption fails attaches SSE again, each time after a healthy period; demotes when the attach fails too", async () => {
  const srv = new FakeServer();
  srv.f.wsRefuse = true;
  const c = client(srv);
  await until(() => c.e.transport.name === "sse", 5000, "sse");
  exchange(srv, c, 0, 3);
  await run(500);
  for (let i = 0; i < 2; i++) {
    srv.f.sseDrop = 1; // the resumption is dropped too: sse-refused
    srv.cutSse(srv.last);
    exchange(srv, c, 3 + 3 * i, 3);
    await until(() => c.switches.length > 2 + i, 5000, "a switch " + c.switches.join(" ") + " " + srv.requests.slice(-6).join(","));
    await run(3000);
  }
  assert.deepEqual(c.switches, ["->polling:start", "polling>sse:promoted", "sse>sse:sse-refused", "sse>sse:sse-refused"]);
  srv.f.sseDrop = 2; // the resumption and the attach
  srv.cutSse(srv.last);
  await until(() => c.e.transport.name === "polling", 5000, "polling");
  assert.equal(c.switches.at(-1), "sse>polling:sse-refused");
  exchange(srv, c, 9, 3);
  await run(1000);
  checkOrder(c, srv, 12);
  assert.equal(c.closed, null);
  c.e.close();
  srv.close();
});

// The re-probe backoff doubles per failure in a row only: SSE demoted again and again, each time
// after working a while (promoted by attach: the held poll never ended the pause), is re-probed
// after `reprobe` each time, not 5, 10, 20 s...
test("a transport that worked since its last failure is re-probed after reprobe again, not a doubled backoff", async () => {
  const srv = new FakeServer();
  srv.f.wsRefuse = true;
  const c = client(srv);
  await until(() => c.e.transport.name === "sse", 5000, "sse");
  const waits = [];
  for (let i = 0; i < 3; i++) {
    srv.f.sseBuffer = true;
    await until(() => c.e.transport.name === "polling", 10000, "demotion");
    const t0 = Date.now();
    srv.f.sseBuffer = false;
    srv.f.pollStuck = true;
    await until(() => c.e.transport.name === "sse", 60000, "sse again");
    waits.push(Date.now() - t0);
    srv.f.pollStuck = false;
    await run(6000);
  }
  assert.ok(c.switches.includes("polling>sse:promoted"));
  assert.ok(waits.every((w) => w < 9000), `back on SSE after ${waits.join(", ")} ms (reprobe 5 s + probe timeout 3 s)`);
  c.e.close();
  srv.close();
});
