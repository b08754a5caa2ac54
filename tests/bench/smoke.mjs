// ferry-bench against tools/ferry: each mode (connect, echo, broadcast, wire) on each transport
// (websocket, polling, sse, short-polling), small and short; the JSON figures must be present
// and make sense (every message sent came back, every publish reached every receiver, the wire
// counts requests only where there are requests). Also: bad flags exit 2 with a message, and
// a non-loopback address is refused. The minimal C echo (make bench's baseline for the
// WebSocket echo and ceiling for the WebSocket broadcast) answers every echo, relays every
// publish and exits 0 on SIGTERM.
// Usage: node smoke.mjs <ferry-bench> <ferry> [<ferry-c-echo>]
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startServer } from "../lib/server.mjs";

const [bench, ferry, cEcho] = process.argv.slice(2);
const all = ["websocket", "polling", "sse", "short-polling"];
const dir = mkdtempSync(path.join(tmpdir(), "ferry-bench-smoke-"));

function run(args, timeoutMs = 60000) {
  return new Promise((resolve, reject) => {
    const p = spawn(bench, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`ferry-bench ${args.join(" ")} did not end in ${timeoutMs} ms`));
    }, timeoutMs);
    p.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

let n = 0;
async function bench1(port, pid, transport, mode, extra) {
  const json = path.join(dir, `r${n++}.json`);
  const args = ["--port", String(port), "--transport", transport, "--mode", mode, "--pid",
    String(pid), "--poll-interval", "20", "--timeout", "60", "--json", json, ...extra];
  const r = await run(args);
  assert.equal(r.code, 0, `ferry-bench ${args.join(" ")} exited ${r.code}:\n${r.out}${r.err}`);
  const j = JSON.parse(readFileSync(json, "utf8"));
  assert.equal(j.ok, true, JSON.stringify(j));
  assert.equal(j.mode, mode);
  assert.equal(j.transport, transport);
  assert.equal(j.ready, j.sessions, "sessions opened (broadcast: the receivers and the sender)");
  assert.ok(j.connect.rate_per_s > 0);
  assert.ok(j.connect.handshake.p50_us > 0);
  assert.ok(j.connect.server_rss_after_kb > 0, "server memory read from /proc");
  assert.ok(r.out.includes("connections per second"), "the human table");
  return j;
}

const suite = await startServer(ferry, ["--suite", "--port", "0", "--ping-interval", "25000",
  "--ping-timeout", "20000", "--transports", all.join(",")]);
const relay = await startServer(ferry, ["--port", "0", "--allow-publish", "*",
  "--publish-rate", "0", "--no-presence", "--transports", all.join(",")]);
try {
  for (const t of all) {
    const c = await bench1(suite.port, suite.proc.pid, t, "connect", ["-n", "5", "--hold", "0.2"]);
    assert.equal(c.ready, 5);
    assert.equal(typeof c.connect.server_kb_per_session, "number");
    assert.equal(typeof c.connect.server_anon_kb_per_session, "number");
    assert.ok(c.connect.server_wakeups_per_s >= 0);

    const e = await bench1(suite.port, suite.proc.pid, t, "echo",
      ["-n", "3", "--inflight", "2", "--duration", "0.5"]);
    assert.ok(e.echo.sent > 0);
    assert.equal(e.echo.received, e.echo.sent, "every message came back");
    assert.equal(e.echo.round_trip.count, e.echo.received);
    assert.ok(e.echo.round_trip.p50_us > 0 && e.echo.round_trip.p99_us >= e.echo.round_trip.p50_us);
    assert.ok(e.echo.messages_per_s > 0);
    assert.ok(e.echo.server_cpu_us_per_message > 0);

    const b = await bench1(relay.port, relay.proc.pid, t, "broadcast",
      ["-n", "3", "--duration", "0.5"]);
    assert.equal(b.broadcast.receivers, 3);
    assert.ok(b.broadcast.sent > 0);
    assert.equal(b.broadcast.received, b.broadcast.sent * 3, "every receiver got every publish");
    assert.equal(b.broadcast.completed, b.broadcast.sent);
    assert.ok(b.broadcast.deliveries_per_s > 0);

    const w = await bench1(suite.port, suite.proc.pid, t, "wire", ["--messages", "10"]);
    assert.equal(w.echo.sent, 10);
    assert.equal(w.echo.received, 10);
    assert.ok(w.wire.up_bytes_per_message >= 32 && w.wire.down_bytes_per_message >= 32);
    if (t === "websocket") assert.equal(w.wire.requests_per_message, 0);
    else assert.ok(w.wire.requests_per_message >= 1, JSON.stringify(w.wire));
    console.log(`ok ${t}: echo ${e.echo.messages_per_s}/s, broadcast ` +
      `${b.broadcast.deliveries_per_s}/s, wire ${w.wire.up_bytes_per_message}+` +
      `${w.wire.down_bytes_per_message} B/message`);
  }

  // Broadcast with the receivers spread over three processes: the same totals, counted
  // across them, and the client's own cost reported.
  {
    const json = path.join(dir, "procs.json");
    const args = ["--port", String(relay.port), "--mode", "broadcast", "-n", "7", "--procs", "3",
      "--pid", String(relay.proc.pid), "--duration", "0.5", "--timeout", "60", "--json", json];
    const r = await run(args);
    assert.equal(r.code, 0, `ferry-bench ${args.join(" ")} exited ${r.code}:\n${r.out}${r.err}`);
    const j = JSON.parse(readFileSync(json, "utf8"));
    assert.equal(j.ok, true, JSON.stringify(j));
    assert.equal(j.ready, 8, "the sender and seven receivers, in three processes");
    assert.equal(j.broadcast.client_processes, 3);
    assert.ok(j.broadcast.sent > 0);
    assert.equal(j.broadcast.received, j.broadcast.sent * 7, "every receiver got every publish");
    assert.equal(j.broadcast.completed, j.broadcast.sent);
    assert.ok(j.broadcast.client_cpu_us_per_message > 0);
    assert.match(r.out, /client CPU per delivery/);
    const one = await run(["--mode", "connect", "--procs", "2"]);
    assert.equal(one.code, 2, "--procs is for echo and broadcast");
    assert.match(one.err, /--procs/);
  }

  // Echo with the sessions spread over three processes (polling and WebSocket): they start and
  // stop together, every message sent in any of them comes back and is counted once, and the
  // round trips of all three are in the figures. Four sessions over three processes: none is
  // left without a session (an empty process would never say it is ready).
  for (const [t, n] of [["polling", 7], ["websocket", 4]]) {
    const json = path.join(dir, `echo-procs-${t}.json`);
    const args = ["--port", String(suite.port), "--transport", t, "--mode", "echo", "-n", String(n),
      "--procs", "3", "--inflight", "2", "--pid", String(suite.proc.pid), "--duration", "0.5",
      "--timeout", "60", "--json", json];
    const r = await run(args);
    assert.equal(r.code, 0, `ferry-bench ${args.join(" ")} exited ${r.code}:\n${r.out}${r.err}`);
    const j = JSON.parse(readFileSync(json, "utf8"));
    assert.equal(j.ok, true, JSON.stringify(j));
    assert.equal(j.ready, n, "every session, in three processes");
    assert.equal(j.echo.client_processes, 3);
    assert.ok(j.echo.sent >= 2 * n, "every session sent (two in flight each)");
    assert.equal(j.echo.received, j.echo.sent, "every message came back");
    assert.equal(j.echo.round_trip.count, j.echo.received, "the round trips of every process");
    assert.ok(j.echo.messages_per_s > 0 && j.echo.server_cpu_us_per_message > 0);
    assert.ok(j.echo.client_cpu_cores > 0 && j.echo.server_cpu_cores > 0, "CPU used, both sides");
    assert.match(r.out, /load client CPU used/);
  }

  if (cEcho) {
    const base = await startServer(cEcho, ["--port", "0"]);
    let code;
    try {
      const e = await bench1(base.port, base.proc.pid, "websocket", "echo",
        ["-n", "3", "--inflight", "2", "--duration", "0.5"]);
      assert.ok(e.echo.sent > 0);
      assert.equal(e.echo.received, e.echo.sent, "the C echo answered every message");
      assert.ok(e.echo.server_cpu_us_per_message > 0);
      // Its broadcast (make bench's ceiling): every other member of the room gets every
      // publish, the sender none.
      const b = await bench1(base.port, base.proc.pid, "websocket", "broadcast",
        ["-n", "5", "--inflight", "4", "--duration", "0.5"]);
      assert.ok(b.broadcast.sent > 0);
      assert.equal(b.broadcast.received, b.broadcast.sent * 5, "every receiver got every publish");
      assert.equal(b.broadcast.completed, b.broadcast.sent);
      assert.ok(b.broadcast.server_cpu_us_per_delivery > 0);
      // Anything but the echo's WebSocket handshake is refused.
      const bad = await bench1(base.port, base.proc.pid, "polling", "connect", ["-n", "1"])
        .then(() => null, (err) => err);
      assert.ok(bad, "a polling handshake on the C echo fails");
    } finally {
      code = await base.stop();
    }
    assert.equal(code, 0, "ferry-c-echo exits 0 on SIGTERM");
    console.log("ok ferry-c-echo");
  }

  const bad = await run(["--transport", "carrier-pigeon"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--transport/);
  const remote = await run(["--host", "192.0.2.1", "--port", "80"]);
  assert.equal(remote.code, 2);
  assert.match(remote.err, /loopback/);
  const refused = await run(["--port", "1", "-n", "1", "--timeout", "10"]);
  assert.equal(refused.code, 1, "a server that is not there is a failed run");
  assert.match(refused.out, /failed/);
} finally {
  const c1 = await suite.stop();
  const c2 = await relay.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(c1, 0, "ferry --suite exits 0 under the sanitizers");
  assert.equal(c2, 0, "ferry (relay) exits 0 under the sanitizers");
}
console.log("bench.smoke: ok");
