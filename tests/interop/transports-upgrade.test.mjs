// The probe upgrade from long- and short-polling to SSE and to WebSocket while messages flow both ways:
// every message sent by the client reaches the server once and in order, and every message the
// server sends (echoes and bursts) reaches the client once and in order, across the switch.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEngine } from "../lib/events.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";
import { messages } from "../lib/client.mjs";

let eng;
before(async () => {
  eng = await startEngine(["--transports", "polling,websocket,sse,short-polling", "--short-poll-interval", "50"]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const N = 300; // client messages; the upgrade starts after UPGRADE_AT of them
const UPGRADE_AT = 60;
const BURST = 100; // server messages sent at once just before the upgrade

test("the handshake of a client asking for the extensions lists them in order", async () => {
  const c = new ExtClient(`${eng.url}${eng.path}`, { transport: "polling" });
  const hs = await c.open();
  assert.deepEqual(hs.upgrades, ["websocket", "sse"]);
  assert.equal(typeof hs.shortPollInterval, "number");
  c.close();
  await eng.closeOf(hs.sid);
});

test("a client that does not ask gets exactly the specification's handshake", async () => {
  const res = await fetch(`${eng.url}${eng.path}?EIO=4&transport=polling`);
  const body = await res.text();
  const hs = JSON.parse(body.slice(1));
  assert.deepEqual(Object.keys(hs), ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]);
  assert.deepEqual(hs.upgrades, ["websocket"]);
  // Nor may it probe an extension transport.
  const probe = await fetch(`${eng.url}${eng.path}?EIO=4&transport=sse&sid=${hs.sid}`, { headers: { Accept: "text/event-stream" } });
  assert.equal(probe.status, 400);
  assert.deepEqual(await probe.json(), { code: 3, message: "Bad request" });
});

for (const [from, to] of [["polling", "sse"], ["polling", "websocket"], ["short-polling", "sse"], ["short-polling", "websocket"]]) {
  test(`${from} -> ${to} while messages flow both ways: nothing lost, nothing duplicated`, async () => {
    const c = new ExtClient(`${eng.url}${eng.path}`, { transport: from });
    const hs = await c.open();
    await eng.next((e) => e.event === "open" && e.sid === hs.sid);
    const got = [];
    c.on("message", (m) => got.push(m));
    let upgraded;
    let atUpgrade = -1;
    c.once("upgrade", () => (atUpgrade = got.length));
    for (let i = 0; i < N; i++) {
      if (i === UPGRADE_AT) {
        // Mid-flow: some echoes have come back on the old transport (bounded wait).
        if (got.length === 0) await messages(c, 1, 5000);
        c.send(`cmd:burst ${BURST}`);
        upgraded = c.upgrade(to);
      }
      c.send(`c${i}`);
      // Spread the sends over the upgrade: one per turn of the event loop, some per timer.
      await new Promise((r) => (i % 10 === 0 ? setTimeout(r, 2) : setImmediate(r)));
    }
    await upgraded;
    assert.equal(c.transport, to);
    // Server side: every client message once, in order.
    const seen = [];
    while (seen.length < N) {
      const e = await eng.messageOf(hs.sid, 10000);
      if (!e.text.startsWith("cmd:")) seen.push(e.text);
    }
    assert.deepEqual(seen, Array.from({ length: N }, (_, i) => `c${i}`));
    // Client side: every echo once and in order, the burst once and in order.
    if (got.length < N + BURST) await messages(c, N + BURST - got.length, 10000);
    const echoes = got.filter((m) => m.startsWith("c"));
    const burst = got.filter((m) => m.startsWith("burst "));
    assert.deepEqual(echoes, Array.from({ length: N }, (_, i) => `c${i}`));
    assert.deepEqual(burst, Array.from({ length: BURST }, (_, i) => `burst ${i}`));
    assert.equal(got.length, N + BURST, "nothing else arrived");
    assert.ok(atUpgrade > 0 && atUpgrade < N + BURST, `the switch happened mid-flow (${atUpgrade} received before it)`);
    const open = eng.all("open").find((e) => e.sid === hs.sid);
    assert.equal(open.transport, from);
    // Later polling requests for this sid are refused.
    const late = await fetch(`${eng.url}${eng.path}?EIO=4&transport=${from}&sid=${hs.sid}`);
    assert.equal(late.status, 400);
    c.close();
    assert.equal((await eng.closeOf(hs.sid)).reason, "transport close");
  });
}
