// A slow consumer under each backpressure policy of tools/ferry (--backpressure,
// --max-queue-bytes; issue 14), run as users run it. One client joins room "r" and then stops
// reading (a raw long-polling client that sends no GET: the server's queue is the only buffer
// between them); a fast socket.io-client on WebSocket is in the same room; a backend publishes
// numbered events through POST /api/publish: plain ("n"), volatile ("v") and keyed ("k", four
// keys). While the slow client is over the bound it asks the relay something with an
// acknowledgement (a control packet: its answer must come). Then it reads again, until the
// final "end" publish (or the end of its session), and the test checks exactly what the policy
// promises (docs/reliability.md "Backpressure"). Counts are printed.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, bin, once } from "../lib/server.mjs";

const TOKEN = "bp-token";
const BOUND = 30000; // drop-volatile and latest close past twice this: the 160 non-volatile publishes fit under it
const N = 240; // publishes of about 300 bytes: 72 KB, over three times the bound
const servers = [];
after(async () => {
  for (const s of servers) assert.equal(await s.stop(), 0, "ferry exits 0 on SIGTERM (no leak)");
});

async function ferry(policy) {
  const s = await startServer(bin("tools/ferry/ferry"), [
    "--port", "0", "--publish-token", TOKEN, "--backpressure", policy,
    "--max-queue-bytes", String(BOUND), "--publish-rate", "0",
  ]);
  servers.push(s);
  return s;
}

async function publish(srv, body) {
  const r = await fetch(`${srv.url}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

// A raw Engine.IO v4 long-polling client: it reads only when the test says so.
class SlowClient {
  constructor(url) {
    this.base = `${url}/socket.io/?EIO=4&transport=polling`;
    this.packets = [];
    this.ended = false;
  }
  async open() {
    const body = await (await fetch(this.base)).text();
    this.sid = JSON.parse(body.slice(1)).sid;
    this.url = `${this.base}&sid=${this.sid}`;
    await this.post('40{"name":"slow"}');
    await this.readUntil((p) => p.startsWith("40"));
    await this.post('421["join",{"room":"r"}]');
    await this.readUntil((p) => p.startsWith("431["));
    this.packets = [];
  }
  async post(body) {
    const r = await fetch(this.url, { method: "POST", body });
    assert.equal(r.status, 200, `POST ${body}`);
  }
  // One GET; false when the session is over (400, or a close packet).
  async poll() {
    const r = await fetch(this.url, { signal: AbortSignal.timeout(10000) });
    const text = await r.text();
    if (r.status !== 200) {
      this.ended = true;
      return false;
    }
    for (const p of text.split("\x1e")) {
      if (p === "1") this.ended = true;
      else if (p === "2") await this.post("3"); // a ping while catching up: answered
      else this.packets.push(p);
    }
    return !this.ended;
  }
  async readUntil(pred, max = 400) {
    for (let i = 0; i < max; i++) {
      if (this.packets.some(pred)) return true;
      if (!(await this.poll())) return false;
    }
    throw new Error("the awaited packet never came");
  }
  // The relayed events: [name, i, key] for our numbered publishes, in arrival order.
  events() {
    const out = [];
    for (const p of this.packets) {
      if (!p.startsWith("42[")) continue;
      const [name, data] = JSON.parse(p.slice(2));
      if (data && typeof data.i === "number") out.push([name, data.i, data.key ?? null]);
    }
    return out;
  }
}

const pad = "x".repeat(200);
const KEYS = ["AAA", "BBB", "CCC", "DDD"];

// The plan: i % 3 === 0 plain, 1 volatile, 2 keyed.
function plan(i) {
  if (i % 3 === 0) return { event: "n", data: { i, pad } };
  if (i % 3 === 1) return { event: "v", data: { i, pad }, volatile: true };
  const key = KEYS[(i / 3) % 4 | 0];
  return { event: "k", data: { i, key, pad }, key };
}

async function run(policy) {
  const srv = await ferry(policy);
  const slow = new SlowClient(srv.url);
  await slow.open();
  const fast = io(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  const fastGot = [];
  for (const ev of ["n", "v", "k"]) fast.on(ev, (d) => fastGot.push([ev, d.i]));
  const fastEnd = new Promise((r) => fast.on("end", r));
  await once(fast, "connect");
  assert.equal((await fast.timeout(5000).emitWithAck("join", { room: "r" })).ok, true);
  const recipients = [];
  for (let i = 0; i < N; i++) {
    const { event, data, key, volatile: vol } = plan(i);
    const r = await publish(srv, { room: "r", event, data, ...(key ? { key } : {}), ...(vol ? { volatile: true } : {}) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    recipients.push(r.body.recipients);
    if (i === N / 2 && policy !== "close") {
      // Over the bound now: a request with an ack (its answer is a control packet).
      await slow.post('422["join",{"room":"r2"}]');
    }
  }
  assert.equal((await publish(srv, { room: "r", event: "end", data: { end: true } })).status, 200);
  await fastEnd;
  fast.disconnect();
  // The slow client reads again.
  await slow.readUntil((p) => p.startsWith('42["end"'));
  return { srv, slow, fastGot, recipients };
}

function count(evs, name) {
  return evs.filter((e) => e[0] === name).length;
}

// Every plain publish, in order, once.
function assertPlainInOrder(evs, label) {
  const n = evs.filter((e) => e[0] === "n").map((e) => e[1]);
  assert.deepEqual(n, Array.from({ length: N / 3 }, (_, j) => 3 * j), `${label}: every plain publish, in order, once`);
}

test("backpressure close: the slow client's session is closed with the reason; the fast one gets everything", { timeout: 60000 }, async () => {
  const { srv, slow, fastGot, recipients } = await run("close");
  assert.equal(slow.ended, true, "the slow session ended");
  assert.match(srv.stderr(), /send queue over its bound \(\d+ bytes queued\): closing/, "closed as a slow consumer (FERRY_REASON_QUEUE_FULL)");
  assert.equal(fastGot.length, N, "the fast client got every publish");
  const dropped = recipients.indexOf(1);
  assert.ok(dropped > 0, "from some publish on, only the fast client is left in the room");
  const evs = slow.events();
  // What it had queued before the close came first, in order.
  for (let j = 1; j < evs.length; j++) assert.ok(evs[j][1] > evs[j - 1][1], "in order, none twice");
  assert.ok(evs.length < N, "it did not get everything");
  console.log(`# close: the slow client was closed after ${dropped} publishes (bound ${BOUND} bytes); it read ${evs.length} events; the fast client ${fastGot.length} of ${N}`);
});

test("backpressure drop-volatile: every non-volatile publish arrives in order, volatile ones may be missing; acks answered", { timeout: 60000 }, async () => {
  const { slow, fastGot } = await run("drop-volatile");
  assert.equal(slow.ended, false, "the slow session is still open");
  const evs = slow.events();
  assertPlainInOrder(evs, "drop-volatile");
  const k = evs.filter((e) => e[0] === "k").map((e) => e[1]);
  assert.deepEqual(k, Array.from({ length: N / 3 }, (_, j) => 3 * j + 2), "keyed publishes are plain here: all, in order");
  const v = evs.filter((e) => e[0] === "v").map((e) => e[1]);
  assert.deepEqual(v, [...v].sort((a, b) => a - b), "the volatile ones that arrived are in order");
  assert.ok(v.length < N / 3, "volatile publishes were dropped for the slow client");
  assert.ok(slow.packets.some((p) => p.startsWith("432[")), "the ack answer arrived");
  assert.equal(fastGot.length, N);
  console.log(`# drop-volatile: plain ${count(evs, "n")}/${N / 3}, keyed ${count(evs, "k")}/${N / 3}, volatile ${v.length}/${N / 3}, ack answered; fast client ${fastGot.length}/${N}`);
});

test("backpressure latest: the last value of every key arrives, each key in order; plain ones all arrive", { timeout: 60000 }, async () => {
  const { slow, fastGot } = await run("latest");
  assert.equal(slow.ended, false, "the slow session is still open");
  const evs = slow.events();
  assertPlainInOrder(evs, "latest");
  const last = {};
  for (const [name, i, key] of evs.filter((e) => e[0] === "k")) {
    assert.ok(!(key in last) || i > last[key], `key ${key}: in order, none twice`);
    last[key] = i;
  }
  const want = {};
  for (let i = 0; i < N; i++) if (plan(i).key) want[plan(i).key] = i;
  assert.deepEqual(last, want, "the latest value of every key arrived");
  const nk = count(evs, "k");
  assert.ok(nk < N / 3, "older values of a key were replaced");
  assert.ok(slow.packets.some((p) => p.startsWith("432[")), "the ack answer arrived");
  assert.equal(fastGot.length, N);
  console.log(`# latest: keyed ${nk}/${N / 3} delivered (the last of each of ${KEYS.length} keys), plain ${count(evs, "n")}/${N / 3}, volatile ${count(evs, "v")}/${N / 3}, ack answered; fast client ${fastGot.length}/${N}`);
});

test("backpressure spill: after the slow client resumes, everything not volatile arrives in order, none twice, on the same session", { timeout: 60000 }, async () => {
  const { slow, fastGot } = await run("spill");
  assert.equal(slow.ended, false, "the same session, never closed");
  const evs = slow.events();
  const nv = evs.filter((e) => e[0] !== "v").map((e) => e[1]);
  const want = [];
  for (let i = 0; i < N; i++) if (i % 3 !== 1) want.push(i);
  assert.deepEqual(nv, want, "every plain and keyed publish, in order, none twice");
  // The offsets the client saw (connection-state recovery's) only go up.
  const offsets = slow.packets.filter((p) => p.startsWith("42[")).map((p) => JSON.parse(p.slice(2)).at(-1)).filter((o) => typeof o === "string").map(Number);
  for (let j = 1; j < offsets.length; j++) assert.ok(offsets[j] > offsets[j - 1], "offsets strictly increase");
  assert.ok(slow.packets.some((p) => p.startsWith("432[")), "the ack answer arrived");
  assert.equal(fastGot.length, N);
  console.log(`# spill: ${nv.length}/${want.length} non-volatile publishes in order after resuming, volatile ${count(evs, "v")}/${N / 3}, ack answered; fast client ${fastGot.length}/${N}`);
});

test("tools/ferry refuses bad backpressure settings with one clear line; --help documents the flags", async () => {
  const { spawnSync } = await import("node:child_process");
  const h = spawnSync(bin("tools/ferry/ferry"), ["--help"], { encoding: "utf8", timeout: 10000 });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--max-queue-bytes BYTES[\s\S]*FERRY_MAX_QUEUE_BYTES, default 8388608/);
  assert.match(h.stdout, /--backpressure POLICY[\s\S]*close[\s\S]*drop-volatile[\s\S]*latest[\s\S]*spill[\s\S]*FERRY_BACKPRESSURE, default close/);
  const cases = [
    [["--backpressure", "drop"], /invalid backpressure policy 'drop'/],
    [["--max-queue-bytes", "100"], /invalid max queue bytes '100'/],
    [["--max-queue-bytes", "1k"], /invalid max queue bytes '1k'/],
    [["--backpressure", "spill", "--recovery-ms", "0"], /needs --recovery-ms above 0/],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", ...args], { encoding: "utf8", timeout: 10000 });
    assert.equal(r.status, 2, args.join(" "));
    assert.match(r.stderr, re);
  }
  const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0"], { encoding: "utf8", timeout: 10000, env: { ...process.env, FERRY_BACKPRESSURE: "later" } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /FERRY_BACKPRESSURE/);
  const srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--publish-token", TOKEN], { env: { FERRY_BACKPRESSURE: "latest", FERRY_MAX_QUEUE_BYTES: "65536" } });
  servers.push(srv);
  for (let i = 0; i < 50 && !/backpressure: latest at 65536/.test(srv.stdout()); i++) await new Promise((res) => setTimeout(res, 20));
  assert.match(srv.stdout(), /backpressure: latest at 65536 bytes/);
  for (const [body, re] of [
    [{ room: "r", event: "e", data: 1, key: "" }, /'key' must be/],
    [{ room: "r", event: "e", data: 1, key: 5 }, /'key' must be/],
    [{ room: "r", event: "e", data: 1, key: "k".repeat(257) }, /'key' must be/],
    [{ room: "r", event: "e", data: 1, volatile: "yes" }, /'volatile' must be/],
  ]) {
    const res = await publish(srv, body);
    assert.equal(res.status, 400);
    assert.match(res.body.message, re);
  }
  assert.equal((await publish(srv, { room: "r", event: "e", data: 1, key: "k".repeat(256), volatile: false })).status, 200);
});

// The same over WebSocket, where the kernel's buffers and the transport's write buffer sit
// between the queue and the client: a raw Socket.IO client on WebSocket stops reading (its TCP
// socket paused) while a backend publishes 32 KB events until the server logs that the socket
// spills, then 20 more; once the client reads again, everything arrives in order, none twice,
// on the same WebSocket (the catch-up runs as the transport drains).
test("backpressure spill over WebSocket: a client that stopped reading catches up on the same connection", { timeout: 90000 }, async () => {
  const { default: WebSocket } = await import("ws");
  const srv = await startServer(bin("tools/ferry/ferry"), [
    "--port", "0", "--publish-token", TOKEN, "--backpressure", "spill",
    "--max-queue-bytes", "262144", "--log-level", "info",
  ]);
  servers.push(srv);
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
  const got = [];
  let acked = null;
  let closed = false;
  let finished;
  const done = new Promise((r) => (finished = r));
  ws.on("close", () => {
    closed = true;
    finished();
  });
  ws.on("message", (m) => {
    const p = m.toString();
    if (p === "2") ws.send("3");
    else if (p.startsWith("431[")) acked?.();
    else if (p.startsWith('42["big"')) got.push(JSON.parse(p.slice(2))[1].i);
    else if (p.startsWith('42["end"')) {
      got.push("end");
      finished();
    }
  });
  await once(ws, "open", 10000);
  const connected = new Promise((r) => ws.once("message", r)); // the open packet
  await connected;
  ws.send("40");
  const joined = new Promise((r) => (acked = r));
  await new Promise((r) => ws.once("message", r)); // the CONNECT answer
  ws.send('421["join",{"room":"r"}]');
  await joined;
  ws._socket.pause(); // stops reading: the kernel's buffers fill, then ferry's
  const big = "y".repeat(32 * 1024);
  const t00 = Date.now();
  let n = 0;
  const spilling = () => /its events wait in the recovery log/.test(srv.stderr());
  for (; n < 3000 && !spilling(); n++) {
    const r = await publish(srv, { room: "r", event: "big", data: { i: n, big } });
    assert.equal(r.body.recipients, 1);
  }
  assert.ok(spilling(), `the socket spilled after ${n} publishes of 32 KB`);
  const before = n;
  const publishMs = Date.now() - t00;
  for (let k = 0; k < 20; k++, n++) await publish(srv, { room: "r", event: "big", data: { i: n, big } });
  await publish(srv, { room: "r", event: "end", data: {} });
  const t0 = Date.now();
  ws._socket.resume();
  await done;
  const catchUpMs = Date.now() - t0;
  assert.equal(closed, false, "the same WebSocket, never closed");
  assert.equal(got.pop(), "end");
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i), "every publish, in order, none twice");
  // The server's log line may reach us after the last message.
  if (!/caught up from the recovery log/.test(srv.stderr()))
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no 'caught up' log line")), 5000);
      srv.proc.stderr.on("data", () => {
        if (/caught up from the recovery log/.test(srv.stderr())) {
          clearTimeout(t);
          resolve();
        }
      });
    });
  console.log(`# spill over WebSocket: spilled after ${before} publishes of 32 KB (${(before * 32 / 1024).toFixed(1)} MB in kernel and transport buffers and the 256 KiB queue); ${got.length}/${n} delivered in order after resuming, in ${catchUpMs} ms (publishing took ${publishMs} ms)`);
  ws.close();
});
