// The official engine.io-client, forced to long-polling, against examples/echo.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "engine.io-client";
import { startServer, bin, once } from "../lib/server.mjs";

let srv;
before(async () => {
  srv = await startServer(bin("examples/echo/ferry-echo"), ["--port", "0"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "echo exits cleanly (no leak, no sanitizer report)");
});

function connect(opts = {}) {
  return new Socket(srv.url, { path: "/engine.io/", transports: ["polling"], ...opts });
}

test("handshake over polling, then text echo", async () => {
  const socket = connect();
  await once(socket, "open");
  assert.equal(socket.transport.name, "polling");
  assert.match(socket.id, /^[A-Za-z0-9_-]{22}$/);
  socket.send("hello ✓");
  assert.equal(await once(socket, "message"), "hello ✓");
  socket.close();
});
