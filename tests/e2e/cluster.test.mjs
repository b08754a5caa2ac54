// Several nodes through Redis (issue 18): a private redis-server on loopback, three tools/ferry
// nodes with --redis, clients of every transport (ferry's four, socket.io-client's two) spread
// over the nodes. Every publish reaches every other member of its room exactly once, whatever
// node either is on, and no one outside it; Redis stopped: each node keeps delivering to its own
// clients and says so; Redis back on the same port: cross-node delivery comes back by itself.
// Nodes exit 0 under LeakSanitizer.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  FERRY_TRANSPORTS, SIO_TRANSPORTS, haveRedis, ferryHasRedis, startRedis, startNode, relayClient,
  call, join, sleep, crossNodeReady, clusterReady,
} from "./cluster.mjs";

const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !ferryHasRedis()
    ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
    : false;

// Wait until every expected (receiver, tag) pair arrived, or ms passed; then a short grace for
// late duplicates. got: Map receiverName -> array of tags received.
async function settle(expectedCount, got, ms = 20000) {
  const deadline = Date.now() + ms;
  const count = () => [...got.values()].reduce((n, a) => n + a.length, 0);
  while (count() < expectedCount && Date.now() < deadline) await sleep(20);
  await sleep(300); // a duplicate still on its way would show here
}

test("cluster: three nodes through Redis, every transport, rooms across nodes exactly once; Redis stopped and back", { skip, timeout: 180000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  try {
    for (let i = 1; i <= 3; i++) nodes.push(await startNode(redis.url, `node-${i}`));
    for (const n of nodes) assert.match(n.stdout(), /cluster node node-\d/);

    // Readiness: a publish from each node reaches a client on node 1.
    const probeA = await clusterReady(nodes, clients);

    // Six kinds of client on each of the three nodes: 18 members of "all"; every other one
    // (by index) also in "odd".
    const kinds = [...FERRY_TRANSPORTS, ...SIO_TRANSPORTS];
    const members = [];
    for (const [ni, n] of nodes.entries())
      for (const kind of kinds) {
        const name = `${kind}@${ni + 1}`;
        const s = await relayClient(kind, n.url, name);
        clients.push(s);
        const m = { name, kind, node: ni, s, odd: members.length % 2 === 1, got: [] };
        s.on("message", (data, meta) => {
          if (typeof data?.text === "string" && data.text.startsWith("c:")) m.got.push(`${meta?.room}|${data.text}`);
        });
        members.push(m);
      }
    for (const m of members) {
      await join(m.s, "all");
      if (m.odd) await join(m.s, "odd");
    }

    // Each member publishes once to "all" and, if odd, once to "odd".
    const expected = new Map(members.map((m) => [m.name, []]));
    for (const m of members) {
      for (const room of m.odd ? ["all", "odd"] : ["all"]) {
        const text = `c:${m.name}:${room}`;
        const res = await call(m.s, "publish", { room, event: "message", data: { text } });
        assert.equal(res?.ok, true, `${m.name} publishes to ${room}: ${JSON.stringify(res)}`);
        for (const o of members)
          if (o !== m && (room === "all" || o.odd)) expected.get(o.name).push(`${room}|${text}`);
      }
    }
    const got = new Map(members.map((m) => [m.name, m.got]));
    const total = [...expected.values()].reduce((n, a) => n + a.length, 0);
    await settle(total, got);
    for (const m of members)
      assert.deepEqual([...m.got].sort(), [...expected.get(m.name)].sort(), `${m.name} (node ${m.node + 1}) got every publish of its rooms exactly once, and nothing else`);

    // Redis goes away: each node still delivers to its own clients, and logs why the others
    // do not hear it.
    for (const m of members) m.got.length = 0;
    await redis.stop({ keep: true });
    const sender = members.find((m) => m.node === 0 && m.kind === "websocket");
    const res = await call(sender.s, "publish", { room: "all", event: "message", data: { text: "c:redis-down" } });
    assert.equal(res?.ok, true);
    const localOnes = members.filter((m) => m.node === 0 && m !== sender);
    const deadline = Date.now() + 10000;
    while (localOnes.some((m) => m.got.length === 0) && Date.now() < deadline) await sleep(20);
    await sleep(300);
    for (const m of members)
      assert.deepEqual(m.got, m.node === 0 && m !== sender ? ["all|c:redis-down"] : [], `${m.name}: Redis down, local delivery only`);
    const warnUntil = Date.now() + 10000;
    while (!nodes.every((n) => /unreachable/.test(n.stderr())) && Date.now() < warnUntil) await sleep(50);
    for (const n of nodes) assert.match(n.stderr(), /redis.*unreachable/i, "each node says Redis is unreachable");

    // Redis back on the same port: the nodes reconnect (backoff at most 5 s), subscribe again,
    // and cross-node delivery is exactly once again.
    const redis2 = await startRedis({ port: redis.port, dir: redis.dir });
    try {
      for (const p of clients.slice(1, 3)) await crossNodeReady(probeA, p, "probe", 30000);
      // Node 3 -> node 1 is proven; node 1 -> others too:
      await crossNodeReady(clients[1], probeA, "probe", 30000);
      for (const m of members) m.got.length = 0;
      const from = members.find((m) => m.node === 2 && m.odd && m.kind === "short-polling");
      const r2 = await call(from.s, "publish", { room: "odd", event: "message", data: { text: "c:redis-back" } });
      assert.equal(r2?.ok, true, JSON.stringify(r2));
      const want = members.filter((m) => m.odd && m !== from);
      await settle(want.length, new Map(members.map((m) => [m.name, m.got])));
      for (const m of members)
        assert.deepEqual(m.got, want.includes(m) ? ["odd|c:redis-back"] : [], `${m.name}: after Redis came back`);
      for (const n of nodes) assert.match(n.stderr(), /reachable again/, "each node says Redis is back");
    } finally {
      await redis2.stop();
    }
  } finally {
    for (const s of clients) s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});

test("cluster: tools/ferry refuses a bad --redis URL or --node-id with one clear line", { skip }, async () => {
  const { spawnSync } = await import("node:child_process");
  const { bin } = await import("../lib/server.mjs");
  for (const [args, re] of [
    [["--redis", "http://127.0.0.1:6379"], /invalid Redis URL/],
    [["--redis", "redis://127.0.0.1:99999"], /cannot use Redis/],
    [["--redis", "redis://127.0.0.1:1", "--node-id", "a b"], /invalid node id/],
  ]) {
    const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", ...args], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, 2 - (re.source.includes("cannot") ? 1 : 0), `${args.join(" ")}: exit status (${r.stderr})`);
    assert.match(r.stderr, re);
  }
});

test("cluster: a client that lost its connection comes back to its node with the broadcasts another node sent meanwhile (recovery offsets are stamped per node); garbage on the channels is ignored", { skip, timeout: 120000 }, async () => {
  const { spawnSync } = await import("node:child_process");
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  try {
    for (let i = 1; i <= 2; i++) nodes.push(await startNode(redis.url, `rec-${i}`, ["--recovery-ms", "60000"]));
    const a = await relayClient("websocket", nodes[0].url, "a");
    clients.push(a);
    await join(a, "r");
    // socket.io-client with reconnection: its connection is cut below, it comes back.
    const b = await relayClient("sio-websocket", nodes[1].url, "b", { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    clients.push(b);
    await join(b, "r");
    await crossNodeReady(b, a, "r");
    const got = [];
    b.on("message", (data) => typeof data?.text === "string" && data.text.startsWith("x") && got.push(data.text));
    await call(a, "publish", { room: "r", event: "message", data: { text: "x1" } });
    const until1 = Date.now() + 10000;
    while (got.length < 1 && Date.now() < until1) await sleep(20);
    assert.deepEqual(got, ["x1"]);
    const id = b.id;

    // Garbage on the namespace's channel: counted and dropped, the node goes on.
    const pub = spawnSync("redis-cli", ["-p", String(redis.port), "PUBLISH", "ferry#/#", "not a ferry message"], { encoding: "utf8" });
    assert.equal(pub.status, 0, pub.stderr);

    // Cut b's connection; while it is away, a (on the other node) publishes twice.
    const back = new Promise((resolve) => b.once("connect", resolve));
    b.io.engine.close();
    await call(a, "publish", { room: "r", event: "message", data: { text: "x2" } });
    await call(a, "publish", { room: "r", event: "message", data: { text: "x3" } });
    await Promise.race([back, sleep(15000)]);
    assert.equal(b.connected, true, "b reconnected");
    assert.equal(b.recovered, true, "b was recovered by its node");
    assert.equal(b.id, id, "with its id");
    const until2 = Date.now() + 10000;
    while (got.length < 3 && Date.now() < until2) await sleep(20);
    await sleep(300);
    assert.deepEqual(got, ["x1", "x2", "x3"], "the broadcasts sent meanwhile from the other node, once each, in order");
    // And it is still in its room, across nodes.
    await call(a, "publish", { room: "r", event: "message", data: { text: "x4" } });
    const until3 = Date.now() + 10000;
    while (got.length < 4 && Date.now() < until3) await sleep(20);
    assert.deepEqual(got, ["x1", "x2", "x3", "x4"]);
  } finally {
    for (const s of clients) s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});
