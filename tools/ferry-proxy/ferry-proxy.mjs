#!/usr/bin/env node
// ferry-proxy: an HTTP reverse proxy that breaks connections the way real networks do, so that
// transports and fallbacks can be tested against it (tests/e2e, and by hand).
//
//   ferry-proxy --target http://127.0.0.1:3000 [--listen 127.0.0.1:0]
//               [--websocket pass|refuse|mute]  refuse: Upgrade requests get 403 (a corporate
//                                               proxy); mute: the 101 goes through, then no
//                                               frame does (a proxy that inspects and stalls)
//               [--buffer BYTES]     hold each response body until BYTES arrived or it ended
//                                    (buffering proxies, antivirus): breaks streams
//               [--max-response-ms MS]  cut a response still open after MS (proxies that limit
//                                    request duration): breaks held long-polls and streams
//               [--latency MS]       delay every chunk by MS in both directions (order kept)
//
// Prints "ferry-proxy: listening on http://HOST:PORT -> TARGET" once ready. On SIGTERM or
// SIGINT prints one JSON line of counters ({"stats":{...}}) and exits 0.
import http from "node:http";
import net from "node:net";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: {
    target: { type: "string" },
    listen: { type: "string", default: "127.0.0.1:0" },
    websocket: { type: "string", default: "pass" },
    buffer: { type: "string", default: "0" },
    "max-response-ms": { type: "string", default: "0" },
    latency: { type: "string", default: "0" },
  },
});

function fail(msg) {
  process.stderr.write(`ferry-proxy: ${msg}\n`);
  process.exit(2);
}
if (!opt.target) fail("--target URL is required");
const target = new URL(opt.target);
if (target.protocol !== "http:") fail("--target must be an http:// URL");
if (!["pass", "refuse", "mute"].includes(opt.websocket)) fail("--websocket is pass, refuse or mute");
const bufferBytes = Number(opt.buffer);
const maxResponseMs = Number(opt["max-response-ms"]);
const latencyMs = Number(opt.latency);
for (const [k, v] of [["buffer", bufferBytes], ["max-response-ms", maxResponseMs], ["latency", latencyMs]])
  if (!Number.isInteger(v) || v < 0) fail(`--${k} must be a whole number >= 0`);
const [listenHost, listenPortStr] = opt.listen.split(":");
const listenPort = Number(listenPortStr ?? 0);

const stats = {
  requests: 0,
  upgrades: 0,
  upgradesRefused: 0,
  upgradesMuted: 0,
  responsesCut: 0,
  responsesBuffered: 0,
  bytesDown: 0,
  bytesUp: 0,
};

// Calls fn after the configured latency; timers of equal delay fire in order, so chunks keep
// their order.
function later(fn) {
  if (latencyMs === 0) fn();
  else setTimeout(fn, latencyMs);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function proxyRequest(req, res) {
  stats.requests++;
  const up = http.request({
    host: target.hostname,
    port: target.port || 80,
    method: req.method,
    path: req.url,
    headers: req.headers,
    agent,
  });
  let cut = null;
  if (maxResponseMs > 0) {
    cut = setTimeout(() => {
      stats.responsesCut++;
      up.destroy();
      if (!res.headersSent) {
        res.writeHead(504, { "content-type": "text/plain", connection: "close" });
        res.end("ferry-proxy: response took too long\n");
      } else {
        res.destroy(); // the client sees the body end early, as behind a real proxy
      }
    }, maxResponseMs);
  }
  const done = () => cut && clearTimeout(cut);
  up.on("response", (ur) => {
    later(() => {
      if (res.destroyed) return;
      const headers = { ...ur.headers };
      res.writeHead(ur.statusCode, ur.statusMessage, headers);
      // A response with no body yet still shows its headers to the client at once, as a
      // buffering proxy does (nginx sends headers and holds the body).
      res.flushHeaders();
    });
    let held = [];
    let heldBytes = 0;
    const release = () => {
      if (held.length === 0) return;
      const chunks = held;
      held = [];
      heldBytes = 0;
      stats.responsesBuffered++;
      later(() => res.destroyed || chunks.forEach((c) => res.write(c)));
    };
    ur.on("data", (chunk) => {
      stats.bytesDown += chunk.length;
      if (bufferBytes > 0) {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes >= bufferBytes) release();
      } else {
        later(() => res.destroyed || res.write(chunk));
      }
    });
    ur.on("end", () => {
      release();
      later(() => {
        done();
        if (!res.destroyed) res.end();
      });
    });
    ur.on("error", () => {
      done();
      res.destroy();
    });
  });
  up.on("error", (err) => {
    done();
    if (res.destroyed) return;
    if (!res.headersSent) {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`ferry-proxy: upstream error: ${err.code ?? err.message}\n`);
    } else res.destroy();
  });
  req.on("data", (chunk) => {
    stats.bytesUp += chunk.length;
    later(() => up.write(chunk));
  });
  req.on("end", () => later(() => up.end()));
  req.on("aborted", () => {
    done();
    up.destroy();
  });
  res.on("close", done);
}

function proxyUpgrade(req, socket, head) {
  stats.upgrades++;
  socket.on("error", () => {});
  if (opt.websocket === "refuse") {
    stats.upgradesRefused++;
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  const mute = opt.websocket === "mute";
  if (mute) stats.upgradesMuted++;
  const up = net.connect(Number(target.port || 80), target.hostname, () => {
    let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    up.write(lines + "\r\n");
    if (head.length) up.write(head);
    // Past the handshake, a muting proxy forwards nothing: find the end of the response head
    // and stop there.
    let seen = Buffer.alloc(0);
    let headDone = false;
    up.on("data", (chunk) => {
      stats.bytesDown += chunk.length;
      if (!mute) return later(() => socket.write(chunk));
      if (headDone) return;
      seen = Buffer.concat([seen, chunk]);
      const end = seen.indexOf("\r\n\r\n");
      if (end >= 0) {
        headDone = true;
        const part = seen.subarray(0, end + 4);
        later(() => socket.write(part));
      }
    });
    socket.on("data", (chunk) => {
      stats.bytesUp += chunk.length;
      if (!mute) later(() => up.write(chunk));
    });
  });
  up.on("error", () => socket.destroy());
  up.on("close", () => later(() => socket.destroy()));
  socket.on("close", () => up.destroy());
}

const server = http.createServer(proxyRequest);
server.on("upgrade", proxyUpgrade);
server.on("clientError", (err, socket) => socket.destroy());
server.listen(listenPort, listenHost || "127.0.0.1", () => {
  const { address, port } = server.address();
  process.stdout.write(`ferry-proxy: listening on http://${address}:${port} -> ${target.origin}\n`);
});

function shutdown() {
  process.stdout.write(JSON.stringify({ stats }) + "\n");
  server.closeAllConnections?.();
  server.close();
  agent.destroy();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
