// Helpers of the cluster tests (issue 18): a private redis-server and tools/ferry nodes that
// share rooms through it.
//   startRedis({port, dir, args})  redis-server on 127.0.0.1 (a free port unless given), in its own
//                        temporary folder, no persistence; stop() ends it (SIGTERM) and
//                        removes the folder unless keep.
//   startNode(redisUrl, nodeId, args)   tools/ferry --redis URL --node-id ID (startServer)
//   relayClient(kind, url, name)        a client of the relay on one transport: ferry's client
//                        (kind "polling", "websocket", "sse", "short-polling") or
//                        socket.io-client ("sio-polling", "sio-websocket"), connected
//   join(s, room)        the relay's join, resolves with its answer
//   crossNodeReady(a, b) resolves once a publish on b's node reaches a (Redis links are up)
//   clusterReady(nodes, clients)  the same from every node to nodes[0]
//   forwardReady(redis, count)  resolves once count nodes' forwarding addresses are in Redis
//                        (--cluster-secret: a node not yet there cannot be forwarded to)
//   until(cond, ms, what) resolves once cond() holds, throws after ms saying what
//   nginxNodes(nodes)    the upstream server lines of round-robin.conf.in for these nodes
//   httpRequest(url, {method, body, timeoutMs})  one plain HTTP request on its own
//                        connection: {status, body, ms}
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import WS from "ws";
import { io as officialIo } from "socket.io-client";
import { io } from "../../client-js/src/index.mjs";
import { bin, startServer } from "../lib/server.mjs";
import { freePort, waitListening } from "../lib/nginx.mjs";

export const FERRY_TRANSPORTS = ["polling", "websocket", "sse", "short-polling"];
export const SIO_TRANSPORTS = ["sio-polling", "sio-websocket"];

export function haveRedis() {
  return spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
}

export function ferryHasRedis() {
  const r = spawnSync(bin("tools/ferry/ferry"), ["--help"], { encoding: "utf8" });
  return /--redis URL/.test(r.stdout ?? "");
}

// args: more redis-server options (a Redis Cluster master: --cluster-enabled yes ...).
export async function startRedis({ port, dir, args = [] } = {}) {
  port ??= await freePort();
  dir ??= fs.mkdtempSync(path.join(os.tmpdir(), "ferry-redis-"));
  const proc = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning", ...args],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  await waitListening(port, proc, 10000);
  return {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    proc,
    async stop({ keep = false } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      }
      if (!keep) fs.rmSync(dir, { recursive: true, force: true });
      return stderr;
    },
  };
}

export function startNode(redisUrl, nodeId, args = []) {
  return startServer(bin("tools/ferry/ferry"), [
    "--port", "0", "--redis", redisUrl, "--node-id", nodeId,
    "--allow-publish", "message", "--publish-rate", "0", "--history", "0", ...args,
  ]);
}

export function relayClient(kind, url, name, opts = {}) {
  const s = kind.startsWith("sio-")
    ? officialIo(url, { forceNew: true, reconnection: false, transports: [kind.slice(4)], auth: { name }, ...opts })
    : io(url, { WebSocket: WS, storage: null, forceNew: true, reconnection: false, transports: [kind], auth: { name }, requestTimeout: 10000, ...opts });
  // With reconnection on, a connect_error is followed by another attempt (as in Socket.IO): only
  // the time bound fails then. A client that failed is closed, so that it does not go on
  // reconnecting (and hold the test's process open) after the test gave up on it.
  return new Promise((resolve, reject) => {
    const fail = (e) => (clearTimeout(t), s.disconnect(), reject(e));
    const t = setTimeout(() => fail(new Error(`${name} (${kind}) did not connect to ${url}`)), 15000);
    s.once("connect", () => (clearTimeout(t), resolve(s)));
    if (!opts.reconnection) s.once("connect_error", (e) => fail(new Error(`${name}: ${e.message}`)));
  });
}

export function call(s, event, arg, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer to ${event}`)), ms);
    s.emit(event, arg, (res) => (clearTimeout(t), resolve(res)));
  });
}

export async function join(s, room) {
  const res = await call(s, "join", { room });
  if (!res?.ok) throw new Error(`join ${room}: ${JSON.stringify(res)}`);
  return res;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(20);
  if (!cond()) throw new Error(`timed out after ${ms} ms: ${what}`);
}

// A node nginx could not reach is left alone for fail_timeout (docs/scaling.md "A node that
// dies"), its requests going to the next node (proxy_next_upstream in round-robin.conf.in).
export function nginxNodes(nodes) {
  return nodes.map((n) => `    server 127.0.0.1:${n.port} max_fails=1 fail_timeout=10s;`).join("\n");
}

// Publish probes from b until one reaches a (both in room), within ms: proves that both nodes'
// Redis links are up and subscribed. Every probe carries a unique tag; the ones that arrive
// late are ignored by the callers (they listen to "message" with their own tags).
// Readiness of a whole cluster: a relay client on each node in room "probe", and a publish from
// each other node reaching the one on nodes[0]. The clients are pushed on `clients` (the test
// disconnects them); resolves with the one on nodes[0].
export async function clusterReady(nodes, clients) {
  const probeA = await relayClient("websocket", nodes[0].url, "probe-a");
  clients.push(probeA);
  await join(probeA, "probe");
  for (const n of nodes.slice(1)) {
    const p = await relayClient("websocket", n.url, `probe-${n.port}`);
    clients.push(p);
    await join(p, "probe");
    await crossNodeReady(probeA, p, "probe");
  }
  return probeA;
}

// A node publishes its address for forwarding (ferry:node:<tag>) once its Redis link is up; a
// request of one of its sessions that lands on another node before that is refused (400), so a
// round-robin test waits for every node's address before its clients connect (a fast build
// connected them first, and the first polling or SSE client failed).
export async function forwardReady(redis, count, ms = 30000) {
  const addresses = () => spawnSync("redis-cli", ["-p", String(redis.port), "--scan", "--pattern", "ferry:node:*"], { encoding: "utf8", timeout: 5000 })
    .stdout.trim().split("\n").filter(Boolean).length;
  await until(() => addresses() === count, ms, `${count} nodes' addresses in Redis`);
}

export async function crossNodeReady(a, b, room, ms = 20000) {
  const deadline = Date.now() + ms;
  let n = 0;
  let got = false;
  const tagBase = `probe-${Math.random().toString(36).slice(2)}-`;
  const on = (data) => {
    if (typeof data?.text === "string" && data.text.startsWith(tagBase)) got = true;
  };
  a.on("message", on);
  try {
    while (!got && Date.now() < deadline) {
      await call(b, "publish", { room, event: "message", data: { text: tagBase + n++ } });
      const until = Date.now() + 250;
      while (!got && Date.now() < until) await sleep(10);
    }
  } finally {
    a.off("message", on);
  }
  if (!got) throw new Error(`a publish on one node never reached the other within ${ms} ms`);
}

// One plain HTTP request on a connection of its own (no agent: a forwarded session's requests
// must not share a kept-alive connection): {status, body, ms}.
export function httpRequest(url, { method = "GET", body, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const req = http.request(url, { method, agent: false }, (res) => {
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, body: data, ms: Date.now() - t0 }));
    });
    req.on("error", reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url}`)));
    req.end(body);
  });
}
