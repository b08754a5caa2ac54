// The chaos run in headless Chromium (issue 14): ferry's browser client, one per transport
// (websocket, sse, polling, short-polling) and one free to switch between them, each in its own
// browser context, talks to tools/ferry (as users run it: recovery on by default) through
// tools/ferry-proxy, which cuts requests and WebSockets at random (seeded: --drop kills them
// before, after or in the middle of the server's answer; --ws-close-after ends every WebSocket
// after a few seconds). Each client publishes sequence-numbered messages to its own room; an
// echo bot connected to tools/ferry directly (no proxy) records what the server delivered
// (upstream, in arrival order) and publishes each number back (downstream, recorded by the
// page). Zero lost, zero duplicated, order kept, both ways; counts printed.
//
//   node tests/browser/chaos-browser.mjs [--count 10000] [--seconds 900] [--seed N] [--only switching,sse]   (make chaos)
//   import { runBrowserChaos, browserReport } from "./chaos-browser.mjs"            (chaos.test.mjs)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { io as officialIo } from "socket.io-client";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, root } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";
import { audit, switchSummary, sentOn, whereSent, detail, keepLog, notRecoveredWhy, RECOVERY_LOG } from "../e2e/chaos.mjs";

const ALL = ["websocket", "sse", "polling", "short-polling"];
export const BROWSER_CLIENTS = [...ALL.map((t) => ({ name: t, transports: [t] })), { name: "switching", transports: ALL }];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The page, whole in one file (one request through the cuts to load it): the classic bundle
// (window.ferry) and tests/browser/chaos-page.mjs inline.
function buildStatic() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-chaos-browser-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), dir], { stdio: "ignore" });
  const bundle = fs.readFileSync(path.join(dir, "ferry.min.js"), "utf8");
  const page = fs.readFileSync(path.join(root, "tests/browser/chaos-page.mjs"), "utf8").replace(/^export /gm, "");
  if (/<\/script/i.test(bundle + page)) throw new Error("cannot inline: </script in the code");
  fs.writeFileSync(path.join(dir, "chaos.html"), '<!doctype html><meta charset="utf-8"><title>ferry chaos</title>\n' +
    `<script>${bundle};window.io=ferry.io</script>\n<script>${page}</script>\n`);
  return dir;
}

// count: messages per client and direction; seconds: when the clients stop sending whatever
// the count (counted once every page is loaded); window: messages published and not yet echoed at most, per client.
export async function runBrowserChaos({ count = 10000, seconds = 900, seed = 1, drop = 0.2, wsCloseAfter = 3, window = 100,
  clients = BROWSER_CLIENTS, log = () => {} } = {}) {
  const dir = buildStatic();
  const srv = await startServer(bin("tools/ferry/ferry"), ["--host", "127.0.0.1", "--port", "0", "--static", dir,
    "--transports", ALL.join(","), "--allow-publish", "seq,echo", "--allow-join", "chaos-*", "--publish-rate", "0",
    "--no-presence", "--history", "0", "--recovery-ms", "60000", ...RECOVERY_LOG, "--log-level", "info"]);
  // (A proxy that does not start must not leave tools/ferry running.)
  const px = await startProxy(srv.url, ["--drop", String(drop), "--drop-within", "3000", "--ws-close-after", String(wsCloseAfter),
    "--seed", String(seed), "--quiet"]).catch(async (e) => {
    await srv.stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  const room = (c) => `chaos-${c.name}-${seed}`;
  const up = new Map(clients.map((c) => [room(c), []]));
  let bot, browser, proxyStats = {}, code = null, pageLoadsFailed = 0;
  const t0 = Date.now();
  const rows = [];
  try {
    // The echo bot: straight to tools/ferry over WebSocket, in every client's room.
    bot = officialIo(srv.url, { transports: ["websocket"], reconnection: false, auth: { name: "echo-bot" } });
    await new Promise((res, rej) => (bot.once("connect", res), bot.once("connect_error", rej)));
    for (const r of up.keys()) {
      const ack = await bot.timeout(10000).emitWithAck("join", { room: r });
      if (!ack?.ok) throw new Error(`echo bot: join ${r}: ${ack?.error}`);
    }
    bot.on("seq", (d, meta) => {
      const list = up.get(meta?.room);
      if (!list || typeof d?.n !== "number") return;
      list.push(d.n);
      bot.emit("publish", { room: meta.room, event: "echo", data: { n: d.n } });
    });

    browser = await launchChromium();
    const pages = await Promise.all(clients.map(async (c) => {
      // A context each: its own connection pool (six per host), as separate users have.
      const ctx = await browser.newContext();
      const errors = [];
      let page;
      // The page load goes through the cuts too: reload like a user (bounded), each attempt on
      // a fresh tab (a navigation cut half-way may still be pending in the old one).
      for (let i = 1; ; i++) {
        page = await ctx.newPage();
        page.on("pageerror", (e) => errors.push(e.message));
        try {
          await page.goto(`${px.url}/chaos.html?${c.name}`, { timeout: 15000, waitUntil: "domcontentloaded" });
          await page.waitForFunction(() => window.startChaos && window.io, null, { timeout: 5000 });
          break;
        } catch (e) {
          pageLoadsFailed++;
          await page.close().catch(() => {});
          if (i === 8) throw new Error(`${c.name}: the page did not load in 8 attempts: ${e.message.split("\n")[0]}`);
        }
      }
      await page.evaluate(({ name, room, count, ahead, transports }) => {
        window.chaos = window.startChaos(window.io, location.origin, { name, room, count, window: ahead, transports });
      }, { name: c.name, room: room(c), count, ahead: window, transports: c.transports });
      return { c, ctx, page, errors };
    }));
    log(`chaos (browser): ${pages.length} pages started in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // Run until every client sent its count and got every echo, or the time is up (counted
    // from now: loading pages through the cuts on a loaded machine takes its own time).
    const end = Date.now() + seconds * 1000;
    let lastLog = Date.now();
    for (;;) {
      const prog = await Promise.all(pages.map((p) => p.page.evaluate(() => window.chaos.progress()).catch(() => null)));
      if (prog.every((x) => x && x.sent >= count && x.echoed >= count)) break;
      if (Date.now() > end) break;
      if (Date.now() - lastLog > 30000) {
        lastLog = Date.now();
        log(`chaos (browser): ${prog.map((x, i) => `${pages[i].c.name} ${x?.sent}/${x?.echoed}`).join(", ")}`);
        // A client with no progress for 30 s: what its engine is doing.
        for (const [i, p] of pages.entries()) {
          const key = `${prog[i]?.sent}/${prog[i]?.echoed}`;
          if (p.lastProgress === key && !(prog[i]?.sent >= count && prog[i]?.echoed >= count))
            log(`chaos (browser): ${p.c.name} stuck at ${key}: ${await p.page.evaluate(() => window.chaos.state()).catch((e) => e.message)}`);
          p.lastProgress = key;
        }
      }
      await sleep(250);
    }
    for (const p of pages) await p.page.evaluate(() => window.chaos.stop()).catch(() => {});
    // Stragglers: what is still on its way after the sending stopped (bounded).
    const wait = Date.now() + 30000;
    for (;;) {
      const res = await Promise.all(pages.map((p) => p.page.evaluate(() => window.chaos.progress()).catch(() => null)));
      const upDone = pages.every((p, i) => res[i] && new Set(up.get(room(p.c))).size >= res[i].sent);
      if ((upDone && res.every((x) => x && x.echoed >= x.sent)) || Date.now() > wait) break;
      await sleep(250);
    }
    for (const p of pages) {
      const state = await p.page.evaluate(() => window.chaos.state()).catch((e) => e.message);
      const r = await p.page.evaluate(() => window.chaos.result()).catch((e) => ({ sent: 0, sentAt: [], down: [], switches: [], errors: [`result: ${e.message}`] }));
      await p.page.evaluate(() => window.chaos.close()).catch(() => {});
      const row = {
        client: p.c.name,
        up: audit(up.get(room(p.c)), r.sent),
        down: audit(r.down, r.sent),
        switches: r.switches.length,
        switchKinds: switchSummary(r.switches),
        sentOn: sentOn(r.switches, r.sent),
        sessions: r.sessions,
        recoveries: r.recoveries,
        failedRecoveries: r.failedRecoveries,
        notRecovered: r.notRecovered ?? [],
        transport: r.transport,
        errors: [...(r.errors ?? []), ...p.errors].slice(0, 5),
        state,
      };
      // What went wrong, message by message: where it was sent (page time).
      const wrong = [...new Set([...row.up.lostSeq, ...row.up.dupSeq, ...row.up.oooSeq, ...row.down.lostSeq, ...row.down.dupSeq, ...row.down.oooSeq])];
      row.where = wrong.slice(0, 10).map((n) => whereSent(n, r.sentAt, r.switches));
      rows.push(row);
      await p.ctx.close().catch(() => {});
    }
  } finally {
    bot?.disconnect();
    await browser?.close().catch(() => {});
    proxyStats = await px.stop().catch(() => ({}));
    code = await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // Why each reconnection was not recovered, as tools/ferry logged it (by the new socket's id).
  const why = notRecoveredWhy(srv.stderr());
  for (const row of rows) row.notRecovered = row.notRecovered.map((x) => `${x.text}: ${why.get(x.id) ?? "the server logged no reason"}`);
  // What the server said about losses it saw or repaired (docs/protocol.md 5.3 and 13).
  const said = srv.stderr().split("\n").filter((l) => /^ferry (warn|error)|a gap|came again|answer was lost|attach on .* refused|no longer held|not recovered/.test(l));
  return { rows, proxyStats, serverExit: code, seconds: (Date.now() - t0) / 1000, seed, count, pageLoadsFailed, said, serverLog: srv.stderr() };
}

export function browserReport(r) {
  const lines = [`chaos (headless Chromium): seed ${r.seed}, ${r.seconds.toFixed(1)} s, page loads retried ${r.pageLoadsFailed}, proxy ${JSON.stringify(r.proxyStats)}`];
  lines.push("client        | up sent/recv/lost/dup/ooo | down sent/recv/lost/dup/ooo | switches | sessions | recovered | errors");
  for (const x of r.rows) {
    const f = (a) => `${a.sent}/${a.received}/${a.lost}/${a.dup}/${a.ooo}`;
    lines.push(`${x.client.padEnd(13)} | ${f(x.up).padEnd(25)} | ${f(x.down).padEnd(27)} | ${String(x.switches).padEnd(8)} | ` +
      `${String(x.sessions).padEnd(8)} | ${x.recoveries} (${x.failedRecoveries} refused) | ${x.errors.join("; ") || "-"}`);
  }
  const kinds = {};
  for (const l of r.said ?? []) {
    const k = /outbox: emit/.test(l) ? "outbox gaps" : /a POST after a gap/.test(l) ? "POSTs after a gap refused (409)" :
      /of a POST not taken/.test(l) ? "POSTs not taken (resent)" : /not recovered/.test(l) ? "reconnections not recovered" : /came again/.test(l) ? "repeated POSTs not taken twice" : /answer was lost/.test(l) ? "lost poll answers sent again" : /refused/.test(l) ? "refusals" : "other warnings";
    kinds[k] = (kinds[k] ?? 0) + 1;
  }
  lines.push(`server: ${Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(", ") || "nothing to say"}`);
  for (const l of (r.said ?? []).filter((l) => !/came again|answer was lost/.test(l)).slice(0, 8)) lines.push(`  ${l}`);
  lines.push(...detail({ ...r, said: [] }));
  return lines.join("\n");
}

// A client that sent nothing failed too (it never joined: "up: sent 0" of stop 10); with
// `full`, a client that did not send the whole count in the time too (make chaos).
export const browserBad = (r, full = false) => r.serverExit !== 0 || r.rows.length === 0 ||
  r.rows.some((x) => x.up.sent === 0 || (full && x.up.sent < r.count) || x.up.lost || x.up.dup || x.up.ooo || x.down.lost || x.down.dup || x.down.ooo);

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, d) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : d;
  };
  const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1].split(",") : null;
  const r = await runBrowserChaos({ count: arg("count", 10000), seconds: arg("seconds", 900), seed: arg("seed", (Math.random() * 2 ** 31) >>> 0),
    clients: BROWSER_CLIENTS.filter((c) => !only || only.includes(c.name)), log: (l) => console.log(l) });
  console.log(browserReport(r));
  const bad = browserBad(r, true);
  if (bad) console.log(`chaos (browser): tools/ferry's log: ${keepLog(r, "ferry-chaos-browser")}`);
  console.log(bad ? `chaos (browser): FAILED (replay: node tests/browser/chaos-browser.mjs --seed ${r.seed} --count ${r.count})` : `chaos (browser): zero lost, zero duplicated, order kept (${r.count} each way per client)`);
  process.exit(bad ? 1 : 0);
}
