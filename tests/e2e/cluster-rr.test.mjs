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
  httpRequest,
  FERRY_TRANSPORTS, SIO_TRANSPORTS, haveRedis, ferryHasRedis, startRedis, startNode, relayClient, forwardReady,
  call, join, sleep, crossNodeReady, clusterReady, until, nginxNodes,
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

const get = httpRequest;

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
      vars: { NODES: nginxNodes(nodes) },
    });

    // Redis links up and subscribed: a publish from each node reaches a client on node 1.
    await clusterReady(nodes, clients);
    await forwardReady(redis, nodes.length);

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
      (sid[0] === "A" ? "B" : "A") + sid.slice(1), // the random part altered (never the sid itself)
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

// A node that dies behind the same nginx (issue 18's "done when"): clients of every transport
// (ferry's client: websocket, sse, polling, short-polling; socket.io-client: polling,
// websocket), all through nginx round-robin, with reconnection; for each transport one whose
// session node 1 owns and one owned by another node. They join a room and exchange publishes
// exactly once. Node 1 is killed with SIGKILL: nginx sends what it cannot pass to node 1 to the
// others (proxy_next_upstream, max_fails); node 1's clients come back through nginx on nodes 2
// and 3 and resume (recovered, same socket id, rooms) with the messages published while they
// were away, once each (in either order: two nodes sent them), and ferry's client's outbox
// emit is taken once. Then redis-server is stopped and started again (empty): cross-node
// delivery comes back.
test("round-robin nginx: node 1 is SIGKILLed, its clients of every transport resume on the others through nginx with nothing lost; Redis restarted, cross-node delivery comes back", { skip, timeout: 300000 }, async () => {
  let redis = await startRedis();
  const nodes = [];
  const clients = [];
  let ngx;
  const token = "t0ken-for-the-cluster-api";
  const t0 = Date.now();
  const step = (what) => console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  try {
    for (let i = 1; i <= 3; i++)
      nodes.push(await startNode(redis.url, `die-${i}`, ["--cluster-secret", SECRET, "--recovery-ms", "60000", "--publish-token", token]));
    const [n1, n2, n3] = nodes;
    ngx = await startNginx("round-robin", "", { vars: { NODES: nginxNodes(nodes) } });

    // Members that stay where they are (straight to their node): the publishers.
    const p2 = await relayClient("websocket", n2.url, "p2");
    const p3 = await relayClient("websocket", n3.url, "p3");
    clients.push(p2, p3);
    await join(p2, "r");
    await join(p3, "r");
    await crossNodeReady(p2, p3, "r");
    await crossNodeReady(p3, p2, "r");
    await forwardReady(redis, nodes.length);
    const owner = async (id) => {
      const r = await fetch(`${n2.url}/api/sockets?timeout=10000`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(20000) });
      const body = await r.json();
      assert.equal(body.complete, true, JSON.stringify(body));
      return body.sockets.find((x) => x.id === id)?.node;
    };

    // Through nginx: for every transport, one client whose session is on node 1 (a victim)
    // and one on node 2 or 3 (a survivor). Round-robin decides: open until both are there.
    const back = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500, randomizationFactor: 0 };
    const members = [];
    for (const kind of [...FERRY_TRANSPORTS, ...SIO_TRANSPORTS]) {
      let victim = null;
      let survivor = null;
      for (let i = 0; i < 12 && !(victim && survivor); i++) {
        const name = `${kind}#${i}`;
        const s = await relayClient(kind, ngx.url, name, back);
        const node = await owner(s.id);
        if ((node === "die-1" && !victim) || (node !== "die-1" && !survivor)) {
          clients.push(s);
          const m = { name, kind, s, id: s.id, victim: node === "die-1", got: [], connects: 0 };
          s.on("message", (data) => {
            if (typeof data?.text === "string" && /^[cm]/.test(data.text)) m.got.push(data.text);
          });
          s.on("connect", () => m.connects++);
          members.push(m);
          if (m.victim) victim = m;
          else survivor = m;
        } else {
          s.disconnect();
          // More requests through nginx so that the next handshake lands on another node.
          // An attempt may send a multiple of 3 requests, and one more each time can keep
          // the same rhythm (a run saw no polling client on node 1 in 12 attempts): one for
          // the first four attempts (all three nodes if that shifts), then two (shifts if one
          // did not).
          for (let j = 0; j < (i < 4 ? 1 : 2); j++) await get(`${ngx.url}/ferry/ferry.mjs`);
        }
      }
      assert.ok(victim && survivor, `${kind}: a client on node 1 and one on another node, through nginx`);
    }
    const victims = members.filter((m) => m.victim);
    step(`${members.length} clients through nginx, ${victims.length} on node 1`);
    for (const m of members) await join(m.s, "r");
    for (const m of victims) await crossNodeReady(m.s, p2, "r");

    // Every member publishes once through nginx: every other member and p2 get it once.
    const atP2 = [];
    p2.on("message", (data) => typeof data?.text === "string" && /^[cu]/.test(data.text) && atP2.push(data.text));
    for (const m of members) {
      const res = await call(m.s, "publish", { room: "r", event: "message", data: { text: `c:${m.name}` } });
      assert.equal(res?.ok, true, `${m.name} publishes: ${JSON.stringify(res)}`);
    }
    const others = (m) => members.filter((o) => o !== m).map((o) => `c:${o.name}`).sort();
    await until(() => members.every((m) => m.got.length >= members.length - 1) && atP2.length >= members.length, 30000, "every publish everywhere")
      .catch((e) => {
        throw new Error(`${e.message}: ${members.map((m) => `${m.name}: ${m.got.length}`).join(", ")}; p2: ${atP2.length}`);
      });
    await sleep(500);
    for (const m of members) assert.deepEqual([...m.got].sort(), others(m), `${m.name}: every other member's publish once`);
    assert.deepEqual([...atP2].sort(), members.map((m) => `c:${m.name}`).sort(), "p2 got every member's publish once");
    for (const m of members) m.got.length = 0;
    atP2.length = 0;

    // m1 before the kill.
    await call(p2, "publish", { room: "r", event: "message", data: { text: "m1" } });
    await until(() => members.every((m) => m.got.length === 1), 15000, "m1 everywhere");

    // Node 1 is killed. While its clients are away, nodes 2 and 3 publish, and ferry's client
    // (WebSocket, on node 1) emits into its outbox.
    const down = victims.map((m) => new Promise((r) => m.s.once("disconnect", r)));
    step("node 1 killed");
    n1.proc.kill("SIGKILL");
    await Promise.race([Promise.all(down), sleep(30000)]);
    for (const [p, text] of [[p2, "m2"], [p3, "m3"]]) {
      const r = await call(p, "publish", { room: "r", event: "message", data: { text } });
      assert.equal(r?.ok, true, `${text}: ${JSON.stringify(r)}`);
    }
    const wsVictim = victims.find((m) => m.kind === "websocket");
    const outboxAck = call(wsVictim.s, "publish", { room: "r", event: "message", data: { text: "u1" } }, 60000);

    step("m2, m3 published; u1 in the outbox");
    const state = () => members.map((m) => `${m.name}${m.victim ? " (node 1)" : ""}: connected=${m.s.connected} connects=${m.connects} recovered=${m.s.recovered}${m.fresh ? ` fresh=${m.fresh}` : ""} got=${m.got.join(",")}`).join("\n");
    await until(() => members.every((m) => m.s.connected), 60000, "every client connected again through nginx")
      .catch((e) => {
        throw new Error(`${e.message}\n${state()}\n--- nginx ---\n${ngx.errorLog?.().slice(-3000) ?? ""}`);
      });
    for (const m of members) {
      if (m.connects === 0) continue; // kept its session (a survivor nginx did not cut)
      assert.equal(m.s.recovered, true, `${m.name} came back recovered\n${state()}`);
      assert.equal(m.s.id, m.id, `${m.name} kept its socket id`);
    }
    for (const m of victims) assert.ok(m.connects >= 1, `${m.name} reconnected after node 1 died`);
    await until(() => members.every((m) => m.got.length >= 3), 30000, "m2 and m3 everywhere")
      .catch((e) => {
        throw new Error(`${e.message}\n${state()}`);
      });
    await sleep(500);
    // m2 (node 2) and m3 (node 3) have no order between them (docs/scaling.md: offsets are
    // ordered per origin): a client on node 3 may get m3 before m2 comes through Redis, and so
    // may a victim that resumed there before they were published (both seen under load).
    for (const m of members) {
      assert.equal(m.got[0], "m1", `${m.name}: m1 first\n${state()}`);
      assert.deepEqual([...m.got.slice(1)].sort(), ["m2", "m3"], `${m.name}: what it missed, once each\n${state()}`);
    }
    const res = await outboxAck;
    assert.equal(res?.ok, true, `u1 (emitted while away) published: ${JSON.stringify(res)}`);
    await until(() => atP2.includes("u1"), 15000, "u1 at p2");
    await sleep(300);
    assert.deepEqual(atP2, ["u1"], "u1 taken once");

    // Still in the room on their new nodes: a publish from node 3 reaches everyone once.
    await call(p3, "publish", { room: "r", event: "message", data: { text: "m4" } });
    await until(() => members.every((m) => m.got.length >= 4), 20000, "m4 after the resume");

    // Redis stops and comes back empty on the same port: cross-node delivery comes back. While
    // it is away a polling request that lands on a node which does not hold its session can be
    // forwarded only while that node still has the owner's address cached (5 s): a session
    // may end then, and its client comes back on a new socket (recovered false: the records
    // were in Redis), which joins its room again, as an app does (docs/client.md).
    for (const m of members) {
      m.fresh = 0;
      m.s.on("connect", () => {
        if (m.s.recovered) return;
        m.fresh++;
        m.rejoined = join(m.s, "r").catch((e) => (m.rejoinError = e.message));
      });
    }
    step("resumed; Redis stops");
    const port = redis.port;
    await redis.stop();
    await sleep(1000);
    redis = await startRedis({ port });
    await crossNodeReady(p2, p3, "r", 30000);
    await crossNodeReady(p3, p2, "r", 30000);
    // Both live nodes published their forwarding address again.
    await forwardReady(redis, 2);
    await until(() => members.every((m) => m.s.connected), 60000, "every client connected after Redis came back")
      .catch((e) => {
        throw new Error(`${e.message}\n${state()}`);
      });
    step("Redis back");
    await Promise.all(members.map((m) => m.rejoined));
    for (const m of members) assert.equal(m.rejoinError, undefined, `${m.name} joined again`);
    await call(p2, "publish", { room: "r", event: "message", data: { text: "m5" } });
    await call(p3, "publish", { room: "r", event: "message", data: { text: "m6" } });
    await until(() => members.every((m) => m.got.length >= 6), 30000, "m5 and m6 after Redis came back")
      .catch((e) => {
        throw new Error(`${e.message}\n${state()}`);
      });
    await sleep(500);
    // m2 and m3, m5 and m6: each pair from two origins, no order between the two (as above).
    const norm = (g) => [g[0], ...g.slice(1, 3).sort(), g[3], ...g.slice(4).sort()];
    for (const m of members) assert.deepEqual(norm(m.got), ["m1", "m2", "m3", "m4", "m5", "m6"], `${m.name}: everything once\n${state()}`);
    console.log(`came back on a new socket while Redis was away: ${members.filter((m) => m.fresh).map((m) => m.name).join(", ") || "none"}`);
  } finally {
    step("done; stopping");
    for (const s of clients) s.disconnect();
    const codes = [];
    // (Bounded: a node that does not end on SIGTERM is a failure, said so.)
    for (const n of nodes.slice(1)) codes.push(await Promise.race([n.stop(), sleep(20000).then(() => (n.proc.kill("SIGKILL"), "no exit 20 s after SIGTERM"))]));
    if (nodes[0] && nodes[0].proc.signalCode === null && nodes[0].proc.exitCode === null) nodes[0].proc.kill("SIGKILL"); // the test failed before it
    await nodes[0]?.exited();
    if (ngx) await ngx.stop();
    await redis.stop();
    assert.deepEqual(codes, nodes.slice(1).map(() => 0), "the nodes still running exit 0 (no leak)");
  }
});

test("cluster-rr: tools/ferry refuses a short --cluster-secret or a bad --node-address with one clear line", { skip }, async () => {
  const { bin } = await import("../lib/server.mjs");
  for (const [args, re, code] of [
    [["--redis", "redis://127.0.0.1:1", "--cluster-secret", "short"], /invalid cluster secret .*at least 16/, 2],
    [["--redis", "redis://127.0.0.1:1", "--node-address", "nohost"], /invalid node address/, 2],
    // A host name is taken (tests/e2e/forward-names.test.mjs); a malformed one is not.
    [["--redis", "redis://127.0.0.1:1", "--node-address", "web 1.example:80"], /cannot forward to other nodes: invalid --node-address/, 1],
  ]) {
    const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", ...args], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, code, `${args.join(" ")}: exit status (${r.stderr})`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /short/, "the secret is not printed");
  }
});
