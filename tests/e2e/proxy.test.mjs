// The official engine.io-client against examples/echo through tools/ferry-proxy: what a user
// behind a hostile proxy sees. Each test checks both the client's view and the proxy's
// counters, so a proxy that silently stopped being hostile fails the test too.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "engine.io-client";
import { startServer, bin, once } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";

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
    await once(socket, "open");
    const offered = socket.upgrades.includes("websocket");
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
  const proxy = await startProxy(srv.url, ["--max-response-ms", "300"]);
  const socket = connect(proxy.url, { transports: ["polling"], reconnection: false });
  await once(socket, "open");
  // The echo server holds the next GET (ping interval 25 s): the proxy cuts it at 300 ms.
  const [reason] = await once(socket, "close", 5000);
  assert.equal(reason, "transport error");
  const stats = await proxy.stop();
  assert.ok(stats.responsesCut >= 1, "the proxy cut the held GET");
});
