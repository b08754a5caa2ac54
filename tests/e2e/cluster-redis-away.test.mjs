// Forwarding while Redis is away (issue 18, docs/scaling.md "Forwarding"): a polling session
// held by node A, its requests sent to node B, which forwards them. Node B learned A's address
// from Redis while it was there; Redis then stops answering (SIGSTOP), later goes away (killed):
// past B's 5 s address cache, B forwards to A's last known address, the session's polls and
// POSTs are answered (not 400 "Session ID unknown") and the session goes on. Nodes exit 0
// under LeakSanitizer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { haveRedis, ferryHasRedis, startRedis, startNode, sleep, httpRequest } from "./cluster.mjs";

const skip = !haveRedis()
  ? "redis-server is not installed (scripts/deps.sh test installs it)"
  : !ferryHasRedis()
    ? "tools/ferry was built without Redis (-DFERRY_WITH_REDIS=OFF)"
    : false;

const CACHE_MS = 5000; // forward.c's address cache (PEER_KNOWN_MS); no knob: wait it out

const request = (url, o = {}) => httpRequest(url, { timeoutMs: 20000, ...o });

test("forwarding while Redis is away: a polling session's requests at another node go to the owner's last known address", { skip, timeout: 120000 }, async () => {
  const redis = await startRedis();
  const nodes = [];
  let stopped = false;
  try {
    // Pings every 2 s: a held poll is answered soon; pongs are due within 30 s.
    for (const id of ["a", "b"])
      nodes.push(await startNode(redis.url, `node-${id}`, ["--ping-interval", "2000", "--ping-timeout", "30000"]));
    const [a, b] = nodes;

    const open = await request(`${a.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(open.status, 200, open.body);
    const sid = JSON.parse(open.body.slice(1)).sid;
    const at = (n) => `${n.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;

    // Redis is there: B learns A's address and forwards (the node's key may take a moment).
    let r;
    const deadline = Date.now() + 20000;
    for (;;) {
      r = await request(at(b), { method: "POST", body: "40" });
      if (r.status === 200 || Date.now() > deadline) break;
      await sleep(200);
    }
    assert.deepEqual([r.status, r.body], [200, "ok"], "CONNECT forwarded to the owner");
    r = await request(at(b));
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /^40\{"sid"/, "the CONNECT's answer, through B");

    // One poll/pong round through B: 200, a ping, and the pong taken.
    async function round(what) {
      const poll = await request(at(b));
      assert.equal(poll.status, 200, `${what}: poll through B answered, not ${poll.status} ${poll.body}`);
      assert.match(poll.body, /(^|\x1e)2($|\x1e)/, `${what}: the owner's ping`);
      const pong = await request(at(b), { method: "POST", body: "3" });
      assert.deepEqual([pong.status, pong.body], [200, "ok"], `${what}: pong through B`);
      return poll.ms;
    }

    // Redis does not answer (stopped): past the cache, B's lookup hangs; after 1 s B uses the
    // last known address.
    redis.proc.kill("SIGSTOP");
    stopped = true;
    await sleep(CACHE_MS + 1000);
    const ms = await round("Redis stopped");
    assert.ok(ms < 10000, `answered within the lookup wait + a ping interval (${ms} ms)`);
    await sleep(CACHE_MS + 1000);
    await round("Redis stopped, again past the cache");

    // Redis gone (its connection closed): B forwards to the last known address at once.
    redis.proc.kill("SIGCONT");
    stopped = false;
    await redis.stop();
    await sleep(CACHE_MS + 1000);
    await round("Redis killed");

    // The session still lives at its owner: a poll straight at A is answered.
    const direct = await request(at(a));
    assert.equal(direct.status, 200, direct.body);
    assert.match(direct.body, /(^|\x1e)2($|\x1e)/, "the owner's next ping, straight from A");
  } finally {
    if (stopped) redis.proc.kill("SIGCONT");
    const codes = [];
    for (const n of nodes) codes.push(await n.stop());
    await redis.stop();
    assert.deepEqual(codes, nodes.map(() => 0), "nodes exit 0 (no leak)");
  }
});
