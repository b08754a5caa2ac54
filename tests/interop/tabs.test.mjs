// The "tabs" extension (docs/protocol.md section 11) on the wire, over a raw WebSocket against
// tests/servers/ferry-test-sio: several tabs on one extension session each get their own socket
// (id, events, acks, binary attachments, rooms), "x<tab>" and a server disconnect end one tab
// only, and bad tab messages close the session; an official session knows nothing of it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startSio } from "../lib/sio.mjs";

let srv;
before(async () => {
  srv = await startSio(["--transports", "polling,websocket"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

// A raw WebSocket session; next(re) awaits the next message matching re (text), bin() the next
// binary one; closed() resolves when the server closes it.
async function open(ext = true) {
  const ws = new WebSocket(`${srv.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket${ext ? "&ferry=1" : ""}`);
  const q = [];
  const waiters = [];
  ws.on("message", (d, isBin) => {
    const m = isBin ? d : d.toString();
    if (m === "2") return ws.send("3");
    q.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise((r) => ws.on("close", r));
  const take = async (pred, what) => {
    const t0 = Date.now();
    for (;;) {
      const i = q.findIndex(pred);
      if (i >= 0) return q.splice(i, 1)[0];
      if (Date.now() - t0 > 10000) throw new Error("timeout waiting for " + what + "; have " + JSON.stringify(q.map(String)));
      await Promise.race([new Promise((r) => waiters.push(r)), new Promise((r) => setTimeout(r, 200))]);
    }
  };
  const c = {
    ws,
    send: (s) => ws.send(s),
    next: (re) => take((m) => typeof m === "string" && re.test(m), re),
    bin: () => take((m) => typeof m !== "string", "binary"),
    closed: () => Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error("not closed")), 10000))]),
  };
  c.hs = JSON.parse((await c.next(/^0/)).slice(1));
  return c;
}

const connect = async (c, tab) => {
  c.send(`4t${tab}:0`);
  return JSON.parse((await c.next(new RegExp(`^4t${tab}:0\\{`))).slice(`4t${tab}:0`.length)).sid;
};

test("the server offers tabs to extension sessions only", async () => {
  const c = await open();
  assert.ok(c.hs.ext.includes("tabs"));
  c.ws.close();
  const o = await open(false);
  assert.equal(o.hs.ext, undefined);
  // For an official session a tab message is a packet that does not parse: the session ends.
  o.send("4t1:0");
  await o.closed();
});

test("two tabs on one session: own sockets, events, acks, binary, rooms; x ends one tab", async () => {
  const c = await open();
  const a = await connect(c, "1");
  const b = await connect(c, "2");
  assert.notEqual(a, b);
  const seen = await srv.next((e) => e.event === "connect" && e.id === b);
  const first = await srv.next((e) => e.event === "connect" && e.id === a);
  assert.equal(first.sid, seen.sid, "both sockets on the one Engine.IO session");
  // An ack goes back to the tab that asked.
  c.send('4t2:27["message-with-ack","hi"]');
  assert.equal(await c.next(/^4t2:3/), '4t2:37["hi"]');
  // A binary event and its attachment, and the binary answer, stay with their tab.
  c.send('4t1:51-["message",{"_placeholder":true,"num":0}]');
  c.send(Buffer.from([1, 2, 3]));
  assert.equal(await c.next(/^4t1:5/), '4t1:51-["message-back",{"_placeholder":true,"num":0}]');
  assert.deepEqual([...(await c.bin())], [1, 2, 3]);
  // Rooms: tab 1 joins r; "to r" from tab 2 reaches tab 1 only.
  c.send('4t1:21["join","r"]');
  await c.next(/^4t1:31/);
  c.send('4t2:22["to","r","news",1]');
  assert.equal(await c.next(/^4t2:32/), "4t2:32[1]");
  assert.equal(await c.next(/news/), '4t1:2["news",1]');
  // x1: tab 1's socket leaves (transport close), tab 2 goes on.
  c.send("4x1");
  const d = await srv.disconnectOf(a);
  assert.equal(d.reason, "transport close");
  c.send('4t2:23["message-with-ack","still"]');
  assert.equal(await c.next(/^4t2:33/), '4t2:33["still"]');
  c.send('4t2:24["to","r","news",2]');
  assert.equal(await c.next(/^4t2:34/), "4t2:34[0]", "tab 1 left its room");
  // A server disconnect with close ends the tab, not the session: DISCONNECT then x2.
  c.send('4t2:2["disconnect-me",true]');
  assert.equal(await c.next(/^4t2:1/), "4t2:1");
  assert.equal(await c.next(/^4x/), "4x2");
  const e = await connect(c, "3");
  assert.ok(e);
  c.ws.close();
  await srv.disconnectOf(e);
});

test("bad tab messages close the session", async () => {
  for (const bad of ["4t:0", "4t12345678901234567:0", "4t1", "4t1;0", "4x", "4x1:", "4t!:0", "4t1:0/nope,{}\n4t1:9"]) {
    const c = await open();
    for (const m of bad.split("\n")) c.send(m);
    await c.closed();
  }
  // An attachment cut by a text message.
  const c = await open();
  await connect(c, "1");
  c.send('4t1:51-["message",{"_placeholder":true,"num":0}]');
  c.send('4t1:2["message"]');
  await c.closed();
});

test("late packets of an ended tab are dropped, attachments included; the session goes on", async () => {
  const c = await open();
  const a = await connect(c, "1");
  c.send("4x1");
  await srv.disconnectOf(a);
  c.send('4t1:21["message-with-ack","late"]');
  c.send('4t1:52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  c.send(Buffer.from([1]));
  c.send(Buffer.from([2]));
  c.send('4t7:2["message"]');
  await connect(c, "2");
  c.send('4t2:23["message-with-ack","on"]');
  assert.equal(await c.next(/^4t2:3/), '4t2:33["on"]');
  c.ws.close();
});

test("at most 64 tabs per session", async () => {
  const c = await open();
  for (let i = 0; i < 64; i++) c.send(`4t${i}:0`);
  for (let i = 0; i < 64; i++) await c.next(new RegExp(`^4t${i}:0\\{`));
  c.send("4t64:0");
  await c.closed();
});
