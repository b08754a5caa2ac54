// Binary arguments across nodes (issue 13: raw bytes through the Redis adapter and the recovery
// log): a Buffer published on one node reaches a WebSocket and a polling client on another node
// with the same bytes, and a client cut while binary broadcasts go out gets them back, byte for
// byte, when its node recovers it. Nodes exit 0 under LeakSanitizer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { haveRedis, ferryHasRedis, startRedis, startNode, relayClient, call, join, sleep, crossNodeReady } from "./cluster.mjs";

const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !ferryHasRedis()
    ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
    : false;

async function until(pred, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!pred() && Date.now() < deadline) await sleep(20);
}

test("binary across nodes: Redis adapter and recovery carry the bytes unchanged", { skip, timeout: 120000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  const clients = [];
  try {
    for (let i = 1; i <= 2; i++) nodes.push(await startNode(redis.url, `bin-${i}`, ["--recovery-ms", "60000"]));
    const a = await relayClient("sio-websocket", nodes[0].url, "a");
    clients.push(a);
    await join(a, "bin");
    const b = await relayClient("sio-websocket", nodes[1].url, "b", { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    const c = await relayClient("sio-polling", nodes[1].url, "c");
    clients.push(b, c);
    await join(b, "bin");
    await join(c, "bin");
    await crossNodeReady(b, a, "bin");
    await crossNodeReady(c, a, "bin");

    const gotB = [], gotC = [];
    const rec = (got) => (data) => {
      if (data && typeof data.tag === "string" && data.tag.startsWith("bin")) got.push([data.tag, Buffer.from(data.file)]);
    };
    b.on("message", rec(gotB));
    c.on("message", rec(gotC));
    const sent = new Map();
    const publish = async (tag, size) => {
      const file = randomBytes(size);
      sent.set(tag, file);
      const res = await call(a, "publish", { room: "bin", event: "message", data: { tag, file } });
      assert.equal(res?.ok, true, JSON.stringify(res));
    };
    const check = (got, tags) => {
      assert.deepEqual(got.map(([t]) => t), tags);
      for (const [t, bytes] of got) assert.ok(bytes.equals(sent.get(t)), `${t}: same bytes`);
    };

    await publish("bin1", 4096);
    await until(() => gotB.length >= 1 && gotC.length >= 1);
    check(gotB, ["bin1"]);
    check(gotC, ["bin1"]);

    // b cut; two binary broadcasts from the other node while it is away.
    const back = new Promise((resolve) => b.once("connect", resolve));
    const id = b.id;
    b.io.engine.close();
    await publish("bin2", 1);
    await publish("bin3", 70000);
    await Promise.race([back, sleep(15000)]);
    assert.equal(b.connected, true, "b reconnected");
    assert.equal(b.recovered, true, "b was recovered");
    assert.equal(b.id, id);
    await until(() => gotB.length >= 3 && gotC.length >= 3);
    await sleep(300); // a duplicate on its way would show here
    check(gotB, ["bin1", "bin2", "bin3"]);
    check(gotC, ["bin1", "bin2", "bin3"]);
  } finally {
    for (const s of clients) s.disconnect();
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "every node exits 0 (no leak)");
  }
});
