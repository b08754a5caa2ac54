// A batch sent on long-polling just before a promotion to SSE whose first POST fails, then an
// attach to SSE again (a failed POST is not the stream's failure; this attach went to polling
// before) (the chaos runs' "outbox: emit 301 after 201 (a gap)", see docs/reliability.md):
// every message must reach the server exactly once, in order. Client-js's
// engine against the in-memory server (fake-server.mjs) under mock timers. Two ways to the
// promotion: the probe answered and the paused polling done (its POST answered), or the probe
// timer's attach ("promoted") while the polling POST still hangs (aborted by the attach); the
// batch in that POST or queued behind it; the upgrade packet's POST or the first POST on SSE
// failing, lost before the server or taken and its answer lost.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../client-js/src/engine.mjs";
import { FakeServer, fakeUntil } from "./fake-server.mjs";

let n = 0;
beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1e12 }));
afterEach(() => mock.timers.reset());

const until = fakeUntil;
const settle = () => new Promise((r) => setImmediate(r));
const aborted = (signal) => new Promise((_, rej) => signal.addEventListener("abort", () => rej(Object.assign(new Error("aborted"), { name: "AbortError" }))));

for (const path of ["probed", "timer"])
  for (const place of ["in-flight", "queued"])
    for (const which of ["upgrade", "first"])
      for (const fail of ["lost", "answer-lost"])
        test(`${place} batch on polling, promotion to SSE (${path}), its ${which} POST ${fail}, attach to SSE again: each message once`, () => scenario(path, place, which, fail));

async function scenario(path, place, which, fail) {
      const srv = new FakeServer();
      const log = [];
      let e;
      let batch = 0; // 1: the messages are written, 2: their POST is out
      let failed = 0;
      let batchPosted, probeSent;
      const batchOut = new Promise((f) => (batchPosted = f));
      const probed = new Promise((f) => (probeSent = f));
      const fetch = async (url, o = {}) => {
        const q = new URL(url).searchParams;
        const t = q.get("transport");
        if (o.method === "POST") log.push(`POST ${t}${q.has("tx") ? " tx=" + q.get("tx") : ""}: ${o.body.split("\x1e").map((p) => p.slice(0, 12)).join(",")}`);
        else log.push(`GET ${t}${q.has("rx") ? " rx=" + q.get("rx") : ""}`);
        const probeGet = t === "sse" && !o.method && q.get("sid") && !q.has("rx");
        // in-flight: once the first client ping's POST is out, 99 messages queue behind it and
        // go out in one POST on polling, before the SSE probe starts. queued: written as the
        // probe starts; m1 goes out alone, m2-m99 wait in the queue behind it.
        if (!batch && (place === "in-flight" ? o.method === "POST" && o.body.startsWith("2c1:") : probeGet)) {
          batch = 1;
          for (let i = 1; i <= 99; i++) e.send("m" + i);
        }
        if (probeGet) await batchOut;
        if (o.method === "POST" && t === "sse" && o.body === "2probe") probeSent();
        // The POST with m1: answered 16 ms after the probe is answered (probed), or hanging
        // until the probe timer's attach aborts it (timer; the server took it first when the
        // failing POST is "answer-lost", else never).
        if (o.method === "POST" && t === "polling" && o.body.startsWith("4m1") && batch === 1) {
          batch = 2;
          batchPosted();
          if (path === "timer") {
            if (fail === "answer-lost") await srv.fetch(url, o);
            return aborted(o.signal);
          }
          const r = await srv.fetch(url, o);
          await probed;
          await new Promise((f) => setTimeout(f, 16));
          return r;
        }
        // The failing POST: the upgrade packet's, or the first one on SSE once it is the
        // session's transport.
        if (!failed && o.method === "POST" && t === "sse" && o.body !== "2probe" && (which === "upgrade" ? o.body === "5" || e.transport.name === "sse" : o.body !== "5" && e.transport.name === "sse")) {
          failed = o.body.slice(0, 12);
          if (fail === "answer-lost") await srv.fetch(url, o);
          throw new TypeError("fetch failed");
        }
        return srv.fetch(url, o);
      };
      e = new Engine(`http://promote${++n}.test/`, { fetch, storage: null, transports: ["polling", "sse"] });
      const switches = [];
      const got = [];
      e.on("transport", (ev) => switches.push(`${ev.from || "-"}>${ev.to}:${ev.reason}`));
      e.on("message", (m) => got.push(m));
      e.on("close", (r) => switches.push("closed:" + r));
      await until(() => failed, 10000, "the failing SSE POST");
      await until(() => switches.some((s) => s.endsWith(">sse:post-error")), 10000, `the attach to SSE again (${switches.join(", ")})`);
      for (let i = 100; i <= 110; i++) e.send("m" + i);
      const want = Array.from({ length: 110 }, (_, i) => "m" + (i + 1));
      const ctx = () => `failed ${failed}; switches ${switches.join(", ")}\n${log.join("\n")}`;
      await until(() => got.length >= 110, 20000, `110 echoes (${got.length}; server took ${srv.last.got.length})\n${ctx()}`);
      mock.timers.tick(3000);
      await settle();
      if (process.env.SHOW) console.log(ctx());
      assert.deepEqual(switches.slice(0, 3), ["->polling:start", "polling>sse:promoted", "sse>sse:post-error"], ctx());
      assert.equal(batch, 2, "m1's POST went out on polling");
      assert.deepEqual(srv.last.got, want, `the server took each message once, in order\n${ctx()}`);
      assert.deepEqual(got, want.map((m) => "echo:" + m), "each echo once, in order");
      assert.equal(srv.sessions.size, 1, "one session");
      e.close();
      srv.close();
}

// Seen while looking for the loss above: the health check's client ping, written while an attach
// was still opening (its GET slow), waited in the held queue, and the attach's own ping was not
// sent (one was out already): nothing went upstream until the ping's deadline attached again
// (a 4 s stall and a needless demotion).
test("a client ping the health check writes while an attach opens: the attach goes on at once", async () => {
  const srv = new FakeServer();
  let hold = false;
  let release;
  const fetch = async (url, o = {}) => {
    const q = new URL(url).searchParams;
    if (hold && q.get("transport") === "sse" && q.has("rx")) await new Promise((r) => (release = r));
    return srv.fetch(url, o);
  };
  const e = new Engine(`http://promote${++n}.test/`, { fetch, storage: null, transports: ["sse"] });
  const switches = [];
  e.on("transport", (ev) => switches.push(`${ev.from || "-"}>${ev.to}:${ev.reason}`));
  await until(() => e.readyState === "open", 5000, "open");
  hold = true;
  e.attach("sse", "sse-mute");
  await until(() => release, 5000, "the attach's GET");
  const pings = () => srv.requests.length;
  mock.timers.tick(2500); // the health check (every 2 s on SSE) runs while the GET hangs
  await settle();
  release();
  await until(() => e.transport.up, 5000, "the attach opens");
  e.send("x");
  await until(() => srv.last.got.includes("x"), 1000, `the message right after the attach (${switches.join(", ")}; ${pings()} requests)`);
  assert.deepEqual(switches, ["->sse:forced", "sse>sse:sse-mute"], "no second attach");
  e.close();
  srv.close();
});
