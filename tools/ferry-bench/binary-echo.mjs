#!/usr/bin/env node
// Binary echo cost: the official socket.io-client sends a Buffer as "message" to
// `ferry --suite` (which answers "message-back" with the very arguments), and this prints the
// server's CPU per echoed message (from /proc/PID/task/*/schedstat, so the load client's own
// CPU is not counted). Bounded: --count messages per run (default 4000), --runs runs, each
// run given at most --timeout-ms.
//
//   node tools/ferry-bench/binary-echo.mjs --ferry build/tools/ferry/ferry [--size 4096]
//        [--count 4000] [--inflight 16] [--runs 3] [--transport websocket|polling] [--deflate]
//
// Several --ferry flags measure several binaries alternating run by run (before/after).
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { io } from "socket.io-client";

const opts = { ferry: [], size: 4096, count: 4000, inflight: 16, runs: 3, transport: "websocket", timeoutMs: 120000, deflate: false };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i], v = process.argv[i + 1];
  if (a === "--ferry") opts.ferry.push(v), i++;
  else if (a === "--size") opts.size = Number(v), i++;
  else if (a === "--count") opts.count = Math.min(Number(v), 1000000), i++;
  else if (a === "--inflight") opts.inflight = Number(v), i++;
  else if (a === "--runs") opts.runs = Math.min(Number(v), 50), i++;
  else if (a === "--transport") opts.transport = v, i++;
  else if (a === "--timeout-ms") opts.timeoutMs = Number(v), i++;
  else if (a === "--deflate") opts.deflate = true;
  else throw new Error(`unknown argument ${a}`);
}
if (opts.ferry.length === 0) throw new Error("--ferry PATH is required");

function cpuNs(pid) {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`))
    ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
  return ns;
}

// User and system CPU (clock ticks, 100 per second) of the whole process: the user part is
// where ferry's own code runs; on a shared VM the kernel part is the noisier one.
function userSysTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return [Number(f[11]), Number(f[12])];
}

async function start(binary) {
  const proc = spawn(binary, ["--suite", "--port", "0", "--host", "127.0.0.1",
    // --suite's 300/200 ms heartbeat loses sessions on a loaded machine with MBs in flight.
    "--ping-interval", "25000", "--ping-timeout", "20000"], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error("server did not start")), 10000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) clearTimeout(t), resolve(Number(m[1]));
    });
    proc.on("exit", (c) => reject(new Error(`server exited ${c}`)));
  });
  return { proc, port };
}

async function run(binary) {
  const { proc, port } = await start(binary);
  try {
    return await measure(proc, port);
  } finally {
    // Also when a run fails: no server left behind.
    if (proc.exitCode === null) {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.on("exit", r));
    }
  }
}

async function measure(proc, port) {
  const sock = io(`http://127.0.0.1:${port}`, { transports: [opts.transport], forceNew: true,
    // Node's client offers permessage-deflate by default: its zlib work would hide the cost
    // measured here; --deflate measures with it.
    perMessageDeflate: opts.deflate ? { threshold: 1024 } : false });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no connect")), 10000);
    sock.once("connect", () => (clearTimeout(t), resolve()));
  });
  sock.on("disconnect", (reason) => reason !== "io client disconnect" && console.error(`lost the session: ${reason}`));
  const payload = Buffer.alloc(opts.size);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 255;
  // Warm up, then measure.
  const echo = (n) =>
    new Promise((resolve, reject) => {
      let sent = 0, got = 0;
      const t = setTimeout(() => reject(new Error(`timeout: ${got}/${n} echoed`)), opts.timeoutMs);
      const send = () => {
        sent++;
        sock.emit("message", payload);
      };
      sock.on("message-back", (b) => {
        if (!Buffer.isBuffer(b) || b.length !== opts.size || b[1] !== payload[1]) {
          clearTimeout(t);
          reject(new Error("bad echo"));
          return;
        }
        if (++got === n) {
          sock.off("message-back");
          clearTimeout(t);
          resolve();
        } else if (sent < n) send();
      });
      for (let i = 0; i < Math.min(opts.inflight, n); i++) send();
    });
  await echo(Math.min(200, opts.count));
  const c0 = cpuNs(proc.pid), u0 = userSysTicks(proc.pid), t0 = process.hrtime.bigint();
  await echo(opts.count);
  const c1 = cpuNs(proc.pid), u1 = userSysTicks(proc.pid), t1 = process.hrtime.bigint();
  sock.close();
  return {
    cpuUsPerMsg: (c1 - c0) / 1000 / opts.count,
    userUsPerMsg: ((u1[0] - u0[0]) * 10000) / opts.count,
    sysUsPerMsg: ((u1[1] - u0[1]) * 10000) / opts.count,
    msgsPerS: opts.count / (Number(t1 - t0) / 1e9),
  };
}

const results = opts.ferry.map(() => []);
for (let r = 0; r < opts.runs; r++)
  for (let i = 0; i < opts.ferry.length; i++) {
    const x = await run(opts.ferry[i]);
    results[i].push(x);
    console.log(`run ${r + 1} ${opts.ferry[i]}: ${x.cpuUsPerMsg.toFixed(2)} us server CPU/msg ` +
      `(user ${x.userUsPerMsg.toFixed(2)}, sys ${x.sysUsPerMsg.toFixed(2)}), ${x.msgsPerS.toFixed(0)} msg/s`);
  }
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(JSON.stringify({
  size: opts.size, count: opts.count, inflight: opts.inflight, transport: opts.transport, deflate: opts.deflate,
  results: opts.ferry.map((f, i) => ({
    ferry: f,
    medianCpuUsPerMsg: Number(median(results[i].map((x) => x.cpuUsPerMsg)).toFixed(2)),
    medianUserUsPerMsg: Number(median(results[i].map((x) => x.userUsPerMsg)).toFixed(2)),
    medianSysUsPerMsg: Number(median(results[i].map((x) => x.sysUsPerMsg)).toFixed(2)),
    runs: results[i],
  })),
}, null, 1));
