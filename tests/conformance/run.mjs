#!/usr/bin/env node
// ferry's WebSocket conformance client: every behaviour of shared/WEBSOCKET-CONFORMANCE.md,
// checked with raw sockets against an echo server, once without permessage-deflate ("off") and
// once with it negotiated ("deflate"). Prints one line per failing case and ends with
//   conformance: N passed, N failed
// exiting non-zero when anything failed.
//
//   node tests/conformance/run.mjs                     # ferry's examples/ws-echo from $FERRY_BUILD_DIR
//   node tests/conformance/run.mjs --server reference  # the npm `ws` reference echo server
//   node tests/conformance/run.mjs --url ws://127.0.0.1:9001/   # a server already running
//   options: --modes off,deflate  --only REGEX (case ids)  --verbose  --full  --bin PATH
//   FERRY_CONFORMANCE_FULL=1 (or --full): the size groups whole (16 MiB messages, 65,536
//   fragments, 1000 round trips); trimmed otherwise.
//
// Known server bugs can be listed in expected-failures.txt (see there); such a case failing is
// reported as XFAIL and does not fail the run, and the same case passing fails it (XPASS), so
// the list only ever shrinks.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WsConn, OP, closePayload } from "./wsconn.mjs";
import { buildCases, Fail, describe } from "./cases.mjs";
import { startServer, root } from "../lib/server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const flag = (name) => argv.includes(name);

const full = flag("--full") || process.env.FERRY_CONFORMANCE_FULL === "1";
const verbose = flag("--verbose");
const serverKind = opt("--server", "ferry");
const url = opt("--url");
const modes = opt("--modes", "off,deflate").split(",");
const only = opt("--only") ? new RegExp(`^(?:${opt("--only")})`) : null;
const scale = Number(process.env.FERRY_CONFORMANCE_TIMEOUT_SCALE ?? 1);
const buildDir = path.resolve(root, process.env.FERRY_BUILD_DIR ?? "build-test");
// examples/ws-echo builds ferry-ws-echo (ws-echo in its first version: either is taken).
const ferryBin = opt("--bin", ["ferry-ws-echo", "ws-echo"].map((n) => path.join(buildDir, "examples/ws-echo", n)).find((p) => fs.existsSync(p)) ?? path.join(buildDir, "examples/ws-echo/ferry-ws-echo"));

function loadExpectedFailures() {
  const file = path.join(here, serverKind === "reference" && !url ? "expected-failures-reference.txt" : "expected-failures.txt");
  const set = new Map();
  if (!fs.existsSync(file)) return set;
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^\s*(off|deflate|\*)\s+(\S+)\s*(?:#\s*(.*))?$/.exec(line);
    if (m) set.set(`${m[1]} ${m[2]}`, m[3] ?? "");
  }
  return set;
}

async function startFor(mode, extra = []) {
  if (url) {
    const u = new URL(url);
    return { host: u.hostname, port: Number(u.port || 80), path: u.pathname + u.search, stop: async () => 0, external: true };
  }
  const args = ["--port", "0", ...(mode === "deflate" ? ["--deflate"] : []), ...extra];
  let srv;
  if (serverKind === "reference") srv = await startServer(process.execPath, [path.join(here, "reference-echo.mjs"), ...args]);
  else {
    if (!fs.existsSync(ferryBin)) {
      console.log(`conformance: skipped: ${ferryBin} is not built`);
      process.exit(0);
    }
    srv = await startServer(ferryBin, args);
  }
  return { host: "127.0.0.1", port: srv.port, path: "/", stop: () => srv.stop(), proc: srv.proc, stderr: srv.stderr };
}

const DEFAULT_OFFER = "permessage-deflate; client_max_window_bits";

async function runMode(mode, results, xfail) {
  const deflate = mode === "deflate";
  let srv;
  try {
    srv = await startFor(mode);
  } catch (e) {
    const r = { mode, id: "server.start", ok: false, why: e.message };
    results.push(r);
    report(r, xfail);
    return;
  }
  const conns = new Set();
  const open = async (o = {}) => {
    const offers = o.offers ?? (deflate ? [DEFAULT_OFFER] : []);
    const at = o.server ?? srv;
    const c = new WsConn({ host: at.host, port: at.port, path: at.path, offers, timeoutMs: 5000 * scale });
    conns.add(c);
    try {
      await c.handshake();
    } catch (e) {
      throw new Fail(`opening handshake: ${e.message}`);
    }
    if (offers.length && !c.deflate && !o.allowDecline) throw new Fail(`UNIMPLEMENTED: permessage-deflate offer "${offers.join(", ")}" was not accepted`);
    return c;
  };
  // A second server with other flags (limits, threshold), for the cases that need one; null
  // when testing a server given by --url.
  const spawned = [];
  const spawn = url
    ? null
    : async (extra) => {
        const s2 = await startFor(mode, extra);
        spawned.push(s2);
        return s2;
      };
  const ctx = { deflate, full, spawn, host: srv.host, port: srv.port, path: srv.path, serverHasDeflate: srv.external ? undefined : deflate, t: (ms) => ms * scale, open };

  // A bystander connection kept open for the whole mode: after every case it must still echo,
  // so a bad connection never takes the server (or its other connections) down.
  let bystander = null;
  let seq = 0;
  const bystanderOk = async () => {
    try {
      if (!bystander) {
        bystander = await open({ allowDecline: true }); // liveness only: deflate is the cases' business
        conns.delete(bystander); // lives across cases
      }
      const m = Buffer.from(`bystander ${++seq}`);
      await bystander.sendMessage(m);
      const ev = await bystander.next(5000 * scale);
      if (ev.type !== "message" || !ev.data.equals(m)) throw new Error(describe(ev));
      return null;
    } catch (e) {
      bystander?.destroy();
      bystander = null;
      return e.message;
    }
  };

  const cases = buildCases({ deflate, full }).filter((c) => !only || only.test(c.id));
  for (const cs of cases) {
    const t0 = Date.now();
    let ok = true;
    let why = "";
    let note;
    let timer;
    try {
      const limit = (cs.timeoutMs ?? 30000) * scale;
      note = await Promise.race([
        cs.run(ctx),
        new Promise((_, rej) => (timer = setTimeout(() => rej(new Fail(`case did not finish within ${limit} ms`)), limit))),
      ]);
    } catch (e) {
      ok = false;
      why = e instanceof Fail ? e.message : `client error: ${e.stack ?? e}`;
    } finally {
      clearTimeout(timer);
      for (const c of conns) c.destroy();
      conns.clear();
      for (const s2 of spawned.splice(0)) {
        const code = await s2.stop();
        if (code !== 0 && ok) {
          ok = false;
          why = `the extra server (${cs.id}) exited with code ${code} on SIGTERM`;
        }
      }
    }
    if (srv.proc && (srv.proc.exitCode !== null || srv.proc.signalCode !== null)) {
      const how = srv.proc.signalCode ? `was killed by ${srv.proc.signalCode}` : `exited with code ${srv.proc.exitCode}`;
      const r = { mode, id: cs.id, title: cs.title, ok: false, why: `server process ${how} during this case; the rest of this mode is not run\n${srv.stderr().slice(-2000)}` };
      results.push(r);
      report(r, xfail);
      return;
    }
    const by = await bystanderOk();
    if (by && ok) {
      ok = false;
      why = `another connection stopped being served after this case: ${by}`;
    }
    const r = { mode, id: cs.id, title: cs.title, ok, why, nonStrict: note === "non-strict", skipped: ok && note === "skipped", ms: Date.now() - t0 };
    results.push(r);
    report(r, xfail);
  }

  if (bystander) {
    try {
      await bystander.sendFrame({ op: OP.CLOSE, payload: closePayload(1000) });
      const ev = await bystander.next(5000 * scale);
      if (ev.type !== "close") throw new Error(describe(ev));
    } catch (e) {
      const r = { mode, id: "bystander.close", ok: false, why: `long-lived connection did not close cleanly: ${e.message}` };
      results.push(r);
      report(r, xfail);
    }
    bystander.destroy();
  }
  const code = await srv.stop();
  if (!srv.external) {
    const r = { mode, id: "server.exit", title: "server exits 0 on SIGTERM (no leak, no sanitizer report)", ok: code === 0, why: `exit code ${code}`, ms: 0 };
    results.push(r);
    report(r, xfail);
  }
}

function report(r, xfail) {
  const key = [`${r.mode} ${r.id}`, `* ${r.id}`].find((k) => xfail.has(k));
  r.expected = !!key;
  const tag = `[${r.mode}] ${r.id}`;
  if (!r.ok && r.expected) console.log(`XFAIL ${tag}: ${r.why}`);
  else if (!r.ok) console.log(`FAIL ${tag} ${r.title ?? ""}: ${r.why}`);
  else if (r.expected) console.log(`XPASS ${tag}: passes now; remove it from expected-failures`);
  else if (verbose) console.log(`${r.skipped ? "skip" : "ok  "} ${tag} ${r.title}${r.nonStrict ? " (non-strict)" : ""} ${r.ms} ms`);
}

const xfail = loadExpectedFailures();
const results = [];
const started = Date.now();
console.log(`conformance: ${url ?? serverKind} server, modes ${modes.join(",")}, ${full ? "full sizes" : "trimmed sizes (FERRY_CONFORMANCE_FULL=1 for all)"}`);
for (const mode of modes) await runMode(mode, results, xfail);

let passed = 0;
let failed = 0;
let xf = 0;
let ns = 0;
let skipped = 0;
for (const r of results) {
  if (r.skipped) skipped++;
  else if (r.ok && !r.expected) passed++;
  else if (!r.ok && r.expected) xf++;
  else failed++;
  if (r.ok && r.nonStrict) ns++;
}
const secs = ((Date.now() - started) / 1000).toFixed(1);
console.log(`conformance: ${ns} passed only non-strict, ${xf} expected failures (expected-failures file), ${skipped} skipped (need a server of their own), ${secs} s`);
console.log(`conformance: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
