// tools/ferry-proxy's faults one by one (and combined), each checked for really acting: the
// client's view, what the server saw (its event log, or a tap that records the bytes that reach
// it), the proxy's counters and its per-request log lines.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { Socket } from "engine.io-client";
import WebSocket from "ws";
import { once } from "../lib/server.mjs";
import { startEngine } from "../lib/events.mjs";
import { startProxy } from "../lib/proxy.mjs";

let eng;
before(async () => {
  // Long heartbeats: nothing moves on an idle connection unless a test makes it.
  eng = await startEngine(["--transports", "polling,websocket,sse,short-polling",
    "--ping-interval", "20000", "--ping-timeout", "20000", "--max-payload", "100000"]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const connect = (url, opts = {}) => new Socket(url, { path: "/engine.io/", ...opts });

async function echoMany(socket, n, prefix, ms = 15000) {
  const got = [];
  const all = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`only ${got.length}/${n} echoes`)), ms);
    socket.on("message", (m) => {
      got.push(m);
      if (got.length === n) (clearTimeout(t), resolve(got));
    });
  });
  for (let i = 0; i < n; i++) socket.send(`${prefix}${i}`);
  return all;
}
const expected = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

// A TCP tap between the proxy and the server: records every byte that reaches the server.
async function startTap(port) {
  const seen = [];
  const srv = net.createServer((c) => {
    const up = net.connect(port, "127.0.0.1");
    c.on("data", (d) => (seen.push(d), up.write(d)));
    up.on("data", (d) => c.write(d));
    c.on("close", () => up.destroy());
    up.on("close", () => c.destroy());
    c.on("error", () => {});
    up.on("error", () => {});
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    text: () => Buffer.concat(seen).toString("latin1"),
    close: () => new Promise((r) => (srv.close(r), srv.emit("close-all"))),
    srv,
  };
}

function get(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...opts }, (res) => {
      const body = [];
      res.on("data", (d) => body.push(d));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(body).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}
const handshakeUrl = (base) => `${base}/engine.io/?EIO=4&transport=polling`;

test("--websocket strip: the upgrade silently never happens, the client stays on polling, the server never sees Upgrade", async () => {
  const tap = await startTap(eng.port);
  const proxy = await startProxy(tap.url, ["--websocket", "strip"]);
  const socket = connect(proxy.url, { transports: ["polling", "websocket"] });
  await once(socket, "open");
  await once(socket, "upgradeError", 10000);
  assert.deepEqual(await echoMany(socket, 20, "strip-"), expected(20, "strip-"));
  assert.equal(socket.transport.name, "polling");
  socket.close();
  const stats = await proxy.stop();
  assert.ok(stats.upgradesStripped >= 1 && stats.upgradesStripped === stats.upgrades, JSON.stringify(stats));
  const seen = tap.text();
  assert.match(seen, /transport=websocket/, "the stripped request did reach the server");
  assert.doesNotMatch(seen, /^upgrade:/im, "no Upgrade header reached the server");
  assert.match(proxy.stderr(), /UPGRADE \/engine\.io\/\?\S*transport=websocket\S* 400 \[ws-stripped\]/);
  tap.srv.close();
});

test("--ws-close-after: the WebSocket is accepted, then closed after the given seconds", async () => {
  const proxy = await startProxy(eng.url, ["--ws-close-after", "1"]);
  const socket = connect(proxy.url, { transports: ["websocket"], reconnection: false });
  await once(socket, "open");
  const t0 = Date.now();
  assert.deepEqual(await echoMany(socket, 5, "life-"), expected(5, "life-"));
  const [reason] = await once(socket, "close", 5000);
  const lived = Date.now() - t0;
  assert.equal(reason, "transport close");
  assert.ok(lived >= 700 && lived < 4000, `closed after ${lived} ms`);
  const stats = await proxy.stop();
  assert.equal(stats.websocketsClosed, 1);
  assert.match(proxy.stderr(), /UPGRADE \S+ 101 \[ws-closed-after\]/);
});

test("--websocket mute-down: client frames reach the server, server frames never reach the client", async () => {
  for (const e of eng.all("open")) e.muteSeen = true; // only the session opened below
  const proxy = await startProxy(eng.url, ["--websocket", "mute-down"]);
  const ws = new WebSocket(`${proxy.url.replace("http", "ws")}/engine.io/?EIO=4&transport=websocket`);
  const frames = [];
  ws.on("message", (d) => frames.push(String(d)));
  await once(ws, "open");
  const opened = await eng.next((e) => e.event === "open" && e.transport === "websocket" && !e.muteSeen);
  opened.muteSeen = true;
  ws.send("4up only");
  const m = await eng.messageOf(opened.sid);
  assert.equal(m.text, "up only");
  ws.send("4second");
  await eng.messageOf(opened.sid);
  await new Promise((r) => setTimeout(r, 300)); // the echoes had time to come back
  assert.deepEqual(frames, [], "not even the open packet came down");
  ws.close();
  const stats = await proxy.stop();
  assert.equal(stats.upgradesMutedDown, 1);
  assert.match(proxy.stderr(), /\[ws-muted-down\]/);
});

test("--idle-timeout: a held long-poll and a silent WebSocket are cut; a busy WebSocket is not", async () => {
  const proxy = await startProxy(eng.url, ["--idle-timeout", "600"]);
  // Long-polling: the next GET is held by the server (20 s heartbeat) and cut by the proxy.
  const poll = connect(proxy.url, { transports: ["polling"], reconnection: false });
  await once(poll, "open");
  const t0 = Date.now();
  const [reason] = await once(poll, "close", 5000);
  assert.equal(reason, "transport error");
  assert.ok(Date.now() - t0 >= 400, `cut after ${Date.now() - t0} ms`);

  // A WebSocket with nothing moving is cut too.
  const idle = new WebSocket(`${proxy.url.replace("http", "ws")}/engine.io/?EIO=4&transport=websocket`);
  await once(idle, "open");
  const t1 = Date.now();
  await once(idle, "close", 5000);
  assert.ok(Date.now() - t1 >= 400, `silent WebSocket cut after ${Date.now() - t1} ms`);

  // One that sends every 150 ms lives past several idle periods.
  const busy = new WebSocket(`${proxy.url.replace("http", "ws")}/engine.io/?EIO=4&transport=websocket`);
  await once(busy, "open");
  let closed = false;
  busy.on("close", () => (closed = true));
  for (let i = 0; i < 16; i++) {
    busy.send(`4tick ${i}`);
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.equal(closed, false, "traffic keeps the connection alive");
  busy.close();
  const stats = await proxy.stop();
  assert.ok(stats.idleCut >= 2, JSON.stringify(stats));
  assert.match(proxy.stderr(), /GET \S+ - \[idle-cut\]/);
  assert.match(proxy.stderr(), /UPGRADE \S+ 101 \[idle-cut\]/);
});

// Which of 30 sequential handshakes fail behind --drop 0.4 with a seed.
async function dropPattern(seed) {
  const proxy = await startProxy(eng.url, ["--drop", "0.4", "--drop-within", "0", "--seed", String(seed)]);
  const pattern = [];
  for (let i = 0; i < 30; i++) {
    const r = await get(handshakeUrl(proxy.url)).then((x) => x.status, () => "x");
    pattern.push(r === 200 ? "." : "x");
  }
  const stats = await proxy.stop();
  return { pattern: pattern.join(""), stats, log: proxy.stderr() };
}

test("--drop with --seed: connections die mid-flight, and the same seed replays the same failures", async () => {
  const a = await dropPattern(7);
  const b = await dropPattern(7);
  const c = await dropPattern(8);
  const drops = [...a.pattern].filter((x) => x === "x").length;
  assert.ok(drops >= 4 && drops <= 22, `about 40% dropped: ${a.pattern}`);
  assert.equal(a.stats.dropped, drops);
  assert.equal(b.pattern, a.pattern, "same seed, same drops");
  assert.notEqual(c.pattern, a.pattern, "another seed, other drops");
  assert.match(a.log, /\[dropped-(request|response|at)\]/);
});

test("--drop 1 on WebSockets: each one dies, the client sees it close", async () => {
  const proxy = await startProxy(eng.url, ["--drop", "1", "--drop-within", "300", "--seed", "3"]);
  for (let i = 0; i < 3; i++) {
    const ws = new WebSocket(`${proxy.url.replace("http", "ws")}/engine.io/?EIO=4&transport=websocket`);
    ws.on("error", () => {});
    await once(ws, "close", 5000);
  }
  const stats = await proxy.stop();
  assert.equal(stats.dropped, 3);
});

test("--bandwidth: a 30 kB message each way takes as long as the link allows", async () => {
  const big = "y".repeat(30000);
  const timed = async (args) => {
    const proxy = await startProxy(eng.url, args);
    const socket = connect(proxy.url, { transports: ["polling"] });
    await once(socket, "open");
    const t0 = Date.now();
    const [m] = await echoMany(socket, 1, big, 20000);
    const ms = Date.now() - t0;
    assert.equal(m, big + "0");
    socket.close();
    await proxy.stop();
    return { ms, log: proxy.stderr() };
  };
  const slow = await timed(["--bandwidth", "20000"]);
  // 30 kB up and 30 kB down at 20 kB/s: at least 3 s of link time.
  assert.ok(slow.ms >= 2700, `took ${slow.ms} ms at 20 kB/s`);
  assert.match(slow.log, /\[bandwidth\]/);
  const fast = await timed([]);
  assert.ok(fast.ms < slow.ms / 2, `without the limit ${fast.ms} ms`);
});

test("--stall holds what the server sends; with --window the server's own writes stop too", async () => {
  // A server that writes 16 MB as fast as it is let (waiting for 'drain'), counting what its
  // socket accepted.
  const BODY = 16 * 1024 * 1024;
  let accepted = 0;
  const src = http.createServer(async (req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": BODY });
    const chunk = Buffer.alloc(65536, 7);
    for (let n = 0; n < BODY / chunk.length && !res.destroyed; n++) {
      accepted += chunk.length;
      if (!res.write(chunk))
        await new Promise((r) => {
          const go = () => (res.off("drain", go), res.off("close", go), r());
          res.on("drain", go);
          res.on("close", go);
        });
    }
    res.end();
  });
  await new Promise((r) => src.listen(0, "127.0.0.1", r));
  const target = `http://127.0.0.1:${src.address().port}`;
  const run = async (args) => {
    accepted = 0;
    // Stalled for the first 3 s (of every 10 minutes).
    const proxy = await startProxy(target, ["--stall", "3000/600000", ...args]);
    let got = 0;
    const t0 = Date.now();
    let firstByteMs = null;
    const done = new Promise((resolve, reject) => {
      http.get(`${proxy.url}/big`, { agent: false }, (res) => {
        res.on("data", (d) => {
          if (firstByteMs === null) firstByteMs = Date.now() - t0;
          got += d.length;
        });
        res.on("end", resolve);
        res.on("error", reject);
      }).on("error", reject);
    });
    await new Promise((r) => setTimeout(r, 2000));
    const acceptedWhileStalled = accepted;
    const gotWhileStalled = got;
    await done;
    const stats = await proxy.stop();
    return { acceptedWhileStalled, gotWhileStalled, got, firstByteMs, stats, log: proxy.stderr() };
  };
  const held = await run([]);
  assert.equal(held.gotWhileStalled, 0, "nothing reached the client during the stall");
  assert.ok(held.firstByteMs >= 2500, `the first byte came after the stall (${held.firstByteMs} ms)`);
  assert.equal(held.got, BODY, "then everything, once");
  assert.equal(held.acceptedWhileStalled, BODY, "without --window the proxy read the whole body meanwhile");
  assert.match(held.log, /\[stall\]/);
  const pushed = await run(["--window", "65536"]);
  assert.equal(pushed.got, BODY, "everything arrived");
  assert.ok(pushed.acceptedWhileStalled < BODY / 2, `with --window 65536 the server's writes stopped (${pushed.acceptedWhileStalled} of ${BODY} bytes accepted during the stall)`);
  assert.ok(pushed.stats.paused >= 1, "the proxy paused its reading");
  assert.match(pushed.log, /\[(stall window|window stall)\]/);
  await new Promise((r) => src.close(r));
});

test("--gateway-errors: that fraction of requests gets 502 or 504 at once (seeded)", async () => {
  const all = await startProxy(eng.url, ["--gateway-errors", "1", "--seed", "1"]);
  const statuses = [];
  for (let i = 0; i < 10; i++) statuses.push((await get(handshakeUrl(all.url))).status);
  assert.ok(statuses.every((s) => s === 502 || s === 504), String(statuses));
  assert.ok(statuses.includes(502) && statuses.includes(504), String(statuses));
  const sAll = await all.stop();
  assert.equal(sAll.gatewayErrors, 10);
  assert.match(all.stderr(), /GET \S+ 50[24] \[gateway-50[24]\]/);

  const half = await startProxy(eng.url, ["--gateway-errors", "0.5", "--seed", "2"]);
  let bad = 0;
  for (let i = 0; i < 40; i++) if ((await get(handshakeUrl(half.url))).status !== 200) bad++;
  assert.ok(bad >= 8 && bad <= 32, `${bad}/40 failed`);
  assert.equal((await half.stop()).gatewayErrors, bad);
});

test("--max-body: a larger request body gets 413 and never reaches the server; so does a larger response", async () => {
  const proxy = await startProxy(eng.url, ["--max-body", "2000"]);
  const socket = connect(proxy.url, { transports: ["polling"], reconnection: false });
  await once(socket, "open");
  const sid = socket.id;
  assert.deepEqual(await echoMany(socket, 1, "z".repeat(1500)), ["z".repeat(1500) + "0"], "under the cap");
  const closed = once(socket, "close", 5000);
  socket.send("w".repeat(3000));
  const [reason] = await closed;
  assert.equal(reason, "transport error", "the POST got 413");
  const stats = await proxy.stop();
  assert.ok(stats.tooLarge >= 1);
  assert.match(proxy.stderr(), /POST \S+ 413 \[413-request\]/);
  const msgs = eng.all("message").filter((e) => e.sid === sid).map((e) => String(e.text ?? "").length);
  assert.ok(!msgs.includes(3000), "the server never got the large message");

  // The server answers with a body over the cap: the client gets 413 instead.
  const p2 = await startProxy(eng.url, ["--max-body", "2000"]);
  const s2 = connect(p2.url, { transports: ["polling"], reconnection: false });
  await once(s2, "open");
  const closed2 = once(s2, "close", 5000);
  s2.send("cmd:big 5000");
  assert.equal((await closed2)[0], "transport error");
  await p2.stop();
  assert.match(p2.stderr(), /GET \S+ 413 \[413-response\]/);
});

test("faults combine: stripped upgrade + latency + bandwidth, and every echo still comes back in order", async () => {
  const proxy = await startProxy(eng.url, ["--websocket", "strip", "--latency", "40", "--bandwidth", "50000"]);
  const socket = connect(proxy.url, { transports: ["polling", "websocket"] });
  await once(socket, "open");
  assert.deepEqual(await echoMany(socket, 30, "combo-"), expected(30, "combo-"));
  assert.equal(socket.transport.name, "polling");
  socket.close();
  const stats = await proxy.stop();
  assert.ok(stats.upgradesStripped >= 1);
  assert.match(proxy.stderr(), /\[(latency bandwidth|bandwidth latency)\]/);
});

test("bad flag values stop the proxy with one clear line", async () => {
  const { spawnSync } = await import("node:child_process");
  const { root } = await import("../lib/server.mjs");
  for (const [flag, val, msg] of [["--drop", "2", /--drop must be a number from 0 to 1/],
    ["--websocket", "maybe", /--websocket is pass, refuse, strip, mute, mute-down/],
    ["--idle-timeout", "1.5", /--idle-timeout must be a whole number/],
    ["--stall", "500", /--stall must be MS\/PERIOD/],
    ["--stall", "500/500", /--stall must be MS\/PERIOD/],
    ["--window", "1.5", /--window must be a whole number/]]) {
    const r = spawnSync(process.execPath, [`${root}/tools/ferry-proxy/ferry-proxy.mjs`, "--target",
      "http://127.0.0.1:1", flag, val], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, msg);
  }
});
