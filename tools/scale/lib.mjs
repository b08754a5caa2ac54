// Helpers of the scale scripts (tools/scale): processes started niced and stopped by this
// script only, a private redis-server, Redis INFO over RESP, /proc figures of a process.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const MiB = 1024 * 1024;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function memAvailable() {
  const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

// VmRSS and RssAnon (kB) of pid, or null when it is gone.
export function procStatus(pid) {
  try {
    const t = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(t)?.[1] ?? 0);
    return { rss: kb("VmRSS"), anon: kb("RssAnon") };
  } catch {
    return null;
  }
}

// user + system CPU of pid in seconds (from /proc/PID/stat), or 0 when it is gone.
export function procCpu(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

export function openFds(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

// One command on a fresh connection; resolves with the reply's bulk string or status line.
export function redisCmd(port, ...args) {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, "127.0.0.1");
    let buf = "";
    c.setTimeout(10000, () => (c.destroy(), reject(new Error("redis: no answer"))));
    c.on("data", (d) => {
      buf += d;
      const m = /^\$(\d+)\r\n/.exec(buf);
      if (m && Buffer.byteLength(buf) >= m[0].length + Number(m[1]) + 2) {
        c.end();
        resolve(buf.slice(m[0].length, m[0].length + Number(m[1])));
      } else if (/^[+:-].*\r\n/.test(buf)) {
        c.end();
        resolve(buf.trim());
      }
    });
    c.on("error", reject);
    c.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(""));
  });
}

export async function redisStats(port) {
  const info = await redisCmd(port, "INFO", "all");
  const get = (k) => Number(new RegExp(`^${k}:(\\d+)`, "m").exec(info)?.[1] ?? 0);
  const calls = (cmd) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, "m").exec(info)?.[1] ?? 0);
  return {
    net_in: get("total_net_input_bytes"), net_out: get("total_net_output_bytes"),
    commands: get("total_commands_processed"), clients: get("connected_clients"),
    pubsub_channels: get("pubsub_channels"), used_memory: get("used_memory"),
    publish: calls("publish"), subscribe: calls("subscribe"), unsubscribe: calls("unsubscribe"),
    info_calls: calls("info"),
  };
}

const started = [];

// cmd under `nice -n 10`, output kept; p.done resolves with the exit code.
export function run(cmd, args) {
  const p = spawn("nice", ["-n", "10", cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  p.out = "";
  p.err = "";
  p.stdout.on("data", (d) => (p.out += d));
  p.stderr.on("data", (d) => (p.err += d));
  p.done = new Promise((r) => p.on("exit", (code) => r(code ?? 128)));
  started.push(p);
  return p;
}

export async function stop(p, ms = 30000) {
  if (p.exitCode === null && p.signalCode === null) {
    p.kill("SIGTERM");
    await Promise.race([p.done, sleep(ms)]);
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  }
  return p.done;
}

export async function stopAll() {
  for (const p of started.slice().reverse()) await stop(p);
}

export async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-scale-redis-"));
  const p = run("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "",
    "--appendonly", "no", "--dir", dir, "--loglevel", "warning"]);
  for (let i = 0; ; i++) {
    try {
      await redisCmd(port, "PING");
      break;
    } catch {
      if (i > 100) throw new Error(`redis-server did not start: ${p.err}`);
      await sleep(100);
    }
  }
  return { port, url: `redis://127.0.0.1:${port}`, proc: p, async stop() { await stop(p); fs.rmSync(dir, { recursive: true, force: true }); } };
}

// ferry --workers N: resolves once the supervisor says every worker listens.
export async function startWorkers(ferryBin, args) {
  const p = run(ferryBin, args);
  for (let i = 0; !/listening on http:\/\/127\.0\.0\.1:\d+/.test(p.out); i++) {
    if (p.exitCode !== null || i > 600) throw new Error(`ferry did not start: ${p.err}`);
    await sleep(100);
  }
  const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(p.out)[1]);
  const workers = [...p.out.matchAll(/worker (\d+) \(pid (\d+)\) is cluster node (\S+)/g)]
    .map((m) => ({ index: Number(m[1]), pid: Number(m[2]), node: m[3] }));
  for (const m of p.out.matchAll(/worker (\d+) metrics at (http:\/\/\S+)/g)) {
    const w = workers.find((x) => x.index === Number(m[1]));
    if (w) w.metrics = m[2];
  }
  return { proc: p, port, workers };
}

// A worker's Prometheus metrics (--metrics-listen), as {name{labels}: value}; {} if unreachable.
export async function scrape(url) {
  const out = {};
  try {
    const text = await (await fetch(url, { signal: AbortSignal.timeout(10000) })).text();
    for (const line of text.split("\n")) {
      const m = /^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+|NaN|\+Inf)$/.exec(line);
      if (m) out[m[1]] = Number(m[2]);
    }
  } catch {}
  return out;
}

// The figures of a scrape worth keeping: sessions open, closes by reason, the loop's lag.
export function metricsSummary(x) {
  const pick = (prefix) => Object.fromEntries(Object.entries(x).filter(([k, v]) => k.startsWith(prefix) && v !== 0));
  const lagCount = x.ferry_event_loop_lag_seconds_count ?? 0;
  const buckets = Object.entries(x).filter(([k]) => k.startsWith("ferry_event_loop_lag_seconds_bucket"));
  // The smallest bucket holding every sample: an upper bound of the worst lag seen.
  let worst = null;
  for (const [k, v] of buckets) {
    const le = /le="([^"]+)"/.exec(k)?.[1];
    if (v >= lagCount && le != null) {
      const b = le === "+Inf" ? Infinity : Number(le);
      if (worst === null || b < worst) worst = b;
    }
  }
  return {
    sessions_open: Object.entries(pick("ferry_sessions_open{")).reduce((n, [, v]) => n + v, 0),
    closed: pick("ferry_sessions_closed_total"),
    loop_lag_mean_ms: lagCount ? +((x.ferry_event_loop_lag_seconds_sum / lagCount) * 1000).toFixed(2) : null,
    loop_lag_worst_le_s: worst === Infinity ? "+Inf" : worst,
  };
}
