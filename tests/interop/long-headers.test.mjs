// Long Origins and long header values on every response of every transport, checked byte for
// byte (issue 9, defect 2: the SSE head was formatted into 512 bytes but its untruncated
// length was sent, putting a NUL and uninitialised heap bytes on the wire; other heads cut a
// long Origin's CORS headers, a long preflight's allowed headers, or a long Location).
// Every head must be well formed (only printable ASCII header lines, CRLF-terminated), echo
// the Origin whole and exactly once, and its Content-Length must match the body.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { bin, startServer } from "../lib/server.mjs";
import { rawConnect, rawRequest, req } from "../lib/rawhttp.mjs";

let srv, staticDir;
const P = "/socket.io/";
// Around every old buffer size (512-byte SSE head, 1024-byte CORS buffer, 2048-byte Location)
// and far beyond, within the default 16 KiB head limit.
const LENGTHS = [1, 300, 330, 331, 400, 480, 1000, 1010, 1100, 2100, 6000, 15000];

function origin(len) {
  const base = "http://";
  let host = "";
  // A deterministic, varied host name so a shifted or repeated byte shows.
  for (let i = 0; host.length < len - base.length; i++) host += "abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7) % 36];
  return (base + host).slice(0, Math.max(len, base.length + 1));
}

before(async () => {
  staticDir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-long-"));
  fs.writeFileSync(path.join(staticDir, "index.html"), "<p>hi</p>\n");
  srv = await startServer(bin("tools/ferry/ferry"), [
    "--port", "0", "--transports", "polling,websocket,sse,short-polling", "--cors-origins", "*",
    "--static", staticDir,
  ]);
});

after(async () => {
  assert.equal(await srv.stop(), 0);
  fs.rmSync(staticDir, { recursive: true, force: true });
});

// A head must be exactly: status line, header lines of printable ASCII, blank line.
function checkHead(res, o) {
  const head = res.head + "\r\n\r\n";
  assert.match(head, /^HTTP\/1\.1 \d{3} [A-Za-z -]+\r\n(?:[A-Za-z0-9-]+: [\x20-\x7e]*\r\n)*\r\n$/,
    `malformed head: ${JSON.stringify(head.slice(0, 300))}`);
  if (o !== undefined) {
    const acao = res.head.split("\r\n").filter((l) => l.toLowerCase().startsWith("access-control-allow-origin:"));
    if (acao.length !== 1 || acao[0] !== `Access-Control-Allow-Origin: ${o}`)
      assert.fail(`Origin of ${o.length} bytes not echoed whole: ${JSON.stringify(acao.map((l) => l.slice(0, 60) + "... (" + l.length + " bytes)"))}`);
    assert.equal(res.headers.vary, "Origin");
  }
  if (res.headers["content-length"] !== undefined)
    assert.equal(Number(res.headers["content-length"]), res.body.length);
}

async function handshake(o, transport = "polling") {
  const res = await rawRequest(srv.port, req("GET", `${P}?EIO=4&transport=${transport}`, { headers: [`Origin: ${o}`] }));
  checkHead(res, o);
  assert.equal(res.status, 200);
  return { res, sid: /"sid":"([^"]+)"/.exec(res.text)[1] };
}

test("polling: handshake, POST, GET and an error answer echo a long Origin whole", async () => {
  for (const n of LENGTHS) {
    const o = origin(n);
    const { res, sid } = await handshake(o);
    assert.match(res.text, /^0\{"sid":"[^"]+","upgrades":\["websocket"\],"pingInterval":\d+,"pingTimeout":\d+,"maxPayload":\d+\}$/);
    const q = `${P}?EIO=4&transport=polling&sid=${sid}`;
    const post = await rawRequest(srv.port, req("POST", q, { headers: [`Origin: ${o}`, "Content-Type: text/plain"], body: "40" }));
    checkHead(post, o);
    assert.equal(post.status, 200);
    assert.equal(post.text, "ok");
    const get = await rawRequest(srv.port, req("GET", q, { headers: [`Origin: ${o}`] }));
    checkHead(get, o);
    // tools/ferry has recovery on by default: the CONNECT answer carries the recovery offset.
    assert.match(get.text, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
    const bad = await rawRequest(srv.port, req("GET", `${P}?EIO=4&transport=polling&sid=nope`, { headers: [`Origin: ${o}`] }));
    checkHead(bad, o);
    assert.equal(bad.status, 400);
    assert.equal(bad.text, '{"code":1,"message":"Session ID unknown"}');
  }
});

test("short-polling: handshake with a long Origin", async () => {
  for (const n of LENGTHS) {
    const o = origin(n);
    const { res } = await handshake(o, "short-polling");
    assert.match(res.text, /^0\{"sid":"[^"]+","upgrades":\[[a-z",-]*\],"pingInterval":\d+,"pingTimeout":\d+,"maxPayload":\d+,"shortPollInterval":\d+,"ext":\["resume","ping","report","tabs"\]\}$/);
  }
});

test("preflight: a long Origin and a long Access-Control-Request-Headers are echoed whole", async () => {
  for (const n of LENGTHS) {
    const o = origin(n);
    // As long as the Origin, within the 16 KiB head limit.
    const want = Array.from({ length: Math.ceil(Math.min(n, 15500 - n) / 12) }, (_, i) => `x-h${i}-abcd`).join(",");
    const res = await rawRequest(srv.port, req("OPTIONS", `${P}?EIO=4&transport=polling`, {
      headers: [`Origin: ${o}`, "Access-Control-Request-Method: POST", `Access-Control-Request-Headers: ${want}`],
    }));
    checkHead(res, o);
    assert.equal(res.status, 204);
    assert.equal(res.headers["access-control-allow-headers"], want);
    assert.equal(res.headers["access-control-allow-methods"], "GET,HEAD,PUT,PATCH,POST,DELETE");
  }
});

test("sse: the stream head and prelude are exactly the bytes promised, with a long Origin", async () => {
  for (const n of LENGTHS) {
    const o = origin(n);
    const c = await rawConnect(srv.port);
    try {
      c.write(req("GET", `${P}?EIO=4&transport=sse`, { headers: [`Origin: ${o}`, "Accept: text/event-stream"] }));
      const expected =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-transform\r\n" +
        "X-Accel-Buffering: no\r\nConnection: close\r\n" +
        `Access-Control-Allow-Origin: ${o}\r\nVary: Origin\r\n\r\nretry: 1000\n\n`;
      const deadline = Date.now() + 10000;
      while (!c.buf.includes('"pingInterval"') && !c.ended && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      const got = c.buf.toString("latin1");
      assert.equal(got.slice(0, expected.length), expected, `Origin of ${n} bytes`);
      // The first event follows at once: the open packet, nothing else before it.
      assert.match(got.slice(expected.length), /^id: [^\n]+\ndata: 0\{"sid":"[^"]+"/);
      assert.ok(!c.buf.includes(0), "a NUL byte on the wire");
    } finally {
      c.destroy();
    }
  }
});

test("sse: the upstream POST answers a long Origin whole", async () => {
  const o = origin(6000);
  const c = await rawConnect(srv.port);
  try {
    c.write(req("GET", `${P}?EIO=4&transport=sse`, { headers: [`Origin: ${o}`, "Accept: text/event-stream"] }));
    const deadline = Date.now() + 10000;
    while (!c.buf.includes('"pingInterval"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const sid = /"sid":"([^"]+)"/.exec(c.buf.toString())[1];
    for (const n of LENGTHS) {
      const on = origin(n);
      const post = await rawRequest(srv.port, req("POST", `${P}?EIO=4&transport=sse&sid=${sid}`, {
        headers: [`Origin: ${on}`, "Content-Type: text/plain"], body: "3",
      }));
      checkHead(post, on);
      assert.equal(post.text, "ok");
    }
  } finally {
    c.destroy();
  }
});

test("websocket: the 101 with a long Origin and a long Sec-WebSocket-Extensions offer", async () => {
  for (const n of LENGTHS) {
    const o = origin(n);
    const key = crypto.randomBytes(16).toString("base64");
    const accept = crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
    // A long offer list: many unknown extensions, then permessage-deflate with parameters.
    const ext = Array.from({ length: Math.ceil(Math.min(n, 15500 - n) / 10) }, (_, i) => `x-e${i}`).join(", ") +
      ", permessage-deflate; client_max_window_bits; server_max_window_bits=10";
    const c = await rawConnect(srv.port);
    try {
      c.write(req("GET", `${P}?EIO=4&transport=websocket`, {
        headers: [`Origin: ${o}`, "Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Key: ${key}`,
          "Sec-WebSocket-Version: 13", `Sec-WebSocket-Extensions: ${ext}`],
      }));
      const res = await c.response(10000);
      checkHead(res);
      assert.equal(res.status, 101);
      // tools/ferry does not offer permessage-deflate: the answer names no extension.
      assert.equal(res.head + "\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
    } finally {
      c.destroy();
    }
  }
});

test("websocket: a refused upgrade (bad version) with a long Origin", async () => {
  for (const n of LENGTHS) {
    const o = origin(n);
    const res = await rawRequest(srv.port, req("GET", `${P}?EIO=4&transport=websocket`, {
      headers: [`Origin: ${o}`, "Upgrade: websocket", "Connection: Upgrade",
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}`, "Sec-WebSocket-Version: 8"],
    }));
    checkHead(res, o);
    assert.equal(res.status, 400);
  }
});

test("static: a folder's redirect carries a long path whole in Location", async () => {
  // Nested folders: a path near the static path limit.
  let rel = "";
  for (let i = 0; i < 4; i++) rel += "/" + String(i).padStart(3, "0") + "d".repeat(200);
  fs.mkdirSync(path.join(staticDir, rel), { recursive: true });
  const res = await rawRequest(srv.port, req("GET", rel, { headers: ["Origin: http://a.example"] }));
  checkHead(res);
  assert.equal(res.status, 301);
  assert.equal(res.headers.location, rel + "/");
});

test("ferry_ws_route (examples/ws-echo --deflate): the 101 with a long offer, byte for byte", async () => {
  const ws = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0", "--deflate"]);
  try {
    for (const n of LENGTHS) {
      const key = crypto.randomBytes(16).toString("base64");
      const accept = crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
      const ext = Array.from({ length: Math.ceil(Math.min(n, 15000) / 10) }, (_, i) => `x-e${i}`).join(", ") +
        ", permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits";
      const res = await rawRequest(ws.port, req("GET", "/", {
        headers: [`Origin: ${origin(Math.min(n, 1000))}`, "Upgrade: websocket", "Connection: Upgrade",
          `Sec-WebSocket-Key: ${key}`, "Sec-WebSocket-Version: 13", `Sec-WebSocket-Extensions: ${ext}`],
      }), 10000);
      checkHead(res);
      assert.equal(res.head + "\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n` +
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; " +
        "server_max_window_bits=10\r\n\r\n");
    }
  } finally {
    assert.equal(await ws.stop(), 0);
  }
});
