// The chaos run (issue 14): tools/ferry-proxy cuts connections at random (seeded: --drop kills
// requests and WebSockets mid-flight, --ws-close-after ends every WebSocket after a few
// seconds) while ferry's client in Node, one per transport plus one free to switch, sends
// sequence-numbered messages that ferry-test-sio echoes back. Upstream is checked on the
// server's side (what it printed for each client, in order), downstream on the client's (the
// echoes): zero lost, zero duplicated, order kept, counts printed.
//
//   node tests/e2e/chaos.mjs [--count 10000] [--seconds 300] [--seed N]   (make chaos)
//   import { runChaos } from "./chaos.mjs"                               (chaos.test.mjs)
import WS from "ws";
import { io } from "../../client-js/src/index.mjs";
import { io as officialIo } from "socket.io-client";
import { startSio } from "../lib/sio.mjs";
import { startProxy } from "../lib/proxy.mjs";

const ALL = ["polling", "websocket", "sse", "short-polling"];
// ferry's client on each transport and switching; the official socket.io-client on its two
// (official: its upstream is at most once across a lost connection, see docs/reliability.md,
// so its upstream is audited for duplicates and order only, and its downstream against what
// the server took).
export const CLIENTS = [
  ...ALL.map((t) => ({ name: t, transports: [t] })),
  { name: "switching", transports: ALL },
  { name: "sio-polling", transports: ["polling"], official: true },
  { name: "sio-websocket", transports: ["websocket"], official: true },
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Check one stream of numbers received for a sender: lost, duplicated, out of order.
export function audit(got, sent) {
  const seen = new Set();
  let dup = 0, ooo = 0, last = -1;
  for (const n of got) {
    if (seen.has(n)) dup++;
    else if (n < last) ooo++;
    seen.add(n);
    last = Math.max(last, n);
  }
  let lost = 0;
  for (let i = 0; i < sent; i++) if (!seen.has(i)) lost++;
  return { sent, received: got.length, lost, dup, ooo };
}

// count: messages per client and direction; seconds: when to stop sending whatever the count;
// window: messages sent and not yet echoed at most.
// Downstream of a sender whose upstream may lose: every echo of what the server took, once, in order.
export function auditTaken(got, taken) {
  const a = audit(got, 0);
  const want = new Set(taken);
  a.sent = want.size;
  a.lost = [...want].filter((n) => !got.includes(n)).length;
  return a;
}

export async function runChaos({ count = 10000, seconds = 300, seed = 1, drop = 0.2, wsCloseAfter = 3, window = 100, log = () => {} } = {}) {
  const srv = await startSio(["--recovery", "60000", "--transports", ALL.join(",")]);
  const px = await startProxy(srv.url, ["--drop", String(drop), "--drop-within", "3000", "--ws-close-after", String(wsCloseAfter), "--seed", String(seed), "--quiet"]);
  const results = [];
  const t0 = Date.now();
  try {
    await Promise.all(
      CLIENTS.map(async (c) => {
        const s = c.official
          ? officialIo(px.url, { forceNew: true, transports: c.transports, reconnectionDelay: 100, reconnectionDelayMax: 1000 })
          : io(px.url, { WebSocket: WS, storage: null, forceNew: true, transports: c.transports, reconnectionDelay: 100, reconnectionDelayMax: 1000, requestTimeout: 5000 });
        const switches = [];
        s.on("transport", (e) => switches.push(e.reason));
        let sessions = 0, recoveries = 0, failedRecoveries = 0;
        s.on("connect", () => (sessions++, s.recovered && recoveries++));
        s.on("recovery_failed", () => failedRecoveries++);
        const prefix = `${c.name}-${seed}:`;
        const down = [];
        s.on("message-back", (x) => typeof x === "string" && x.startsWith(prefix) && down.push(Number(x.slice(prefix.length))));
        let sent = 0;
        const until = t0 + seconds * 1000;
        while (sent < count && Date.now() < until) {
          // The official client may lose upstream (its window would never drain): a steady pace.
          if (c.official) {
            s.emit("message", prefix + sent++);
            await sleep(10);
            continue;
          }
          if (sent - down.length >= window) {
            await sleep(5);
            continue;
          }
          s.emit("message", prefix + sent++);
          if (sent % window === 0) await sleep(0);
        }
        // Stragglers: echoes still on their way (a cut may delay them by an attach or two).
        const waitUntil = Date.now() + (c.official ? 10000 : 30000);
        while (new Set(down).size < sent && Date.now() < waitUntil) await sleep(50);
        await sleep(300); // a late duplicate would show here
        s.disconnect();
        results.push({ official: !!c.official, client: c.name, sent, down: [...down], switches, sessions, recoveries, failedRecoveries, prefix });
        log(`chaos: ${c.name} done: ${sent} sent, ${down.length} echoes`);
      }),
    );
  } finally {
    var proxyStats = await px.stop().catch(() => ({}));
    await sleep(200);
    var code = await srv.stop();
  }
  // Upstream, as the server took it: every "message" it printed, in order, per client.
  const up = new Map(results.map((r) => [r.prefix, []]));
  for (const e of srv.all("event").filter((e) => e.name === "message")) {
    const x = e.args?.[0];
    if (typeof x !== "string") continue;
    for (const [prefix, list] of up) if (x.startsWith(prefix)) list.push(Number(x.slice(prefix.length)));
  }
  const rows = results.map((r) => ({
    client: r.client,
    official: r.official,
    up: audit(up.get(r.prefix), r.sent),
    // The official client: downstream is checked against what the server took and echoed.
    down: r.official ? auditTaken(r.down, up.get(r.prefix)) : audit(r.down, r.sent),
    switches: r.switches.length,
    sessions: r.sessions,
    recoveries: r.recoveries,
    failedRecoveries: r.failedRecoveries,
  }));
  return { rows, proxyStats, serverExit: code, seconds: (Date.now() - t0) / 1000, seed };
}

export function report(r) {
  const lines = [`chaos: seed ${r.seed}, ${r.seconds.toFixed(1)} s, proxy ${JSON.stringify(r.proxyStats)}`];
  lines.push("client       | up sent/recv/lost/dup/ooo | down sent/recv/lost/dup/ooo | switches | sessions | recovered");
  for (const x of r.rows) {
    const f = (a) => `${a.sent}/${a.received}/${a.lost}/${a.dup}/${a.ooo}`;
    lines.push(`${x.client.padEnd(12)} | ${f(x.up).padEnd(25)} | ${f(x.down).padEnd(27)} | ${String(x.switches).padEnd(8)} | ${String(x.sessions).padEnd(8)} | ${x.recoveries} (${x.failedRecoveries} refused)`);
  }
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, d) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : d;
  };
  const r = await runChaos({ count: arg("count", 10000), seconds: arg("seconds", 600), seed: arg("seed", (Math.random() * 2 ** 31) >>> 0), log: (l) => console.log(l) });
  console.log(report(r));
  // ferry's client: exactly once both ways, across lost sessions too (the outbox).
  const bad = r.rows.some((x) => (x.up.lost && !x.official) || x.up.dup || x.up.ooo || x.down.lost || x.down.dup || x.down.ooo) || r.serverExit !== 0;
  console.log(bad ? "chaos: FAILED" : "chaos: zero lost, zero duplicated, order kept");
  process.exit(bad ? 1 : 0);
}
