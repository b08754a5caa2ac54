// One attach at a time (client-js engine.mjs attach()), against the in-memory server
// (fake-server.mjs) under mock timers. An attach that starts while another is still opening
// supersedes it: the one opening is closed at once (a WebSocket not yet open: its handshake
// aborted, so it can never open later and take the session back on the server; an SSE stream:
// its request aborted), and the transport the session was on before the first attach is still
// closed once the last attach is answered (a mute WebSocket gets no close from the server).
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../client-js/src/engine.mjs";
import { FakeServer, fakeUntil as until } from "./fake-server.mjs";

let n = 0;
beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1e12 }));
afterEach(() => mock.timers.reset());

function client(srv, o = {}) {
  const e = new Engine(`http://attach${++n}.test/`, { fetch: srv.fetch, WebSocket: srv.WebSocket, storage: null, ...o });
  const c = { e, switches: [], got: [], closed: null };
  e.on("transport", (ev) => c.switches.push(`${ev.from || "-"}>${ev.to}:${ev.reason}`));
  e.on("message", (m) => c.got.push(m));
  e.on("close", (r) => (c.closed = r));
  return c;
}
// Every WebSocket but the session's own is closed (by the client, or by the server on an attach).
const stray = (srv, c) => srv.sockets.filter((w) => w !== c.e.transport.ws && !w.closed && !w.ended).map((w) => w.url);
// n messages each way; every one must arrive once and in order.
async function exchange(srv, c, k) {
  for (let i = 0; i < k; i++) c.e.send("c" + i), srv.send(srv.last, "s" + i);
  const want = (p) => Array.from({ length: k }, (_, i) => p + i);
  await until(() => c.got.length === 2 * k && srv.last.got.length === k, 5000, `${k} messages each way`);
  assert.deepEqual(c.got.filter((m) => m[0] === "s"), want("s"), "server messages once, in order");
  assert.deepEqual(srv.last.got, want("c"), "client messages once, in order");
}

test("a second WebSocket attach while the first still opens: the first is closed at once and never takes the session", async () => {
  const srv = new FakeServer();
  const c = client(srv);
  await until(() => c.e.transport.name === "websocket" && c.e.transport.up, 5000, "websocket");
  const a = c.e.transport.ws;
  srv.f.wsHold = true; // the attaches' handshakes hang
  c.e.attach("websocket", "ws-closed");
  const first = c.e.transport.ws;
  c.e.attach("websocket", "ws-closed");
  const second = c.e.transport.ws;
  assert.equal(first.closed, true, "the superseded WebSocket is closed (its handshake aborted)");
  assert.equal(a.closed, undefined, "the WebSocket the session was on waits for the attach's answer");
  // The handshakes go through, the newest first: an old one that opened now would take the
  // session from the second (the server moves the session to the latest attach it sees).
  srv.f.wsHold = false;
  srv.releaseWs(true);
  await until(() => c.e.transport.up, 5000, "the second attach opens");
  assert.equal(c.e.transport.ws, second);
  await exchange(srv, c, 5);
  assert.equal(srv.last.chan.ws, second, "the server's session is on the second attach");
  assert.deepEqual(srv.last.attaches.map((x) => x.kind), ["websocket"], "one attach reached the server");
  assert.deepEqual(c.switches, ["->polling:start", "polling>websocket:promoted", "websocket>websocket:ws-closed"]);
  assert.equal(a.closed, true, "the old WebSocket is closed once the attach is answered");
  assert.deepEqual(stray(srv, c), [], "no WebSocket left open");
  assert.equal(c.closed, null);
  c.e.close();
  srv.close();
});

test("a mute WebSocket left by attach, the attach failing before it opens: the next attach still closes the WebSocket", async () => {
  const srv = new FakeServer();
  let failNext = false;
  // The first attach GET fails (a network blip); the one after it goes through.
  const fetch = async (url, o = {}) => {
    if (failNext && new URL(url).searchParams.has("rx")) throw ((failNext = false), new TypeError("fetch failed"));
    return srv.fetch(url, o);
  };
  const c = client(srv, { fetch });
  await until(() => c.e.transport.name === "websocket" && c.e.transport.up, 5000, "websocket");
  const a = c.e.transport.ws;
  failNext = true;
  srv.f.wsMute = true; // nothing either way, a close from the server included
  await until(() => c.e.transport.name === "polling" && c.e.transport.up, 20000, "the demotion to polling");
  assert.equal(failNext, false, "the first attach failed");
  assert.deepEqual(c.switches.slice(-1), ["websocket>polling:poll-cut"], "from the transport the session was on");
  assert.equal(a.closed, true, "the client closed the mute WebSocket");
  assert.deepEqual(stray(srv, c), []);
  await exchange(srv, c, 5);
  assert.equal(c.closed, null);
  c.e.close();
  srv.close();
});

test("a second SSE attach while the first still opens: the first stream's request is aborted at once, the old WebSocket closed", async () => {
  const srv = new FakeServer();
  let hold = false;
  const held = [];
  const sse = []; // the attach requests' abort signals
  const fetch = async (url, o = {}) => {
    const q = new URL(url).searchParams;
    if (q.get("transport") === "sse" && q.has("rx")) {
      sse.push(o.signal);
      if (hold) await new Promise((r) => held.push(r));
    }
    return srv.fetch(url, o);
  };
  const c = client(srv, { fetch });
  await until(() => c.e.transport.name === "websocket" && c.e.transport.up, 5000, "websocket");
  const a = c.e.transport.ws;
  hold = true;
  c.e.attach("sse", "ws-mute");
  c.e.attach("sse", "ws-mute");
  await until(() => sse.length === 2, 1000, "two attach requests");
  assert.equal(sse[0].aborted, true, "the superseded SSE attach is aborted");
  assert.equal(sse[1].aborted, false);
  hold = false;
  for (const r of held.reverse()) r();
  await until(() => c.e.transport.up, 5000, "the second attach opens");
  await exchange(srv, c, 5);
  assert.deepEqual(srv.last.attaches.map((x) => x.kind), ["sse"], "one attach reached the server");
  assert.equal(a.closed, true, "the old WebSocket is closed once the attach is answered");
  assert.deepEqual(stray(srv, c), []);
  assert.equal(c.closed, null);
  c.e.close();
  srv.close();
});
