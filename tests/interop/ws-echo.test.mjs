// examples/ws-echo (the plain WebSocket API) with the npm `ws` client and raw sockets:
// echo of text and binary, permessage-deflate, bad handshakes answered 400 before any 101,
// protocol errors closed with the right code while other connections keep working.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import WebSocket from "ws";
import { startServer, bin, once } from "../lib/server.mjs";

let srv, dsrv;
before(async () => {
  srv = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0", "--max-message", "100000"]);
  dsrv = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0", "--deflate"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ws-echo exits cleanly (no leak, no sanitizer report)");
  assert.equal(await dsrv.stop(), 0);
});

function open(s, opts = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/`, { perMessageDeflate: false, ...opts });
  return once(ws, "open").then(() => ws);
}

function nextMessage(ws) {
  return new Promise((resolve) => ws.once("message", (data, isBinary) => resolve({ data, isBinary })));
}

test("text and binary come back unchanged, in order", async () => {
  const ws = await open(srv);
  const got = [];
  ws.on("message", (data, isBinary) => got.push({ data, isBinary }));
  const big = Buffer.alloc(70000, 7);
  ws.send("héllo ✓");
  ws.send(Buffer.from([0, 1, 2, 255]));
  ws.send(big);
  ws.send("");
  while (got.length < 4) await once(ws, "message");
  assert.equal(got[0].data.toString(), "héllo ✓");
  assert.equal(got[0].isBinary, false);
  assert.deepEqual([...got[1].data], [0, 1, 2, 255]);
  assert.equal(got[1].isBinary, true);
  assert.ok(got[2].data.equals(big));
  assert.equal(got[3].data.length, 0);
  ws.close(1000);
  const [code] = await once(ws, "close");
  assert.equal(code, 1000);
});

test("permessage-deflate is negotiated and round-trips", async () => {
  const ws = await open(dsrv, { perMessageDeflate: true });
  assert.match(ws.extensions, /permessage-deflate/);
  const text = "compress me ".repeat(5000);
  ws.send(text);
  const { data } = await nextMessage(ws);
  assert.equal(data.toString(), text);
  ws.close();
  await once(ws, "close");
});

test("a message over --max-message is closed with 1009", async () => {
  const ws = await open(srv);
  ws.send(Buffer.alloc(100001));
  const [code] = await once(ws, "close");
  assert.equal(code, 1009);
});

function raw(port, bytes) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1", () => sock.write(bytes));
    let buf = Buffer.alloc(0);
    sock.on("data", (d) => (buf = Buffer.concat([buf, d])));
    sock.on("close", () => resolve(buf));
    sock.on("error", reject);
    setTimeout(() => sock.destroy(), 3000);
  });
}

const key = "dGhlIHNhbXBsZSBub25jZQ==";
const hs = (extra = "") =>
  `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${key}\r\n${extra}\r\n`;

test("handshake: RFC 6455 accept value; the first frame may come with the request", async () => {
  // A masked "hi" text frame glued to the request, then a close.
  const frame = Buffer.from([0x81, 0x82, 1, 2, 3, 4, "h".charCodeAt(0) ^ 1, "i".charCodeAt(0) ^ 2]);
  const close = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
  const out = await raw(srv.port, Buffer.concat([Buffer.from(hs("Sec-WebSocket-Version: 13\r\n")), frame, close]));
  const text = out.toString("latin1");
  assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(text, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
  const body = out.subarray(text.indexOf("\r\n\r\n") + 4);
  assert.deepEqual([...body], [0x81, 0x02, 0x68, 0x69, 0x88, 0x02, 0x03, 0xe8]);
});

test("bad handshakes get a clear 400 and never a 101", async () => {
  for (const req of [
    hs(""), // no version
    hs("Sec-WebSocket-Version: 8\r\n"),
    hs("Sec-WebSocket-Version: 13\r\n").replace(key, "short"),
    hs("Sec-WebSocket-Version: 13\r\n").replace("Upgrade: websocket\r\n", ""),
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
  ]) {
    const text = (await raw(srv.port, req)).toString();
    assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/, req);
    assert.match(text, /WebSocket handshake: /);
    assert.doesNotMatch(text, /101/);
  }
});

test("an unmasked frame is closed with 1002, and other connections keep working", async () => {
  const ws = await open(srv);
  const out = await raw(
    srv.port,
    Buffer.concat([Buffer.from(hs("Sec-WebSocket-Version: 13\r\n")), Buffer.from([0x81, 0x02, 0x68, 0x69])]),
  );
  const body = out.subarray(out.indexOf("\r\n\r\n") + 4);
  assert.deepEqual([...body], [0x88, 0x02, 0x03, 0xea]);
  ws.send("still here");
  assert.equal((await nextMessage(ws)).data.toString(), "still here");
  ws.close();
});

test("server shutdown sends 1001 Going Away to open connections", async () => {
  const s = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0"]);
  const ws = await open(s);
  const closed = once(ws, "close");
  const code = await s.stop();
  const [wsCode] = await closed;
  assert.equal(wsCode, 1001);
  assert.equal(code, 0, "ws-echo exits cleanly with a connection open");
});
