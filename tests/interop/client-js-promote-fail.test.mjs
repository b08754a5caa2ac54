// The chaos runs' lost batch (docs/reliability.md, "outbox: emit 301 after 201 (a gap)"): ferry's
// client on long-polling writes a burst, 99 messages in one POST (or queued behind a POST), just
// before a promotion to SSE whose first SSE-side POST fails, then attaches SSE again (a failed
// POST is not the stream's failure; it attached polling before).
// Against ferry-test-sio, through a fetch the test steers: every message taken once, in order,
// on one session. tests/client/promote-fail.test.mjs has the same moments against the in-memory
// server under fake time.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "../../client-js/src/index.mjs";
import { startSio } from "../lib/sio.mjs";

let srv;
before(async () => {
  srv = await startSio(["--transports", "polling,sse"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
});

const within = (p, ms, what) => {
  let t;
  return Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const aborted = (signal) => new Promise((_, rej) => signal.addEventListener("abort", () => rej(new Error("aborted"))));

for (const path of ["probed", "timer"])
  for (const place of ["in-flight", "queued"])
    for (const which of ["upgrade", "first"])
      for (const fail of ["lost", "answer-lost"])
        test(`${place} batch on polling, promotion to SSE (${path}), its ${which} POST ${fail}, attach to SSE again: each message once`, { timeout: 60000 }, () => scenario(path, place, which, fail));

async function scenario(path, place, which, fail) {
  const realFetch = globalThis.fetch;
  const log = [];
  let s;
  let batch = 0;
  let failed = 0;
  let batchPosted, probeSent;
  const batchOut = new Promise((f) => (batchPosted = f));
  const probed = new Promise((f) => (probeSent = f));
  const emit = (i) => s.emit("message", "m" + i);
  const fetch = async (url, o = {}) => {
    const q = new URL(url).searchParams;
    const t = q.get("transport");
    const body = o.method === "POST" ? String(o.body) : "";
    log.push(`${o.method || "GET"} ${t}${q.has("rx") ? " rx=" + q.get("rx") : ""}${q.has("tx") ? " tx=" + q.get("tx") : ""} ${body.slice(0, 60)}`);
    const probeGet = t === "sse" && !o.method && q.get("sid") && !q.has("rx");
    if (probeGet && !batch) {
      batch = 1;
      // in-flight: m0 goes alone and m1-m99 behind it in one POST, out before the probe;
      // queued: m1 alone, m2-m99 queued behind it.
      if (place === "in-flight") emit(0);
      for (let i = 1; i <= 99; i++) emit(i);
      await batchOut;
    }
    if (o.method === "POST" && t === "sse" && body === "2probe") probeSent();
    if (o.method === "POST" && t === "polling" && body.includes('42["message","m1"]') && batch === 1) {
      batch = 2;
      batchPosted();
      if (path === "timer") {
        if (fail === "answer-lost") await (await realFetch(url, { ...o, signal: undefined })).text();
        return aborted(o.signal);
      }
      const r = await realFetch(url, o);
      const b = await r.text();
      await probed;
      await sleep(16);
      return new Response(b, { status: r.status, headers: r.headers });
    }
    const cur = s.io?.engine?.transport?.name;
    if (!failed && batch === 2 && o.method === "POST" && t === "sse" && body !== "2probe" && (which === "upgrade" ? body === "5" || cur === "sse" : body !== "5" && cur === "sse")) {
      failed = body.slice(0, 20);
      if (fail === "answer-lost") await (await realFetch(url, { ...o, signal: undefined })).text();
      throw new TypeError("fetch failed");
    }
    return realFetch(url, o);
  };
  s = io(srv.url, { fetch, storage: null, forceNew: true, transports: ["polling", "sse"], reconnectionDelay: 100 });
  const switches = [];
  s.on("transport", (e) => switches.push(`${e.from || "-"}>${e.to}:${e.reason}`));
  let connects = 0;
  s.on("connect", () => connects++);
  const ctx = () => `failed ${failed}; switches ${switches.join(", ")}\n${log.join("\n")}`;
  try {
    await within(new Promise((r) => s.once("connect", r)), 20000, "connect");
    const got = () => srv.all("event").filter((e) => e.id === s.id && e.name === "message").map((e) => e.args[0]);
    const t0 = Date.now();
    while (!switches.some((x) => x.endsWith(">sse:post-error")) && Date.now() - t0 < 20000) await sleep(20);
    assert.ok(failed, `the failing SSE POST\n${ctx()}`);
    for (let i = 100; i <= 110; i++) emit(i);
    await within(srv.next((e) => e.event === "event" && e.id === s.id && e.args[0] === "m110", 20000), 25000, `m110 taken\n${ctx()}`);
    const want = Array.from({ length: place === "in-flight" ? 111 : 110 }, (_, i) => "m" + (place === "in-flight" ? i : i + 1));
    assert.deepEqual(got(), want, `every message taken once, in order\n${ctx()}\n${srv.stderr().split("\n").filter((l) => /gap|POST|attach|upgrade/.test(l)).join("\n")}`);
    assert.deepEqual(switches.slice(1, 3), ["polling>sse:promoted", "sse>sse:post-error"], ctx());
    assert.equal(connects, 1, "one session");
  } finally {
    s.disconnect();
  }
}
