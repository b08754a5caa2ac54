// The official engine.io-client against examples/echo through tools/ferry-proxy: what a user
// behind a hostile proxy sees. Each test checks both the client's view and the proxy's
// counters, so a proxy that silently stopped being hostile fails the test too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "engine.io-client";
import { startServer, bin, once } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";

let srv;
before(async () => {
  srv = await startServer(bin("examples/echo/ferry-echo"), ["--port", "0"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "echo exits cleanly (no leak, no sanitizer report)");
});

function connect(url, opts = {}) {
  return new Socket(url, { path: "/engine.io/", ...opts });
}

// Send n messages and resolve with the n echoes, in the order they came back.
async function echoMany(socket, n, prefix) {
  const got = [];
  const all = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`only ${got.length}/${n} echoes`)), 15000);
    socket.on("message", (m) => {
      got.push(m);
      if (got.length === n) {
        clearTimeout(t);
        resolve(got);
      }
    });
  });
  for (let i = 0; i < n; i++) socket.send(`${prefix}${i}`);
  return all;
}

const expected = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

test("polling through a slow proxy (50 ms each way): every message comes back, in order", async () => {
  const proxy = await startProxy(srv.url, ["--latency", "50"]);
  const socket = connect(proxy.url, { transports: ["polling"] });
  await once(socket, "open");
  assert.deepEqual(await echoMany(socket, 40, "slow-"), expected(40, "slow-"));
  socket.close();
  const stats = await proxy.stop();
  assert.ok(stats.requests >= 2, `requests went through the proxy (${stats.requests})`);
});

// A proxy that refuses the WebSocket upgrade (403) or lets the 101 through and then forwards
// nothing: the client must stay on long-polling and keep working. When the server offers no
// WebSocket upgrade yet, the client never tries, and only the second half applies.
for (const mode of ["refuse", "mute"]) {
  test(`WebSocket ${mode}d by the proxy: the session stays on polling and works`, async () => {
    const proxy = await startProxy(srv.url, ["--websocket", mode]);
    const socket = connect(proxy.url, { transports: ["polling", "websocket"] });
    const handshake = once(socket, "handshake");
    await once(socket, "open");
    const offered = (await handshake).upgrades.includes("websocket");
    if (offered && mode === "refuse") await once(socket, "upgradeError", 10000);
    assert.deepEqual(await echoMany(socket, 20, `${mode}-`), expected(20, `${mode}-`));
    assert.equal(socket.transport.name, "polling", "no upgrade happened");
    socket.close();
    const stats = await proxy.stop();
    if (offered) {
      assert.ok(stats.upgrades >= 1, "the client tried the WebSocket");
      assert.equal(mode === "refuse" ? stats.upgradesRefused : stats.upgradesMuted, stats.upgrades);
    }
  });
}

test("through a plain proxy the official client upgrades to WebSocket and echoes", async () => {
  const proxy = await startProxy(srv.url, ["--websocket", "pass"]);
  const socket = connect(proxy.url, { transports: ["polling", "websocket"] });
  await once(socket, "upgrade", 10000);
  assert.equal(socket.transport.name, "websocket");
  assert.deepEqual(await echoMany(socket, 20, "ws-"), expected(20, "ws-"));
  socket.close();
  const stats = await proxy.stop();
  assert.equal(stats.upgrades, 1);
});

test("a proxy that buffers bodies does not stall long-polling (each response ends)", async () => {
  const proxy = await startProxy(srv.url, ["--buffer", "65536"]);
  const socket = connect(proxy.url, { transports: ["polling"] });
  await once(socket, "open");
  assert.deepEqual(await echoMany(socket, 10, "buf-"), expected(10, "buf-"));
  socket.close();
  const stats = await proxy.stop();
  assert.ok(stats.responsesBuffered >= 1, "responses went through the buffer");
});

test("a proxy that cuts long responses breaks a held long-poll: the client sees a transport error", async () => {
  // 2 s: longer than any answer the server gives at once on a loaded machine, far shorter
  // than a held long-poll.
  const proxy = await startProxy(srv.url, ["--max-response-ms", "2000"]);
  const socket = connect(proxy.url, { transports: ["polling"], reconnection: false });
  await once(socket, "open");
  // The echo server holds the next GET (ping interval 25 s): the proxy cuts it at 2 s.
  const [reason] = await once(socket, "close", 15000);
  assert.equal(reason, "transport error");
  const stats = await proxy.stop();
  assert.ok(stats.responsesCut >= 1, "the proxy cut the held GET");
});

// Extension transports (ferry's own client speaks them): where long-polling is cut, short
// polling survives; where bodies are buffered, an SSE stream never shows its first event.
// The test engine server (echoes like examples/echo) with every transport on.
async function withExtServer(fn) {
  const eng = await startServer(bin("tests/servers/ferry-test-engine"), [
    "--port", "0", "--transports", "polling,websocket,sse,short-polling",
  ]);
  try {
    await fn(eng);
  } finally {
    assert.equal(await eng.stop(), 0, "test server exits cleanly");
  }
}

async function extEcho(c, n, prefix) {
  const got = [];
  const all = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`only ${got.length}/${n} echoes`)), 15000);
    c.on("message", (m) => {
      got.push(m);
      if (got.length === n) (clearTimeout(t), resolve(got));
    });
  });
  for (let i = 0; i < n; i++) c.send(`${prefix}${i}`);
  return all;
}

test("where the proxy cuts long responses, short-polling keeps the session working", async () => {
  await withExtServer(async (eng) => {
    const proxy = await startProxy(eng.url, ["--max-response-ms", "2000"]);
    const c = new ExtClient(`${proxy.url}/engine.io/`, { transport: "short-polling" });
    let stats;
    try {
      const hs = await c.open();
      assert.ok(hs.shortPollInterval > 0, "the handshake announces the poll interval");
      assert.deepEqual(await extEcho(c, 10, "short-"), expected(10, "short-"));
      assert.equal(c.state, "open");
    } finally {
      c.finish("test done");
      stats = await proxy.stop();
    }
    assert.equal(stats.responsesCut, 0, "no short-poll answer is held long enough to be cut");
  });
});

test("a buffering proxy holds an SSE stream's first event, while polling through it works", async () => {
  await withExtServer(async (eng) => {
    const proxy = await startProxy(eng.url, ["--buffer", "65536"]);
    const sse = new ExtClient(`${proxy.url}/engine.io/`, { transport: "sse" });
    await assert.rejects(sse.open(1500), /no open packet/, "the handshake event is stuck in the buffer");
    sse.finish("test done");
    const poll = new ExtClient(`${proxy.url}/engine.io/`, { transport: "polling" });
    await poll.open();
    assert.deepEqual(await extEcho(poll, 5, "p-"), expected(5, "p-"));
    poll.finish("test done");
    await proxy.stop();
  });
});
