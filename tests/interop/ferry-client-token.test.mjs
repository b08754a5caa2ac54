// tools/ferry --client-token (the library's admission hook, as a user runs it): the official
// socket.io-client connects with the token in its query (polling and websocket) or in an
// Authorization: Bearer header; without it, or with a wrong one, connect_error carries
// 403 {"code":4,"message":"Invalid client token"}; FERRY_CLIENT_TOKEN works as the flag does.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, bin } from "../lib/server.mjs";

const TOKEN = "let-me-in";

function outcome(opts, url) {
  const socket = io(url, { forceNew: true, reconnection: false, ...opts });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("neither connect nor connect_error")), 10000);
    socket.once("connect", () => {
      clearTimeout(t);
      socket.disconnect();
      resolve({ connected: true });
    });
    socket.once("connect_error", (err) => {
      clearTimeout(t);
      // The XHR of a polling error is aborted right after the event: read its body now.
      const body = err.context?.responseText;
      socket.disconnect();
      resolve({ connected: false, err, body });
    });
  });
}

describe("tools/ferry --client-token", () => {
  let srv;
  before(async () => {
    srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--client-token", TOKEN]);
  });
  after(async () => {
    assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
  });

  for (const transport of ["polling", "websocket"]) {
    test(`the token in the query connects over ${transport}`, async () => {
      const r = await outcome({ transports: [transport], query: { token: TOKEN } }, srv.url);
      assert.equal(r.connected, true);
    });
  }

  test("the token as Authorization: Bearer connects", async () => {
    const r = await outcome({ transports: ["polling"], extraHeaders: { Authorization: `Bearer ${TOKEN}` } }, srv.url);
    assert.equal(r.connected, true);
  });

  for (const [what, opts] of [
    ["no token", {}],
    ["a wrong token", { query: { token: TOKEN + "x" } }],
    ["a prefix of the token", { query: { token: TOKEN.slice(0, 4) } }],
    ["a wrong bearer", { extraHeaders: { Authorization: "Bearer nope" } }],
  ]) {
    test(`${what}: connect_error with 403 "Invalid client token"`, async () => {
      const r = await outcome({ transports: ["polling"], ...opts }, srv.url);
      assert.equal(r.connected, false);
      assert.equal(r.err.description, 403);
      assert.deepEqual(JSON.parse(r.body), { code: 4, message: "Invalid client token" });
    });
  }

  test("refused over websocket too, before any 101", async () => {
    const r = await outcome({ transports: ["websocket"] }, srv.url);
    assert.equal(r.connected, false);
    assert.match(String(r.err.description?.message ?? r.err.description), /403/);
  });
});

test("FERRY_CLIENT_TOKEN sets it as the flag does; without it anyone connects", async () => {
  const srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0"], { env: { FERRY_CLIENT_TOKEN: "env-token" } });
  try {
    assert.equal((await outcome({ transports: ["polling"] }, srv.url)).connected, false);
    assert.equal((await outcome({ transports: ["polling"], query: { token: "env-token" } }, srv.url)).connected, true);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
  const open = await startServer(bin("tools/ferry/ferry"), ["--port", "0"]);
  try {
    assert.equal((await outcome({ transports: ["polling"] }, open.url)).connected, true);
  } finally {
    assert.equal(await open.stop(), 0);
  }
});
