// A node that dies loses nothing (issue 18): redis-server + three tools/ferry nodes; clients of
// node 1 (ferry's client over WebSocket and long-polling, socket.io-client over WebSocket and
// polling) reach it through small TCP balancers that send each new connection to the first
// live node of their list. Node 1 is killed with SIGKILL while its clients are in rooms; the
// others publish while they are away; they come back through node 2 or node 3 and resume
// (connection-state recovery kept in Redis) with their socket ids, their rooms and every
// message they missed, once each and in order; ferry's client's outbox resends what it emitted
// while away, taken once. Nodes still running exit 0 under LeakSanitizer.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { haveRedis, ferryHasRedis, startRedis, startNode, relayClient, call, join, sleep, crossNodeReady, until } from "./cluster.mjs";

const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !ferryHasRedis()
    ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
    : false;

// A TCP balancer: each new connection goes to the first backend of the list that accepts it.
// hold(): new connections are cut at once (the clients' retries wait) until release().
async function balancer(ports) {
  let held = false;
  const socks = new Set();
  const server = net.createServer((c) => {
    socks.add(c);
    c.on("close", () => socks.delete(c));
    c.on("error", () => {});
    if (held) return c.destroy();
    c.pause();
    const tryAt = (i) => {
      if (i >= ports.length) return c.destroy();
      const b = net.connect(ports[i], "127.0.0.1");
      b.once("connect", () => {
        socks.add(b);
        b.on("close", () => (socks.delete(b), c.destroy()));
        c.on("close", () => b.destroy());
        b.on("error", () => {});
        c.pipe(b);
        b.pipe(c);
        c.resume();
      });
      b.once("error", () => tryAt(i + 1));
    };
    tryAt(0);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    hold: () => (held = true),
    release: () => (held = false),
    close: () => new Promise((r) => {
      for (const s of socks) s.destroy();
      server.close(r);
    }),
  };
}

// Node 1 is killed well within 2 s of its start (on a quiet machine): before its first timed
// beat in Redis. Stop 11 saw this fail on every run from 22:25 UTC on (recovered === false) and
// pass under load: a node was listed as live (the nodes set the records are looked up through)
// only by its first timed beat, BEAT_MS after it started; it now beats as soon as its Redis
// command connection is up (lib/adapter/redis_recovery.c redis_rec_linked).
test("cluster-kill: node 1 is SIGKILLed; its clients resume on nodes 2 and 3 with ids, rooms, missed messages and outbox (Redis-kept recovery)", { skip, timeout: 240000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  const lbs = [];
  try {
    for (let i = 1; i <= 3; i++) nodes.push(await startNode(redis.url, `kill-${i}`, ["--recovery-ms", "60000"]));
    const [n1, n2, n3] = nodes;
    // Balancers: node 1 while it lives, then node 2 (lbA) or node 3 (lbB).
    const lbA = await balancer([n1.port, n2.port]);
    const lbB = await balancer([n1.port, n3.port]);
    lbs.push(lbA, lbB);

    // Members that stay where they are: one on node 2, one on node 3.
    const p2 = await relayClient("websocket", n2.url, "p2");
    const p3 = await relayClient("sio-websocket", n3.url, "p3");
    clients.push(p2, p3);
    await join(p2, "r");
    await join(p3, "r");
    await crossNodeReady(p3, p2, "r");
    await crossNodeReady(p2, p3, "r");

    // The clients of node 1, through the balancers, with reconnection.
    const back = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0 };
    const kinds = [
      ["websocket", lbA], ["polling", lbB], ["sio-websocket", lbB], ["sio-polling", lbA],
    ];
    const victims = [];
    for (const [kind, lb] of kinds) {
      const name = `v-${kind}`;
      const s = await relayClient(kind, lb.url, name, back);
      clients.push(s);
      const v = { name, kind, s, got: [], connects: 0 };
      s.on("message", (data) => {
        if (typeof data?.text === "string" && data.text.startsWith("m")) v.got.push(data.text);
      });
      s.on("connect", () => v.connects++);
      victims.push(v);
    }
    for (const v of victims) {
      await join(v.s, "r");
      if (v.kind.includes("websocket")) await join(v.s, "ws-only");
    }
    // p3 is in ws-only too: a room whose members are on node 1 and node 3 only.
    await join(p3, "ws-only");
    await crossNodeReady(victims[0].s, p2, "r");
    for (const v of victims) await crossNodeReady(v.s, p3, "r");
    const ids = victims.map((v) => v.s.id);
    assert.ok(ids.every((id) => typeof id === "string" && id.length > 0));

    // Before the kill: m1 reaches everyone.
    await call(p2, "publish", { room: "r", event: "message", data: { text: "m1" } });
    await until(() => victims.every((v) => v.got.length === 1), 15000, "m1 everywhere");

    // Kill node 1 with SIGKILL while the balancers hold the clients off.
    lbA.hold();
    lbB.hold();
    const down = victims.map((v) => new Promise((r) => v.s.once("disconnect", r)));
    n1.proc.kill("SIGKILL");
    await Promise.race([Promise.all(down), sleep(20000)]);
    assert.ok(victims.every((v) => !v.s.connected), "every client of node 1 saw it go");

    // While they are away: messages to their rooms from nodes 2 and 3, and ferry's client
    // (WebSocket) emits into its outbox.
    for (const [p, room, text] of [[p2, "r", "m2"], [p3, "r", "m3"], [p3, "ws-only", "m4"]]) {
      const r = await call(p, "publish", { room, event: "message", data: { text } });
      assert.equal(r?.ok, true, `${text}: ${JSON.stringify(r)}`);
    }
    const fromVictim = [];
    p2.on("message", (data) => typeof data?.text === "string" && data.text.startsWith("u") && fromVictim.push(data.text));
    const outboxAck = call(victims[0].s, "publish", { room: "r", event: "message", data: { text: "u1" } }, 60000);

    // Let them come back: through node 2 (lbA) or node 3 (lbB).
    lbA.release();
    lbB.release();
    await until(() => victims.every((v) => v.s.connected && v.connects >= 1), 60000, "every client of node 1 reconnected")
      .catch((e) => {
        throw new Error(`${e.message}: ${victims.map((v) => `${v.name} connected=${v.s.connected} connects=${v.connects}`).join(", ")}\n--- node 2 ---\n${n2.stdout().slice(-3000) + n2.stderr().slice(-2000)}\n--- node 3 ---\n${n3.stdout().slice(-3000) + n3.stderr().slice(-2000)}`);
      });
    for (const [i, v] of victims.entries()) {
      assert.equal(v.s.recovered, true, `${v.name} was recovered on another node (${v.connects} connects)\n--- node 2 ---\n${n2.stdout().slice(-4000)}\n--- node 3 ---\n${n3.stdout().slice(-4000)}`);
      assert.equal(v.s.id, ids[i], `${v.name} kept its socket id`);
    }
    const want = (v) => (v.kind.includes("websocket") ? ["m1", "m2", "m3", "m4"] : ["m1", "m2", "m3"]);
    await until(() => victims.every((v) => v.got.length >= want(v).length), 20000, "the missed messages replayed");
    await sleep(300); // a duplicate on its way would show
    for (const v of victims) assert.deepEqual(v.got, want(v), `${v.name}: what it missed, once each, in order`);

    // The outbox: u1, emitted while away, is taken once and reaches node 2's member once.
    const res = await outboxAck;
    assert.equal(res?.ok, true, `u1 published after the resume: ${JSON.stringify(res)}`);
    await until(() => fromVictim.length >= 1, 15000, "u1 reached p2");
    await sleep(300);
    assert.deepEqual(fromVictim, ["u1"]);

    // Still in their rooms, now on nodes 2 and 3: a publish from each side reaches them.
    await join(p2, "ws-only");
    // (One after the other: two nodes' publishes have no order between them.)
    for (const [p, room, text] of [[p3, "r", "m5"], [p2, "ws-only", "m6"]]) {
      const r = await call(p, "publish", { room, event: "message", data: { text } });
      assert.equal(r?.ok, true, `${text}: ${JSON.stringify(r)}`);
      await until(() => victims.every((v) => v.got.includes(text) || (text === "m6" && !v.kind.includes("websocket"))), 20000, `${text} after the resume`);
    }
    const want2 = (v) => [...want(v), "m5", ...(v.kind.includes("websocket") ? ["m6"] : [])];
    await until(() => victims.every((v) => v.got.length >= want2(v).length), 20000, "m5/m6 after the resume")
      .catch((e) => {
        throw new Error(`${e.message}: ${victims.map((v) => `${v.name}: ${v.got.join(",")}`).join("; ")}`);
      });
    await sleep(300);
    for (const v of victims) assert.deepEqual(v.got, want2(v), `${v.name} after the resume`);
  } finally {
    for (const s of clients) s.disconnect();
    for (const lb of lbs) await lb.close();
    const codes = [];
    for (const n of nodes.slice(1)) codes.push(await n.stop());
    nodes[0]?.proc.kill("SIGKILL"); // (a step that failed before the kill left it running)
    await nodes[0]?.exited();
    await redis.stop();
    assert.deepEqual(codes, nodes.slice(1).map(() => 0), "the nodes still running exit 0 (no leak)");
  }
});

// Redis, two nodes started with args (named prefix-1, prefix-2), a balancer in front of them,
// p2 on node 2 in room "r", and v through the balancer on node 1 in "r" too, reconnecting fast
// and ready across nodes; fn({n1, n2, lb, p2, v, id, failed, logs}) goes on from there (failed:
// v's recovery_failed events; logs(): node 2's last output). Everything is stopped after, node 1
// killed if a failed step left it running; node 2 must exit 0 (no leak).
async function killScene(prefix, args, fn) {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  let lb;
  try {
    for (let i = 1; i <= 2; i++) nodes.push(await startNode(redis.url, `${prefix}-${i}`, args));
    const [n1, n2] = nodes;
    lb = await balancer([n1.port, n2.port]);
    const p2 = await relayClient("websocket", n2.url, "p2");
    clients.push(p2);
    await join(p2, "r");
    const back = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0 };
    const v = await relayClient("websocket", lb.url, "v", back);
    clients.push(v);
    const failed = [];
    v.on("recovery_failed", (why) => failed.push(why));
    await join(v, "r");
    await crossNodeReady(v, p2, "r");
    const logs = () => `\n--- node 2 ---\n${n2.stdout().slice(-3000)}${n2.stderr().slice(-3000)}`;
    await fn({ n1, n2, lb, p2, v, id: v.id, failed, logs });
  } finally {
    for (const s of clients) s.disconnect();
    await lb?.close();
    const code = await nodes[1]?.stop();
    nodes[0]?.proc.kill("SIGKILL"); // (a step that failed before the kill left it running)
    await nodes[0]?.exited();
    await redis.stop();
    if (nodes[1]) assert.equal(code, 0, "node 2 exits 0 (no leak)");
  }
}

// Node 1 dies while the balancer holds v off; then between() runs (what v misses), and v comes
// back through node 2.
async function killNode1(n1, lb, v, between) {
  lb.hold();
  const down = new Promise((r) => v.once("disconnect", r));
  n1.proc.kill("SIGKILL");
  await Promise.race([down, sleep(20000)]);
  assert.equal(v.connected, false, "the client saw node 1 go");
  await between();
  lb.release();
  await until(() => v.connected, 30000, "the client reconnected through node 2");
}

// The nodes' logs in Redis are bounded by the setting that bounds the log in memory
// (--recovery-packets, recovery_max_packets), not by a fixed 10000, and a client resumed from
// them past the bound is told so, as on one node (issue 14): with 50, a client of node 1 that
// missed 40 broadcasts of node 2 gets all 40 when it resumes there; one that missed 60 (the
// oldest 10 trimmed from node 2's log) is not recovered: a new socket, reason "gap" (ferry's
// client's recovery_failed, node 2's log), none of the 50 left replayed. Before, Redis kept
// 10000 per node whatever the setting said (all 60 came), then the newest 50 came, the client
// told it was recovered (silent loss).
async function missWhileKilled(missed) {
  const args = ["--recovery-ms", "60000", "--recovery-packets", "50", "--log-level", "info"];
  await killScene("bound", args, async ({ n1, n2, lb, p2, v, id, failed, logs }) => {
    const got = [];
    v.on("message", (data) => typeof data?.text === "string" && data.text.startsWith("b") && got.push(data.text));
    const sent = [];
    await killNode1(n1, lb, v, async () => {
      for (let i = 1; i <= missed; i++) {
        sent.push(`b${i}`);
        const r = await call(p2, "publish", { room: "r", event: "message", data: { text: `b${i}` } });
        assert.equal(r?.ok, true, `b${i}: ${JSON.stringify(r)}`);
      }
    });
    if (missed <= 50) {
      await until(() => got.includes(sent.at(-1)), 15000, "the missed messages replayed").catch((e) => {
        throw new Error(`${e.message}: recovered=${v.recovered}, got ${got.length}${logs()}`);
      });
      await sleep(300); // a duplicate on its way would show
      assert.equal(v.recovered, true);
      assert.equal(v.id, id);
      assert.deepEqual(got, sent, `missed ${missed}: all, once each, in order`);
      assert.deepEqual(failed, []);
    } else {
      await until(() => failed.length > 0, 5000, "recovery_failed").catch((e) => {
        throw new Error(`${e.message}: recovered=${v.recovered}, got ${got.length}${logs()}`);
      });
      await sleep(300); // a replay on its way would show
      assert.equal(v.recovered, false, `missed ${missed}: not recovered${logs()}`);
      assert.notEqual(v.id, id, "a new socket");
      assert.equal(failed.length, 1);
      assert.equal(failed[0].reason, "gap");
      assert.deepEqual(got, [], "nothing replayed to the new socket");
      assert.match(n2.stderr(), /not recovered \(gap: what it missed is no longer in the log/);
      assert.match(n2.stderr(), /no longer in the log \(node bound-2\)/);
    }
  });
}

// A socket in a quiet room is not refused for what was trimmed by age: with a 5 s window, node 2
// logs "x" to a room the client is not in, then "y" 5.5 s later, which trims "x" by age; node 1 dies
// and its client resumes on node 2: "x" (after the client's position on node 2, gone from the
// log) was sent while the client was connected, more than a window ago, and it resumes. (A rule
// that counted every trimmed entry after the position refused it: "gap".)
test("cluster-kill: a client in a quiet room resumes on another node though entries older than the window were trimmed", { skip, timeout: 60000 }, () =>
  killScene("quiet", ["--recovery-ms", "5000", "--log-level", "info"], async ({ n1, lb, p2, v, id, failed, logs }) => {
    await join(p2, "q"); // the quiet room's traffic: a room the client is not in
    for (const text of ["x", "y"]) {
      if (text === "y") await sleep(5500); // "x" is older than the window now
      const r = await call(p2, "publish", { room: "q", event: "message", data: { text } });
      assert.equal(r?.ok, true, `${text}: ${JSON.stringify(r)}`);
    }
    await killNode1(n1, lb, v, async () => {});
    assert.deepEqual(failed, [], `no recovery_failed${logs()}`);
    assert.equal(v.recovered, true, `recovered${logs()}`);
    assert.equal(v.id, id, "the same socket");
  }));

test("cluster-kill: --recovery-packets 50 bounds the logs in Redis: 40 missed are all replayed on another node", { skip, timeout: 60000 }, () => missWhileKilled(40));
test("cluster-kill: --recovery-packets 50 bounds the logs in Redis: 60 missed, the oldest trimmed: not recovered (gap), a new socket", { skip, timeout: 60000 }, () => missWhileKilled(60));

// Queries and commands across nodes through tools/ferry's HTTP API (ferry_cluster_* in C):
// GET /api/sockets lists every node's sockets (id, node, rooms, nickname) within a timeout and
// says when a node did not answer; POST /api/sockets/{join,leave,disconnect} act on the sockets
// of some rooms wherever they are.
test("cluster-kill: fetch, join, leave and disconnect sockets across nodes (GET /api/sockets, POST /api/sockets/*), a silent node gives a partial answer", { skip, timeout: 180000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  const token = "t0ken-for-the-cluster-api";
  try {
    for (let i = 1; i <= 3; i++) nodes.push(await startNode(redis.url, `q-${i}`, ["--publish-token", token]));
    const [n1, n2, n3] = nodes;
    const api = async (n, method, path, body, auth = token) => {
      const r = await fetch(`${n.url}${path}`, {
        method,
        headers: { ...(auth && { authorization: `Bearer ${auth}` }), ...(body && { "content-type": "application/json" }) },
        body: body && JSON.stringify(body),
      });
      return { status: r.status, body: await r.json() };
    };
    const a = await relayClient("websocket", n1.url, "alice");
    const b = await relayClient("polling", n2.url, "bob");
    const c = await relayClient("sio-websocket", n3.url, "carol");
    clients.push(a, b, c);
    await join(a, "x");
    await join(b, "x");
    await join(b, "y");
    await join(c, "y");
    await crossNodeReady(a, b, "x");
    await crossNodeReady(c, b, "y");

    const byName = (res) => Object.fromEntries(res.body.sockets.map((s) => [s.data?.name, s]));
    let res = await api(n1, "GET", "/api/sockets?timeout=10000");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.complete, true);
    assert.equal(res.body.nodesExpected, 2);
    assert.equal(res.body.nodesAnswered, 2);
    let s = byName(res);
    assert.deepEqual(Object.keys(s).sort(), ["alice", "bob", "carol"]);
    assert.deepEqual([s.alice.id, s.alice.node], [a.id, "q-1"]);
    assert.deepEqual([s.bob.id, s.bob.node], [b.id, "q-2"]);
    assert.deepEqual([s.carol.id, s.carol.node], [c.id, "q-3"]);
    assert.deepEqual(s.bob.rooms.sort(), [b.id, "x", "y"].sort());
    res = await api(n2, "GET", "/api/sockets?room=y");
    assert.deepEqual(Object.keys(byName(res)).sort(), ["bob", "carol"]);

    // Join from node 3: the sockets in x (on nodes 1 and 2) join z; a publish to z reaches them.
    res = await api(n3, "POST", "/api/sockets/join", { rooms: ["x"], room: "z" });
    assert.deepEqual(res, { status: 200, body: { ok: true } });
    res = await api(n3, "GET", "/api/sockets?room=z");
    assert.deepEqual(Object.keys(byName(res)).sort(), ["alice", "bob"]);
    const got = [];
    for (const [who, sock] of [["alice", a], ["bob", b], ["carol", c]])
      sock.on("message", (d) => d?.text === "to-z" && got.push(who));
    res = await api(n3, "POST", "/api/publish", { room: "z", event: "message", data: { text: "to-z" } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await until(() => got.length >= 2, 15000, "the publish to z");
    await sleep(300);
    assert.deepEqual(got.sort(), ["alice", "bob"]);

    // Leave from node 1.
    res = await api(n1, "POST", "/api/sockets/leave", { rooms: ["x"], room: "z" });
    assert.equal(res.status, 200);
    // (Asked from the node that sent the command: what one node sends reaches the others in
    // order; another node could answer before it heard the command.)
    res = await api(n1, "GET", "/api/sockets?room=z");
    assert.deepEqual(res.body.sockets, []);

    // A node that does not answer (stopped): a partial answer within the timeout, said so.
    n3.proc.kill("SIGSTOP");
    try {
      const t0 = Date.now();
      res = await api(n1, "GET", "/api/sockets?timeout=800");
      assert.equal(res.status, 200);
      assert.equal(res.body.complete, false);
      assert.deepEqual([res.body.nodesAnswered, res.body.nodesExpected], [1, 2]);
      assert.deepEqual(Object.keys(byName(res)).sort(), ["alice", "bob"]);
      assert.ok(Date.now() - t0 < 10000);
    } finally {
      n3.proc.kill("SIGCONT");
    }

    // Disconnect the sockets in y (nodes 2 and 3) from node 1.
    const gone = [b, c].map((sock) => new Promise((r) => sock.once("disconnect", r)));
    res = await api(n1, "POST", "/api/sockets/disconnect", { rooms: ["y"] });
    assert.equal(res.status, 200);
    await Promise.race([Promise.all(gone), sleep(15000)]);
    assert.equal(b.connected, false);
    assert.equal(c.connected, false);
    assert.equal(a.connected, true);

    // Bad requests.
    assert.equal((await api(n1, "GET", "/api/sockets", null, null)).status, 401);
    assert.equal((await api(n1, "GET", "/api/sockets?timeout=abc")).status, 400);
    assert.equal((await api(n1, "POST", "/api/sockets/join", { rooms: "x", room: "z" })).status, 400);
    assert.equal((await api(n1, "POST", "/api/sockets/join", { rooms: ["x"] })).status, 400);
  } finally {
    for (const sock of clients) sock.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});
