// examples/chat-server, the chat's server written in C on ferry's Socket.IO API: the same
// browser suite as tools/ferry (chat-suite.mjs: two users across rooms, history, typing, ticks,
// unread, an outage; the screenshot of its README), then what it refuses, with the official
// socket.io-client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, bin, once } from "../lib/server.mjs";
import { chatSuite, PING_ARGS } from "./chat-suite.mjs";

const BIN = bin("examples/chat-server/ferry-chat-server");

chatSuite("examples/chat-server", "chat-server", () =>
  startServer(BIN, ["--port", "0", "--static", "examples/chat", ...PING_ARGS]));

let srv;
const sockets = [];
before(async () => {
  srv = await startServer(BIN, ["--port", "0"]);
});
after(async () => {
  for (const s of sockets) s.disconnect();
  assert.equal(await srv.stop(), 0, "chat-server exits 0 on SIGTERM (no leak)");
});

async function client(name) {
  const s = io(srv.url, { forceNew: true, reconnection: false, auth: { name } });
  sockets.push(s);
  await once(s, "connect");
  return s;
}
const call = (s, ev, arg) => s.timeout(5000).emitWithAck(ev, arg);

test("chat-server serves the page and ferry's client", async () => {
  const page = await fetch(srv.url + "/");
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>ferry chat<\/title>/);
  const js = await fetch(srv.url + "/ferry/ferry.min.js");
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type"), /javascript/);
});

test("chat-server refuses bad names, rooms, events and receipts with a reason", async () => {
  for (const name of ["", "x".repeat(33), "tab\there", 42]) {
    const s = io(srv.url, { forceNew: true, reconnection: false, auth: { name } });
    sockets.push(s);
    const err = await once(s, "connect_error");
    assert.match(err.message, /invalid name/, JSON.stringify(name));
  }
  const a = await client("ånn ✓"); // multi-byte UTF-8 counts characters, not bytes
  const no = async (ev, arg, re) => {
    const r = await call(a, ev, arg);
    assert.equal(r.ok, false, `${ev} ${JSON.stringify(arg)}`);
    assert.match(r.error, re, `${ev} ${JSON.stringify(arg)}`);
  };
  await no("join", {}, /room/);
  await no("join", { room: "" }, /room/);
  await no("join", { room: "x".repeat(129) }, /room/);
  await no("join", "lobby", /room/);
  await no("join", { room: a.id }, /private/);
  await no("publish", { room: "lobby", event: "message", data: {} }, /join it first/);
  assert.equal((await call(a, "join", { room: "lobby" })).ok, true);
  await no("publish", { room: "lobby", event: "admin", data: {} }, /message or typing/);
  await no("publish", { room: "lobby", data: {} }, /message or typing/);
  await no("receipt", { room: "lobby", id: "nope" }, /no such message/);
  await no("leave", { room: "elsewhere" }, /not in/);
  for (let i = 1; i < 16; i++) assert.equal((await call(a, "join", { room: `r${i}` })).ok, true);
  await no("join", { room: "r16" }, /at most 16/);
  a.disconnect();
});

test("chat-server: history of the last 50 messages, a room's history goes with its last member", async () => {
  const a = await client("ann");
  await call(a, "join", { room: "h" });
  const ids = [];
  for (let i = 1; i <= 53; i++)
    ids.push((await call(a, "publish", { room: "h", event: "message", data: { text: `m${i}` } })).id);
  assert.equal(new Set(ids).size, 53);
  assert.deepEqual(await call(a, "publish", { room: "h", event: "typing", data: { typing: true } }), { ok: true });
  const b = await client("bob");
  const j = await call(b, "join", { room: "h" });
  assert.equal(j.history.length, 50);
  assert.equal(j.history[0].data.text, "m4");
  assert.equal(j.history[49].data.text, "m53");
  assert.deepEqual(j.history[49].from, { id: a.id, name: "ann" });
  assert.deepEqual(j.members.map((m) => m.name), ["ann", "bob"]);
  const got = once(a, "receipt");
  assert.deepEqual(await call(b, "receipt", { room: "h", id: ids[52] }), { ok: true });
  // Recovery is on: the event carries its offset as a last argument, as Socket.IO sends it.
  const [receipt, offset] = await got;
  assert.deepEqual(receipt, { room: "h", id: ids[52], by: { id: b.id, name: "bob" } });
  assert.equal(typeof offset, "string");
  a.disconnect();
  assert.deepEqual(await call(b, "leave", { room: "h" }), { ok: true, room: "h" });
  assert.deepEqual((await call(b, "join", { room: "h" })).history, [], "gone with the last member");
  b.disconnect();
});
