// Issue 14: ferry's client on long-polling probes WebSocket ("2probe", "3probe", pause of the
// polling transport, "5"). The probe or the old transport dying at any moment of that must not
// hold the session's messages back: the client goes on at once on the transport it had (or
// attaches another), and every message is taken once. Before the fix a probe cut after
// "3probe" while the pause waited for its poll left polling paused, and the messages waited for
// the client's health check (8-16 s).
//
// Each test steers the client's own WebSocket (npm ws, wrapped: frames seen both ways, the
// connection cut for real, so the server sees the probe close too) and fetch (a poll's answer or
// a POST's answer held until the test lets it go) to reach one moment of the probe, emits a
// message right then, and asserts its echo ("message-back" from ferry-test-sio) arrives within
// BOUND_MS of the moment, measured from the events, and that every message of the run is taken
// once by the server and echoed once to the client, in order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "../../client-js/src/index.mjs";
import { startSio } from "../lib/sio.mjs";

// Far below the 8-16 s of a stall behind the health check; generous for a loaded machine.
const BOUND_MS = 3000;

let srv;
before(async () => {
  srv = await startSio(["--transports", "polling,websocket"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
});

const within = (p, ms, what) => {
  let t;
  return Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
};
const deferred = () => {
  let resolve;
  const p = new Promise((r) => (resolve = r));
  return Object.assign(p, { resolve });
};

// The network between the client and the server, steered by the test. hooks.up(ws, data) and
// hooks.down(ws, data) see every frame of a WebSocket (ws.probe: opened with a sid and no rx);
// they return false to swallow it. hold("get" | "post") holds the answer of the next polling
// GET / POST to come back (the server has answered it) until the test lets it go: the returned
// gate's `caught` resolves when it holds one; gate.pass() hands it on, gate.cut() fails it as a
// network error would (the client cannot tell whether the server took it). A probe's
// WebSocket connects once net.ready resolves (the test's session is set up by then).
function network() {
  const net = { hooks: {}, gates: {}, ready: deferred() };
  const realFetch = globalThis.fetch;
  net.hold = (kind) => {
    const g = (net.gates[kind] = deferred());
    g.caught = deferred();
    g.pass = () => g.resolve("pass");
    g.cut = () => g.resolve("cut");
    return g;
  };
  net.fetch = async (url, o = {}) => {
    const kind = o.method === "POST" ? "post" : "get";
    log(kind, String(url).replace(/.*\?/, ""), o.body ?? "");
    const r = await realFetch(url, o);
    const body = await r.text();
    log(kind, "answered", r.status, body);
    const g = net.gates[kind];
    if (g && new URL(url).searchParams.get("transport") === "polling") {
      net.gates[kind] = null;
      g.caught.resolve();
      if ((await g) === "cut") throw new TypeError("fetch failed");
    }
    return new Response(body, { status: r.status, headers: r.headers });
  };
  net.WebSocket = class SteeredWS {
    constructor(url) {
      const q = new URL(url).searchParams;
      this.probe = q.has("sid") && !q.has("rx");
      this.closed = deferred();
      if (this.probe) net.ready.then(() => this.connect(url));
      else this.connect(url);
    }
    connect(url) {
      const ws = (this.ws = new WebSocket(url));
      ws.binaryType = "arraybuffer";
      ws.onopen = () => this.onopen?.();
      ws.onmessage = (m) => (log("down", this.probe ? "probe" : "ws", m.data), net.hooks.down?.(this, m.data) !== false && this.onmessage?.({ data: m.data }));
      ws.onclose = (e) => (this.onclose?.({ code: e.code }), this.closed.resolve());
      ws.onerror = () => {};
    }
    set binaryType(v) {}
    send(d) {
      log("up", this.probe ? "probe" : "ws", d);
      if (net.hooks.up?.(this, d) !== false) this.ws.send(d);
    }
    close() {
      this.ws?.close();
    }
    // The connection dies (both ends see it go; the client without a close frame); resolves
    // once the client has seen it.
    cut() {
      this.ws.terminate();
      return this.closed;
    }
  };
  return net;
}

const T0 = performance.now();
const log = (...a) => process.env.PROBE_TRACE && console.error(Math.round(performance.now() - T0), ...a);

// A client on long-polling that probes WebSocket through `net`; messages "m<i>", numbered.
function client(net) {
  const s = io(srv.url, { fetch: net.fetch, WebSocket: net.WebSocket, storage: null, forceNew: true, transports: ["polling", "websocket"], reconnectionDelay: 100, probeTimeout: 10000 });
  const c = (net.c = { s, switches: [], probes: [], back: [], at: new Map(), waiters: new Map(), connects: 0, disconnects: 0, i: 0 });
  s.on("transport", (e) => (log("transport", e), c.switches.push(`${e.from || "-"}>${e.to}:${e.reason}`)));
  s.on("connect", () => c.connects++);
  s.on("disconnect", () => c.disconnects++);
  s.on("message-back", (m) => {
    log("back", m);
    c.back.push(m);
    c.at.set(m, performance.now());
    c.waiters.get(m)?.resolve();
  });
  s.io.on("open", () => s.io.engine.on("probe", (p) => c.probes.push(`${p.to}:${p.reason}`)));
  c.emit = () => {
    const m = "m" + c.i++;
    c.waiters.set(m, deferred());
    s.emit("message", m);
    return m;
  };
  c.echoed = (m, ms, what) => within(c.waiters.get(m), ms, `the echo of ${m} (${what}; switches ${c.switches.join(", ")}; probes ${c.probes.join(", ")})`);
  return c;
}

// One moment of the probe: `arm(net, at)` sets the hooks; the first probe starts once the
// session is connected and one message went through; the hooks call at(fn) when the moment
// comes (while net.fired is unset: later probes pass untouched), which emits the moment's
// message and notes the time, then runs fn (the fault). The message's echo must come within BOUND_MS of that; then one more message, and
// every message taken by the server once, in order, echoed once, in order, on one session.
async function moment(t, what, arm) {
  const net = network();
  const reached = deferred();
  let m, t0;
  const at = (fn) => {
    if (net.fired) return;
    net.fired = true;
    t0 = performance.now();
    m = net.c.emit();
    Promise.resolve()
      .then(fn)
      .then(reached.resolve, reached.resolve);
  };
  arm(net, at);
  const c = client(net);
  try {
    await within(new Promise((r) => c.s.once("connect", r)), 20000, "connect");
    await c.echoed(c.emit(), 20000, "before the probe");
    net.ready.resolve();
    await within(reached, 20000, `${what}: the moment`);
    await c.echoed(m, 20000, what);
    const ms = Math.round(c.at.get(m) - t0);
    assert.ok(ms <= BOUND_MS, `${what}: the message emitted at that moment came back after ${ms} ms (bound ${BOUND_MS}; switches ${c.switches.join(", ")}; probes ${c.probes.join(", ")})`);
    const last = c.emit();
    await c.echoed(last, 20000, what + ", then one more");
    await srv.next((e) => e.event === "event" && e.id === c.s.id && e.args[0] === last, 20000);
    const want = Array.from({ length: c.i }, (_, i) => "m" + i);
    const taken = srv.all("event").filter((e) => e.id === c.s.id && e.name === "message").map((e) => e.args[0]);
    assert.deepEqual(taken, want, `${what}: every message taken by the server once, in order`);
    assert.deepEqual(c.back, want, `${what}: every echo received once, in order`);
    assert.deepEqual([c.connects, c.disconnects], [1, 0], `${what}: one session throughout`);
    t.diagnostic(`${what}: echo after ${ms} ms; switches ${c.switches.join(", ")}; probes ${c.probes.join(", ")}`);
    return c;
  } finally {
    c.s.disconnect();
  }
}
// A frame of the first probe, before the moment.
const isProbe = (net, ws, d, frame) => ws.probe && d === frame && !net.fired;

test("the probe dies before 3probe: polling goes on at once", { timeout: 60000 }, async (t) => {
  await moment(t, "probe cut before 3probe", (net, at) => {
    // The server has the probe (its held poll answered "6"); its "3probe" never arrives.
    net.hooks.down = (ws, d) => !isProbe(net, ws, d, "3probe") || (at(() => ws.cut()), false);
  });
});

test("the probe dies right after 3probe while the pause waits for the poll: polling goes on at once", { timeout: 60000 }, async (t) => {
  const c = await moment(t, "probe cut after 3probe", (net, at) => {
    // The held poll is answered "6" once the server has the probe: that answer is held, so that
    // the pause still waits for it when "3probe" comes; the poll ends after the probe's death.
    let poll;
    net.hooks.up = (ws, d) => void (isProbe(net, ws, d, "2probe") && (poll = net.hold("get")));
    net.hooks.down = (ws, d) => void (isProbe(net, ws, d, "3probe") && at(async () => (await ws.cut(), poll.pass())));
  });
  assert.ok(c.probes.includes("websocket:ws-closed"), `the probe's failure was seen (${c.probes.join(", ")})`);
});

test("the probe dies during the pause (a POST still out): polling goes on at once", { timeout: 60000 }, async (t) => {
  await moment(t, "probe cut during the pause", (net, at) => {
    // A message sent as the probe starts: the pause waits for its POST, whose answer is held;
    // the probe dies while it waits, then the POST ends.
    let post;
    net.hooks.up = (ws, d) => void (isProbe(net, ws, d, "2probe") && ((post = net.hold("post")), net.c.emit()));
    net.hooks.down = (ws, d) =>
      void (isProbe(net, ws, d, "3probe") && post.caught.then(() => setTimeout(() => at(async () => (await ws.cut(), post.pass())), 100)));
  });
});

test("the probe dies right after 5 reached the server: the client attaches polling at once", { timeout: 60000 }, async (t) => {
  await moment(t, "probe cut after 5", (net, at) => {
    // "5" goes out and is taken (the session is on WebSocket); then the connection dies; the
    // moment's message goes out on that WebSocket, taken or lost with it.
    net.hooks.up = (ws, d) => {
      if (!isProbe(net, ws, d, "5")) return;
      ws.ws.send(d, () => at(() => ws.cut()));
      return false;
    };
  });
});

test("the probe dies with its 5 (never reaches the server): the client attaches polling at once", { timeout: 60000 }, async (t) => {
  await moment(t, "probe cut instead of 5", (net, at) => {
    net.hooks.up = (ws, d) => !isProbe(net, ws, d, "5") || (at(() => ws.cut()), false);
  });
});

test("the old transport dies during the probe (its poll cut): the client attaches polling at once", { timeout: 60000 }, async (t) => {
  await moment(t, "poll cut during the probe", (net, at) => {
    // The poll the server answers "6" for the probe is lost on its way, before "3probe".
    net.hooks.up = (ws, d) => {
      if (!isProbe(net, ws, d, "2probe")) return;
      const poll = net.hold("get");
      poll.caught.then(() => at(() => poll.cut()));
    };
    net.hooks.down = (ws, d) => !(ws.probe && d === "3probe" && !net.fired); // held back until then
  });
});

test("the old transport dies during the pause (its poll cut after 3probe): the client attaches polling at once", { timeout: 60000 }, async (t) => {
  await moment(t, "poll cut during the pause", (net, at) => {
    let poll;
    net.hooks.up = (ws, d) => void (isProbe(net, ws, d, "2probe") && (poll = net.hold("get")));
    net.hooks.down = (ws, d) => void (isProbe(net, ws, d, "3probe") && setTimeout(() => at(() => poll.cut()), 100));
  });
});
