// What `ferry --workers` gains on this machine (docs/scaling.md): the same loads against
// `ferry --workers 1` and `ferry --workers 2` (both cluster nodes through a private redis-server,
// so that only the number of processes differs), alternating, --reps times each:
//   echo       ferry-bench echo over WebSocket (ferry --suite: "message" -> "message-back"),
//              -n 200 sessions, 8 in flight each: messages per second, server CPU per message
//              (every worker's user + system time from /proc)
//   broadcast  ferry-bench broadcast over WebSocket, 1000 receivers in 2 client processes,
//              8 publishes in flight: deliveries per second, server CPU per delivery
//
//   node tools/scale/workers-gain.mjs [--build build] [--reps 3] [--duration 8] [--json FILE]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { procCpu, run, stopAll, startRedis, startWorkers, stop } from "./lib.mjs";

const root = path.resolve(import.meta.dirname, "../..");
const opt = { build: "build", reps: 3, duration: 8, json: null };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, "");
  if (!(k in opt)) {
    console.error(`workers-gain: unknown flag ${process.argv[i]}`);
    process.exit(2);
  }
  opt[k] = typeof opt[k] === "number" ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
const ferryBin = path.resolve(root, opt.build, "tools/ferry/ferry");
const benchBin = path.resolve(root, opt.build, "tools/ferry-bench/ferry-bench");
process.on("SIGINT", async () => {
  await stopAll();
  process.exit(130);
});

const loads = {
  echo: { server: ["--suite"], bench: ["--mode", "echo", "-n", "200", "--inflight", "8"], key: "echo" },
  broadcast: {
    server: ["--no-presence", "--history", "0", "--allow-publish", "m", "--publish-rate", "0", "--recovery-ms", "0"],
    bench: ["--mode", "broadcast", "-n", "1000", "--procs", "2", "--inflight", "8", "--concurrency", "200"],
    key: "broadcast",
  },
};

async function once(load, workers, redis) {
  const L = loads[load];
  const srv = await startWorkers(ferryBin, ["--port", "0", "--workers", String(workers), "--redis", redis.url,
    "--node-id", `gain${workers}`, ...L.server, "--ping-interval", "25000", "--ping-timeout", "20000"]);
  const jsonOut = path.join(os.tmpdir(), `ferry-gain-${process.pid}.json`);
  const cpu0 = new Map();
  // CPU is read right around the bench's run: connection set-up is included (small beside
  // a run of several seconds) and the same for both settings.
  for (const w of srv.workers) cpu0.set(w.pid, procCpu(w.pid));
  const t0 = Date.now();
  const bench = run(benchBin, ["--port", String(srv.port), "--transport", "websocket", ...L.bench,
    "--duration", String(opt.duration), "--timeout", "180", "--json", jsonOut]);
  const code = await bench.done;
  const secs = (Date.now() - t0) / 1000;
  let cpu = 0;
  for (const w of srv.workers) cpu += procCpu(w.pid) - cpu0.get(w.pid);
  const j = fs.existsSync(jsonOut) ? JSON.parse(fs.readFileSync(jsonOut, "utf8")) : null;
  fs.rmSync(jsonOut, { force: true });
  const exit = await stop(srv.proc);
  const r = j?.[L.key] ?? {};
  const count = r.received;
  const rate = load === "echo" ? r.messages_per_s : r.deliveries_per_s;
  return {
    load, workers, ok: code === 0 && j?.ok === true && exit === 0, rate, count,
    server_cpu_s: +cpu.toFixed(2), wall_s: +secs.toFixed(1),
    server_cpu_us_per_unit: count ? +((cpu * 1e6) / count).toFixed(2) : null,
    p50_us: r.round_trip?.p50_us ?? r.last_receiver?.p50_us ?? null,
    error: j?.error ?? (code !== 0 ? bench.err.slice(-300) : undefined),
  };
}

const out = { when: new Date().toISOString(), load_before: os.loadavg()[0], runs: [] };
const redis = await startRedis();
try {
  for (let rep = 0; rep < opt.reps; rep++)
    for (const load of Object.keys(loads))
      for (const w of rep % 2 === 0 ? [1, 2] : [2, 1]) {
        const r = await once(load, w, redis);
        out.runs.push(r);
        console.log(JSON.stringify(r));
      }
} finally {
  await redis.stop();
}
out.load_after = os.loadavg()[0];
const med = (a) => {
  const s = a.filter((x) => x != null).sort((x, y) => x - y);
  return s.length ? s[Math.floor(s.length / 2)] : null;
};
out.summary = {};
for (const load of Object.keys(loads)) {
  const row = {};
  for (const w of [1, 2]) {
    const rs = out.runs.filter((r) => r.load === load && r.workers === w && r.ok);
    row[`workers_${w}`] = { rate_median: med(rs.map((r) => r.rate)), cpu_us_median: med(rs.map((r) => r.server_cpu_us_per_unit)), ok_runs: rs.length };
  }
  row.gain = row.workers_1.rate_median && row.workers_2.rate_median ? +(row.workers_2.rate_median / row.workers_1.rate_median).toFixed(2) : null;
  out.summary[load] = row;
}
console.log(JSON.stringify(out.summary, null, 2));
console.log(`load average ${out.load_before.toFixed(1)} before, ${out.load_after.toFixed(1)} after`);
if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(out, null, 2) + "\n");
