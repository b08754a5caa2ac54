// make scale (issue 18): many concurrent idle WebSocket sessions across several ferry
// processes on this machine, heartbeats flowing, then broadcasts to all of them.
//
//   node tools/scale/scale.mjs [--build build] [--sessions 100000] [--workers 6] [--procs 6]
//                              [--hold 60] [--broadcasts 5] [--ping-interval 25000]
//                              [--json FILE]
//
// One redis-server on loopback (a free port, no persistence) and `ferry --workers W --redis`:
// W worker processes on one port (SO_REUSEPORT), each a cluster node. tools/ferry-bench in
// broadcast mode spreads the receivers over --procs processes (each under the per-process
// open-file limit); the sessions connect from 127.0.0.1, 127.0.0.2, ... in turn, 10,000 per
// address (--sources: one address has only 28,232 ephemeral ports towards one server port, and
// connect() slows down past half of them). Every receiver joins the
// room "bench"; the sessions then stay idle --hold seconds (pings and pongs flow; a session lost
// makes the run fail), and one sender publishes --broadcasts messages one at a time, each
// reaching every receiver: ferry-bench times each until its last receiver has it.
// Measured: connect rate, each worker's sessions and anonymous memory (RssAnon from /proc) when
// all are idle, pings answered, the time until the last receiver has each broadcast, Redis's
// traffic (INFO stats and commandstats) for the whole run and for the broadcasts alone.
// Everything runs under `nice -n 10`; the run is bounded (ferry-bench --timeout, and this script
// kills what it started) and stops early if the machine's available memory falls below 2 GiB.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  MiB, sleep, memAvailable, procStatus, openFds, redisStats, run, stop, stopAll, startRedis, startWorkers,
  scrape, metricsSummary, procCpu,
} from "./lib.mjs";

const root = path.resolve(import.meta.dirname, "../..");
const opt = {
  build: "build", sessions: 100000, workers: 6, procs: 6, hold: 60, broadcasts: 5,
  "ping-interval": 25000, "ping-timeout": 20000, "header-timeout": 10000, concurrency: 50, json: null,
};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, "");
  if (!(k in opt)) {
    console.error(`scale: unknown flag ${process.argv[i]}`);
    process.exit(2);
  }
  opt[k] = typeof opt[k] === "number" ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
const buildDir = path.resolve(root, opt.build);
const ferryBin = path.join(buildDir, "tools/ferry/ferry");
const benchBin = path.join(buildDir, "tools/ferry-bench/ferry-bench");
for (const b of [ferryBin, benchBin])
  if (!fs.existsSync(b)) {
    console.error(`scale: ${b} is missing (make build)`);
    process.exit(2);
  }

process.on("SIGINT", async () => {
  await stopAll();
  process.exit(130);
});

const need = opt.sessions * 16 * 1024 + 2048 * MiB; // generous: server, clients and the kernel
if (memAvailable() < need) {
  console.error(`scale: ${(memAvailable() / MiB / 1024).toFixed(1)} GiB available, ${(need / MiB / 1024).toFixed(1)} GiB wanted: not now`);
  process.exit(1);
}
const perProc = Math.ceil(opt.sessions / opt.procs) + 1;
if (perProc > 19500) {
  console.error(`scale: ${perProc} sessions per client process is over the 20,000 open files a process may have: more --procs`);
  process.exit(2);
}

const t0 = Date.now();
const load0 = os.loadavg()[0];
const result = { when: new Date().toISOString(), options: opt, load_before: load0, host: { cpus: os.cpus().length, mem_gib: +(os.totalmem() / 2 ** 30).toFixed(1) } };
let failed = null;
try {
  const redis = await startRedis();
  const rport = redis.port;
  const { proc: ferry, port, workers } = await startWorkers(ferryBin, [
    "--port", "0", "--workers", String(opt.workers), "--redis", redis.url,
    "--node-id", "scale", "--no-presence", "--history", "0", "--allow-publish", "m",
    "--publish-rate", "0", "--recovery-ms", "0", "--ping-interval", String(opt["ping-interval"]),
    "--ping-timeout", String(opt["ping-timeout"]), "--max-rooms", "4",
    "--metrics-listen", "127.0.0.1:0", "--header-timeout", String(opt["header-timeout"]),
  ]);
  const mem0 = workers.map((w) => ({ ...procStatus(w.pid), fds: openFds(w.pid) }));
  const r0 = await redisStats(rport);

  // Sample the workers while the load runs: the idle plateau is where every session is open.
  const samples = [];
  let low = false;
  const sampler = setInterval(() => {
    const s = { t: (Date.now() - t0) / 1000, workers: workers.map((w) => ({ ...procStatus(w.pid), fds: openFds(w.pid), cpu: procCpu(w.pid) })), avail: memAvailable() };
    samples.push(s);
    if (s.avail < 2048 * MiB && !low) {
      low = true;
      console.error("scale: less than 2 GiB of memory left: stopping");
      stopAll();
    }
  }, 1000);

  // 10,000 sessions per local address: connect() slows down past about 14,000 from one
  // address to one port (ferry-bench --sources).
  const sources = Array.from({ length: Math.ceil((opt.sessions + 1) / 10000) }, (_, k) => `127.0.0.${k + 1}`).join(",");
  const jsonOut = path.join(os.tmpdir(), `ferry-scale-${process.pid}.json`);
  const benchArgs = [
    "--port", String(port), "--transport", "websocket", "--mode", "broadcast",
    "-n", String(opt.sessions), "--procs", String(opt.procs), "--sources", sources,
    "--concurrency", String(opt.concurrency), "--hold", String(opt.hold),
    "--messages", String(opt.broadcasts), "--inflight", "1", "--duration", "120", "--size", "32",
    "--timeout", String(Math.max(600, opt.sessions / 100 + opt.hold + 300)), "--json", jsonOut,
  ];
  console.log(`scale: ${opt.sessions} sessions over ${opt.workers} workers (port ${port}) from ${opt.procs} client processes; idle ${opt.hold} s, then ${opt.broadcasts} broadcasts`);
  const bench = run(benchBin, benchArgs);

  // Redis's counters just before the first publish: when the hold ends (ferry-bench prints
  // nothing until the end, so: once every session is open and joined, plus the hold).
  let rHold = null;
  let idle = null;
  let idleMetrics = null;
  const joinedWatch = (async () => {
    const target = opt.sessions + 1;
    for (;;) {
      if (bench.exitCode !== null) return;
      const last = samples.at(-1);
      if (last) {
        const fds = last.workers.reduce((n, w, i) => n + Math.max(0, w.fds - mem0[i].fds), 0);
        if (fds >= target) break; // every session has its descriptor (plus a few of their own)
      }
      await sleep(500);
    }
    await sleep(Math.min(opt.hold * 1000 / 2, 20000)); // joins settle, then the idle plateau
    idle = samples.at(-1);
    rHold = await redisStats(rport);
    idleMetrics = await Promise.all(workers.map((w) => scrape(w.metrics)));
  })();
  const benchCode = await bench.done;
  clearInterval(sampler);
  await joinedWatch;
  const r1 = await redisStats(rport);
  const endMetrics = await Promise.all(workers.map((w) => scrape(w.metrics)));
  result.bench_exit = benchCode;
  result.bench_stdout = bench.out;
  result.bench = fs.existsSync(jsonOut) ? JSON.parse(fs.readFileSync(jsonOut, "utf8")) : null;
  fs.rmSync(jsonOut, { force: true });
  const ferryStop = stop(ferry, 60000);
  result.workers = workers.map((w, i) => {
    const at = idle?.workers[i];
    return {
      node: w.node, pid: w.pid, anon_kb_before: mem0[i]?.anon, anon_kb_idle: at?.anon, rss_kb_idle: at?.rss,
      sessions_idle: at ? at.fds - mem0[i].fds : null,
      cpu_s_idle: at?.cpu, cpu_s_end: samples.at(-1)?.workers[i]?.cpu,
      idle_metrics: idleMetrics ? metricsSummary(idleMetrics[i]) : null,
      end_metrics: metricsSummary(endMetrics[i]),
    };
  });
  const sess = result.workers.reduce((n, w) => n + (w.sessions_idle ?? 0), 0);
  const anonGrowth = result.workers.reduce((n, w) => n + ((w.anon_kb_idle ?? 0) - (w.anon_kb_before ?? 0)), 0);
  result.server = {
    sessions_idle: sess, // descriptors opened since the start: one per WebSocket session
    anon_kb_growth: anonGrowth,
    anon_kb_per_session: +(anonGrowth / (opt.sessions + 1)).toFixed(3),
    peak_rss_kb_sum: Math.max(...samples.map((s) => s.workers.reduce((n, w) => n + (w.rss ?? 0), 0))),
  };
  const d = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, b[k] - a[k]]));
  result.redis = { whole_run: d(r0, r1), broadcasts: rHold ? d(rHold, r1) : null, at_end: r1 };
  result.min_mem_available_gib = +(Math.min(...samples.map((s) => s.avail)) / 2 ** 30).toFixed(2);
  result.ferry_exit = await ferryStop;
  result.ferry_stderr_tail = ferry.err.split("\n").slice(-20).join("\n");
  await redis.stop();
  if (benchCode !== 0 || !result.bench?.ok) failed = `ferry-bench ended with ${benchCode} (${result.bench?.error ?? "see its output"})`;
  if (result.ferry_exit !== 0) failed = (failed ? failed + "; " : "") + `ferry exited with ${result.ferry_exit}`;
} catch (e) {
  failed = e.message;
  await stopAll();
}
result.seconds = (Date.now() - t0) / 1000;
result.load_after = os.loadavg()[0];
result.failed = failed;
if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(result, null, 2) + "\n");

const b = result.bench;
console.log(result.bench_stdout ?? "");
if (b) {
  const bc = b.broadcast ?? {};
  console.log(`sessions: ${b.sessions} (${b.ready} ready, ${b.failed} failed, ${b.closed_early} lost); pings answered: ${b.pings}`);
  console.log(`connect: ${b.connect?.seconds?.toFixed?.(1)} s (${Math.round(b.connect?.rate_per_s ?? 0)}/s)`);
  console.log(`broadcast: ${JSON.stringify(bc)}`);
}
if (result.workers) {
  for (const w of result.workers) console.log(`worker ${w.node}: ${w.sessions_idle} sessions, RssAnon ${w.anon_kb_before} -> ${w.anon_kb_idle} kB; idle ${JSON.stringify(w.idle_metrics)}; end ${JSON.stringify(w.end_metrics)}`);
  console.log(`server: ${result.server.anon_kb_per_session} kB RssAnon per session; peak RSS of all workers ${(result.server.peak_rss_kb_sum / 1024).toFixed(0)} MiB`);
  console.log(`redis, whole run: ${JSON.stringify(result.redis.whole_run)}`);
  console.log(`redis, broadcasts only: ${JSON.stringify(result.redis.broadcasts)}`);
  console.log(`memory available at the lowest: ${result.min_mem_available_gib} GiB; load ${load0.toFixed(1)} before, ${result.load_after.toFixed(1)} after; ${result.seconds.toFixed(0)} s`);
}
if (failed) {
  console.error(`scale: FAILED: ${failed}`);
  process.exit(1);
}
