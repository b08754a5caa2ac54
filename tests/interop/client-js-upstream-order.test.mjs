// The chaos runs' lost batch (docs/reliability.md, "outbox: emit 301 after 201 (a gap)") against
// ferry-test-sio: ferry's client promotes polling to SSE while the probe's own POST ("2probe") is
// still out (its answer comes after "3probe"), the upgrade's POST ("5") is slow to reach the
// server (a new connection through a proxy), and a burst is emitted as it leaves. The client
// must not have two POSTs out at once on SSE (the burst would overtake "5", or a later POST the
// burst), and every message is taken once, in order, on one session. tests/client/
// upstream-order.test.mjs is the same moment against the in-memory server under fake time.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "../../client-js/src/index.mjs";
import { startSio } from "../lib/sio.mjs";

let srv;
before(async () => {
  srv = await startSio(["--transports", "polling,sse", "--recovery", "10000"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, ms, what) => {
  let t;
  return Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
};

test("promotion to SSE with the probe's POST still out and a slow 5: one POST at a time, every emit taken once in order", { timeout: 60000 }, async () => {
  const realFetch = globalThis.fetch;
  const log = [];
  const inflight = {};
  const most = {};
  let s;
  let burst = 0;
  const fetch = async (url, o = {}) => {
    const t = new URL(url).searchParams.get("transport");
    if (o.method !== "POST") return realFetch(url, o);
    const body = String(o.body);
    log.push(`POST ${t} ${new URL(url).searchParams.get("tx") ?? ""}: ${body.slice(0, 40)}`);
    inflight[t] = (inflight[t] || 0) + 1;
    most[t] = Math.max(most[t] || 0, inflight[t]);
    try {
      if (t === "sse" && body === "2probe") {
        const r = await realFetch(url, o);
        const b = await r.text();
        await sleep(150); // the answer after "3probe"
        return new Response(b, { status: r.status, headers: r.headers });
      }
      if (t === "sse" && body[0] === "5" && !burst++) {
        for (let i = 1; i <= 99; i++) s.emit("message", "b" + i);
        await sleep(400); // "5" reaches the server late
      }
      return await realFetch(url, o);
    } finally {
      inflight[t]--;
    }
  };
  s = io(srv.url, { fetch, storage: null, forceNew: true, transports: ["polling", "sse"], reconnectionDelay: 100 });
  const switches = [];
  s.io.on("open", () => s.io.engine.on("transport", (e) => switches.push(`${e.from || "-"}>${e.to}:${e.reason}`)));
  const sessions = [];
  s.on("connect", () => sessions.push(s.id));
  try {
    await within(new Promise((r) => s.once("connect", r)), 20000, "connect");
    await within((async () => {
      while (!burst) await sleep(20);
    })(), 30000, `the promotion to SSE (${switches.join(", ")})`);
    // Then more, after the burst.
    for (let i = 100; i <= 120; i++) s.emit("message", "b" + i);
    const want = Array.from({ length: 120 }, (_, i) => "b" + (i + 1));
    const took = () => srv.all("event").filter((e) => e.id === sessions[0] && e.name === "message").map((e) => e.args[0]);
    await within((async () => {
      while (took().length < 120 && !srv.stderr().includes("a gap")) await sleep(50);
    })(), 30000, `120 emits taken (${took().length})\n${log.join("\n")}`);
    const ctx = `switches ${switches.join(", ")}\n${log.join("\n")}`;
    if (process.env.SHOW) console.log(ctx, srv.stderr());
    assert.deepEqual(took(), want, `each emit once, in order\n${ctx}`);
    assert.equal(most.sse, 1, `one POST at a time on SSE\n${ctx}`);
    assert.equal(sessions.length, 1, "one socket, never reconnected");
    assert.doesNotMatch(srv.stderr(), /a gap|not taken/, "the server saw no gap");
  } finally {
    s.disconnect();
  }
});
