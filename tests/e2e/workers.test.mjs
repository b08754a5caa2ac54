// tools/ferry --workers N (issue 18): one port served by N worker processes (SO_REUSEPORT), each
// a cluster node through --redis, under a supervisor. A private redis-server on loopback and
// `ferry --workers 2`: WebSocket clients land on both processes (seen in each worker's own
// /metrics) and every publish reaches every other member of the room exactly once, whichever
// worker either is on; a worker killed with SIGKILL is restarted by the supervisor (log line),
// serves again and exchanges with the other; SIGTERM to the supervisor ends every worker and
// exits 0 (LeakSanitizer included: a worker's non-zero status becomes the supervisor's).
// Bad settings are refused with one line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { bin, startServer } from "../lib/server.mjs";
import {
  FERRY_TRANSPORTS, SIO_TRANSPORTS, haveRedis, ferryHasRedis, startRedis, relayClient, call, join, sleep, crossNodeReady,
} from "./cluster.mjs";

const ferry = bin("tools/ferry/ferry");
const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !ferryHasRedis()
    ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
    : false;

// The workers as the supervisor's stdout describes them now (a restarted worker prints again).
function workersOf(srv) {
  const w = new Map();
  for (const m of srv.stdout().matchAll(/ferry: worker (\d+) \(pid (\d+)\) is cluster node (\S+) on port (\d+)/g))
    w.set(Number(m[1]), { index: Number(m[1]), pid: Number(m[2]), node: m[3], port: Number(m[4]) });
  for (const m of srv.stdout().matchAll(/ferry: worker (\d+) metrics at (http:\/\/\S+)/g)) {
    const x = w.get(Number(m[1]));
    if (x) x.metrics = m[2];
  }
  return w;
}

// Open WebSocket sessions of one worker, from its own metrics listener.
async function openSessions(metricsUrl) {
  const text = await (await fetch(metricsUrl)).text();
  let n = 0;
  for (const m of text.matchAll(/^ferry_sessions_open\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

async function waitFor(what, pred, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(50);
  }
}

function startWorkers(redisUrl, n, args = [], env = {}) {
  return startServer(ferry, [
    "--port", "0", "--workers", String(n), "--redis", redisUrl, "--node-id", "wk",
    "--metrics-listen", "127.0.0.1:0", "--allow-publish", "message", "--publish-rate", "0",
    "--history", "0", ...args,
  ], { timeoutMs: 30000, env });
}

// Connect WebSocket clients until each of the given workers holds at least `per` of them
// (the kernel picks the worker by a hash of the connection's addresses); at most 60 tries.
async function spreadClients(srv, workers, per, clients, prefix) {
  const before = new Map();
  for (const w of workers) before.set(w.index, await openSessions(w.metrics));
  const on = new Map(workers.map((w) => [w.index, []]));
  for (let i = 0; i < 60; i++) {
    const kind = i % 2 === 0 ? "websocket" : "sio-websocket";
    const s = await relayClient(kind, srv.url, `${prefix}${i}`);
    clients.push(s);
    // Which worker took it: the one whose open-session count rose.
    let where = null;
    await waitFor("the new session in a worker's metrics", async () => {
      for (const w of workers) {
        const now = await openSessions(w.metrics);
        if (now > before.get(w.index)) {
          before.set(w.index, now);
          where = w.index;
          return true;
        }
      }
      return false;
    });
    on.get(where).push(s);
    if ([...on.values()].every((a) => a.length >= per)) return on;
  }
  throw new Error(`60 clients did not spread over the workers: ${JSON.stringify([...on].map(([k, v]) => [k, v.length]))}`);
}

test("workers: 2 processes on one port through Redis, clients on both exchange exactly once; a killed worker comes back; SIGTERM exits 0", { skip, timeout: 240000 }, async () => {
  const redis = await startRedis();
  let srv;
  const clients = [];
  try {
    srv = await startWorkers(redis.url, 2);
    assert.match(srv.stdout(), /with 2 worker processes/);
    let workers = workersOf(srv);
    assert.equal(workers.size, 2);
    assert.deepEqual([...workers.values()].map((w) => w.node).sort(), ["wk.w1", "wk.w2"]);
    for (const w of workers.values()) {
      assert.equal(w.port, srv.port, "every worker serves the supervisor's port");
      assert.ok(w.metrics, `worker ${w.index} prints its metrics address`);
    }

    // At least three clients on each worker.
    const on = await spreadClients(srv, [...workers.values()], 3, clients, "c");
    const [a, b] = [on.get(1)[0], on.get(2)[0]];
    // Another client's own room stays private on its worker (relay's check, an index lookup).
    const peer = on.get(1)[1];
    assert.match((await call(a, "join", { room: peer.id, members: false })).error ?? "", /not allowed/);
    for (const s of clients) await join(s, "all");
    await crossNodeReady(a, b, "all");
    await crossNodeReady(b, a, "all");

    // Every client publishes once to "all"; every other client gets each exactly once.
    const got = new Map(clients.map((s) => [s, []]));
    for (const s of clients)
      s.on("message", (data) => {
        if (typeof data?.text === "string" && data.text.startsWith("x:")) got.get(s).push(data.text);
      });
    const texts = [];
    for (const [i, s] of clients.entries()) {
      const text = `x:${i}`;
      texts.push(text);
      const res = await call(s, "publish", { room: "all", event: "message", data: { text } });
      assert.equal(res?.ok, true, JSON.stringify(res));
    }
    const expected = clients.length * (clients.length - 1);
    await waitFor(`${expected} deliveries`, () => [...got.values()].reduce((n, a) => n + a.length, 0) >= expected, 30000);
    await sleep(300); // a duplicate on its way would show here
    for (const [i, s] of clients.entries()) {
      const want = texts.filter((_, j) => j !== i).sort();
      assert.deepEqual([...got.get(s)].sort(), want, `client ${i} gets every other publish once`);
    }

    // Kill worker 1: the supervisor says so and starts it again; it serves and exchanges.
    const old = workers.get(1);
    const lost = on.get(1)[0];
    const gone = new Promise((r) => lost.once("disconnect", r));
    process.kill(old.pid, "SIGKILL");
    await waitFor("the restart line", () => /worker 1 \(pid \d+, node wk\.w1\) was killed by signal 9 \(Killed\) after [\d.]+ s; restarting it in \d+ ms \(restart 1\)/.test(srv.stderr()));
    await gone;
    await waitFor("worker 1 back", () => workersOf(srv).get(1)?.pid !== old.pid && workersOf(srv).get(1)?.metrics !== old.metrics, 30000);
    workers = workersOf(srv);
    const w1 = workers.get(1);
    assert.notEqual(w1.pid, old.pid);
    assert.equal(w1.node, "wk.w1");
    assert.equal(w1.port, srv.port);
    const fresh = [];
    const on2 = await spreadClients(srv, [...workers.values()], 1, fresh, "after");
    clients.push(...fresh);
    const [c1, c2] = [on2.get(1)[0], on2.get(2)[0]];
    await join(c1, "again");
    await join(c2, "again");
    await crossNodeReady(c1, c2, "again");
    await crossNodeReady(c2, c1, "again");
  } finally {
    for (const s of clients) s.disconnect();
    if (srv) {
      const code = await srv.stop();
      assert.equal(code, 0, `supervisor exit status (stderr: ${srv.stderr()})`);
      assert.match(srv.stderr(), /SIGTERM, stopping 2 workers/);
      assert.equal(srv.stderr().match(/SIGTERM, closing/g)?.length, 2, "both workers closed cleanly");
    }
    await redis.stop();
  }
});

// Polling, SSE and short-polling sessions make several connections, which the kernel hands to
// any worker: they need the forwarding between nodes (--node-address and signed sids).
const hasForwarding = /--node-address/.test(spawnSync(ferry, ["--help"], { encoding: "utf8" }).stdout ?? "");

// The workers' forwarding addresses in Redis (<prefix>:node:<tag>).
function nodeKeys(redis) {
  const r = spawnSync("redis-cli", ["-p", String(redis.port), "--scan", "--pattern", "*:node:*"], { encoding: "utf8", timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean);
}

// A worker listened on the shared port before its address was in Redis (the forwarder's first
// SET waits for the Redis link, then 250 ms): for that moment a request of one of its
// sessions that the kernel gave to the other worker was answered 400 "Session ID unknown"
// (and the unknown address was not asked again for 1 s), and ferry's client, refused while
// its CONNECT was on its way, never connected. A worker now joins the shared port, and the
// supervisor prints its banner, only once the worker can be reached.
test("workers: every transport across 2 workers exactly once, from the first request (forwarding between workers)", {
  skip: skip || (!hasForwarding && "tools/ferry has no forwarding between nodes yet (--node-address)"),
  timeout: 240000,
}, async () => {
  const redis = await startRedis();
  let srv;
  const clients = [];
  try {
    srv = await startWorkers(redis.url, 2);
    assert.equal(nodeKeys(redis).length, 2, "both workers' addresses are in Redis when the banner is printed");
    // Right after the banner: polling clients whose requests land on either worker.
    const early = [];
    for (let i = 0; i < 4; i++) early.push(relayClient("polling", srv.url, `early-${i}`));
    const settled = await Promise.allSettled(early);
    for (const r of settled) if (r.status === "fulfilled") clients.push(r.value);
    for (const r of settled) if (r.status === "rejected") throw r.reason;
    for (const s of clients) await join(s, "early");
    const workers = [...workersOf(srv).values()];
    // Two WebSocket clients on different workers prove the Redis links are up.
    const on = await spreadClients(srv, workers, 1, clients, "ws");
    const [a, b] = [on.get(1)[0], on.get(2)[0]];
    await join(a, "ready");
    await join(b, "ready");
    await crossNodeReady(a, b, "ready");
    await crossNodeReady(b, a, "ready");
    // Two clients of every kind: their requests and upgrades land on either worker.
    const members = [];
    for (const kind of [...FERRY_TRANSPORTS, ...SIO_TRANSPORTS])
      for (let i = 0; i < 2; i++) {
        const s = await relayClient(kind, srv.url, `${kind}-${i}`);
        clients.push(s);
        const m = { name: `${kind}-${i}`, s, got: [] };
        s.on("message", (data) => {
          if (typeof data?.text === "string" && data.text.startsWith("t:")) m.got.push(data.text);
        });
        members.push(m);
      }
    for (const m of members) await join(m.s, "every");
    for (const m of members) {
      const res = await call(m.s, "publish", { room: "every", event: "message", data: { text: `t:${m.name}` } });
      assert.equal(res?.ok, true, `${m.name}: ${JSON.stringify(res)}`);
    }
    const expected = members.length * (members.length - 1);
    await waitFor(`${expected} deliveries`, () => members.reduce((n, m) => n + m.got.length, 0) >= expected, 60000);
    await sleep(300);
    for (const m of members)
      assert.deepEqual([...m.got].sort(), members.filter((o) => o !== m).map((o) => `t:${o.name}`).sort(), `${m.name} gets every other publish once`);
    // The forwarding counters in each worker's /metrics (docs/observability.md): requests went
    // both ways between the workers, none refused, each worker's address written.
    const metric = (text, name) => {
      const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
      assert.ok(m, `${name} in ${text.slice(0, 200)}...`);
      return Number(m[1]);
    };
    let forwarded = 0;
    for (const w of workers) {
      const text = await (await fetch(w.metrics)).text();
      assert.match(text, /^# TYPE ferry_forward_requests_total counter$/m);
      forwarded += metric(text, "ferry_forward_requests_total");
      assert.equal(metric(text, 'ferry_forward_refused_total\\{reason="unknown"\\}'), 0, `worker ${w.index}: nothing refused`);
      assert.equal(metric(text, 'ferry_forward_refused_total\\{reason="busy"\\}'), 0);
      assert.ok(metric(text, "ferry_forward_address_published_total") >= 1, `worker ${w.index} published its address`);
      assert.ok(metric(text, "ferry_forward_active") >= 0);
    }
    assert.ok(forwarded >= 1, "some requests were forwarded between the workers");
  } finally {
    for (const s of clients) s.disconnect();
    if (srv) assert.equal(await srv.stop(), 0, srv.stderr());
    await redis.stop();
  }
});

test("workers: bad settings are refused with one line", { skip: ferryHasRedis() ? false : "built without Redis" }, () => {
  const run = (args, env = {}) => spawnSync(ferry, args, { encoding: "utf8", env: { ...process.env, ...env }, timeout: 10000 });
  let r = run(["--port", "0", "--workers", "2"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--workers needs --redis URL/);
  r = run(["--port", "0"], { FERRY_WORKERS: "2" });
  assert.equal(r.status, 2, "FERRY_WORKERS is read");
  assert.match(r.stderr, /--workers needs --redis URL/);
  r = run(["--port", "0", "--workers", "65", "--redis", "redis://127.0.0.1:1"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /invalid number of workers '65': must be between 0 and 64/);
  r = run(["--port", "0", "--workers", "two", "--redis", "redis://127.0.0.1:1"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /invalid number of workers 'two': not a number/);
  r = run(["--port", "0", "--workers", "2", "--redis", "redis://127.0.0.1:1", "--node-id", "n".repeat(61)]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /at most 60 characters/);
  r = run(["--help"]);
  assert.match(r.stdout, /--workers N .*\(FERRY_WORKERS/s);
});

test("workers: a port already taken without SO_REUSEPORT is refused, nothing left running", { skip }, async () => {
  const net = await import("node:net");
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(0, "127.0.0.1", r));
  try {
    const r = spawnSync(ferry, ["--port", String(blocker.address().port), "--workers", "2", "--redis", "redis://127.0.0.1:1"], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot bind to port \d+: Address already in use/);
  } finally {
    blocker.close();
  }
});
