// Binary arguments travel as raw bytes (ferry.h "Binary arguments"): what a client sends as a
// binary attachment reaches the app and comes back as one WebSocket binary frame with the very
// bytes (no base64 on a WebSocket), as one "b<base64>" packet on polling (Engine.IO v4), and
// tools/ferry's --history keeps a binary publish for later joiners.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { startServer, bin, once } from "../lib/server.mjs";

// --suite brings its echo handlers and its 300/200 ms heartbeat; a loaded ASan machine misses
// that deadline (the session closes and the echo never comes), so the heartbeat is relaxed here.
const SUITE = ["--suite", "--port", "0", "--ping-interval", "2000", "--ping-timeout", "5000"];

// A raw Engine.IO/Socket.IO WebSocket client: every message with its frame kind.
async function rawWs(url) {
  const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  const queue = [];
  let waiter = null;
  ws.on("message", (data, isBinary) => {
    queue.push({ data: Buffer.from(data), isBinary });
    if (waiter) waiter();
  });
  const next = (ms = 10000) =>
    new Promise((resolve, reject) => {
      const take = () => {
        // Skip heartbeats: only what the test is about.
        while (queue.length && !queue[0].isBinary && queue[0].data.toString() === "2") {
          queue.shift();
          ws.send("3");
        }
        if (queue.length) {
          waiter = null;
          clearTimeout(t);
          resolve(queue.shift());
          return true;
        }
        return false;
      };
      const t = setTimeout(() => reject(new Error("no message")), ms);
      if (!take()) waiter = take;
    });
  await once(ws, "open", 10000);
  return { ws, next };
}

test("websocket: a binary attachment is echoed as one binary frame with the same bytes", async () => {
  const srv = await startServer(bin("tools/ferry/ferry"), SUITE);
  try {
    const { ws, next } = await rawWs(srv.url);
    assert.match((await next()).data.toString(), /^0\{/);
    ws.send("40");
    assert.match((await next()).data.toString(), /^40\{/);
    assert.match((await next()).data.toString(), /^42\["auth"/);
    for (const size of [0, 1, 4096, 70000]) {
      const bytes = randomBytes(size);
      ws.send('452-["message",{"_placeholder":true,"num":0},{"n":[1,{"_placeholder":true,"num":1}]}]');
      const other = Buffer.from([0, 255, 0]);
      ws.send(bytes);
      ws.send(other);
      const head = await next();
      assert.equal(head.isBinary, false);
      assert.equal(head.data.toString(),
        '452-["message-back",{"_placeholder":true,"num":0},{"n":[1,{"_placeholder":true,"num":1}]}]');
      const a = await next(), b = await next();
      assert.equal(a.isBinary, true, "a binary frame, not base64 text");
      assert.ok(a.data.equals(bytes), `${size} bytes back unchanged`);
      assert.equal(b.isBinary, true);
      assert.ok(b.data.equals(other));
    }
    // A packet that claims a binary argument in text form with bad base64 is refused at
    // the echo (the app's emit fails), not sent with wrong bytes: nothing comes back.
    ws.send('42["message",{"_ferry_binary":"(3 bytes)"}]');
    ws.send('42["message","after"]');
    const after = await next();
    assert.equal(after.data.toString(), '42["message-back","after"]');
    ws.close();
  } finally {
    assert.equal(await srv.stop(), 0, "exits 0 under LSan");
  }
});

test("polling: the same attachment is one b<base64> packet, decoded once by the client", async () => {
  const srv = await startServer(bin("tools/ferry/ferry"), SUITE);
  const s = io(srv.url, { transports: ["polling"], forceNew: true, reconnection: false });
  try {
    await once(s, "connect", 10000);
    const bytes = randomBytes(4096);
    const back = once(s, "message-back", 10000);
    s.emit("message", bytes, { nested: [bytes.subarray(0, 10)] });
    const [a, o] = await back;
    assert.ok(Buffer.isBuffer(a) && a.equals(bytes));
    assert.ok(Buffer.from(o.nested[0]).equals(bytes.subarray(0, 10)));
  } finally {
    s.close();
    assert.equal(await srv.stop(), 0);
  }
});

test("tools/ferry --history keeps a binary publish: live and later joiners get the bytes", async () => {
  const srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish",
    "message", "--history", "4", "--publish-token", "binary-token"]);
  const socks = [];
  const mk = async (name, transports = ["websocket"]) => {
    const c = io(srv.url, { forceNew: true, reconnection: false, auth: { name }, transports });
    socks.push(c);
    await once(c, "connect", 10000);
    return c;
  };
  try {
    const ann = await mk("ann"), bob = await mk("bob", ["polling"]);
    await ann.timeout(5000).emitWithAck("join", { room: "files" });
    await bob.timeout(5000).emitWithAck("join", { room: "files" });
    const bytes = randomBytes(4096);
    const live = once(bob, "message", 10000);
    const r = await ann.timeout(5000).emitWithAck("publish",
      { room: "files", event: "message", data: { name: "a.bin", file: bytes } });
    assert.equal(r.ok, true);
    const [data] = await live;
    assert.equal(data.name, "a.bin");
    assert.ok(Buffer.from(data.file).equals(bytes), "live receiver gets the bytes");
    const cid = await mk("cid");
    const j = await cid.timeout(5000).emitWithAck("join", { room: "files" });
    assert.equal(j.history.length, 1);
    assert.ok(Buffer.from(j.history[0].data.file).equals(bytes), "history gives the bytes back");

    // A backend publishes bytes through POST /api/publish in the text form.
    const api = (data) => fetch(`${srv.url}/api/publish`, { method: "POST",
      headers: { authorization: "Bearer binary-token", "content-type": "application/json" },
      body: JSON.stringify({ room: "files", event: "message", data }) });
    const more = randomBytes(1000);
    const fromApi = once(bob, "message", 10000);
    const res = await api({ name: "b.bin", file: { _ferry_binary: more.toString("base64") } });
    assert.equal(res.status, 200);
    const [d2] = await fromApi;
    assert.ok(Buffer.isBuffer(d2.file) && d2.file.equals(more), "a Buffer, from base64 sent once");
    const bad = await api({ file: { _ferry_binary: "(3 bytes)" } });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error, "not_sent");
  } finally {
    for (const c of socks) c.close();
    assert.equal(await srv.stop(), 0);
  }
});
