// Rooms across nodes in tools/ferry's relay (issue 18, docs/scaling.md "A socket's own room"):
// redis-server on a free loopback port and two tools/ferry nodes.
//   - A socket's own room (its id) is private on every node: a client on the other node (and on
//     the same node) that tries to join it is refused with a clear error, and a backend's
//     /api/publish to that id, sent on the other node, reaches that one client only.
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
