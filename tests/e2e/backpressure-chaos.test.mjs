// A slow consumer inside the chaos run, under each backpressure policy of tools/ferry (issue 14;
// tests/e2e/backpressure-chaos.mjs says how): ferry's client in Node and in headless Chromium,
// and the official socket.io-client, on WebSocket and long-polling, each behind a ferry-proxy that cuts
// connections at random (seeded) and stalls their reading, while a backend publishes numbered
// plain, volatile and keyed events faster than a stalled client reads. Each client is checked
// against exactly what its policy promises (docs/reliability.md "Backpressure"); the counts are
// printed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runSlowChaos, slowReport, POLICIES } from "./backpressure-chaos.mjs";

const seed = Number(process.env.FERRY_CHAOS_SEED ?? 20261206);

for (const policy of POLICIES) {
  test(`slow consumer under chaos, backpressure ${policy}: what the policy promises, on every client`, { timeout: 240000 }, async () => {
    const r = await runSlowChaos({ policy, seconds: 10, seed });
    console.log(slowReport(r));
    assert.equal(r.server.exit, 0, "ferry exits 0 on SIGTERM (no leak)");
    assert.ok(r.cut > 0, "the proxies did cut connections");
    assert.ok(r.published >= 300, `enough publishes went out (${r.published})`);
    for (const x of r.rows) {
      assert.equal(x.ended, true, `${x.client}: the end mark arrived`);
      assert.deepEqual(x.broken, [], `${x.client}: ${policy} kept its promise (seed ${seed})`);
      assert.equal(x.acks.twice, 0, `${x.client}: no acknowledgement answered twice`);
      // ferry's client: every ask answered once (the outbox; acks are control packets no
      // policy drops). The official client's asks in flight on a lost connection are lost.
      if (!x.official) assert.equal(x.acks.answered, x.acks.asked, `${x.client}: every ask answered`);
      assert.equal(x.server.pingTimeouts, 0, `${x.client}: no ping timeout while behind`);
    }
    const sum = (f) => r.rows.reduce((n, x) => n + f(x), 0);
    // The policy acted: the stalled clients did fall behind by more than the bound.
    if (policy === "close") assert.ok(sum((x) => x.server.closedOverBound) >= 1, "slow sessions were closed");
    if (policy === "spill") {
      assert.ok(sum((x) => x.server.spilled) >= 1, "slow sockets spilled to the recovery log");
      assert.equal(r.server.closedOverBound, 0, "spill never closes a session for its queue");
    }
    if (policy !== "close" && policy !== "spill")
      assert.ok(sum((x) => x.v.published - x.v.received) > 0, "volatile events were dropped for clients behind");
    if (policy === "latest") assert.ok(sum((x) => x.k.published - x.k.received) > 0, "keyed events were replaced by newer ones");
  });
}
