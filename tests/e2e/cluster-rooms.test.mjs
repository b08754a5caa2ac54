// Rooms across nodes in tools/ferry's relay (issue 18, docs/scaling.md "A socket's own room"):
// redis-server on a free loopback port and two tools/ferry nodes.
//   - A socket's own room (its id) is private on every node: a client on the other node (and on
//     the same node) that tries to join it is refused with a clear error, and a backend's
//     /api/publish to that id, sent on the other node, reaches that one client only.
//   - The relay's history travels as server-side events (ferry_cluster_server_emit): joins on
//     one node see what was said on the other, and receipts reach a publisher on another node.
//   - The join answer lists every node's members (ferry_cluster_fetch_sockets, 1 s bound).
import { test } from "node:test";
import assert from "node:assert/strict";
import { haveRedis, ferryHasRedis, startRedis, startNode, relayClient, call, join, sleep, crossNodeReady } from "./cluster.mjs";

const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !ferryHasRedis()
    ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
    : false;

const token = "t0ken-for-the-rooms-test";

async function api(n, method, path, body) {
  const r = await fetch(`${n.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body && { "content-type": "application/json" }) },
    body: body && JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  return { status: r.status, body: await r.json() };
}

async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred() && Date.now() < deadline) await sleep(20);
  if (!pred()) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

// Every "message" a client gets, as its text.
function record(s) {
  const got = [];
  s.on("message", (d) => typeof d?.text === "string" && !d.text.startsWith("probe-") && got.push(d.text));
  return got;
}

test("cluster-rooms: a socket's own room is private on every node (join refused across nodes, /api/publish to an id reaches that client only)", { skip, timeout: 120000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  try {
    for (let i = 1; i <= 2; i++) nodes.push(await startNode(redis.url, `rooms-${i}`, ["--publish-token", token]));
    const [n1, n2] = nodes;
    const alice = await relayClient("websocket", n1.url, "alice"); // ferry's client, node 1
    const carol = await relayClient("polling", n1.url, "carol"); // node 1 too
    const bob = await relayClient("sio-websocket", n2.url, "bob"); // socket.io-client, node 2
    clients.push(alice, carol, bob);
    for (const s of clients) await join(s, "all");
    await crossNodeReady(alice, bob, "all");
    await crossNodeReady(bob, alice, "all");
    const got = { alice: record(alice), carol: record(carol), bob: record(bob) };

    // Bob (node 2) learns alice's id from the join answer, and cannot join her room.
    const ids = (await call(bob, "join", { room: "all" })).members.map((m) => m.id);
    assert.ok(ids.includes(bob.id));
    for (const arg of [{ room: alice.id }, { room: alice.id, members: false }]) {
      const res = await call(bob, "join", arg);
      assert.equal(res.ok, false, JSON.stringify(res));
      assert.match(res.error, new RegExp(`joining room '${alice.id}' is not allowed: .*socket id, the private room of one client`));
    }
    // Carol (node 1, alice's node) neither.
    assert.match((await call(carol, "join", { room: alice.id })).error, /not allowed: .*socket id/);
    // Refused by its form, wherever the socket is (or if there is none): any 20 base64url characters.
    assert.match((await call(bob, "join", { room: "abcdefghij0123456789" })).error, /not allowed: .*socket id/);
    assert.match((await call(bob, "join", { room: "aaaaaaaaaaaaaaaaaa-_" })).error, /not allowed: .*socket id/);
    // Names of another form are rooms as before (21 characters, a space, a dot).
    for (const room of ["abcdefghij0123456789x", "abcdefghij 123456789", "abcdefghij.123456789"])
      assert.equal((await call(bob, "join", { room, members: false })).ok, true, room);
    // A client's own room is its own: joining it is harmless, leaving it is refused.
    assert.equal((await call(bob, "join", { room: bob.id, members: false })).ok, true);
    assert.match((await call(bob, "leave", { room: bob.id })).error, /not in room/);
    // Still not in alice's room: publishing to it is refused.
    assert.match((await call(bob, "publish", { room: alice.id, event: "message", data: { text: "x" } })).error, /not in room/);

    // A backend publishes to alice's id on node 2, then to "all" on node 2: what one node sends
    // reaches the others in order, so once everyone has "after", alice's private message has
    // arrived wherever it was going to.
    let res = await api(n2, "POST", "/api/publish", { room: alice.id, event: "message", data: { text: "secret-from-2" } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    res = await api(n1, "POST", "/api/publish", { room: alice.id, event: "message", data: { text: "secret-from-1" } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    for (const n of [n1, n2]) {
      res = await api(n, "POST", "/api/publish", { room: "all", event: "message", data: { text: `after-${n === n1 ? 1 : 2}` } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    await until(() => Object.values(got).every((g) => g.includes("after-1") && g.includes("after-2")), 15000, "the publishes to all");
    assert.deepEqual(got.alice.filter((t) => t.startsWith("secret")).sort(), ["secret-from-1", "secret-from-2"]);
    assert.deepEqual(got.bob.filter((t) => t.startsWith("secret")), [], "bob (other node) hears nothing of alice's room");
    assert.deepEqual(got.carol.filter((t) => t.startsWith("secret")), [], "carol (same node) hears nothing of alice's room");
  } finally {
    for (const s of clients) s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});

// The relay's history is shared between nodes with server-side events (ferry_cluster_server_emit,
// Socket.IO's serverSideEmit): a client joining a room on node 2 gets what was said on node 1
// (by a client or a backend), and a receipt sent on node 2 reaches the publisher on node 1.
// Without it, node 2 had no entry: an empty history and "no message ... in the history".
test("cluster-rooms: the relay's history and receipts across nodes (server-side events)", { skip, timeout: 120000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  try {
    for (let i = 1; i <= 2; i++) nodes.push(await startNode(redis.url, `hist-${i}`, ["--publish-token", token, "--history", "10"]));
    const [n1, n2] = nodes;
    const alice = await relayClient("websocket", n1.url, "alice");
    const bob = await relayClient("sio-polling", n2.url, "bob");
    clients.push(alice, bob);
    // Probes go to a room of their own ("message" is a history event).
    for (const s of clients) await join(s, "probe");
    await crossNodeReady(alice, bob, "probe");
    await crossNodeReady(bob, alice, "probe");
    await join(alice, "chat");
    await join(bob, "chat");
    const receipts = [];
    alice.on("receipt", (r) => receipts.push(r));
    const heard = [];
    bob.on("message", (data, meta) => meta?.room === "chat" && heard.push([data, meta]));

    // alice publishes on node 1; bob hears it on node 2, with its history id.
    const pub = await call(alice, "publish", { room: "chat", event: "message", data: { text: "hello" } });
    assert.equal(pub.ok, true, JSON.stringify(pub));
    assert.match(pub.id, /^[0-9a-z]+\.[0-9a-z]{5}-[0-9]+$/, "a cluster node's history id carries its tag");
    await until(() => heard.length >= 1, 15000, "bob to hear alice");
    assert.equal(heard[0][1].id, pub.id);

    // A backend publishes on node 1 too (kept without "from").
    const res = await api(n1, "POST", "/api/publish", { room: "chat", event: "message", data: { text: "from-backend" } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await until(() => heard.length >= 2, 15000, "bob to hear the backend");

    // A new client on node 2 joins: the history of node 1's publishes, oldest first.
    const carol = await relayClient("sse", n2.url, "carol");
    clients.push(carol);
    const ans = await join(carol, "chat");
    assert.deepEqual(
      ans.history.map((e) => [e.id, e.event, e.data.text, e.from?.name]),
      [[pub.id, "message", "hello", "alice"], [heard[1][1].id, "message", "from-backend", undefined]],
    );
    assert.equal(ans.history[0].from.id, alice.id);

    // bob's receipt, sent on node 2, reaches alice on node 1.
    const rec = await call(bob, "receipt", { room: "chat", id: pub.id });
    assert.deepEqual(rec, { ok: true });
    await until(() => receipts.length >= 1, 15000, "alice to get bob's receipt");
    assert.deepEqual(receipts, [{ room: "chat", id: pub.id, by: { id: bob.id, name: "bob" } }]);

    // And the other way: bob publishes on node 2, alice's node has it for her receipt and joiners.
    const pub2 = await call(bob, "publish", { room: "chat", event: "message", data: { text: "hi alice" } });
    assert.equal(pub2.ok, true);
    assert.notEqual(pub2.id.split("-")[0], pub.id.split("-")[0], "each node its own id prefix");
    const dave = await relayClient("polling", n1.url, "dave");
    clients.push(dave);
    let texts = [];
    const deadline = Date.now() + 15000;
    while (!texts.includes("hi alice") && Date.now() < deadline) {
      texts = (await join(dave, "chat")).history.map((e) => e.data.text);
      if (!texts.includes("hi alice")) await sleep(100);
    }
    assert.deepEqual(texts, ["hello", "from-backend", "hi alice"]);
    // An unknown id is still refused.
    assert.match((await call(bob, "receipt", { room: "chat", id: "nope-1" })).error, /no message 'nope-1'/);

    // Node 2 stopped (SIGTERM) while a join answer waits for a silent node 1: it exits 0 (the
    // answer is dropped; nothing used after free, nothing leaked).
    n1.proc.kill("SIGSTOP");
    try {
      bob.emit("join", { room: "chat" }, () => {});
      await sleep(300);
      assert.equal(await n2.stop(), 0, "node 2 exits 0 with a join answer waiting");
    } finally {
      n1.proc.kill("SIGCONT");
    }
  } finally {
    for (const s of clients) s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});

// The relay's join answer lists the members of every node (ferry_cluster_fetch_sockets, 1 s):
// complete when every node answered, else the members of those that did, said by
// "complete": false (a stopped node, Redis away).
test("cluster-rooms: the join answer lists every node's members (members, count, complete)", { skip, timeout: 120000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  try {
    for (let i = 1; i <= 2; i++) nodes.push(await startNode(redis.url, `mem-${i}`));
    const [n1, n2] = nodes;
    const alice = await relayClient("websocket", n1.url, "alice");
    const carol = await relayClient("short-polling", n1.url, "carol");
    const bob = await relayClient("sio-websocket", n2.url, "bob");
    clients.push(alice, carol, bob);
    await join(alice, "probe");
    await join(bob, "probe");
    await crossNodeReady(alice, bob, "probe");
    await crossNodeReady(bob, alice, "probe");
    const names = (res) => res.members.map((m) => `${m.name}:${m.id}`).sort();

    await join(alice, "room");
    await join(carol, "room");
    let res = await join(bob, "room"); // on node 2: alice and carol are on node 1
    assert.deepEqual(names(res), [`alice:${alice.id}`, `bob:${bob.id}`, `carol:${carol.id}`]);
    assert.deepEqual([res.count, res.complete], [3, true]);
    res = await join(alice, "room"); // and from node 1
    assert.deepEqual(names(res), [`alice:${alice.id}`, `bob:${bob.id}`, `carol:${carol.id}`]);
    assert.deepEqual([res.count, res.complete], [3, true]);
    // {members: false}: neither list, count nor complete, as on one node.
    res = await call(bob, "join", { room: "room", members: false });
    assert.deepEqual(res, { ok: true, room: "room" });

    // Node 1 stopped: bob's answer comes after the 1 s bound with node 2's members, incomplete.
    n1.proc.kill("SIGSTOP");
    try {
      const t0 = Date.now();
      res = await join(bob, "room");
      const took = Date.now() - t0;
      assert.deepEqual(names(res), [`bob:${bob.id}`]);
      assert.deepEqual([res.count, res.complete], [1, false]);
      assert.ok(took >= 900 && took < 10000, `answered after ${took} ms`);
      // A client that leaves while its join answer waits for node 1: the answer is dropped
      // (no use of its freed ack: ASan; no leak: LeakSanitizer at the end).
      const dave = await relayClient("websocket", n2.url, "dave");
      let answered = false;
      dave.emit("join", { room: "room" }, () => (answered = true));
      await sleep(300);
      dave.disconnect();
      await sleep(1500); // past the 1 s bound: the fetch ended meanwhile
      assert.equal(answered, false);
    } finally {
      n1.proc.kill("SIGCONT");
    }
    res = await join(bob, "room");
    assert.deepEqual([res.count, res.complete], [3, true], "complete again once node 1 runs");

    // Redis away: answered at once with this node's members, incomplete.
    await redis.stop({ keep: true });
    res = await join(bob, "room");
    assert.deepEqual(names(res), [`bob:${bob.id}`]);
    assert.deepEqual([res.count, res.complete], [1, false]);
  } finally {
    for (const s of clients) s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});
