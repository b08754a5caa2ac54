#!/usr/bin/env node
// The transport lab in one command: `make transport-lab`, or once built,
//
//   node examples/transport-lab/lab.mjs [--port 8090] [--host 127.0.0.1] [--build build] [--rate 20]
//
// starts the lab's C server (examples/transport-lab/lab-server.c, built as
// <build>/examples/transport-lab/ferry-transport-lab) on a free port, serves the page on --port,
// and prints "transport-lab: open http://HOST:PORT/". The page's route control asks for a fault:
// POST /lab/route {column, fault} starts one tools/ferry-proxy with that fault's flags in front
// of the server for that column (and stops the column's previous one), so that faults such as a
// slow link never mix two columns' traffic; at most one proxy per column. SIGTERM or SIGINT stops
// the proxies and the server and exits with the server's exit code (0 unless it leaked or
// crashed).
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";

const here = import.meta.dirname;
const root = path.resolve(here, "../..");

function fail(msg) {
  process.stderr.write(`transport-lab: ${msg}\n`);
  process.exit(2);
}

let opt;
try {
  opt = parseArgs({
    options: {
      port: { type: "string", default: "8090" },
      host: { type: "string", default: "127.0.0.1" },
      build: { type: "string", default: process.env.FERRY_BUILD_DIR ?? "build" },
      rate: { type: "string", default: "20" },
    },
  }).values;
} catch (err) {
  fail(err.message.split("\n")[0]);
}
if (!/^\d+$/.test(opt.port) || Number(opt.port) > 65535) fail("--port must be 0 to 65535");
if (!/^\d+$/.test(opt.rate) || Number(opt.rate) < 1 || Number(opt.rate) > 200) fail("--rate must be 1 to 200");
const binary = path.resolve(root, opt.build, "examples/transport-lab/ferry-transport-lab");
if (!fs.existsSync(binary)) fail(`${binary} is not built: run make transport-lab (or make build)`);

// The faults the page offers, each one tools/ferry-proxy's flags (docs/hostile-networks.md).
const FAULTS = [
  { id: "direct", label: "direct (no proxy)", args: null },
  { id: "proxy", label: "proxy, no fault", args: [] },
  { id: "latency", label: "100 ms latency each way", args: ["--latency", "100"] },
  { id: "slow", label: "slow link, 16 KB/s", args: ["--bandwidth", "16000"] },
  { id: "drop", label: "5% of requests dropped", args: ["--drop", "0.05", "--seed", "15"] },
  { id: "gateway", label: "502/504 on 10% of requests", args: ["--gateway-errors", "0.1", "--seed", "15"] },
  { id: "ws-refused", label: "WebSocket refused (403)", args: ["--websocket", "refuse"] },
  { id: "ws-mute", label: "WebSocket mute after 101", args: ["--websocket", "mute"] },
  { id: "buffer", label: "buffering proxy (64 KB)", args: ["--buffer", "65536"] },
  { id: "cut", label: "responses cut after 5 s", args: ["--max-response-ms", "5000"] },
  { id: "idle", label: "idle connections cut after 3 s", args: ["--idle-timeout", "3000"] },
];
const COLUMNS = ["websocket", "sse", "polling", "short-polling", "auto"];
const FILES = { "/": "index.html", "/index.html": "index.html", "/lab.js": "lab.js", "/lab.css": "lab.css" };
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8" };

// Start a program that prints "listening on http://HOST:PORT" on stdout; resolves with it.
function start(cmd, args, name) {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stderr.on("data", (d) => {
    err += d;
    if (err.length > 65536) err = err.slice(-32768);
  });
  const exited = new Promise((resolve) => proc.on("exit", (code, sig) => resolve(code ?? 128)));
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 15000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}: ${err}`));
    });
  });
  return { proc, ready, exited, stderr: () => err };
}

async function stop(p) {
  if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill("SIGTERM");
  return p.exited;
}

const routes = new Map(); // column -> { fault, url, proxy }
let server;
let serverUrl;
let closing = false;

// One route change at a time per column: two quick changes must not leave a proxy behind.
const pending = new Map(); // column -> the promise of its last change
function route(column, faultId) {
  const next = (pending.get(column) ?? Promise.resolve()).then(() => reroute(column, faultId));
  pending.set(column, next.catch(() => {}));
  return next;
}

async function reroute(column, faultId) {
  const fault = FAULTS.find((f) => f.id === faultId);
  if (!COLUMNS.includes(column) || fault === undefined) return null;
  const old = routes.get(column);
  if (old?.fault === faultId) return old.url;
  routes.delete(column);
  if (old?.proxy) await stop(old.proxy);
  if (fault.args === null) {
    routes.set(column, { fault: faultId, url: serverUrl, proxy: null });
    return serverUrl;
  }
  const proxy = start(process.execPath, [path.join(root, "tools/ferry-proxy/ferry-proxy.mjs"),
    "--target", serverUrl, "--listen", `${opt.host}:0`, "--quiet", ...fault.args], "ferry-proxy");
  const url = await proxy.ready.catch(async (err) => {
    await stop(proxy);
    throw err;
  });
  if (closing) {
    await stop(proxy); // the lab stopped while this one started
    return null;
  }
  routes.set(column, { fault: faultId, url, proxy });
  return url;
}

function readBody(req, max) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
      if (body.length > max) reject(new Error("body too large"));
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

function json(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(body);
}

const page = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://lab");
  if (req.method === "GET" && FILES[url.pathname]) {
    const file = path.join(here, FILES[url.pathname]);
    res.writeHead(200, { "content-type": TYPES[path.extname(file)], "cache-control": "no-store" });
    res.end(fs.readFileSync(file));
    return;
  }
  if (req.method === "GET" && url.pathname === "/lab/config") {
    json(res, 200, { server: serverUrl, rate: Number(opt.rate), columns: COLUMNS,
      faults: FAULTS.map(({ id, label, args }) => ({ id, label, flags: args ?? [] })) });
    return;
  }
  if (req.method === "POST" && url.pathname === "/lab/route") {
    try {
      const { column, fault } = JSON.parse(await readBody(req, 1024));
      const to = closing ? null : await route(column, fault);
      if (to === null) json(res, 400, { error: "unknown column or fault" });
      else json(res, 200, { column, fault, url: to });
    } catch (err) {
      json(res, 400, { error: String(err.message ?? err) });
    }
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});

async function shutdown(signal) {
  if (closing) return;
  closing = true;
  process.stderr.write(`transport-lab: ${signal}, stopping\n`);
  await Promise.all(pending.values());
  for (const r of routes.values()) if (r.proxy) await stop(r.proxy);
  const code = server ? await stop(server) : 0;
  page.closeAllConnections();
  page.close();
  process.exit(code);
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

await new Promise((resolve, reject) => {
  page.once("error", reject);
  page.listen(Number(opt.port), opt.host, resolve);
});
const pageUrl = `http://${opt.host}:${page.address().port}`;
// The page's origin is the one origin the server lets in (CORS and its Origin check); a page
// opened as localhost instead of 127.0.0.1 is the same page.
const origins = [pageUrl];
if (opt.host === "127.0.0.1") origins.push(`http://localhost:${page.address().port}`);
server = start(binary, ["--host", opt.host, "--port", "0", "--rate", opt.rate,
  "--cors-origins", origins.join(",")], "ferry-transport-lab");
server.proc.stderr.pipe(process.stderr);
try {
  serverUrl = await server.ready;
} catch (err) {
  fail(err.message);
}
server.exited.then((code) => {
  if (!closing) {
    process.stderr.write(`transport-lab: the server exited with ${code}\n`);
    process.exit(1);
  }
});
process.stdout.write(`transport-lab: listening on ${pageUrl} (server ${serverUrl})\n` +
  `transport-lab: open ${pageUrl}/ in a browser\n`);
