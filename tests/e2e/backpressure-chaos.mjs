// A slow consumer inside the chaos run, under one backpressure policy (issue 14): tools/ferry
// as users run it (--backpressure P --max-queue-bytes B, recovery on by default) and, for each
// slow client, a tools/ferry-proxy of its own that cuts connections at random (seeded --drop,
// --ws-close-after) and stops reading from the server for the last part of every period
// (--stall, with --window so that the server's own buffers fill: a client that reads slower
// than the app publishes). The clients: ferry's client in Node (npm ws) on WebSocket and on
// long-polling, ferry's browser client in headless Chromium on WebSocket and on long-polling
// (its page served by the same tools/ferry, the client connecting through its proxy), and the
// official socket.io-client on WebSocket and on long-polling, all in one room. A backend publishes numbered events through POST /api/publish faster than a stalled
// client reads: a quarter plain ("n"), a quarter volatile ("v"), half keyed by four keys ("k").
// Every client also asks the server something with an acknowledgement now and then (its answer
// is a control packet that no policy may drop). At the end an "end" publish, and each client is
// audited against what its policy promises (docs/reliability.md "Backpressure"):
//
//   every policy  plain: all, once, in order (close: through connection-state recovery after
//                 the server closed the session); volatile: in order, none twice (some may be
//                 missing); acknowledgements: each answered at most once (ferry's client:
//                 exactly once, the outbox), never a ping timeout because of the queue
//   close         keyed as plain; the server closed slow sessions ("send queue over its bound")
//   drop-volatile keyed as plain
//   latest        keyed: per key in order, none twice, the last value of every key arrives
//   spill         keyed as plain; the server spilled ("its events wait in the recovery log")
//                 and never closed a session for its queue
//
//   import { runSlowChaos, slowReport } from "./backpressure-chaos.mjs"
//   node tests/e2e/backpressure-chaos.mjs [--policy P] [--seconds 10] [--seed N]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import WS from "ws";
import { io } from "../../client-js/src/index.mjs";
import { io as officialIo } from "socket.io-client";
import { startServer, bin, root } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";
import { rawConnect } from "../lib/rawhttp.mjs";
import { launchChromium } from "../lib/browser.mjs";
import { randomBytes } from "node:crypto";

export const POLICIES = ["close", "drop-volatile", "latest", "spill"];
export const SLOW_CLIENTS = [
  { name: "ferry-websocket", transports: ["websocket"] },
  { name: "ferry-polling", transports: ["polling"] },
  { name: "chromium-ws", transports: ["websocket"], browser: true },
  { name: "chromium-polling", transports: ["polling"], browser: true },
  { name: "sio-websocket", transports: ["websocket"], official: true },
  { name: "sio-polling", transports: ["polling"], official: true },
];

// The page of the Chromium clients: ferry's browser bundle (window.ferry.io), nothing else.
function buildPage() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-slow-chaos-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), dir], { stdio: "ignore" });
  const bundle = fs.readFileSync(path.join(dir, "ferry.min.js"), "utf8");
  if (/<\/script/i.test(bundle)) throw new Error("cannot inline: </script in the bundle");
  fs.writeFileSync(path.join(dir, "slow.html"), `<!doctype html><meta charset="utf-8"><title>slow</title>\n<script>${bundle}</script>\n`);
  return dir;
}

// One Chromium client, run inside its page (serialized by playwright): the same bookkeeping as a
// Node client's below, kept in the page (window.slow) and read back with result().
function slowPage({ url, name, transports }) {
  const st = { got: [], ended: false, sessions: 0, recovered: 0, notRecovered: 0, joined: false, asked: 0, answers: {}, sids: [] };
  const s = window.ferry.io(url, { transports, storage: null, reconnectionDelay: 100, reconnectionDelayMax: 1000, requestTimeout: 5000 });
  for (const ev of ["n", "v", "k"]) s.on(ev, (d) => st.got.push({ ev, i: d?.i, key: d?.key }));
  s.on("end", () => (st.ended = true));
  s.on("connect", () => {
    st.sessions++;
    const sid = s.io.engine?.sid ?? s.io.engine?.id;
    if (sid && !st.sids.includes(sid.slice(0, 6))) st.sids.push(sid.slice(0, 6));
    if (s.recovered) st.recovered++;
    else if (st.joined) (st.notRecovered++, s.emit("join", { room: "feed" }));
  });
  let asking = false;
  window.slow = {
    join: () => s.timeout(5000).emitWithAck("join", { room: "feed" }).then((r) => (st.joined = !!r?.ok), () => false),
    ask() {
      asking = true;
      const next = () => {
        if (!asking) return;
        const n = st.asked++;
        s.timeout(60000).emit("join", { room: `${name}-${n % 4}` }, (err) => {
          if (!err) st.answers[n] = (st.answers[n] ?? 0) + 1;
        });
        setTimeout(next, 400);
      };
      next();
    },
    stopAsking: () => (asking = false),
    close: () => s.disconnect(),
    result: () => st,
  };
}

// A Chromium client's state as the Node side keeps it (st), read from its page.
async function refresh(st) {
  const r = await st.page.evaluate(() => window.slow.result());
  Object.assign(st, { got: r.got, ended: r.ended, sessions: r.sessions, recovered: r.recovered, notRecovered: r.notRecovered, asked: r.asked });
  st.answers = new Map(Object.entries(r.answers).map(([n, v]) => [Number(n), v]));
  st.sids = new Set(r.sids);
}
const KEYS = ["AAA", "BBB", "CCC", "DDD"];
const TOKEN = "slow-chaos-token";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The plan: i % 4 === 0 plain, 1 volatile, 2 and 3 keyed (keys in turn). A stalled polling
// client's queue passes the bound within half a stall, and its plain events alone stay under
// twice the bound, where drop-volatile and latest would close the session (tools/ferry).
export function plan(i, pad) {
  if (i % 4 === 0) return { event: "n", data: { i, pad } };
  if (i % 4 === 1) return { event: "v", data: { i, pad }, volatile: true };
  const key = KEYS[(i >> 1) % 4];
  return { event: "k", data: { i, key, pad }, key };
}

// In order and none twice: the numbers that broke it.
function orderCheck(list) {
  const seen = new Set();
  let dup = 0, ooo = 0, last = -1;
  for (const n of list) {
    if (seen.has(n)) dup++;
    else if (n < last) ooo++;
    seen.add(n);
    last = Math.max(last, n);
  }
  return { dup, ooo, seen };
}

// What one client got, against what was published and what its policy promises.
export function auditSlow(policy, got, published) {
  const want = { n: [], v: [], k: [] };
  const lastOfKey = {};
  for (let i = 0; i < published; i++) {
    const p = plan(i, "");
    want[p.event].push(i);
    if (p.key) lastOfKey[p.key] = i;
  }
  const out = {};
  for (const ev of ["n", "v", "k"]) {
    const list = got.filter((g) => g.ev === ev).map((g) => g.i);
    const { dup, ooo, seen } = orderCheck(list);
    out[ev] = { published: want[ev].length, received: list.length, lost: want[ev].filter((i) => !seen.has(i)).length, dup, ooo };
  }
  // Per key: in order, none twice, and the last value of each key there.
  const keys = { dup: 0, ooo: 0, lastMissing: 0 };
  for (const key of KEYS) {
    const list = got.filter((g) => g.ev === "k" && g.key === key).map((g) => g.i);
    const c = orderCheck(list);
    keys.dup += c.dup;
    keys.ooo += c.ooo;
    if (lastOfKey[key] !== undefined && !c.seen.has(lastOfKey[key])) keys.lastMissing++;
  }
  out.keys = keys;
  // What the policy promises (an empty list: kept).
  const broken = [];
  const exact = (ev) => {
    const a = out[ev];
    if (a.lost || a.dup || a.ooo) broken.push(`${ev}: ${a.lost} lost, ${a.dup} twice, ${a.ooo} out of order`);
  };
  exact("n");
  if (out.v.dup || out.v.ooo) broken.push(`v: ${out.v.dup} twice, ${out.v.ooo} out of order`);
  if (policy === "latest") {
    if (keys.dup || keys.ooo || keys.lastMissing) broken.push(`k: per key ${keys.dup} twice, ${keys.ooo} out of order, ${keys.lastMissing} keys without their last value`);
  } else exact("k");
  out.broken = broken;
  return out;
}

// seconds: how long the backend publishes; pad: bytes of padding per publish; stall: the
// proxies' --stall; bound: --max-queue-bytes.
export async function runSlowChaos({
  policy, seconds = 10, rate = 60, seed = 1, pad = 2000, bound = 40000, stall = "1200/2500", window = 32768,
  drop = 0.1, wsCloseAfter = 4, clients = SLOW_CLIENTS, log = () => {},
} = {}) {
  const browserClients = clients.some((c) => c.browser);
  const pageDir = browserClients ? buildPage() : null;
  const srv = await startServer(bin("tools/ferry/ferry"), [
    "--port", "0", "--publish-token", TOKEN, "--publish-rate", "0", "--no-presence",
    "--backpressure", policy, "--max-queue-bytes", String(bound), "--log-level", "info",
    // The Chromium clients' page comes from the server itself (not cut); their client connects
    // through their proxy, another origin.
    ...(browserClients ? ["--static", pageDir, "--cors-origins", "*"] : []),
  ]);
  const proxies = [];
  const states = [];
  const t0 = Date.now();
  let published = 0;
  let browser = null;
  try {
    for (let k = 0; k < clients.length; k++)
      proxies.push(await startProxy(srv.url, ["--drop", String(drop), "--drop-within", "3000",
        "--ws-close-after", String(wsCloseAfter), "--stall", stall, "--window", String(window),
        "--seed", String(seed + k), "--quiet"]));
    // Connect every client and join the room.
    for (let k = 0; k < clients.length; k++) {
      const c = clients[k];
      const url = proxies[k].url;
      if (c.browser) {
        browser ??= await launchChromium();
        const page = await (await browser.newContext()).newPage();
        await page.goto(`${srv.url}/slow.html`, { timeout: 30000, waitUntil: "domcontentloaded" });
        await page.waitForFunction(() => window.ferry?.io, null, { timeout: 10000 });
        await page.evaluate(slowPage, { url, name: c.name, transports: c.transports });
        states.push({ c, page, got: [], ended: false, sessions: 0, recovered: 0, notRecovered: 0, joined: false, asked: 0, answers: new Map(), sids: new Set() });
        continue;
      }
      const s = c.official
        ? officialIo(url, { forceNew: true, transports: c.transports, reconnectionDelay: 100, reconnectionDelayMax: 1000 })
        : io(url, { WebSocket: WS, storage: null, forceNew: true, transports: c.transports, reconnectionDelay: 100, reconnectionDelayMax: 1000, requestTimeout: 5000 });
      const st = { c, s, got: [], ended: false, sessions: 0, recovered: 0, notRecovered: 0, joined: false, asked: 0, answers: new Map(), sids: new Set() };
      states.push(st);
      for (const ev of ["n", "v", "k"]) s.on(ev, (d) => st.got.push({ ev, i: d?.i, key: d?.key }));
      s.on("end", () => (st.ended = true));
      s.on("connect", () => {
        st.sessions++;
        const sid = s.io.engine?.sid ?? s.io.engine?.id;
        if (sid) st.sids.add(sid.slice(0, 6));
        if (s.recovered) st.recovered++;
        else if (st.joined) {
          // A lost socket that was not recovered has left the room: join again, and count it
          // (the audit shows what it missed).
          st.notRecovered++;
          s.emit("join", { room: "feed" });
        }
      });
    }
    await Promise.all(states.map(async (st) => {
      for (let tries = 0; ; tries++) {
        if (st.page) {
          if (await st.page.evaluate(() => window.slow.join())) break;
          if (tries >= 10) throw new Error(`${st.c.name} could not join`);
          continue;
        }
        try {
          const r = await st.s.timeout(5000).emitWithAck("join", { room: "feed" });
          if (r?.ok) break;
        } catch (err) {
          if (tries >= 10) throw new Error(`${st.c.name} could not join: ${err.message}`);
        }
      }
      st.joined = true;
    }));
    log(`slow chaos ${policy}: ${states.length} clients joined in ${Date.now() - t0} ms`);
    // Acknowledgements while the queue is over its bound: every 400 ms each client asks (a
    // join of a room of its own; the server answers with an ack).
    let asking = true;
    const askers = states.map(async (st) => {
      if (st.page) {
        await st.page.evaluate(() => window.slow.ask());
        while (asking) await sleep(100);
        return st.page.evaluate(() => window.slow.stopAsking());
      }
      while (asking) {
        const n = st.asked++;
        st.s.timeout(60000).emit("join", { room: `${st.c.name}-${n % 4}` }, (err, r) => {
          if (!err) st.answers.set(n, (st.answers.get(n) ?? 0) + 1);
        });
        await sleep(400);
      }
    });
    // The backend: numbered publishes at `rate` a second for `seconds`, pipelined on one
    // HTTP/1.1 connection (the server handles them strictly in order), each with padding of
    // its own (random: WebSocket compression would shrink a repeated one to nothing).
    const pub = await rawConnect(srv.port);
    let inflight = 0;
    const answer = async () => {
      const r = await pub.response();
      if (r.status !== 200) throw new Error(`publish: ${r.status} ${r.text}`);
      inflight--;
    };
    const tp = Date.now();
    while (Date.now() < tp + seconds * 1000) {
      const p = plan(published, randomBytes(pad * 3 / 4).toString("base64"));
      const body = Buffer.from(JSON.stringify({ room: "feed", event: p.event, data: p.data, ...(p.key && { key: p.key }), ...(p.volatile && { volatile: true }) }));
      pub.write(`POST /api/publish HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      pub.write(body);
      inflight++;
      published++;
      while (inflight >= 16) await answer();
      const ahead = tp + (published * 1000) / rate - Date.now();
      if (ahead > 0) await sleep(ahead);
    }
    while (inflight > 0) await answer();
    pub.destroy();
    asking = false;
    await Promise.all(askers);
    const pubEnd = Date.now();
    log(`slow chaos ${policy}: ${published} publishes in ${((pubEnd - t0) / 1000).toFixed(1)} s`);
    // The end mark, published again until every client saw one (a client without a session
    // at that moment gets it through recovery; one not recovered would miss it).
    const endBy = Date.now() + 60000;
    const refreshAll = () => Promise.all(states.filter((st) => st.page).map(refresh));
    for (let n = 0; (await refreshAll(), states.some((st) => !st.ended)) && Date.now() < endBy; n++) {
      if (n % 40 === 0)
        await fetch(`${srv.url}/api/publish`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ room: "feed", event: "end", data: {} }),
        }).then((r) => r.arrayBuffer());
      await sleep(50);
    }
    // Acks still on their way, and a late duplicate would show here.
    const ackBy = Date.now() + 15000;
    while ((await refreshAll(), states.some((st) => !st.c.official && st.answers.size < st.asked)) && Date.now() < ackBy) await sleep(100);
    await sleep(500);
    await refreshAll();
    for (const st of states) st.page ? await st.page.evaluate(() => window.slow.close()) : st.s.disconnect();
    var catchUpMs = Date.now() - pubEnd;
  } finally {
    await browser?.close().catch(() => {});
    if (pageDir) fs.rmSync(pageDir, { recursive: true, force: true });
    var proxyStats = [];
    for (const p of proxies) proxyStats.push(await p.stop().catch(() => ({})));
    await sleep(100);
    var serverExit = await srv.stop();
  }
  const err = srv.stderr();
  const server = {
    closedOverBound: (err.match(/send queue over its bound/g) ?? []).length,
    spilled: (err.match(/its events wait in the recovery log/g) ?? []).length,
    caughtUp: (err.match(/caught up from the recovery log/g) ?? []).length,
    pingTimeouts: (err.match(/ping timeout/g) ?? []).length,
    exit: serverExit,
  };
  // The server's log lines about a client's sessions (their sids' first 6 characters).
  const linesOf = (st, re) => err.split("\n").filter((l) => re.test(l) && [...st.sids].some((sid) => l.includes(`sid=${sid}`))).length;
  const rows = states.map((st) => {
    const a = auditSlow(policy, st.got, published);
    a.server = {
      closedOverBound: linesOf(st, /send queue over its bound/),
      spilled: linesOf(st, /its events wait in the recovery log/),
      pingTimeouts: linesOf(st, /ping timeout/),
    };
    const twice = [...st.answers.values()].filter((v) => v > 1).length;
    // The plain and keyed numbers it never got (to look for in the server's log).
    const seenN = new Set(st.got.map((g) => g.i));
    return {
      missing: Array.from({ length: published }, (_, i) => i).filter((i) => i % 4 !== 1 && !seenN.has(i)),
      sids: [...st.sids],
      client: st.c.name,
      official: !!st.c.official,
      ended: st.ended,
      ...a,
      acks: { asked: st.asked, answered: st.answers.size, twice },
      sessions: st.sessions,
      recovered: st.recovered,
      notRecovered: st.notRecovered,
    };
  });
  const cut = proxyStats.reduce((n, p) => n + (p.dropped ?? 0) + (p.websocketsClosed ?? 0), 0);
  const paused = proxyStats.reduce((n, p) => n + (p.paused ?? 0), 0);
  return { policy, seed, published, seconds: (Date.now() - t0) / 1000, catchUpMs, rows, server, cut, paused, serverLog: err };
}

export function slowReport(r) {
  const f = (a) => `${a.received}/${a.published} ${a.lost}/${a.dup}/${a.ooo}`;
  const lines = [`slow chaos ${r.policy}: seed ${r.seed}, ${r.published} publishes, ${r.seconds.toFixed(1)} s (caught up ${(r.catchUpMs / 1000).toFixed(1)} s after the last), proxies cut ${r.cut} connections and paused the server ${r.paused} times; server: ${r.server.closedOverBound} sessions closed over the bound, ${r.server.spilled} spills (${r.server.caughtUp} caught up), ${r.server.pingTimeouts} ping timeouts`];
  lines.push("client           | plain got/pub lost/dup/ooo | keyed got/pub lost/dup/ooo | volatile got/pub | acks answered/asked (twice) | sessions (recovered, not) | closed over bound / spilled / ping timeouts");
  for (const x of r.rows)
    lines.push(`${x.client.padEnd(16)} | ${f(x.n).padEnd(26)} | ${f(x.k).padEnd(26)} | ${`${x.v.received}/${x.v.published}`.padEnd(16)} | ${`${x.acks.answered}/${x.acks.asked} (${x.acks.twice})`.padEnd(27)} | ${`${x.sessions} (${x.recovered}, ${x.notRecovered})`.padEnd(25)} | ${x.server.closedOverBound} / ${x.server.spilled} / ${x.server.pingTimeouts}${x.broken.length ? `  BROKEN: ${x.broken.join("; ")} (missing ${x.missing.slice(0, 20).join(",")}${x.missing.length > 20 ? ",..." : ""}; sessions ${x.sids.join(",")})` : ""}`);
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, d) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : d;
  };
  const policies = arg("policy") ? [arg("policy")] : POLICIES;
  let bad = false;
  for (const policy of policies) {
    const r = await runSlowChaos({ policy, seconds: Number(arg("seconds", 10)), seed: Number(arg("seed", 20261206)), pad: Number(arg("pad", 2000)), rate: Number(arg("rate", 60)), bound: Number(arg("bound", 40000)), stall: arg("stall", "1200/2500"), log: (l) => console.log(l) });
    console.log(slowReport(r));
    bad ||= r.rows.some((x) => x.broken.length || !x.ended) || r.server.exit !== 0;
  }
  process.exit(bad ? 1 : 0);
}
