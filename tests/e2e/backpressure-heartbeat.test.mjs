// Heartbeats while a slow reader's queue is over its bound (issue 14: "control packets are never
// dropped"). tools/ferry as users run it (--backpressure P --max-queue-bytes B, a 1 s ping
// interval; a 5 s ping timeout over long-polling, 10 s over WebSocket and SSE); a raw client
// that reads its downstream at a fixed rate (tests/lib/slowreader.mjs: over WebSocket and SSE a
// TCP socket read slowly, so the kernel's buffers and the server's fill, SSE's pongs by POST;
// over long-polling GET bodies read slowly) and answers every ping the moment its bytes are
// read. A backend publishes numbered events faster than it reads for a few seconds. Checked:
// the session is never closed for "ping timeout" (under `close` it is closed for its queue
// while it is behind, as that policy promises, and not for a ping), so pings reached the client
// in time while it was behind (the longest gap it saw is printed), and what the policy promises
// still holds once it reads at full speed: plain events all, in order, once; volatile ones in
// order; under `latest` the last value of every key; under `spill` everything in order on the
// same session.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startServer, bin } from "../lib/server.mjs";
import { rawConnect } from "../lib/rawhttp.mjs";
import { slowWebSocket, slowPolling, slowSse } from "../lib/slowreader.mjs";

const TOKEN = "beat-token";
const PING_INTERVAL = 1000;
const KEYS = ["AAA", "BBB", "CCC", "DDD"];
const servers = [];
after(async () => {
  for (const s of servers) assert.equal(await s.stop(), 0, "ferry exits 0 on SIGTERM (no leak)");
});

// What the backend publishes, by policy: under close and spill only plain events; under
// drop-volatile one in 64 plain, the rest volatile; under latest one in 64 plain, the rest
// keyed by four keys (so that what the policy keeps stays well under the client's rate, even
// when a loaded machine starves the test process and it reads slower than it means to).
function plan(policy, i) {
  if (policy === "close" || policy === "spill" || i % 64 === 0) return { event: "n" };
  if (policy === "drop-volatile") return { event: "v", volatile: true };
  return { event: "k", key: KEYS[i % 4] };
}

const SETUPS = {
  // The kernel's socket buffers (several MB on loopback) and the transport's write buffer sit
  // between the queue and the client.
  // The ping timeout is longer here: the client's own receive buffer (autotuned by its kernel)
  // is still ahead of a ping, and a starved test process reads slower than it means to.
  websocket: { open: (port) => slowWebSocket(port), pingTimeout: 10000, rate: 256 * 1024, pad: 2048, perSecond: 400, seconds: 8, bound: 262144, args: [] },
  // One stream read slowly, as the WebSocket (a raw TCP socket: the kernel's buffers fill), its
  // pongs by POST.
  sse: { open: (port) => slowSse(port), pingTimeout: 10000, rate: 256 * 1024, pad: 2048, perSecond: 400, seconds: 8, bound: 262144, args: [] },
  // One GET's answer at a time (at most 16 KB here): the queue is the backlog.
  polling: { open: (port) => slowPolling(port), pingTimeout: 5000, rate: 32 * 1024, pad: 2048, perSecond: 200, seconds: 8, bound: 262144, args: ["--max-payload", "16384"] },
};

async function run(transport, policy) {
  const setup = SETUPS[transport];
  const srv = await startServer(bin("tools/ferry/ferry"), [
    "--port", "0", "--publish-token", TOKEN, "--backpressure", policy,
    "--max-queue-bytes", String(setup.bound), "--publish-rate", "0", "--log-level", "info",
    "--ping-interval", String(PING_INTERVAL), "--ping-timeout", String(setup.pingTimeout), ...setup.args,
  ]);
  servers.push(srv);
  const c = await setup.open(srv.port);
  try {
    return await drive(setup, policy, srv, c);
  } finally {
    c.close();
  }
}

async function drive(setup, policy, srv, c) {
  await c.connect("/");
  assert.equal((await c.emitAck("join", { room: "r" })).ok, true, "joined");
  c.setRate(setup.rate);
  // The backend: pipelined publishes on one connection, each with random padding.
  const pub = await rawConnect(srv.port);
  const post = (body) => {
    const b = Buffer.from(JSON.stringify(body));
    pub.write(`POST /api/publish HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\n\r\n`);
    pub.write(b);
  };
  let published = 0, answered = 0;
  const t0 = Date.now();
  const slowFrom = c.pings.length;
  while (Date.now() < t0 + setup.seconds * 1000 && !c.ended) {
    const due = Math.floor(((Date.now() - t0) * setup.perSecond) / 1000);
    for (; published < due; published++) {
      const p = plan(policy, published);
      post({ room: "r", event: p.event, data: { i: published, pad: randomBytes((setup.pad * 3) / 4).toString("base64") }, ...(p.key && { key: p.key }), ...(p.volatile && { volatile: true }) });
    }
    while (answered < published - 64) {
      const r = await pub.response();
      assert.equal(r.status, 200, r.text);
      answered++;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const slowMs = Date.now() - t0;
  const closedWhileBehind = c.ended; // ended before the slow phase was over
  // Pings read while behind: the gaps between them (and from the start) while it read slowly.
  const pings = c.pings.slice(slowFrom).filter((t) => t <= t0 + slowMs);
  let maxGap = 0, last = t0;
  for (const t of pings) {
    maxGap = Math.max(maxGap, t - last);
    last = t;
  }
  maxGap = Math.max(maxGap, t0 + slowMs - last);
  post({ room: "r", event: "end", data: {} });
  published++;
  while (answered < published) {
    const r = await pub.response();
    assert.equal(r.status, 200, r.text);
    answered++;
  }
  pub.sock.destroy();
  c.setRate(Infinity);
  if (!c.ended) await c.until(() => c.events.some((e) => e.name === "end"), 60000, "the end event").catch(() => {});
  return { srv, c, published: published - 1, pings: pings.length, maxGap, slowMs, closedWhileBehind };
}

function audit(policy, c, published) {
  const of = (name) => c.events.filter((e) => e.name === name).map((e) => e.data.i);
  const want = (name) => Array.from({ length: published }, (_, i) => i).filter((i) => plan(policy, i).event === name);
  const inOrder = (list, label) => {
    for (let j = 1; j < list.length; j++) assert.ok(list[j] > list[j - 1], `${label}: in order, none twice (${list[j - 1]} then ${list[j]})`);
  };
  const n = of("n"), v = of("v"), k = of("k");
  inOrder(n, "plain");
  inOrder(v, "volatile");
  if (policy !== "close") assert.deepEqual(n, want("n"), "every plain event, in order, once");
  if (policy === "latest") {
    const last = {};
    for (const e of c.events.filter((e) => e.name === "k")) {
      const key = KEYS[e.data.i % 4];
      assert.ok(!(key in last) || e.data.i > last[key], `key ${key}: in order, none twice`);
      last[key] = e.data.i;
    }
    const wantLast = {};
    for (let i = 0; i < published; i++) if (plan(policy, i).key) wantLast[plan(policy, i).key] = i;
    assert.deepEqual(last, wantLast, "the last value of every key arrived");
  }
  return `plain ${n.length}/${want("n").length}, volatile ${v.length}/${want("v").length}, keyed ${k.length}/${want("k").length}`;
}

for (const transport of ["websocket", "sse", "polling"]) {
  for (const policy of ["drop-volatile", "latest", "spill", "close"]) {
    test(`heartbeats over ${transport} while a slow reader is over its bound (${policy}): no ping timeout, the policy holds`, { timeout: 120000 }, async () => {
      const { srv, c, published, pings, maxGap, slowMs, closedWhileBehind } = await run(transport, policy);
      const log = srv.stderr();
      const timeouts = (log.match(/ping timeout/g) ?? []).length;
      const summary = `${transport} ${policy}: ${published} published in ${slowMs} ms at ${SETUPS[transport].rate} B/s read; ${pings} pings read while behind, longest gap ${maxGap} ms; ${c.events.length} events; session ${c.ended ? `ended (${c.endReason})` : "open"}`;
      console.log(`# ${summary}`);
      assert.equal(timeouts, 0, `no session closed for "ping timeout" (${summary})`);
      if (policy === "close") {
        assert.match(log, /send queue over its bound/, "closed for its queue, as the policy promises");
        // While it is behind: over WebSocket and SSE a backlog held in the transport's write
        // buffer and the kernel's (MBs) would keep the queue under the bound until the end.
        assert.ok(closedWhileBehind, `the slow session was closed while it was behind (${summary})`);
        audit(policy, c, published);
        return;
      }
      assert.equal(c.ended, false, `the session is still open (${summary}); server log: ${log.split("\n").filter((l) => /warn|closing|closed|timeout/.test(l)).slice(-5).join(" / ")}`);
      // The pings reached it in time: the server took its pongs (no "ping timeout" above).
      // The gaps the client saw are printed, not asserted: a starved test process reads late.
      const counts = audit(policy, c, published);
      if (policy === "spill") assert.match(log, /its events wait in the recovery log/, "the socket spilled");
      assert.doesNotMatch(log, /send queue over its bound/, "no session closed for its queue");
      console.log(`# ${transport} ${policy}: ${counts}`);
    });
  }
}
