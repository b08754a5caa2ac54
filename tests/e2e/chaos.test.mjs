// The chaos run, bounded for make test (issue 14; the long one is `make chaos`, tests/e2e/chaos.mjs):
// ferry-proxy cuts requests and WebSockets at random (seeded) while ferry's client, one per
// transport and one switching, sends numbered messages both ways for at most 30 s. Zero lost,
// zero duplicated, order kept; the counts are printed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runChaos, report } from "./chaos.mjs";

test("chaos: random cuts, every transport and switches, numbered messages both ways: none lost, duplicated or reordered", { timeout: 120000 }, async () => {
  const seed = Number(process.env.FERRY_CHAOS_SEED ?? 20261206);
  const r = await runChaos({ count: 2000, seconds: 30, seed });
  console.log(report(r));
  assert.equal(r.serverExit, 0, "the server exits 0 (no leak)");
  assert.ok(r.proxyStats.dropped > 0, "the proxy did cut connections");
  for (const x of r.rows) {
    assert.ok(x.up.sent >= 100, `${x.client}: at least 100 messages went through the chaos (${x.up.sent})`);
    for (const dir of ["up", "down"])
      assert.deepEqual([x[dir].lost, x[dir].dup, x[dir].ooo], [0, 0, 0], `${x.client} ${dir}: lost, duplicated, out of order (seed ${seed})`);
  }
});
