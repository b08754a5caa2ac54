// No sticky sessions (issue 18): redis-server on loopback, three tools/ferry nodes and Debian's
// nginx in front of them in plain round-robin (no ip_hash, no hash, no cookie), so that the
// requests of one session land on every node in turn. A node that gets a request for another
// node's session forwards it to the owner (docs/scaling.md "Forwarding"). Clients of every
// transport (ferry's client: websocket, sse, polling, short-polling; socket.io-client:
// polling upgrading to websocket, polling only, websocket only) join rooms through nginx and
// exchange publishes exactly once; nginx's log shows one session's requests reaching several
// nodes; a keep-alive client keeps its connection through forwarded requests. A forged or altered sid is refused at once by every node; a sid of a node that is
// gone gets "Session ID unknown" quickly. Nodes exit 0 under LeakSanitizer.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { io as officialIo } from "socket.io-client";
import {
  FERRY_TRANSPORTS, haveRedis, ferryHasRedis, startRedis, startNode, relayClient, call, join,
  sleep, crossNodeReady,
} from "./cluster.mjs";
import { startNginx } from "../lib/nginx.mjs";
import { spawnSync } from "node:child_process";

const haveNginx = spawnSync("nginx", ["-v"], { stdio: "ignore" }).status === 0;
const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !haveNginx
    ? "nginx is not installed (scripts/deps.sh test installs it)"
    : !ferryHasRedis()
      ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
      : false;

const SECRET = "cluster-rr-test-secret-0123456789";

// One plain HTTP request (its own connection): {status, body, ms}.
function get(url, { method = "GET", body } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const req = http.request(url, { method, agent: false }, (res) => {
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, body: data, ms: Date.now() - t0 }));
    });
    req.on("error", reject);
    req.setTimeout(15000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.end(body);
  });
}

async function handshake(base) {
  const r = await get(`${base}/socket.io/?EIO=4&transport=polling`);
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body.slice(1)).sid;
}

function officialClient(url, name, transports) {
  const s = officialIo(url, { forceNew: true, reconnection: false, transports, auth: { name } });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not connect`)), 15000);
    s.once("connect", () => (clearTimeout(t), resolve(s)));
    s.once("connect_error", (e) => (clearTimeout(t), reject(new Error(`${name}: ${e.message}`))));
  });
}

test("round-robin nginx, no stickiness: every transport's session works through any node, rooms exactly once; forged sids refused", { skip, timeout: 240000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  let ngx;
  try {
    for (let i = 1; i <= 3; i++)
      nodes.push(await startNode(redis.url, `rr-${i}`, ["--cluster-secret", SECRET, "--ping-interval", "5000", "--ping-timeout", "10000"]));
    ngx = await startNginx("round-robin", "", {
      vars: { NODES: nodes.map((n) => `    server 127.0.0.1:${n.port};`).join("\n") },
    });

    // Redis links up and subscribed: a publish from each node reaches a client on node 1.
    const probeA = await relayClient("websocket", nodes[0].url, "probe-a");
    clients.push(probeA);
    await join(probeA, "probe");
    for (const n of nodes.slice(1)) {
      const p = await relayClient("websocket", n.url, `probe-${n.port}`);
      clients.push(p);
      await join(p, "probe");
      await crossNodeReady(probeA, p, "probe");
    }

    // Every kind of client, twice, all through nginx.
    const kinds = [
      ...FERRY_TRANSPORTS.map((k) => ({ kind: k, open: (name) => relayClient(k, ngx.url, name) })),
      { kind: "sio-polling+upgrade", open: (name) => officialClient(ngx.url, name, ["polling", "websocket"]) },
      { kind: "sio-polling", open: (name) => officialClient(ngx.url, name, ["polling"]) },
      { kind: "sio-websocket", open: (name) => officialClient(ngx.url, name, ["websocket"]) },
    ];
    const members = [];
    for (let round = 0; round < 2; round++)
      for (const { kind, open } of kinds) {
        const name = `${kind}#${round}`;
        const s = await open(name);
        clients.push(s);
        const m = { name, kind, s, odd: members.length % 2 === 1, got: [] };
        s.on("message", (data, meta) => {
          if (typeof data?.text === "string" && data.text.startsWith("c:")) m.got.push(`${meta?.room}|${data.text}`);
        });
        members.push(m);
      }
    for (const m of members) {
      await join(m.s, "all");
      if (m.odd) await join(m.s, "odd");
    }

    // socket.io-client upgrades from polling to WebSocket through the round-robin: its upgrade
    // request carries the sid and lands on any node.
    for (const m of members.filter((x) => x.kind === "sio-polling+upgrade")) {
      const deadline = Date.now() + 15000;
      while (m.s.io.engine.transport.name !== "websocket" && Date.now() < deadline) await sleep(20);
      assert.equal(m.s.io.engine.transport.name, "websocket", `${m.name} upgraded`);
    }

    const expected = new Map(members.map((m) => [m.name, []]));
    for (const m of members)
      for (const room of m.odd ? ["all", "odd"] : ["all"]) {
        const text = `c:${m.name}:${room}`;
        const res = await call(m.s, "publish", { room, event: "message", data: { text } });
        assert.equal(res?.ok, true, `${m.name} publishes to ${room}: ${JSON.stringify(res)}`);
        for (const o of members)
          if (o !== m && (room === "all" || o.odd)) expected.get(o.name).push(`${room}|${text}`);
      }
    const total = [...expected.values()].reduce((n, a) => n + a.length, 0);
    const count = () => members.reduce((n, m) => n + m.got.length, 0);
    const deadline = Date.now() + 30000;
    while (count() < total && Date.now() < deadline) await sleep(20);
    await sleep(500); // a duplicate on its way would show here
    for (const m of members)
      assert.deepEqual([...m.got].sort(), [...expected.get(m.name)].sort(), `${m.name} got every publish of its rooms exactly once, and nothing else`);

    // Sessions stay up across heartbeats (ping every 5 s, through whatever node).
    await sleep(6000);
    for (const m of members) assert.equal(m.s.connected, true, `${m.name} still connected after a heartbeat`);

    // nginx spread each polling session's requests over the nodes: forwarding carried them.
    const bySid = new Map();
    for (const line of ngx.accessLog().split("\n")) {
      const mm = /^(GET|POST) \S*[?&]sid=([A-Za-z0-9_-]+)\S* (\d+) (\S+)$/.exec(line);
      if (!mm) continue;
      assert.notEqual(mm[3], "400", `no request of a live session is refused: ${line}`);
      if (!bySid.has(mm[2])) bySid.set(mm[2], new Set());
      bySid.get(mm[2]).add(mm[4]);
    }
    const spread = [...bySid.values()].filter((s) => s.size >= 2).length;
    assert.ok(spread >= 4, `sessions whose requests reached at least two nodes: ${spread} of ${bySid.size}`);
    for (const sid of bySid.keys()) assert.equal(sid.length, 36, "a cluster node's sid is signed (36 characters)");

    // A forged or altered sid: refused by every node at once, never forwarded.
    const sid = await handshake(nodes[0].url);
    for (const n of nodes.slice(1)) {
      const ok = await get(`${n.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "3" });
      assert.equal(ok.status, 200, `the real sid works through ${n.url}: ${ok.body}`);
    }
    // A keep-alive client sending to a node that does not own its session keeps its one
    // connection: answers with a length come back through the HTTP layer.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set();
    for (let i = 0; i < 20; i++) {
      const r = await new Promise((resolve, reject) => {
        const req = http.request(`${nodes[1].url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", agent }, (res) => {
          let d = "";
          res.on("data", (x) => (d += x));
          res.on("end", () => resolve({ status: res.statusCode, body: d }));
        });
        req.on("socket", (so) => sockets.add(so));
        req.on("error", reject);
        req.end("6");
      });
      assert.deepEqual(r, { status: 200, body: "ok" }, `keep-alive POST ${i}`);
    }
    assert.equal(sockets.size, 1, "20 forwarded POSTs on one keep-alive connection");
    agent.destroy();

    const last = sid.at(-1) === "A" ? "B" : "A";
    const forged = [
      sid.slice(0, -1) + last, // the mac altered
      "A" + sid.slice(1), // the random part altered
      sid.slice(0, 12) + "AAAAAAAA" + sid.slice(20), // another node's tag
      sid + "x",
      "x".repeat(36),
    ];
    for (const f of forged)
      for (const n of nodes) {
        const r = await get(`${n.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(f)}`);
        assert.equal(r.status, 400, `${f} at ${n.url}`);
        assert.deepEqual(JSON.parse(r.body), { code: 1, message: "Session ID unknown" });
        assert.ok(r.ms < 2000, `refused at once (${r.ms} ms)`);
      }
    // A forwarded request is never forwarded again (no loop), whatever it says.
    const loop = await new Promise((resolve, reject) => {
      const req = http.request(`${nodes[1].url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { agent: false, headers: { "x-ferry-forwarded": "000000000000" } }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(loop, 400, "a request marked as forwarded is not forwarded again");

    // The owner goes away: its sessions are unknown at the other nodes, answered quickly.
    const gone = await handshake(nodes[2].url);
    assert.equal(await nodes[2].stop(), 0, "node 3 exits 0 (no leak)");
    for (const n of nodes.slice(0, 2)) {
      const r = await get(`${n.url}/socket.io/?EIO=4&transport=polling&sid=${gone}`);
      assert.equal(r.status, 400);
      assert.deepEqual(JSON.parse(r.body), { code: 1, message: "Session ID unknown" });
      assert.ok(r.ms < 4000, `answered within the 3 s bound (${r.ms} ms)`);
    }
  } finally {
    for (const s of clients) s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    if (ngx) {
      const log = await ngx.stop();
      assert.doesNotMatch(log, /\[(emerg|alert|crit)\]/, log);
    }
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});

test("cluster-rr: tools/ferry refuses a short --cluster-secret or a bad --node-address with one clear line", { skip }, async () => {
  const { bin } = await import("../lib/server.mjs");
  for (const [args, re, code] of [
    [["--redis", "redis://127.0.0.1:1", "--cluster-secret", "short"], /invalid cluster secret .*at least 16/, 2],
    [["--redis", "redis://127.0.0.1:1", "--node-address", "nohost"], /invalid node address/, 2],
    [["--redis", "redis://127.0.0.1:1", "--node-address", "example.org:80"], /cannot forward to other nodes: invalid --node-address/, 1],
  ]) {
    const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", ...args], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, code, `${args.join(" ")}: exit status (${r.stderr})`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /short/, "the secret is not printed");
  }
});
