// What the forwarding hop costs (issue 18, docs/scaling.md "Forwarding"): not a test, a script.
//   node tests/e2e/cluster-rr-cost.mjs [--build DIR] [--n 2000]
// redis-server + two tools/ferry nodes, a and b. One Engine.IO polling session opened on a.
// Then n polling POSTs (one noop packet each, one request at a time) sent:
//   direct     to a, a new connection per request (what a forwarded request costs a anyway)
//   keepalive  to a, one keep-alive connection (the best case without forwarding)
//   forwarded  to b, a new connection per request: b forwards each to a
//   fwd-keep   to b, one keep-alive connection: b forwards each to a (its pooled connection)
// and for each: latency p50/p99 and the CPU time (user+system, from /proc) a and b spent per
// request. The forwarder's CPU per request is the hop's cost; a's, compared with "direct",
// what the owner pays more.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { startRedis } from "./cluster.mjs";
import { startServer } from "../lib/server.mjs";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const build = path.resolve(opt("--build", process.env.FERRY_BUILD_DIR ?? "build-test"));
const n = Number(opt("--n", "2000"));
const ferry = path.join(build, "tools/ferry/ferry");

const ticks = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks (100/s)
};

function request(url, agent, body) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(url, { method: "POST", agent }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const pct = (a, p) => a[Math.min(a.length - 1, Math.floor((a.length * p) / 100))];

async function run(label, url, agent, nodes) {
  for (let i = 0; i < 50; i++) await request(url, agent, "6"); // warm up
  const before = nodes.map((x) => ticks(x.proc.pid));
  const lat = [];
  const t0 = Date.now();
  for (let i = 0; i < n; i++) lat.push(await request(url, agent, "6"));
  const wall = Date.now() - t0;
  const cpu = nodes.map((x, i) => ((ticks(x.proc.pid) - before[i]) * 10000) / n); // us per request
  lat.sort((x, y) => x - y);
  console.log(`${label.padEnd(10)} p50 ${pct(lat, 50).toFixed(3)} ms  p99 ${pct(lat, 99).toFixed(3)} ms  ` +
    `${Math.round((n * 1000) / wall)} req/s  CPU per request: a ${cpu[0].toFixed(1)} us, b ${cpu[1].toFixed(1)} us`);
}

const redis = await startRedis();
const a = await startServer(ferry, ["--port", "0", "--redis", redis.url, "--node-id", "a", "--ping-interval", "60000", "--ping-timeout", "60000"]);
const b = await startServer(ferry, ["--port", "0", "--redis", redis.url, "--node-id", "b"]);
try {
  await new Promise((r) => setTimeout(r, 500)); // both addresses published
  const hs = await new Promise((resolve, reject) => {
    http.get(`${a.url}/socket.io/?EIO=4&transport=polling`, (res) => {
      let d = "";
      res.on("data", (x) => (d += x));
      res.on("end", () => resolve(JSON.parse(d.slice(1))));
    }).on("error", reject);
  });
  const q = `/socket.io/?EIO=4&transport=polling&sid=${hs.sid}`;
  console.log(`${n} polling POSTs each, one at a time; build ${build}; load average ${fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  await run("direct", a.url + q, false, [a, b]);
  await run("keepalive", a.url + q, new http.Agent({ keepAlive: true, maxSockets: 1 }), [a, b]);
  await run("forwarded", b.url + q, false, [a, b]);
  await run("fwd-keep", b.url + q, new http.Agent({ keepAlive: true, maxSockets: 1 }), [a, b]);
} finally {
  await a.stop();
  await b.stop();
  await redis.stop();
}
