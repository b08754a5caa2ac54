// The hostile-network lab: every scenario of SCENARIOS puts a bad network (tools/ferry-proxy
// faults, Debian's nginx setups, or both) between tools/ferry and two clients — ferry's client
// in headless Chromium and in Node (npm ws injected for WebSocket) — which exchange
// sequence-numbered messages both ways for a bounded time while the fault acts.
//
// Upstream: each client publishes {n} to its own room every 100 ms; an observer connected to
// ferry directly (no proxy in between) records what arrives. Downstream: a backend publishes {n}
// to each room every 100 ms over HTTP (POST /api/publish, directly); each client records what
// arrives. After the exchange the senders stop and the lab waits (bounded) for stragglers, then
// counts per direction: messages lost, duplicated, and out of order. Each must be 0.
//
// Used by tests/e2e/hostile-networks.test.mjs (trimmed, in make test) and tests/lab/lab.mjs
// (make lab, writes docs/hostile-networks.md).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import WS from "ws";
import { io as officialIo } from "socket.io-client";
import { startServer, bin, root } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";
import { startNginx } from "../lib/nginx.mjs";
import { startLabClient, quiet } from "./lab-client.mjs";

// Each scenario: id, title, what it reproduces (prose for the doc), the network (proxy: flags of
// tools/ferry-proxy; nginx: a template of tests/e2e/nginx/; both: the proxy in front of nginx),
// and the transport the best client should end on there (endsOnBest: ferry's client must end
// there in make test and lab --repeat too; runScenario's bestMs waits for it, endsWrong says).
export const SCENARIOS = [
  { id: "clean", title: "Nothing in the way", proxy: [], best: "websocket",
    prose: "A plain pass-through proxy. The baseline: the client should climb to WebSocket within a probe round trip and lose nothing." },
  { id: "ws-refused", title: "WebSocket refused (403)", proxy: ["--websocket", "refuse"], best: "sse",
    prose: "A corporate proxy that answers every Upgrade request with 403. The WebSocket probe fails at once; SSE is the best transport left." },
  { id: "ws-stripped", title: "Upgrade headers stripped", proxy: ["--websocket", "strip"], best: "sse",
    prose: "A proxy that drops the hop-by-hop Upgrade and Connection headers (nginx without the two proxy_set_header lines): the upgrade request reaches the server as a plain GET, which refuses it, and no WebSocket ever opens." },
  { id: "ws-mute", title: "WebSocket accepted, then mute", proxy: ["--websocket", "mute"], best: "sse", endsOnBest: true,
    prose: "The 101 goes through and then no frame does, in either direction (a proxy that inspects and stalls). Only a client that checks that data really flows notices." },
  { id: "ws-mute-down", title: "WebSocket mute downstream only", proxy: ["--websocket", "mute-down"], best: "sse", endsOnBest: true,
    prose: "The 101 and the client's frames go through; the server's frames never arrive. The server believes the connection is fine; only the client can tell." },
  { id: "ws-closed-after", title: "WebSocket closed after 2 s", proxy: ["--ws-close-after", "2"], best: "websocket",
    prose: "A load balancer with a (very short) connection lifetime: every accepted WebSocket is closed 2 s after its 101, so at least one close lands inside every burst of messages. The client has to come back without losing what was in flight." },
  { id: "idle-timeout", title: "Idle connections cut after 2 s", proxy: ["--idle-timeout", "2000"], best: "websocket",
    prose: "A NAT box or proxy that closes any connection on which nothing moved for 2 s: held long-polls and quiet streams die unless something flows more often." },
  { id: "drops", title: "20% of connections dropped mid-flight", proxy: ["--drop", "0.2", "--drop-within", "8000", "--seed", "42"], best: "websocket",
    prose: "A flaky path: one request or WebSocket in five dies at a random moment within 8 s (before reaching the server, after the server answered, or mid-stream). Seeded, so a failure replays with the same seed (the order of requests still varies from run to run)." },
  { id: "bandwidth", title: "20 kB/s link", proxy: ["--bandwidth", "20000"], best: "websocket",
    prose: "A slow link shared by every connection of the page, 20 kB/s each way: handshakes and probes take longer, nothing should be lost." },
  { id: "latency", title: "300 ms round trip", proxy: ["--latency", "150"], best: "websocket",
    prose: "150 ms added to every chunk each way. Deadlines derived from the measured round trip must not mistake a slow path for a mute one." },
  { id: "gateway-errors", title: "5% of requests get 502/504", proxy: ["--gateway-errors", "0.05", "--seed", "42"], best: "websocket",
    prose: "An overloaded gateway answers one request in twenty with 502 Bad Gateway or 504 Gateway Timeout without passing it on." },
  { id: "max-body", title: "Request bodies over 4 kB refused (413)", proxy: ["--max-body", "4096", "--max-response-body", "0"], best: "websocket",
    prose: "A proxy with a small request body limit (nginx's client_max_body_size set low): any request body over 4 kB gets 413 and never reaches the server. Small messages pass; a batched polling POST must stay under it." },
  { id: "buffered", title: "Responses buffered (64 kB)", proxy: ["--buffer", "65536"], best: "websocket",
    prose: "A buffering proxy or antivirus that holds each response body until 64 kB arrived or it ended: polling still works, an SSE stream shows nothing." },
  { id: "cut-long", title: "Responses cut after 2 s", proxy: ["--max-response-ms", "2000"], best: "websocket",
    prose: "A proxy that limits request duration: any response still open after 2 s is cut. Held long-polls die again and again; short-polling survives." },
  { id: "nginx-good", title: "nginx, correct reverse proxy", nginx: "good", best: "websocket",
    prose: "Debian's nginx configured as docs recommend (tests/e2e/nginx/good.conf.in): HTTP/1.1, Upgrade and Connection passed on, no buffering, long read timeout." },
  { id: "nginx-naive", title: "nginx as first deployed", nginx: "naive", best: "sse",
    prose: "A bare proxy_pass (tests/e2e/nginx/naive.conf.in): HTTP/1.0 upstream, no Upgrade header (WebSocket never opens), proxy_buffering on (ferry's X-Accel-Buffering: no lets SSE through live)." },
  { id: "nginx-short-timeout", title: "nginx, 3 s proxy_read_timeout", nginx: "short-timeout", best: "websocket",
    prose: "A correct nginx with proxy_read_timeout 3s (tests/e2e/nginx/short-timeout.conf.in): held long-polls get 504 and streams or WebSockets silent for 3 s are closed." },
  { id: "corporate", title: "Combination: stripped upgrade + buffering", proxy: ["--websocket", "strip", "--buffer", "65536"], best: "polling",
    prose: "The typical corporate path: no WebSocket (upgrade stripped) and every response buffered, so SSE is useless too. Long-polling is the best transport that works." },
  { id: "mobile", title: "Combination: drops + gateway errors + slow link + latency",
    proxy: ["--drop", "0.05", "--drop-within", "8000", "--gateway-errors", "0.03", "--bandwidth", "50000", "--latency", "100", "--seed", "7"], best: "websocket",
    prose: "A bad mobile network: 5% of connections dropped within 8 s, 3% of requests answered 502/504, 50 kB/s, 200 ms round trip." },
  { id: "nginx-naive-mute", title: "Combination: mute-downstream proxy before a first-deploy nginx",
    proxy: ["--websocket", "mute-down", "--idle-timeout", "4000"], nginx: "naive", best: "sse",
    prose: "ferry-proxy (WebSocket mute downstream, 4 s idle timeout) in front of the bare nginx: no WebSocket at all, idle connections cut, buffering nginx behind." },
];

// Builds the browser side once: ferry's client bundle, socket.io-client's ESM bundle, the page.
export function buildStatic() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-lab-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), dir], { stdio: "inherit" });
  fs.copyFileSync(path.join(root, "node_modules/socket.io-client/dist/socket.io.esm.min.js"), path.join(dir, "official.mjs"));
  fs.copyFileSync(path.join(root, "tests/lab/lab-client.mjs"), path.join(dir, "lab-client.mjs"));
  fs.copyFileSync(path.join(root, "tests/lab/lab.html"), path.join(dir, "lab.html"));
  return dir;
}

const TOKEN = "lab-token";

// FERRY_LAB_TRACE=<dir>: every run also writes <dir>/<scenario>-<n>.log, one timeline (wall-clock
// ms) of the server's info log, ferry-proxy's per-request lines, and every request, answer and
// WebSocket frame of both clients, to tell a late message from a lost one and see where it went.
const TRACE = process.env.FERRY_LAB_TRACE || "";
let traceRuns = 0;
function openTrace(id) {
  if (!TRACE) return null;
  fs.mkdirSync(TRACE, { recursive: true });
  const file = path.join(TRACE, `${id}-${++traceRuns}.log`);
  const fd = fs.openSync(file, "w");
  const w = (who, line, at = Date.now()) => fs.writeSync(fd, `${at} ${who} ${line}\n`);
  return { file, w, lines: (who) => {
    let rest = "";
    return (d) => {
      rest += d;
      const parts = rest.split("\n");
      rest = parts.pop();
      for (const l of parts) w(who, l);
    };
  }, close: () => fs.closeSync(fd) };
}
// Wraps fetch and WebSocket so that every request, answer and frame is written to the trace
// (the same code runs in Node and, as an init script, in the page).
function traceTransports(G, say) {
  const short = (u) => String(u).replace(/^[a-z]+:\/\/[^/]+/, "");
  const f0 = G.fetch;
  let k = 0;
  G.fetch = async (url, o = {}) => {
    const id = ++k;
    say(`>${id} ${o.method || "GET"} ${short(url)}${o.body ? " body=" + JSON.stringify(o.body) : ""}`);
    try {
      const r = await f0(url, o);
      if ((o.headers?.accept || o.headers?.Accept) === "text/event-stream") {
        say(`<${id} ${r.status} (stream)`);
        const [a, b] = r.body ? r.body.tee() : [null, null];
        if (a) (async () => {
          const rd = a.getReader(), dec = new TextDecoder();
          try { for (;;) { const { value, done } = await rd.read(); if (done) break; say(`<${id} sse ${JSON.stringify(dec.decode(value))}`); } say(`<${id} sse end`); }
          catch (e) { say(`<${id} sse error ${e?.message}`); }
        })();
        return new Response(b, { status: r.status, headers: r.headers });
      }
      const text = await r.text();
      say(`<${id} ${r.status} ${JSON.stringify(text)}`);
      return new Response(r.status === 204 || r.status === 304 ? null : text, { status: r.status, headers: r.headers });
    } catch (e) {
      say(`<${id} failed ${e?.message ?? e}`);
      throw e;
    }
  };
  return (W) => class extends W {
    constructor(url, ...a) {
      super(url, ...a);
      const id = `w${++k}`;
      say(`>${id} WS ${short(url)}`);
      this.addEventListener("open", () => say(`<${id} open`));
      this.addEventListener("message", (m) => say(`<${id} frame ${typeof m.data === "string" ? JSON.stringify(m.data) : "(binary)"}`));
      this.addEventListener("close", (e) => say(`<${id} close ${e.code}`));
      const send = this.send.bind(this);
      this.send = (d) => (say(`>${id} frame ${typeof d === "string" ? JSON.stringify(d) : "(binary)"}`), send(d));
    }
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(pred, ms, step = 50) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return true;
    await sleep(step);
  }
  return pred();
}

// Lost, duplicated and out-of-order messages of 1..expected in got (arrival order).
export function countSeq(expected, got) {
  const seen = new Set();
  let dup = 0, ooo = 0, max = 0;
  for (const n of got) {
    if (seen.has(n)) dup++;
    else seen.add(n);
    if (n < max) ooo++;
    max = Math.max(max, n);
  }
  let lost = 0;
  for (let i = 1; i <= expected; i++) if (!seen.has(i)) lost++;
  return { sent: expected, lost, dup, ooo };
}

// Runs one scenario. clients: which of "browser", "node" take part; lib: "ferry" (default) or
// "official" (socket.io-client, for comparison); bestMs: how long, after the drain, to wait for
// every client to be on sc.best (a scenario with endsOnBest). Returns {scenario, rows:[per client], notes}.
export async function runScenario(sc, { browser, staticDir, seconds = 5, drainMs = 8000, joinMs = 15000, bestMs = 0,
  clients = ["browser", "node"], lib = process.env.FERRY_LAB_LIB || "ferry", log = () => {} }) {
  const notes = [];
  const trace = openTrace(sc.id);
  const acted = []; // what the faults did: ferry-proxy's counters, nginx's error statuses
  const srv = await startServer(bin("tools/ferry/ferry"), ["--host", "127.0.0.1", "--port", "0",
    "--transports", "polling,websocket,sse,short-polling", "--static", staticDir,
    "--allow-publish", "seq", "--publish-token", TOKEN, "--publish-rate", "0", "--no-presence"],
    trace ? { env: { FERRY_LOG_LEVEL: "debug" } } : {});
  if (trace) srv.proc.stderr.on("data", trace.lines("server"));
  let ngx = null, proxy = null, observer = null, ctx = null, node = null, stopped = false;
  const stopAll = async () => {
    try { node?.close(); } catch {}
    try { observer?.disconnect(); } catch {}
    await ctx?.close().catch(() => {});
    if (proxy) {
      const st = await proxy.stop().catch((e) => (notes.push(`proxy: ${e.message}`), null));
      for (const [k, v] of Object.entries(st ?? {}))
        if (v && !["requests", "upgrades", "bytesUp", "bytesDown"].includes(k)) acted.push(`${k} ${v}`);
    }
    if (ngx) {
      const codes = {};
      for (const m of ngx.accessLog().matchAll(/" (\d{3}) /g)) if (!["200", "101", "404"].includes(m[1])) codes[m[1]] = (codes[m[1]] ?? 0) + 1;
      for (const [c, n] of Object.entries(codes)) acted.push(`nginx ${c} ×${n}`);
      const timeouts = (ngx.errorLog().match(/upstream timed out/g) ?? []).length;
      if (timeouts) acted.push(`nginx read timeouts ${timeouts}`);
      await ngx.stop();
    }
    const code = await srv.stop();
    if (code !== 0) notes.push(`tools/ferry exited with ${code} (leak or sanitizer report)`);
    if (trace) trace.close(), log(`${sc.id}: trace in ${trace.file}`);
  };
  try {
    let front = srv.url;
    if (sc.nginx) front = (ngx = await startNginx(sc.nginx, front)).url;
    if (sc.proxy) front = (proxy = await startProxy(front, [...(trace ? [] : ["--quiet"]), ...sc.proxy])).url;
    if (trace && proxy) proxy.proc.stderr.on("data", trace.lines("proxy"));

    // The observer: official client, straight to ferry over WebSocket, in every room.
    const rooms = { browser: "lab-b", node: "lab-n" };
    const up = { "lab-b": [], "lab-n": [] };
    observer = officialIo(srv.url, { transports: ["websocket"], auth: { name: "observer" }, reconnection: false });
    observer.on("seq", (data, meta) => meta?.from && up[meta.room]?.push(data.n));
    await new Promise((resolve, reject) => {
      observer.once("connect", resolve);
      observer.once("connect_error", reject);
    });
    for (const room of Object.values(rooms)) await observer.emitWithAck("join", { room });

    const handles = {};
    if (clients.includes("browser")) {
      ctx = await browser.newContext();
      const page = await ctx.newPage();
      page.on("pageerror", (e) => notes.push(`browser: ${e.message}`));
      if (trace) {
        await page.exposeFunction("__labTrace", (at, l) => trace.w("browser", l, at));
        await page.addInitScript(`{ const wrap = (${traceTransports})(globalThis, (l) => globalThis.__labTrace(Date.now(), l)); ` +
          `globalThis.WebSocket = wrap(globalThis.WebSocket); }`);
      }
      // The page load itself goes through the fault: like a user, reload a few times.
      // A navigation that fails may be followed by Chromium's own retry of it, which ends a
      // second goto at once ("interrupted by another navigation"): the page is waited for
      // whatever goto said, and loaded again only when it did not come.
      let failed = 0;
      for (let i = 1; ; i++) {
        try {
          await page.goto(`${front}/lab.html?name=browser&room=${rooms.browser}&lib=${lib}`, { timeout: 20000 })
            .catch((e) => (failed++, trace?.w("harness", `page load ${i}: ${e.message.split("\n")[0]}`)));
          await page.waitForFunction(() => window.lab, null, { timeout: 10000 });
          if (failed) acted.push(`page loads failed ${failed}`);
          break;
        } catch (e) {
          trace?.w("harness", `page load ${i}: ${e.message.split("\n")[0]}`);
          if (i === 5) {
            notes.push(`the page did not load in 5 attempts: ${e.message.split("\n")[0]}`);
            break;
          }
        }
      }
      handles.browser = {
        stats: () => page.evaluate(() => window.lab?.result() ?? null).catch(() => null),
        stop: () => page.evaluate(() => window.lab?.stop()).catch(() => {}),
        setEpoch: (t) => page.evaluate((e) => window.lab?.setEpoch(e), t).catch(() => {}),
      };
    }
    if (clients.includes("node")) {
      const ferry = lib === "ferry" ? await import("../../client-js/src/index.mjs") : null;
      const T = trace && ferry ? { fetch: globalThis.fetch } : null;
      const wrapWS = T ? traceTransports(T, (l) => trace.w("node", l)) : null;
      node = startLabClient(ferry ? ferry.io : officialIo, front, {
        name: "node", room: rooms.node, official: !ferry,
        opts: ferry ? { WebSocket: wrapWS ? wrapWS(WS) : WS, storage: null, forceNew: true, ...(T && { fetch: T.fetch }) } : { forceNew: true },
      });
      if (trace) node.socket.on("transport", (ev) => trace.w("node", `transport ${JSON.stringify(ev)}`));
      handles.node = { stats: async () => node.result(), stop: async () => node.stop(), setEpoch: async (t) => node.setEpoch(t) };
    }
    const names = Object.keys(handles);
    const joined = await until(async () => {
      for (const n of names) if ((await handles[n].stats())?.joinedMs == null) return false;
      return true;
    }, joinMs, 100);
    if (!joined) notes.push(`not every client joined within ${joinMs} ms`);

    // The exchange: the backend publishes to each room every 100 ms while the clients publish.
    const published = { "lab-b": 0, "lab-n": 0 };
    // The exchange starts with a burst, so a run of BURST_MS + QUIET_MS holds a whole quiet period.
    const epoch = Date.now();
    for (const n of names) await handles[n].setEpoch(epoch);
    // The exchange lasts `seconds` from the moment every client has the epoch: on a loaded
    // machine the page's evaluate alone took over 5.5 s once, and the backend then published
    // nothing ("down: sent 0", a failed row with nothing lost).
    const end = Date.now() + seconds * 1000;
    trace?.w("harness", `joined; epoch ${epoch}, set in every client after ${Date.now() - epoch} ms`);
    while (Date.now() < end) {
      const t = Date.now();
      if (quiet(t, epoch)) {
        await sleep(100);
        continue;
      }
      for (const n of names) {
        const room = rooms[n];
        const res = await fetch(`${srv.url}/api/publish`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ room, event: "seq", data: { n: published[room] + 1 } }),
        });
        await res.arrayBuffer();
        if (res.status === 200) published[room]++;
        else notes.push(`publish answered ${res.status}`);
      }
      await sleep(Math.max(0, 100 - (Date.now() - t)));
    }
    for (const n of names) await handles[n].stop();
    // Drain: wait (bounded) until everything sent arrived somewhere.
    const complete = async () => {
      for (const n of names) {
        const s = await handles[n].stats();
        if (!s) return false;
        if (countSeq(s.sent, up[rooms[n]]).lost || countSeq(published[rooms[n]], s.got).lost) return false;
      }
      return true;
    };
    trace?.w("harness", `exchange over: published ${JSON.stringify(published)}`);
    const drained = await until(complete, drainMs, 100);
    trace?.w("harness", drained ? "drained" : `not drained after ${drainMs} ms`);
    if (bestMs && sc.endsOnBest && lib === "ferry")
      await until(async () => {
        for (const n of names) if ((await handles[n].stats())?.transport !== sc.best) return false;
        return true;
      }, bestMs, 100);

    const rows = [];
    for (const n of names) {
      const s = (await handles[n].stats()) ?? { sent: 0, got: [], joinedMs: null, transport: null, bestMs: null,
        switches: [], disconnects: [], errors: ["the client never started (page did not load?)"] };
      const upc = countSeq(s.sent, up[rooms[n]]);
      const downc = countSeq(published[rooms[n]], s.got);
      const ok = s.joinedMs != null && upc.sent > 0 && downc.sent > 0 &&
        !upc.lost && !upc.dup && !upc.ooo && !downc.lost && !downc.dup && !downc.ooo;
      rows.push({ client: n, lib, transport: s.transport, firstMessageMs: s.joinedMs, bestMs: s.bestMs,
        switches: s.switches, disconnects: s.disconnects, errors: s.errors.slice(0, 5), up: upc, down: downc, ok });
    }
    log(`${sc.id}: ${rows.map((r) => `${r.client} ${r.transport} ${r.ok ? "ok" : "FAIL"}`).join(", ")}`);
    await stopAll();
    stopped = true;
    return { scenario: sc, rows, notes, acted };
  } finally {
    if (!stopped) await stopAll();
  }
}

// For a scenario with endsOnBest: a line for each of ferry's clients not on sc.best.
export function endsWrong(sc, rows) {
  return sc.endsOnBest ? rows.filter((r) => r.lib === "ferry" && r.transport !== sc.best).map((r) => `${sc.id} / ${r.client} ends on ${r.transport}, not ${sc.best}: ${describeFailure(sc, r)}`) : [];
}

// One line of a client's result that says what went wrong, for test failures.
export function describeFailure(sc, r) {
  const d = (x) => `sent ${x.sent}, lost ${x.lost}, duplicated ${x.dup}, out of order ${x.ooo}`;
  return `${sc.id} / ${r.client} (${r.lib}): on ${r.transport}; up: ${d(r.up)}; down: ${d(r.down)}; ` +
    `switches: ${r.switches.map((s) => `${s.from || "-"}->${s.to} ${s.reason}@${s.atMs}`).join(", ") || "none"}; ` +
    `disconnects: ${r.disconnects.map((x) => `${x.reason}@${x.atMs}`).join(", ") || "none"}` +
    // A client sends only once its join is acknowledged: "up: sent 0" with this is a lost ack.
    (r.firstMessageMs == null ? "; its join was never acknowledged" : "") +
    (r.errors.length ? `; errors: ${r.errors.join("; ")}` : "");
}
