// The chaos run, bounded for make test (issue 14; the long one is `make chaos`, tests/e2e/chaos.mjs):
// ferry-proxy cuts requests and WebSockets at random (seeded) while ferry's client, one per
// transport and one switching, and socket.io-client on polling and on WebSocket (its downstream
// through connection-state recovery) send numbered messages both ways for at most 30 s. Zero lost
// (ferry's client also across lost sessions: the outbox; the official client's upstream is at
// most once), zero duplicated, order kept; the counts are printed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io as officialIo } from "socket.io-client";
import { runChaos, report, notRecoveredWhy } from "./chaos.mjs";
import { startSio } from "../lib/sio.mjs";

test("chaos: random cuts, every transport and switches, numbered messages both ways: none lost, duplicated or reordered", { timeout: 120000 }, async () => {
  const seed = Number(process.env.FERRY_CHAOS_SEED ?? 20261206);
  const r = await runChaos({ count: 2000, seconds: 30, seed, officialPace: "tick" });
  console.log(report(r));
  assert.equal(r.serverExit, 0, "the server exits 0 (no leak)");
  assert.ok(r.proxyStats.dropped > 0, "the proxy did cut connections");
  for (const x of r.rows) {
    assert.ok(x.up.sent >= 100, `${x.client}: at least 100 messages went through the chaos (${x.up.sent})`);
    // socket.io-client's upstream is at most once across a lost connection (no session
    // resume, no outbox): its losses are counted, its duplicates and reorders are not allowed.
    // ferry's client is exactly once both ways, also across a lost Engine.IO session (the
    // outbox, docs/protocol.md 13, and connection-state recovery): nothing lost at all.
    const upLost = x.official ? 0 : x.up.lost;
    assert.deepEqual([upLost, x.up.dup, x.up.ooo], [0, 0, 0], `${x.client} up: lost, duplicated, out of order (seed ${seed})`);
    assert.deepEqual([x.down.lost, x.down.dup, x.down.ooo], [0, 0, 0], `${x.client} down: lost, duplicated, out of order (seed ${seed})`);
  }
});

// A failure of the long run must explain itself: a reconnection not recovered is printed next to
// its client with the reason the server logged (ferry-test-sio at --log-level info, as runChaos
// starts it), found by the new socket's id. socket.io-client comes back to /short (a 300 ms
// window) after 700 ms: not recovered, "expired".
test("chaos runs: a socket.io-client reconnection not recovered has the server's reason, by its new socket id", { timeout: 30000 }, async () => {
  const srv = await startSio(["--recovery", "60000", "--log-level", "info"]);
  try {
    const a = officialIo(`${srv.url}/short`, { transports: ["websocket"], forceNew: true, reconnection: false });
    const connected = () => new Promise((res, rej) => (a.once("connect", res), a.once("connect_error", rej)));
    await connected();
    const gone = srv.disconnectOf(a.id);
    a.io.engine.close();
    await gone;
    await new Promise((r) => setTimeout(r, 700));
    a.connect();
    await connected();
    assert.equal(a.recovered, false);
    const id = a.id;
    a.disconnect();
    await srv.disconnectOf(id);
    const why = notRecoveredWhy(srv.stderr()).get(id);
    assert.match(why ?? "", /^expired: no saved socket with its pid .*; offset \S+$/, `the reason logged for ${id}: ${why}`);
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});
