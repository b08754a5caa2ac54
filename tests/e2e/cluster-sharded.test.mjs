// Sharded pub/sub (Redis 7's SSUBSCRIBE/SPUBLISH, tools/ferry --redis-sharded; docs/scaling.md
// "Redis Cluster: sharded pub/sub"). First against one Redis 7 (no cluster mode: it owns every
// slot), then against a REAL Redis Cluster of three masters on loopback (redis-server
// --cluster-enabled yes, joined by redis-cli --cluster create): three ferry nodes, ferry's and
// socket.io-client's clients on every node in rooms whose channels hash to slots of different
// shards; every publish reaches every other member of its room exactly once; the cross-node
// query (GET /api/sockets) answers from every node; one shard's redis-server stopped: the rooms
// of the other shards go on across nodes, and when it is started again, delivery in its room
// comes back by itself; a room's slot moved to another master: its subscribers follow it.
// Every ferry node exits 0 under LeakSanitizer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  haveRedis, ferryHasRedis, startRedis, startNode, relayClient, call, join, sleep, crossNodeReady,
} from "./cluster.mjs";
import { bin } from "../lib/server.mjs";

const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !ferryHasRedis()
    ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
    : !/--redis-sharded/.test(spawnSync(bin("tools/ferry/ferry"), ["--help"], { encoding: "utf8" }).stdout ?? "")
      ? "tools/ferry has no --redis-sharded"
      : false;

const TOKEN = "sharded-test-token-0123456789";

// The Redis Cluster specification's key hash slot: CRC16 (XMODEM) of the key, or of its hash
// tag, modulo 16384 (the test's own copy: it picks rooms per shard with it).
function crc16(buf) {
  let crc = 0;
  for (const b of buf) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}
function keyslot(key) {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key)) % 16384;
}
// ferry's channel of a room of namespace "/" (lib/adapter/redis.c).
const roomChannel = (room) => `ferry#/#${room}#`;

function redisCli(args) {
  return spawnSync("redis-cli", args, { encoding: "utf8", timeout: 20000 });
}

// One master of the cluster: its own folder (nodes.conf survives a restart there).
function startClusterNode({ port, dir } = {}) {
  return startRedis({ port, dir, args: [
    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
    "--cluster-require-full-coverage", "no",
  ] });
}

async function waitClusterOk(ports, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = ports.every((p) => /cluster_state:ok/.test(redisCli(["-p", String(p), "cluster", "info"]).stdout ?? ""));
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`cluster_state never ok on ${ports.join(",")}`);
    await sleep(200);
  }
}

// Which master (by port) owns each slot range: CLUSTER SLOTS as redis-cli prints it.
function slotOwners(port) {
  const r = redisCli(["-p", String(port), "--json", "cluster", "slots"]);
  if (r.status === 0 && r.stdout.trim().startsWith("[")) {
    return JSON.parse(r.stdout).map((e) => ({ first: e[0], last: e[1], port: e[2][1] }));
  }
  // redis-cli without --json: one value a line.
  const lines = redisCli(["-p", String(port), "cluster", "slots"]).stdout.trim().split("\n");
  const out = [];
  for (let i = 0; i + 3 < lines.length; ) {
    const first = Number(lines[i]), last = Number(lines[i + 1]);
    const port2 = Number(lines[i + 3]);
    out.push({ first, last, port: port2 });
    i += 5; // first, last, ip, port, id (no replicas here)
    while (i < lines.length && !/^\d+$/.test(lines[i])) i++;
  }
  return out;
}

async function exchange(members, rooms, tagPrefix) {
  // Every member publishes once to each of its rooms; every other member of that room gets it.
  const expected = new Map(members.map((m) => [m.name, []]));
  for (const m of members) m.got.length = 0;
  for (const m of members)
    for (const room of rooms) {
      const text = `${tagPrefix}:${m.name}:${room}`;
      const res = await call(m.s, "publish", { room, event: "message", data: { text } });
      assert.equal(res?.ok, true, `${m.name} publishes to ${room}: ${JSON.stringify(res)}`);
      for (const o of members) if (o !== m) expected.get(o.name).push(`${room}|${text}`);
    }
  const total = [...expected.values()].reduce((n, a) => n + a.length, 0);
  const deadline = Date.now() + 30000;
  const count = () => members.reduce((n, m) => n + m.got.filter((g) => g.includes(`|${tagPrefix}:`)).length, 0);
  while (count() < total && Date.now() < deadline) await sleep(20);
  await sleep(400); // a duplicate on its way would show here
  for (const m of members)
    assert.deepEqual(
      m.got.filter((g) => g.includes(`|${tagPrefix}:`)).sort(),
      expected.get(m.name).sort(),
      `${m.name} got every publish of its rooms exactly once (${tagPrefix})`,
    );
}

async function clientsOn(nodes, kinds) {
  const members = [];
  for (const [ni, n] of nodes.entries())
    for (const kind of kinds) {
      const name = `${kind}@${ni + 1}`;
      const s = await relayClient(kind, n.url, name);
      const m = { name, kind, node: ni, s, got: [] };
      s.on("message", (data, meta) => {
        if (typeof data?.text === "string") m.got.push(`${meta?.room}|${data.text}`);
      });
      members.push(m);
    }
  return members;
}

async function apiSockets(node, room) {
  const res = await fetch(`${node.url}/api/sockets?room=${encodeURIComponent(room)}&timeout=5000`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  return { status: res.status, body: await res.json() };
}

test("sharded pub/sub on one Redis 7: rooms across nodes exactly once, queries across nodes", { skip, timeout: 120000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const members = [];
  try {
    for (let i = 1; i <= 2; i++)
      nodes.push(await startNode(redis.url, `s1-${i}`, ["--redis-sharded", "--publish-token", TOKEN]));
    for (const n of nodes) assert.match(n.stdout(), /cluster node s1-\d.*sharded pub\/sub/);
    members.push(...(await clientsOn(nodes, ["websocket", "polling", "sio-websocket"])));
    for (const m of members) await join(m.s, "r1");
    await crossNodeReady(members[0].s, members[3].s, "r1");
    await crossNodeReady(members[3].s, members[0].s, "r1");
    // Redis 7 itself says the node subscribed with SSUBSCRIBE, not SUBSCRIBE.
    const shard = redisCli(["-p", String(redis.port), "pubsub", "shardchannels"]).stdout;
    assert.match(shard, /ferry#\/#r1#/, "the room's channel is a sharded channel in Redis");
    const classic = redisCli(["-p", String(redis.port), "pubsub", "channels"]).stdout;
    assert.doesNotMatch(classic, /ferry#\/#r1#/, "and not a classic one");
    await exchange(members, ["r1"], "one");
    const q = await apiSockets(nodes[1], "r1");
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.equal(q.body.complete, true, JSON.stringify(q.body));
    assert.equal(q.body.sockets.length, members.length, "the query finds every node's sockets");
  } finally {
    for (const m of members) m.s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});

test("sharded pub/sub on a 3-master Redis Cluster: rooms on different shards exactly once across 3 nodes; a shard restarted, its room comes back", { skip, timeout: 240000 }, async () => {
  const masters = [];
  const nodes = [];
  let members = [];
  try {
    for (let i = 0; i < 3; i++) masters.push(await startClusterNode());
    const create = redisCli(["--cluster", "create", ...masters.map((m) => `127.0.0.1:${m.port}`), "--cluster-replicas", "0", "--cluster-yes"]);
    assert.equal(create.status, 0, `redis-cli --cluster create: ${create.stdout}${create.stderr}`);
    await waitClusterOk(masters.map((m) => m.port));

    // One room per shard: its channel's slot is owned by that master.
    const owners = slotOwners(masters[0].port);
    const ownerOf = (slot) => owners.find((o) => slot >= o.first && slot <= o.last)?.port;
    const rooms = [];
    for (const m of masters) {
      let k = 0;
      while (ownerOf(keyslot(roomChannel(`room-${k}`))) !== m.port) k++;
      rooms.push(`room-${k}`);
    }
    for (const [i, room] of rooms.entries()) {
      const slot = Number(redisCli(["-p", String(masters[0].port), "cluster", "keyslot", roomChannel(room)]).stdout.trim());
      assert.equal(slot, keyslot(roomChannel(room)), "the test's keyslot agrees with Redis's");
      assert.equal(ownerOf(slot), masters[i].port);
    }

    // Three ferry nodes, each told a different master (any node of the cluster will do).
    for (let i = 0; i < 3; i++)
      nodes.push(await startNode(`redis://127.0.0.1:${masters[i].port}`, `sh-${i + 1}`, ["--redis-sharded", "--publish-token", TOKEN, "--log-level", "info", "--cluster-secret", "sharded-cluster-secret-0123"]));
    members = await clientsOn(nodes, ["websocket", "sio-websocket", "sio-polling"]);
    for (const m of members) for (const room of rooms) await join(m.s, room);
    for (const room of rooms) {
      await crossNodeReady(members[0].s, members[3].s, room);
      await crossNodeReady(members[3].s, members[6].s, room);
      await crossNodeReady(members[6].s, members[0].s, room);
    }
    // Each room's channel is subscribed on its own master only.
    for (const [i, room] of rooms.entries())
      for (const [k, m] of masters.entries()) {
        const out = redisCli(["-p", String(m.port), "pubsub", "shardnumsub", roomChannel(room)]).stdout.trim().split("\n");
        assert.equal(Number(out[1]), i === k ? 3 : 0, `${room} on master ${k}: subscribers`);
      }

    await exchange(members, rooms, "all");
    const q = await apiSockets(nodes[2], rooms[0]);
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.equal(q.body.complete, true, JSON.stringify(q.body));
    assert.equal(q.body.sockets.length, members.length, "the query finds every node's sockets");

    // Forwarding works on the cluster: its node addresses are keys, sent to their slot's
    // master. A polling session opened on node 1 is served through nodes 2 and 3.
    const hs = await fetch(`${nodes[0].url}/socket.io/?EIO=4&transport=polling`);
    const open = await hs.text();
    assert.equal(hs.status, 200, open);
    const sid = JSON.parse(open.slice(open.indexOf("{"))).sid;
    const post = await fetch(`${nodes[1].url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, {
      method: "POST", body: '40{"name":"fwd"}', headers: { "content-type": "text/plain;charset=UTF-8" },
    });
    assert.equal(post.status, 200, `a POST for node 1's session through node 2: ${await post.text()}`);
    const poll = await fetch(`${nodes[2].url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
    const polled = await poll.text();
    assert.equal(poll.status, 200, `a poll for node 1's session through node 3: ${polled}`);
    assert.match(polled, /^40\{/, "the CONNECT answer of node 1 comes through node 3");

    // The shard of rooms[1] stops: the other rooms go on across nodes.
    const down = masters[1];
    await down.stop({ keep: true });
    await exchange(members, [rooms[0], rooms[2]], "down");
    const warnUntil = Date.now() + 15000;
    while (!nodes.every((n) => new RegExp(`${down.port} unreachable`).test(n.stderr())) && Date.now() < warnUntil) await sleep(50);
    for (const n of nodes) assert.match(n.stderr(), new RegExp(`Redis node 127.0.0.1:${down.port} unreachable`));

    // Started again with its nodes.conf: it still owns its slots; every ferry node reconnects
    // (backoff at most 5 s), subscribes again, and its room is exactly once again.
    masters[1] = await startClusterNode({ port: down.port, dir: down.dir });
    for (const [a, b] of [[0, 3], [3, 6], [6, 0]]) await crossNodeReady(members[a].s, members[b].s, rooms[1], 60000);
    await exchange(members, rooms, "back");
    for (const n of nodes) assert.match(n.stderr(), new RegExp(`Redis node 127.0.0.1:${down.port} reachable again`));

    // The slot of rooms[0]'s channel moves from its master to another one (CLUSTER SETSLOT,
    // as a resharding does for a slot without keys): the old master unsubscribes the ferry
    // nodes (sunsubscribe), they read the map again and subscribe on the new owner; their
    // SPUBLISH follow MOVED; the room is exactly once again.
    const slot = keyslot(roomChannel(rooms[0]));
    const [from, to] = [masters[0], masters[2]];
    const idOf = (m) => redisCli(["-p", String(m.port), "cluster", "myid"]).stdout.trim();
    const [fromId, toId] = [idOf(from), idOf(to)];
    for (const [m, args] of [
      [to, ["importing", fromId]], [from, ["migrating", toId]], [to, ["node", toId]], [from, ["node", toId]],
    ]) {
      const r = redisCli(["-p", String(m.port), "cluster", "setslot", String(slot), ...args]);
      assert.match(r.stdout, /OK/, `CLUSTER SETSLOT ${slot} ${args.join(" ")} on ${m.port}: ${r.stdout}${r.stderr}`);
    }
    const numsub = (m) => Number(redisCli(["-p", String(m.port), "pubsub", "shardnumsub", roomChannel(rooms[0])]).stdout.trim().split("\n")[1]);
    const movedUntil = Date.now() + 30000;
    while ((numsub(to) !== 3 || numsub(from) !== 0) && Date.now() < movedUntil) await sleep(100);
    assert.equal(numsub(to), 3, `${rooms[0]} subscribed on its new master by the three ferry nodes`);
    assert.equal(numsub(from), 0, `${rooms[0]} no longer subscribed on its old master`);
    const heard = /1 sharded channel\(s\) left their Redis node with their slot \(sunsubscribe\)/;
    const heardUntil = Date.now() + 15000;
    while (!nodes.every((n) => heard.test(n.stderr())) && Date.now() < heardUntil) await sleep(50);
    for (const n of nodes) assert.match(n.stderr(), heard, "each node heard Redis's sunsubscribe");
    for (const [a, b] of [[0, 3], [3, 6], [6, 0]]) await crossNodeReady(members[a].s, members[b].s, rooms[0], 30000);
    await exchange(members, rooms, "moved");
  } finally {
    for (const m of members) m.s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    for (const m of masters) await m.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});

test("--redis-sharded without --redis is refused with one clear line", { skip }, async () => {
  const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", "--redis-sharded"], { encoding: "utf8", timeout: 20000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--redis-sharded needs --redis URL/);
});
