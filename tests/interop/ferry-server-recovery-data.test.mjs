// The relay of tools/ferry keeps a client's own state (its nickname, its publish rate buckets)
// across connection-state recovery (ferry_namespace_keep_socket_data(), issue 14): a client that
// set its nickname once, lost its connection and came back publishes under the same name. With
// --recovery-ms 0 a client that comes back is a new socket, named by its new handshake.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import fs from "node:fs";
import path from "node:path";
import { startServer, bin, once, root } from "../lib/server.mjs";

const servers = [];
after(async () => {
  for (const s of servers) assert.equal(await s.stop(), 0, "ferry exits 0 on SIGTERM (no leak)");
});

async function ferry(args = []) {
  const s = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish", "message", ...args]);
  servers.push(s);
  return s;
}

// The next `event` whose first argument passes `match`, within ms.
function next(socket, event, match, ms = 10000) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const t = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no matching "${event}" in ${ms} ms; saw ${JSON.stringify(seen)}`));
    }, ms);
    function on(...args) {
      seen.push(args);
      if (!match(...args)) return;
      clearTimeout(t);
      socket.off(event, on);
      resolve(args);
    }
    socket.on(event, on);
  });
}

// ann sets her nickname in her first handshake only (later ones carry none, as a page that
// forgot it would); bob listens in r1. ann's connection is cut, she comes back, publishes:
// under which name and id does bob see it?
async function cutAndPublish(srv) {
  let handshakes = 0;
  const auth = (cb) => cb(handshakes++ === 0 ? { name: "ann" } : {});
  const a = io(srv.url, { forceNew: true, transports: ["websocket"], auth, reconnection: false });
  const b = io(srv.url, { forceNew: true, transports: ["websocket"], auth: { name: "bob" }, reconnection: false });
  try {
    await Promise.all([once(a, "connect", 10000), once(b, "connect", 10000)]);
    assert.equal((await b.timeout(5000).emitWithAck("join", { room: "r1" })).ok, true);
    const joined = next(b, "presence", (p) => p.joined?.name === "ann");
    assert.equal((await a.timeout(5000).emitWithAck("join", { room: "r1" })).ok, true);
    await joined;
    const id = a.id;
    // The server has let ann go when bob hears she left.
    const left = next(b, "presence", (p) => p.left?.id === id);
    const gone = once(a, "disconnect", 10000);
    a.io.engine.close(); // the connection is lost: the server sees "transport close"
    await gone;
    assert.equal((await left)[0].left.name, "ann");
    const back = once(a, "connect", 10000);
    a.connect(); // with its pid and last offset, as socket.io-client's reconnection does
    await back;
    assert.equal(handshakes, 2, "the second handshake carried no name");
    if (!a.recovered) assert.equal((await a.timeout(5000).emitWithAck("join", { room: "r1" })).ok, true);
    const got = next(b, "message", (d) => d === "back");
    const ack = await a.timeout(5000).emitWithAck("publish", { room: "r1", event: "message", data: "back" });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const [, meta] = await got;
    return { recovered: !!a.recovered, sameId: a.id === id, from: meta.from, id: a.id };
  } finally {
    a.disconnect();
    b.disconnect();
  }
}

test("default: a recovered client keeps its nickname (the relay's socket data)", async () => {
  const srv = await ferry();
  assert.match(srv.stdout(), /connection-state recovery: 120000 ms/);
  const r = await cutAndPublish(srv);
  assert.equal(r.recovered, true, "socket.recovered");
  assert.equal(r.sameId, true, "same socket id");
  assert.deepEqual(r.from, { id: r.id, name: "ann" }, "bob sees ann's message from ann");
});

test("--recovery-ms 0: a client that comes back is a new socket, named by its new handshake", async () => {
  const srv = await ferry(["--recovery-ms", "0"]);
  assert.match(srv.stdout(), /connection-state recovery: off/);
  const r = await cutAndPublish(srv);
  assert.equal(r.recovered, false);
  assert.equal(r.sameId, false);
  assert.deepEqual(r.from, { id: r.id, name: "anonymous" });
});

// `make run` as the Makefile has it (the chat demo on tools/ferry): its command line sets no
// --recovery-ms, so the chat gets recovery by default. Run with the Makefile's own flags (port 0,
// metrics left out: 9464 may be taken), a chat user cut off keeps her nickname and id.
test("make run's command line: recovery on by default, a recovered chat user keeps her nickname", async () => {
  const mk = fs.readFileSync(path.join(root, "Makefile"), "utf8");
  const recipe = /^run:.*\n((?:\t.*\n)+)/m.exec(mk);
  assert.ok(recipe, "the Makefile has a run target");
  const line = recipe[1].replace(/\\\n\s*/g, " ");
  const m = /\$\(RUN_DIR\)\/tools\/ferry\/ferry (.*)/.exec(line);
  assert.ok(m, line);
  const words = m[1].trim().split(/\s+/);
  assert.ok(!words.includes("--recovery-ms") && !/recovery/.test(line), "make run does not turn recovery off");
  const args = [];
  for (let i = 0; i < words.length; i += 2) {
    const [flag, v] = [words[i], words[i + 1]];
    if (flag === "--metrics-listen") continue;
    args.push(flag, flag === "--port" ? "0" : flag === "--static" ? path.join(root, v) : v);
  }
  assert.deepEqual(args.filter((a) => a.startsWith("--")), ["--host", "--port", "--static", "--allow-publish"]);
  const srv = await startServer(bin("tools/ferry/ferry"), args);
  servers.push(srv);
  assert.match(srv.stdout(), /connection-state recovery: 120000 ms/);
  const r = await cutAndPublish(srv);
  assert.equal(r.recovered, true, "socket.recovered");
  assert.equal(r.sameId, true, "same socket id");
  assert.deepEqual(r.from, { id: r.id, name: "ann" });
});
