#!/usr/bin/env node
// ferry-proxy: an HTTP reverse proxy that breaks connections the way real networks do, so that
// transports and fallbacks can be tested against it (tests/e2e, make lab, and by hand). Every
// fault is one flag; flags combine freely.
//
//   ferry-proxy --target http://127.0.0.1:3000 [--listen 127.0.0.1:0]
//     WebSocket
//       --websocket MODE     pass (default); refuse: Upgrade requests get 403 (a corporate
//                            proxy); strip: the Upgrade and Connection headers are removed and
//                            the request goes on as plain HTTP, so the upgrade silently never
//                            happens (nginx without the two proxy_set_header lines); mute: the
//                            101 goes through, then no frame does in either direction; mute-down:
//                            the 101 and client frames go through, server frames do not
//       --ws-close-after S   close every accepted WebSocket S seconds after its 101 (decimals
//                            allowed; load balancers with a connection lifetime)
//     Any connection
//       --idle-timeout MS    close a client connection on which no byte moved for MS, held
//                            requests, streams and WebSockets alike (NAT boxes, idle timeouts)
//       --drop FRACTION      drop that fraction of requests and WebSockets at random mid-flight:
//                            before the request reaches the server, after the server answered but
//                            before the client saw it, or within --drop-within MS (default 2000)
//                            of the start; decided by --seed (default: random, printed) so a
//                            failure can be replayed with the same seed
//       --bandwidth BPS      limit each direction to BPS bytes per second (shared by all
//                            connections, like one slow link)
//       --latency MS         delay every chunk by MS in both directions (order kept)
//       --stall MS/PERIOD    a client that stops reading: for the first MS of every PERIOD ms
//                            (counted from the proxy's start) nothing goes from the server to
//                            any client; what arrives meanwhile waits (order kept)
//       --window BYTES       flow control, as TCP's window: while more than BYTES of one
//                            connection direction wait in the proxy (held by --bandwidth,
//                            --latency or --stall, or not yet taken by the receiving socket),
//                            the proxy stops reading from the sender, so the sender's own
//                            buffers fill (default 0: the proxy holds whatever comes)
//     HTTP
//       --gateway-errors FRACTION  answer that fraction of requests (and upgrade requests) at
//                            once with 502 or 504, like an overloaded gateway (seeded)
//       --max-body BYTES     a request body larger than BYTES gets 413 (the server never sees
//                            it); a response body larger than BYTES is replaced by 413 when its
//                            length is known, else cut at BYTES
//       --max-response-body BYTES  the response limit alone, when it differs from --max-body
//                            (0: no limit on responses)
//       --buffer BYTES       hold each response body until BYTES arrived or it ended
//                            (buffering proxies, antivirus): breaks streams
//       --max-response-ms MS  cut a response still open after MS (proxies that limit request
//                            duration): breaks held long-polls and streams
//     --quiet                no per-request log lines
//
// Prints "ferry-proxy: listening on http://HOST:PORT -> TARGET (seed N)" once ready. Logs one
// line per request or WebSocket on stderr when it ends: "ferry-proxy: #ID METHOD PATH STATUS
// [faults that acted]". On SIGTERM or SIGINT prints one JSON line of counters ({"stats":{...}})
// on stdout and exits 0.
import http from "node:http";
import net from "node:net";
import { parseArgs } from "node:util";

function fail(msg) {
  process.stderr.write(`ferry-proxy: ${msg}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
  options: {
    target: { type: "string" },
    listen: { type: "string", default: "127.0.0.1:0" },
    websocket: { type: "string", default: "pass" },
    "ws-close-after": { type: "string", default: "0" },
    "idle-timeout": { type: "string", default: "0" },
    drop: { type: "string", default: "0" },
    "drop-within": { type: "string", default: "2000" },
    seed: { type: "string" },
    bandwidth: { type: "string", default: "0" },
    "gateway-errors": { type: "string", default: "0" },
    "max-body": { type: "string", default: "0" },
    "max-response-body": { type: "string" },
    buffer: { type: "string", default: "0" },
    "max-response-ms": { type: "string", default: "0" },
    latency: { type: "string", default: "0" },
    stall: { type: "string", default: "0/1" },
    window: { type: "string", default: "0" },
    quiet: { type: "boolean", default: false },
  },
  });
} catch (err) {
  fail(err.message.split("\n")[0]);
}
const opt = parsed.values;
if (!opt.target) fail("--target URL is required");
const target = new URL(opt.target);
if (target.protocol !== "http:") fail("--target must be an http:// URL");
const WS_MODES = ["pass", "refuse", "strip", "mute", "mute-down"];
if (!WS_MODES.includes(opt.websocket)) fail(`--websocket is ${WS_MODES.join(", ")}`);

function whole(name) {
  const v = Number(opt[name]);
  if (!/^\d+$/.test(opt[name]) || !Number.isSafeInteger(v)) fail(`--${name} must be a whole number >= 0`);
  return v;
}
function fraction(name) {
  const v = Number(opt[name]);
  if (!/^\d*\.?\d+$/.test(opt[name]) || !(v >= 0 && v <= 1)) fail(`--${name} must be a number from 0 to 1`);
  return v;
}
const bufferBytes = whole("buffer");
const maxResponseMs = whole("max-response-ms");
const latencyMs = whole("latency");
const windowBytes = whole("window");
const stallMatch = /^(\d+)\/(\d+)$/.exec(opt.stall);
if (!stallMatch || Number(stallMatch[1]) >= Number(stallMatch[2]))
  fail("--stall must be MS/PERIOD, whole numbers of milliseconds with MS < PERIOD");
const [stallMs, stallPeriod] = [Number(stallMatch[1]), Number(stallMatch[2])];
const started = Date.now();
// When the current stall ends (server-to-client data waits until then), or 0 outside a stall.
function stallEnd(now) {
  if (stallMs === 0) return 0;
  const into = (now - started) % stallPeriod;
  return into < stallMs ? now + (stallMs - into) : 0;
}
const idleMs = whole("idle-timeout");
const dropWithinMs = whole("drop-within");
const bandwidth = whole("bandwidth");
const maxBody = whole("max-body");
const maxResponseBody = opt["max-response-body"] === undefined ? maxBody : whole("max-response-body");
const dropRate = fraction("drop");
const errorRate = fraction("gateway-errors");
const wsCloseAfter = Number(opt["ws-close-after"]);
if (!/^\d*\.?\d+$/.test(opt["ws-close-after"])) fail("--ws-close-after must be a number of seconds >= 0");
const seed = opt.seed === undefined ? (Math.random() * 2 ** 31) >>> 0 : whole("seed");
const [listenHost, listenPortStr] = opt.listen.split(":");
const listenPort = Number(listenPortStr ?? 0);

// mulberry32: small, seedable, and the same sequence on every machine. One generator per
// fault, so turning one fault on does not change the draws of another.
function rng(s) {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const dropRng = rng(seed);
const errorRng = rng(seed ^ 0x9e3779b9);

const stats = {
  requests: 0,
  upgrades: 0,
  upgradesRefused: 0,
  upgradesStripped: 0,
  upgradesMuted: 0,
  upgradesMutedDown: 0,
  websocketsClosed: 0,
  idleCut: 0,
  dropped: 0,
  gatewayErrors: 0,
  tooLarge: 0,
  responsesCut: 0,
  responsesBuffered: 0,
  bytesDown: 0,
  bytesUp: 0,
  paused: 0,
};

let nextId = 1;
const open = new Map(); // id -> the log line of a request or WebSocket still open
function log(id, what, status, faults) {
  open.delete(id);
  if (opt.quiet) return;
  const f = faults.size ? ` [${[...faults].join(" ")}]` : "";
  process.stderr.write(`ferry-proxy: #${id} ${what} ${status}${f}\n`);
}

// The link: bandwidth is shared per direction by every connection (one slow line), latency is
// added to each chunk, and server-to-client data waits out a --stall. Each connection
// direction has its own FIFO so chunks keep their order; with --window it stops reading from
// its sender while more than windowBytes wait in it or in its receiving socket.
const linkBusyUntil = { up: 0, down: 0 };
const SLICE = bandwidth > 0 ? Math.max(256, Math.floor(bandwidth / 20)) : Infinity;
class Pipe {
  constructor(dir, faults) {
    this.dir = dir;
    this.faults = faults;
    this.q = [];
    this.timer = null;
    this.bytes = 0; // waiting in q
    this.src = null;
    this.sink = null;
    this.paused = false;
  }
  // Flow control (--window): src is the readable stream whose data goes into this pipe, sink
  // the writable it ends in.
  flow(src, sink) {
    this.src = src;
    this.sink = sink;
    if (windowBytes > 0) sink.on("drain", () => this.check());
    return this;
  }
  stalled(now) {
    return this.dir === "down" ? stallEnd(now) : 0;
  }
  // Runs fn(piece) for each slice of chunk (or fn() once for a null chunk) when the link has
  // carried it.
  push(chunk, fn) {
    if (latencyMs === 0 && bandwidth === 0 && this.q.length === 0 && !this.stalled(Date.now())) {
      fn(chunk);
      return this.check();
    }
    if (latencyMs > 0) this.faults.add("latency");
    const pieces = [];
    if (chunk && bandwidth > 0)
      for (let o = 0; o < chunk.length; o += SLICE) pieces.push(chunk.subarray(o, o + SLICE));
    else pieces.push(chunk);
    for (const p of pieces) {
      let at = Date.now();
      if (bandwidth > 0 && p && p.length) {
        this.faults.add("bandwidth");
        linkBusyUntil[this.dir] = Math.max(at, linkBusyUntil[this.dir]) + (p.length * 1000) / bandwidth;
        at = linkBusyUntil[this.dir];
      }
      const n = p ? p.length : 0;
      this.bytes += n;
      this.q.push({ at: at + latencyMs, n, fn: () => fn(p) });
    }
    this.pump();
  }
  // afterStall: called at the end of a stall (a late timer must not find the next one).
  pump(afterStall = false) {
    if (this.timer) return this.check();
    const now = Date.now();
    const stall = afterStall ? 0 : this.stalled(now);
    if (stall && this.q.length) this.faults.add("stall");
    while (!stall && this.q.length && this.q[0].at <= now) {
      const e = this.q.shift();
      this.bytes -= e.n;
      e.fn();
    }
    if (this.q.length)
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump(stall !== 0);
      }, Math.max(1, Math.ceil((stall || this.q[0].at) - now)));
    this.check();
  }
  check() {
    if (windowBytes === 0 || !this.src) return;
    const held = this.bytes + (this.sink.destroyed ? 0 : this.sink.writableLength ?? 0);
    if (!this.paused && held > windowBytes) {
      this.paused = true;
      stats.paused++;
      this.faults.add("window");
      this.src.pause();
    } else if (this.paused && held <= windowBytes) {
      this.paused = false;
      if (!this.src.destroyed) this.src.resume();
    }
  }
  clear() {
    this.q = [];
    this.bytes = 0;
    clearTimeout(this.timer);
    this.timer = null;
  }
}

// Which requests fail, drawn in arrival order. A drop has a phase: "request" (never reaches
// the server), "response" (the server answered, the client never sees it), or "at" (the
// connection dies at a random moment within --drop-within of the start).
function drawDrop() {
  if (dropRate === 0 || dropRng() >= dropRate) return null;
  const r = dropRng();
  if (r < 1 / 3) return { phase: "request" };
  if (r < 2 / 3) return { phase: "response" };
  return { phase: "at", ms: Math.floor(dropRng() * dropWithinMs) };
}
function drawGatewayError() {
  if (errorRate === 0 || errorRng() >= errorRate) return 0;
  return errorRng() < 0.5 ? 502 : 504;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function plain(res, status, text) {
  res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function proxyRequest(req, res) {
  stats.requests++;
  const id = nextId++;
  const faults = new Set();
  const conn = req.socket;
  // Node's keep-alive handling resets the socket timeout between requests: set it again.
  if (idleMs > 0) conn.setTimeout(idleMs);
  const line = () => log(id, `${req.method} ${req.url}`, res.headersSent ? res.statusCode : "-", faults);
  open.set(id, line);
  res.on("close", () => {
    if (conn.ferryIdleCut) faults.add("idle-cut");
    line();
  });

  const gw = drawGatewayError();
  if (gw) {
    stats.gatewayErrors++;
    faults.add(`gateway-${gw}`);
    req.resume();
    return plain(res, gw, `ferry-proxy: ${gw === 502 ? "bad gateway" : "gateway timeout"}\n`);
  }
  const len = Number(req.headers["content-length"] ?? 0);
  if (maxBody > 0 && len > maxBody) {
    stats.tooLarge++;
    faults.add("413-request");
    res.setHeader("connection", "close");
    return plain(res, 413, "ferry-proxy: request body too large\n");
  }
  const drop = drawDrop();
  const dropNow = () => {
    if (res.destroyed) return;
    stats.dropped++;
    faults.add(`dropped-${drop.phase}`);
    clearTimers();
    up.destroy();
    res.destroy();
  };
  const up = http.request({
    host: target.hostname,
    port: target.port || 80,
    method: req.method,
    path: req.url,
    headers: req.headers,
    agent,
  });
  up.on("error", () => {}); // a drop may destroy it before the real handler below is attached
  const upPipe = new Pipe("up", faults).flow(req, up);
  const downPipe = new Pipe("down", faults);
  let cut = null;
  let dropTimer = null;
  const clearTimers = () => {
    clearTimeout(cut);
    clearTimeout(dropTimer);
    upPipe.clear();
    downPipe.clear();
  };
  if (drop?.phase === "request") return void (up.destroy(), req.resume(), dropNow());
  if (drop?.phase === "at") dropTimer = setTimeout(dropNow, drop.ms);
  if (maxResponseMs > 0) {
    cut = setTimeout(() => {
      stats.responsesCut++;
      faults.add("cut");
      up.destroy();
      if (!res.headersSent) {
        res.writeHead(504, { "content-type": "text/plain", connection: "close" });
        res.end("ferry-proxy: response took too long\n");
      } else {
        res.destroy(); // the client sees the body end early, as behind a real proxy
      }
    }, maxResponseMs);
  }
  const done = () => clearTimeout(cut);
  up.on("response", (ur) => {
    downPipe.flow(ur, res);
    if (drop?.phase === "response") {
      ur.resume();
      return dropNow();
    }
    const rlen = Number(ur.headers["content-length"] ?? -1);
    if (maxResponseBody > 0 && rlen > maxResponseBody) {
      stats.tooLarge++;
      faults.add("413-response");
      ur.resume();
      done();
      return downPipe.push(null, () => res.destroyed || plain(res, 413, "ferry-proxy: response body too large\n"));
    }
    downPipe.push(null, () => {
      if (res.destroyed) return;
      res.writeHead(ur.statusCode, ur.statusMessage, { ...ur.headers });
      // A response with no body yet still shows its headers to the client at once, as a
      // buffering proxy does (nginx sends headers and holds the body).
      res.flushHeaders();
    });
    let held = [];
    let heldBytes = 0;
    let bodyBytes = 0;
    let lastByte = null;
    const release = () => {
      if (held.length === 0) return;
      const chunks = held;
      held = [];
      heldBytes = 0;
      stats.responsesBuffered++;
      faults.add("buffered");
      for (const c of chunks) downPipe.push(c, (p) => res.destroyed || res.write(p));
    };
    ur.on("data", (chunk) => {
      stats.bytesDown += chunk.length;
      bodyBytes += chunk.length;
      if (maxResponseBody > 0 && bodyBytes > maxResponseBody) {
        stats.tooLarge++;
        faults.add("413-response-cut");
        done();
        up.destroy();
        return downPipe.push(null, () => res.destroy());
      }
      if (bufferBytes > 0) {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes >= bufferBytes) release();
      } else if (drop?.phase === "at") {
        // Still in flight when the drop timer fires: its last byte is held back until more
        // comes, so the client never sees a complete body.
        const all = lastByte ? Buffer.concat([lastByte, chunk]) : chunk;
        lastByte = all.subarray(all.length - 1);
        if (all.length > 1) downPipe.push(all.subarray(0, -1), (p) => res.destroyed || res.write(p));
      } else {
        downPipe.push(chunk, (p) => res.destroyed || res.write(p));
      }
    });
    ur.on("end", () => {
      release();
      downPipe.push(null, () => {
        done();
        // A connection chosen to die mid-flight never shows its end: the drop timer kills it.
        if (drop?.phase === "at") return;
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
    if (!res.headersSent) plain(res, 502, `ferry-proxy: upstream error: ${err.code ?? err.message}\n`);
    else res.destroy();
  });
  let reqBytes = 0;
  req.on("data", (chunk) => {
    stats.bytesUp += chunk.length;
    reqBytes += chunk.length;
    if (maxBody > 0 && reqBytes > maxBody) {
      // A chunked body that grew too large: the server never gets the end of it.
      if (!faults.has("413-request")) {
        stats.tooLarge++;
        faults.add("413-request");
        up.destroy();
        clearTimers();
        if (!res.headersSent) {
          res.setHeader("connection", "close");
          plain(res, 413, "ferry-proxy: request body too large\n");
        }
      }
      return;
    }
    upPipe.push(chunk, (p) => up.destroyed || up.write(p));
  });
  req.on("end", () => upPipe.push(null, () => up.destroyed || up.end()));
  req.on("aborted", () => {
    done();
    up.destroy();
  });
  res.on("close", () => {
    clearTimers();
    if (!up.destroyed && !res.writableFinished) up.destroy();
  });
}

const HOP = new Set(["upgrade", "connection"]);

function proxyUpgrade(req, socket, head) {
  stats.upgrades++;
  const id = nextId++;
  const faults = new Set();
  let status = "-";
  socket.on("error", () => {});
  if (idleMs > 0) socket.setTimeout(idleMs);
  const line = () => log(id, `UPGRADE ${req.url}`, status, faults);
  open.set(id, line);
  socket.on("close", () => {
    if (socket.ferryIdleCut) faults.add("idle-cut");
    line();
  });
  const gw = drawGatewayError();
  if (gw) {
    stats.gatewayErrors++;
    faults.add(`gateway-${gw}`);
    status = gw;
    socket.end(`HTTP/1.1 ${gw} ${http.STATUS_CODES[gw]}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    return;
  }
  if (opt.websocket === "refuse") {
    stats.upgradesRefused++;
    faults.add("ws-refused");
    status = 403;
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  if (opt.websocket === "strip") return stripUpgrade(req, socket, faults, (s) => (status = s));
  const mode = opt.websocket;
  if (mode === "mute") (stats.upgradesMuted++, faults.add("ws-muted"));
  if (mode === "mute-down") (stats.upgradesMutedDown++, faults.add("ws-muted-down"));
  const drop = drawDrop();
  const upPipe = new Pipe("up", faults);
  const downPipe = new Pipe("down", faults);
  let closeTimer = null;
  let dropTimer = null;
  const up = net.connect(Number(target.port || 80), target.hostname, () => {
    if (drop?.phase === "request") return dropNow();
    let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    up.write(lines + "\r\n");
    if (head.length) up.write(head);
    if (drop?.phase === "at") dropTimer = setTimeout(dropNow, drop.ms);
    upPipe.flow(socket, up);
    downPipe.flow(up, socket);
    // Past the handshake, a muting proxy forwards nothing downstream: find the end of the
    // response head and stop there.
    let seen = Buffer.alloc(0);
    let headDone = false;
    up.on("data", (chunk) => {
      stats.bytesDown += chunk.length;
      if (headDone) {
        if (mode === "mute" || mode === "mute-down") return;
        return downPipe.push(chunk, (p) => socket.write(p));
      }
      seen = Buffer.concat([seen, chunk]);
      const end = seen.indexOf("\r\n\r\n");
      if (end < 0) return;
      headDone = true;
      const part = seen.subarray(0, end + 4);
      const rest = seen.subarray(end + 4);
      status = Number(/^HTTP\/1\.1 (\d+)/.exec(part.toString("latin1"))?.[1] ?? 0) || "-";
      if (drop?.phase === "response") return dropNow();
      downPipe.push(part, (p) => socket.write(p));
      if (rest.length && mode !== "mute" && mode !== "mute-down") downPipe.push(rest, (p) => socket.write(p));
      if (status === 101 && wsCloseAfter > 0)
        closeTimer = setTimeout(() => {
          stats.websocketsClosed++;
          faults.add("ws-closed-after");
          socket.destroy();
          up.destroy();
        }, wsCloseAfter * 1000);
    });
    socket.on("data", (chunk) => {
      stats.bytesUp += chunk.length;
      if (mode !== "mute") upPipe.push(chunk, (p) => up.write(p));
    });
  });
  function dropNow() {
    stats.dropped++;
    faults.add(`dropped-${drop.phase}`);
    socket.destroy();
    up.destroy();
  }
  up.on("error", () => socket.destroy());
  up.on("close", () => downPipe.push(null, () => socket.destroy()));
  socket.on("close", () => {
    clearTimeout(closeTimer);
    clearTimeout(dropTimer);
    upPipe.clear();
    up.destroy();
  });
}

// nginx without `proxy_set_header Upgrade/Connection`: the request reaches the server as a
// plain GET (hop-by-hop headers removed), and whatever the server answers goes back.
function stripUpgrade(req, socket, faults, setStatus) {
  stats.upgradesStripped++;
  faults.add("ws-stripped");
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
  const up = http.request({
    host: target.hostname,
    port: target.port || 80,
    method: req.method,
    path: req.url,
    headers: { ...headers, connection: "close" },
    agent: false,
  });
  up.on("response", (ur) => {
    setStatus(ur.statusCode);
    let h = `HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}\r\n`;
    for (let i = 0; i < ur.rawHeaders.length; i += 2) {
      const k = ur.rawHeaders[i].toLowerCase();
      if (k === "connection" || k === "transfer-encoding" || k === "content-length") continue;
      h += `${ur.rawHeaders[i]}: ${ur.rawHeaders[i + 1]}\r\n`;
    }
    const body = [];
    ur.on("data", (c) => body.push(c));
    ur.on("end", () => {
      const b = Buffer.concat(body);
      socket.write(`${h}Content-Length: ${b.length}\r\nConnection: close\r\n\r\n`);
      socket.end(b);
    });
  });
  up.on("error", () => socket.destroy());
  up.end();
}

const server = http.createServer(proxyRequest);
server.keepAliveTimeout = idleMs > 0 ? idleMs : 30000;
server.on("upgrade", proxyUpgrade);
server.on("clientError", (err, socket) => socket.destroy());
if (idleMs > 0)
  server.on("connection", (socket) => {
    socket.setTimeout(idleMs);
    socket.on("timeout", () => {
      stats.idleCut++;
      socket.ferryIdleCut = true;
      socket.destroy();
    });
  });
server.listen(listenPort, listenHost || "127.0.0.1", () => {
  const { address, port } = server.address();
  process.stdout.write(`ferry-proxy: listening on http://${address}:${port} -> ${target.origin} (seed ${seed})\n`);
});

function shutdown() {
  for (const line of [...open.values()]) line();
  process.stdout.write(JSON.stringify({ stats }) + "\n");
  server.closeAllConnections?.();
  server.close();
  agent.destroy();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
