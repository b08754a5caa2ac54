// client-js (ferry's own client) in Node against real servers: ferry-test-sio with all four
// transports and the extensions, directly and through tools/ferry-proxy's faults and a proxy
// that mutes an established WebSocket; and Node's socket.io 4.8 (no extensions there), with
// connection-state recovery. Sequence-numbered messages go both ways (the server echoes each
// "message" as "message-back"); none may be lost, duplicated or reordered.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import WS from "ws";
import { Server } from "socket.io";
import { io } from "../../client-js/src/index.mjs";
import { startServer, bin } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";
import { startToggleProxy } from "../lib/toggle-proxy.mjs";

const ALL = "polling,websocket,sse,short-polling";
let srv;
before(async () => {
  srv = await startServer(bin("tests/servers/ferry-test-sio"), ["--port", "0", "--transports", ALL]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
});

function connect(url, o = {}) {
  const s = io(url, { WebSocket: WS, storage: null, forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 1000, ...o });
  s.switches = [];
  s.on("transport", (e) => s.switches.push(`${e.from || "-"}>${e.to}:${e.reason}`));
  return s;
}
function waitFor(cond, ms, what) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => (cond() ? resolve() : Date.now() - t0 > ms ? reject(new Error(`${what}: not within ${ms} ms`)) : setTimeout(tick, 20));
    tick();
  });
}

// Sends n numbered messages, one every gapMs, calling during(i) before each; resolves once every
// echo is back, checking order and uniqueness.
async function exchange(s, n, { prefix = "m", gapMs = 0, during = () => {}, ms = 30000 } = {}) {
  const got = [];
  const on = (x) => typeof x === "string" && x.startsWith(prefix + "-") && got.push(x);
  s.on("message-back", on);
  for (let i = 0; i < n; i++) {
    await during(i);
    s.emit("message", `${prefix}-${i}`);
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
  await waitFor(() => got.length >= n, ms, `${n} echoes of ${prefix} (got ${got.length})`);
  await new Promise((r) => setTimeout(r, 100)); // a duplicate would show here
  s.off("message-back", on);
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => `${prefix}-${i}`), "none lost, duplicated or reordered");
}

test("automatic: starts on polling, ends on websocket; acks, emitWithAck, binary both ways", async () => {
  const s = connect(srv.url);
  await waitFor(() => s.connected && s.io.engine.transport.name === "websocket", 10000, "websocket");
  assert.deepEqual(s.switches, ["->polling:start", "polling>websocket:promoted"]);
  assert.deepEqual(await s.emitWithAck("message-with-ack", 1, "two", { three: [3] }), 1);
  const bin = new Promise((r) => s.once("message-back", (...a) => r(a)));
  s.emit("message", new Uint8Array([1, 2, 3]), { nested: new Uint8Array([255]).buffer });
  const [a, b] = await bin;
  assert.deepEqual([...new Uint8Array(a)], [1, 2, 3]);
  assert.deepEqual([...new Uint8Array(b.nested)], [255]);
  await exchange(s, 50);
  s.disconnect();
});

for (const t of ["polling", "short-polling", "sse", "websocket"])
  test(`forced ${t}: connects on it, stays on it, messages in order`, async () => {
    const s = connect(srv.url, { transports: [t] });
    await waitFor(() => s.connected, 10000, "connect");
    await exchange(s, 30);
    assert.equal(s.io.engine.transport.name, t);
    assert.deepEqual(s.switches, [`->${t}:forced`]);
    s.disconnect();
  });

test("a WebSocket that goes mute mid-session is left within 10 s (ws-mute, attach): same session, nothing lost", async (t) => {
  const px = await startToggleProxy(srv.port);
  try {
    const s = connect(px.url);
    await waitFor(() => s.connected && s.io.engine.transport.name === "websocket", 10000, "websocket");
    if (!s.io.engine.ext.includes("resume")) {
      s.disconnect();
      return t.skip("the server does not offer the session-resume extension yet");
    }
    const sid = s.io.engine.sid;
    let muted = 0;
    await exchange(s, 60, {
      gapMs: 150,
      ms: 30000,
      during: async (i) => {
        if (i === 10) (px.state.mute = true), (muted = Date.now());
      },
    });
    const ws = s.switches.findIndex((x) => x === "websocket>polling:ws-mute");
    assert.ok(ws >= 0, s.switches.join(" "));
    assert.equal(s.io.engine.sid, sid, "the same Engine.IO session");
    assert.equal(s.connected, true);
    assert.ok(muted > 0);
    s.disconnect();
  } finally {
    await px.stop();
  }
});

async function throughProxy(args, want, o = {}) {
  const px = await startProxy(srv.url, [...args, "--quiet"]);
  try {
    const s = connect(px.url, o);
    await waitFor(() => s.connected, 10000, "connect");
    await exchange(s, 40, { gapMs: 100, prefix: "p" });
    await waitFor(() => s.io.engine.transport.name === want, 15000, `on ${want} (${s.switches.join(" ")})`);
    await exchange(s, 20, { prefix: "q" });
    s.disconnect();
    return s.switches;
  } finally {
    await px.stop();
  }
}

test("ferry-proxy refuses WebSocket: ends on sse (ws-refused, promoted)", async () => {
  const sw = await throughProxy(["--websocket", "refuse"], "sse");
  assert.deepEqual(sw, ["->polling:start", "polling>sse:promoted"]);
});

test("ferry-proxy strips the Upgrade header: ends on sse", async () => {
  await throughProxy(["--websocket", "strip"], "sse");
});

// The mute WebSocket probe's close never reaches the server, which would hold that probe (and
// refuse the SSE probe) until its 10 s upgrade timeout: the client attaches polling again,
// which abandons it, and SSE follows at once (before, the session stayed on polling).
test("ferry-proxy mutes WebSocket from the 101: ends on sse (ws-mute, attach to polling, promoted)", async () => {
  const sw = await throughProxy(["--websocket", "mute"], "sse");
  assert.deepEqual(sw.slice(0, 3), ["->polling:start", "polling>polling:ws-mute", "polling>sse:promoted"]);
});

test("ferry-proxy mutes WebSocket from the 101 and buffers bodies: stays on polling", async () => {
  const sw = await throughProxy(["--websocket", "mute", "--buffer", "65536"], "polling");
  assert.deepEqual(sw, ["->polling:start", "polling>polling:ws-mute"]);
});

test("ferry-proxy cuts responses after 700 ms: steps down to short-polling (poll-cut)", async () => {
  const sw = await throughProxy(["--max-response-ms", "700", "--websocket", "refuse"], "short-polling", { transports: ["polling", "short-polling"] });
  assert.ok(sw.some((x) => x.endsWith(">short-polling:poll-cut")), sw.join(" "));
});

test("Node's socket.io 4.8: polling then websocket, acks and binary, connection-state recovery", async () => {
  const hs = http.createServer();
  const nio = new Server(hs, { connectionStateRecovery: { maxDisconnectionDuration: 10000 }, pingInterval: 1000, pingTimeout: 1000 });
  nio.on("connection", (sock) => {
    sock.on("message", (...a) => sock.emit("message-back", ...a));
    sock.on("message-with-ack", (...a) => a.pop()(...a));
    sock.on("kill", () => sock.conn.close());
  });
  await new Promise((r) => hs.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${hs.address().port}`;
  const s = connect(url);
  try {
    await waitFor(() => s.connected && s.io.engine.transport.name === "websocket", 10000, "websocket");
    assert.deepEqual(s.io.engine.ext, [], "Node's server offers no extension");
    assert.equal(s.recovered, false);
    assert.deepEqual(await s.emitWithAck("message-with-ack", "a", 2), "a");
    const bin = new Promise((r) => s.once("message-back", (...a) => r(a)));
    s.emit("message", new Uint8Array([9, 8]));
    assert.deepEqual([...new Uint8Array((await bin)[0])], [9, 8]);
    await exchange(s, 30);
    const id = s.id;
    const reasons = [];
    s.on("disconnect", (r) => reasons.push(r));
    s.emit("kill");
    await waitFor(() => reasons.length === 1, 10000, "disconnect");
    await waitFor(() => s.connected, 10000, "reconnect");
    assert.deepEqual(reasons, ["transport close"]);
    assert.equal(s.recovered, true, "connection-state recovery");
    assert.equal(s.id, id, "same socket id after recovery");
    await exchange(s, 10, { prefix: "after" });
  } finally {
    s.disconnect();
    nio.close();
    hs.closeAllConnections?.();
  }
});
