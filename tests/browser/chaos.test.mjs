// The chaos run in headless Chromium, bounded for make test (issue 14; the long one is part of
// `make chaos`: tests/browser/chaos-browser.mjs --count 10000): tools/ferry-proxy cuts requests
// and WebSockets at random (seeded) while ferry's browser client, one per transport and one
// switching between them, each in its own browser context, publishes numbered messages through
// tools/ferry and gets each one echoed back. Zero lost, zero duplicated, order kept, both ways;
// the counts are printed. FERRY_CHAOS_SEED replays a seed; FERRY_CHAOS_BROWSER_COUNT changes
// the count.
import { test } from "node:test";
import assert from "node:assert/strict";
import { runBrowserChaos, browserReport } from "./chaos-browser.mjs";

test("chaos in Chromium: random cuts, every transport and switches, numbered messages both ways: none lost, duplicated or reordered", { timeout: 240000 }, async () => {
  const seed = Number(process.env.FERRY_CHAOS_SEED ?? 20261206);
  const count = Number(process.env.FERRY_CHAOS_BROWSER_COUNT ?? 300);
  const r = await runBrowserChaos({ count, seconds: 45, seed });
  console.log(browserReport(r));
  assert.equal(r.serverExit, 0, "tools/ferry exits 0 (no leak)");
  assert.ok(r.proxyStats.dropped > 0, "the proxy did cut connections");
  assert.equal(r.rows.length, 5, "every client ran");
  for (const x of r.rows) {
    assert.ok(x.up.sent >= 100, `${x.client}: at least 100 messages went through the chaos (${x.up.sent}; ${x.errors.join("; ")})`);
    assert.deepEqual([x.up.lost, x.up.dup, x.up.ooo], [0, 0, 0], `${x.client} up: lost, duplicated, out of order (seed ${seed})`);
    assert.deepEqual([x.down.lost, x.down.dup, x.down.ooo], [0, 0, 0], `${x.client} down: lost, duplicated, out of order (seed ${seed})`);
  }
  // The clients did meet the cuts: WebSockets closed under them, transports changed.
  assert.ok(r.rows.reduce((n, x) => n + x.switches, 0) >= 5, "transport changes happened");
});
