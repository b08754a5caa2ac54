// tools/ferry serves ferry's own client from the library (ferry_server_serve_client): both
// bundles at their fixed URLs with a JavaScript content type, caching headers and a working
// ETag; the ES module, imported from the served bytes, exports io and WebSocket. And the
// defaults: every transport on, yet an official client's open packet holds exactly the spec's
// keys.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Socket } from "engine.io-client";
import { io } from "socket.io-client";
import { startServer, bin, root } from "../lib/server.mjs";
import { ResumeClient } from "../lib/ferry-resume-client.mjs";

const FERRY = bin("tools/ferry/ferry");
let srv;
before(async () => {
  srv = await startServer(FERRY, ["--host", "127.0.0.1", "--port", "0", "--static", "examples/chat"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "tools/ferry exits cleanly (no leak, no sanitizer report)");
});

test("GET /ferry/ferry.mjs and /ferry/ferry.min.js: JavaScript, cacheable, with an ETag that gives 304", async () => {
  for (const name of ["ferry.mjs", "ferry.min.js"]) {
    const res = await fetch(`${srv.url}/ferry/${name}`);
    assert.equal(res.status, 200, name);
    assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "public, max-age=3600");
    const etag = res.headers.get("etag");
    assert.match(etag, /^"[0-9a-f]{16}"$/);
    const body = await res.text();
    assert.ok(body.length > 1000, `${name}: ${body.length} bytes`);
    // The very bytes the build made.
    assert.equal(body, fs.readFileSync(path.join(path.dirname(FERRY), "../../client-js", name), "utf8"));
    const again = await fetch(`${srv.url}/ferry/${name}`, { headers: { "If-None-Match": etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), "");
  }
  assert.match(await (await fetch(`${srv.url}/ferry/ferry.min.js`)).text(), /\bferry\b/, "the classic script defines ferry");
  assert.equal((await fetch(`${srv.url}/ferry/nothing.js`)).status, 404);
});

test("the served ES module exports io and WebSocket (imported from the served bytes)", async () => {
  const body = await (await fetch(`${srv.url}/ferry/ferry.mjs`)).text();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-client-"));
  const file = path.join(dir, "ferry.mjs");
  fs.writeFileSync(file, body);
  try {
    const mod = await import(file);
    assert.equal(typeof mod.io, "function");
    assert.equal(typeof mod.WebSocket, "function");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("defaults: all four transports; an official client still gets exactly the spec's open packet", async () => {
  const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`);
  const text = await res.text();
  assert.match(text, /^0\{"sid":"[\w-]{22}","upgrades":\["websocket"\],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000\}$/);
  // An official Engine.IO client on WebSocket: the five keys, in the spec's order.
  const s = new Socket(srv.url, { path: "/socket.io/", transports: ["websocket"] });
  const hs = await new Promise((resolve, reject) => {
    s.once("handshake", resolve);
    s.once("error", reject);
  });
  assert.deepEqual(Object.keys(hs), ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]);
  assert.deepEqual(hs.upgrades, []);
  s.close();
  // A client that asks gets the extensions, and sse and short-polling are on.
  for (const t of ["sse", "short-polling"]) {
    const c = new ResumeClient(`${srv.url}/socket.io/`, t);
    const ext = await c.open();
    assert.deepEqual(ext.ext, ["resume", "ping", "report", "tabs"], t);
    c.close();
  }
  // socket.io-client works unchanged (polling, then the upgrade).
  const sock = io(srv.url, { forceNew: true, reconnection: false });
  await new Promise((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("connect_error", reject);
  });
  sock.disconnect();
});
