// Issue 14 (the chaos runs' "outbox: emit 301 after 201 (a gap)": a batch of 99 upstream
// messages lost inside one session). A promotion to SSE: the probe's POST of "2probe" and the
// stream's "3probe" race, so the upgrade packet "5" could be POSTed while the probe's POST was
// still out, and when that answer came the queued messages went out in a second POST alongside
// "5". Two POSTs at once may reach the server in either order (a new connection is slower than
// a kept one): messages ahead of "5" abort the upgrade and are not taken, and the client, told
// "ok", counted them sent. One POST at a time per transport, "5" first. Client-js's engine
// against the in-memory server (fake-server.mjs) under mock timers.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../client-js/src/engine.mjs";
import { FakeServer, fakeUntil } from "./fake-server.mjs";

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1e12 }));
afterEach(() => mock.timers.reset());

const sleep = (ms) => new Promise((f) => setTimeout(f, ms));

test("promotion to SSE while the probe's POST is out: one POST at a time, 5 first, every message taken once in order", async () => {
  const srv = new FakeServer();
  const inflight = {};
  const most = {};
  const log = [];
  let e;
  let wrote = 0;
  const fetch = async (url, o = {}) => {
    const t = new URL(url).searchParams.get("transport");
    if (o.method !== "POST") return srv.fetch(url, o);
    log.push(`POST ${t}: ${o.body.split("\x1e").map((p) => p.slice(0, 6)).join(",")}`);
    inflight[t] = (inflight[t] || 0) + 1;
    most[t] = Math.max(most[t] || 0, inflight[t]);
    try {
      // The probe's answer comes after its 3probe (written on the stream first).
      if (o.body === "2probe") {
        const r = await srv.fetch(url, o);
        await sleep(50);
        return r;
      }
      // The upgrade's POST: messages are written as it leaves, and it reaches the server late
      // (a new connection through the proxy).
      if (o.body.startsWith("5")) {
        if (!wrote++) for (let i = 1; i <= 20; i++) e.send("m" + i);
        await sleep(100);
      }
      return await srv.fetch(url, o);
    } finally {
      inflight[t]--;
    }
  };
  e = new Engine("http://order.test/", { fetch, storage: null, transports: ["polling", "sse"] });
  const switches = [];
  const got = [];
  e.on("transport", (ev) => switches.push(`${ev.from || "-"}>${ev.to}:${ev.reason}`));
  e.on("message", (m) => got.push(m));
  e.on("close", (r) => switches.push("closed:" + r));
  const want = Array.from({ length: 20 }, (_, i) => "m" + (i + 1));
  const ctx = () => `switches ${switches.join(", ")}\n${log.join("\n")}`;
  await fakeUntil(() => got.length >= 20 || switches.some((s) => s.startsWith("closed")), 20000, `20 echoes (${got.length})\n${ctx()}`);
  assert.deepEqual(switches.slice(0, 2), ["->polling:start", "polling>sse:promoted"], ctx());
  assert.equal(most.sse, 1, `one POST at a time on SSE\n${ctx()}`);
  assert.deepEqual(srv.last.got, want, `the server took each message once, in order\n${ctx()}`);
  assert.deepEqual(got, want.map((m) => "echo:" + m));
  assert.equal(srv.sessions.size, 1, "one session");
  e.close();
  srv.close();
});
