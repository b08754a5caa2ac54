// examples/paced-producer as users run it (its binary, --port 0, SIGTERM): the drain callback
// (ferry_socket_on_drain) and the bytes queued (ferry_socket_buffered_amount) end to end
// (issue 14, docs/reliability.md "Pacing a producer"). Three clients at once: a raw WebSocket
// client and a raw long-polling client that read slowly (tests/lib/slowreader.mjs: the kernel's
// buffers and the server's queue fill), and the official socket.io-client reading at full
// speed. Each must get every numbered message once, in order, then "done"; the example's own
// line per client must show that the slow ones paused at the high-water mark and were resumed
// by the drain callback as often, and that their queue never went past the mark by more than
// one message; the process exits 0 on SIGTERM (no leak under LeakSanitizer).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { io } from "socket.io-client";
import { startServer, bin } from "../lib/server.mjs";
import { slowWebSocket, slowPolling } from "../lib/slowreader.mjs";

const BIN = bin("examples/paced-producer/ferry-paced-producer");
const COUNT = 1000;
const SIZE = 1024;
const HIGH = 32768;
const LOW = 8192;
const servers = [];
after(async () => {
  for (const s of servers) assert.equal(await s.stop(), 0, "ferry-paced-producer exits 0 on SIGTERM (no leak)");
});

function socketIdOf(c) {
  const p = c.packets.find((x) => x.startsWith("40{"));
  return JSON.parse(p.slice(2)).sid;
}

// Every message 0..COUNT-1 once, in order, then done {count}.
function assertStream(label, names, ns) {
  assert.equal(names.at(-1), "done", `${label}: "done" came last`);
  assert.deepEqual(ns, Array.from({ length: COUNT }, (_, i) => i), `${label}: every message once, in order`);
}

function lineFor(srv, id) {
  const m = new RegExp(`paced-producer: ${id} done: (\\d+) messages, (\\d+) pauses, (\\d+) drains, most queued (\\d+) bytes`).exec(srv.stdout());
  return m && { messages: Number(m[1]), pauses: Number(m[2]), drains: Number(m[3]), most: Number(m[4]) };
}

async function waitLine(srv, id) {
  for (let i = 0; i < 200; i++) {
    const l = lineFor(srv, id);
    if (l) return l;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no report line for ${id}: ${srv.stdout()}`);
}

test("paced-producer: slow and fast clients each get every message in order; the queue stays at the high-water mark; drains resume it", { timeout: 120000 }, async () => {
  const srv = await startServer(BIN, ["--port", "0", "--count", String(COUNT), "--size", String(SIZE),
    "--high-water", String(HIGH), "--low-water", String(LOW)]);
  servers.push(srv);
  assert.match(srv.stdout(), /1000 messages of 1024 bytes per client, pausing at 32768 bytes queued, resuming at 8192/);

  const slowWs = await slowWebSocket(srv.port);
  slowWs.setRate(160 * 1024);
  const slowPoll = await slowPolling(srv.port);
  slowPoll.setRate(160 * 1024);
  const fast = io(srv.url, { forceNew: true, reconnection: false });
  let fastId;
  fast.on("connect", () => (fastId = fast.id));
  const fastNames = [], fastNs = [];
  fast.on("msg", (d) => {
    fastNames.push("msg");
    fastNs.push(d.n);
  });
  const fastDone = new Promise((r) => fast.on("done", (d) => {
    fastNames.push("done");
    r(d);
  }));
  const t0 = Date.now();
  await Promise.all([slowWs.connect("/"), slowPoll.connect("/")]);
  const done = (c) => c.until(() => c.events.some((e) => e.name === "done"), 90000, "done");
  try {
    await Promise.all([done(slowWs), done(slowPoll), fastDone]);
  } finally {
    slowWs.close();
    slowPoll.close();
    fast.disconnect();
  }
  const ms = Date.now() - t0;
  for (const [label, c] of [["slow WebSocket", slowWs], ["slow long-polling", slowPoll]]) {
    assertStream(label, c.events.map((e) => e.name), c.events.filter((e) => e.name === "msg").map((e) => e.data.n));
    assert.equal(c.events.find((e) => e.name === "done").data.count, COUNT);
    assert.equal(c.ended && !/closed/.test(c.endReason) ? c.endReason : "open", "open", `${label}: never closed`);
  }
  assertStream("socket.io-client", fastNames, fastNs);
  const lines = {};
  for (const [label, id] of [["slow WebSocket", socketIdOf(slowWs)], ["slow long-polling", socketIdOf(slowPoll)], ["socket.io-client", fastId]]) {
    const l = await waitLine(srv, id);
    lines[label] = l;
    assert.equal(l.messages, COUNT, `${label}: the example sent them all`);
    assert.equal(l.drains, l.pauses, `${label}: every pause was resumed by the drain callback`);
    // A message is ~1060 bytes encoded: the queue passes the mark by less than one.
    assert.ok(l.most < HIGH + SIZE + 100, `${label}: at most ${l.most} bytes queued (mark ${HIGH})`);
  }
  for (const label of ["slow WebSocket", "slow long-polling"])
    assert.ok(lines[label].pauses >= 5, `${label}: it paused at the mark (${lines[label].pauses} times)`);
  const fmt = (l) => `${l.pauses} pauses, ${l.drains} drains, most queued ${l.most} B`;
  console.log(`# paced-producer: ${COUNT} messages of ${SIZE} B to each client in ${ms} ms; slow WebSocket (160 KiB/s) ${fmt(lines["slow WebSocket"])}; slow long-polling (160 KiB/s) ${fmt(lines["slow long-polling"])}; socket.io-client ${fmt(lines["socket.io-client"])}`);
});

test("paced-producer refuses bad options with one clear line and exit 2", () => {
  for (const [args, re] of [
    [["--count", "x"], /invalid count 'x'/],
    [["--high-water", "100"], /invalid high-water '100'/],
    [["--low-water", "70000", "--high-water", "65536"], /--low-water \(70000\) must be under --high-water \(65536\)/],
    [["--size", "-1"], /invalid size '-1'/],
    [["--nope", "1"], /unknown option '--nope'/],
  ]) {
    const r = spawnSync(BIN, ["--port", "0", ...args], { encoding: "utf8", timeout: 10000 });
    assert.equal(r.status, 2, args.join(" "));
    assert.match(r.stderr, re);
  }
});
