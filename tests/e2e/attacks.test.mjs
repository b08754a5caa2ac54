// Attacks on tools/ferry, each performed on loopback while a well-behaved client on other
// connections keeps exchanging messages (issue 17). Each checks that the server stays within
// its bounds (RSS from /proc/PID/status, descriptors counted in /proc/PID/fd), that the
// attacker gets what docs/security.md says, and that the good client sees no error: no
// disconnect, every publish acknowledged within 5 s and delivered once, in order.
//
// tools/ferry runs as users run it, with its defaults except short pings (1.5 s + 5 s, so
// abandoned sessions end within the test; the 5 s deadline because the good clients share this
// process with the attacker, which starves them for seconds on a loaded 2-core machine) and an
// Origin allowlist. Its HTTP header timeout is
// the default 10 s: the slow and idle connection tests take about 11 s each.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import zlib from "node:zlib";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { startServer, bin } from "../lib/server.mjs";
import { rawConnect, rawRequest } from "../lib/rawhttp.mjs";

const GOOD_ORIGIN = "http://good.example";
let srv;

before(async () => {
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish", "message",
    "--ping-interval", "1500", "--ping-timeout", "5000", "--cors-origins", GOOD_ORIGIN,
    "--transports", "polling,websocket,sse,short-polling", "--max-rooms", "16"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function usage() {
  const status = fs.readFileSync(`/proc/${srv.proc.pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  return { rssMb: rssKb / 1024, fds: fs.readdirSync(`/proc/${srv.proc.pid}/fd`).length };
}

// Wait until cond() holds, checking every 100 ms, for at most ms.
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(100);
  assert.ok(cond(), `${what} within ${ms} ms`);
}

// Two official clients in a room of their own (one on WebSocket, one on polling): ann publishes
// a counter every 100 ms with an ack, bob records. stop() asserts nothing went wrong.
async function goodClient(transports = [["websocket"], ["polling"]]) {
  const room = `good-${Math.random().toString(36).slice(2)}`;
  const mk = (name, transports) => io(srv.url, { forceNew: true, reconnection: false, auth: { name }, transports });
  const ann = mk("ann", transports[0]);
  const bob = mk("bob", transports[1]);
  const errors = [];
  const got = [];
  for (const s of [ann, bob]) {
    s.on("disconnect", (r) => errors.push(`${s.auth.name} disconnect: ${r}`));
    s.on("connect_error", (e) => errors.push(`${s.auth.name} connect_error: ${e.message}`));
  }
  bob.on("message", (d) => got.push(d.n));
  await Promise.all([ann, bob].map((s) => new Promise((r) => s.once("connect", r))));
  for (const s of [ann, bob]) assert.equal((await s.timeout(5000).emitWithAck("join", { room })).ok, true);
  let n = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const r = await ann.timeout(5000).emitWithAck("publish", { room, event: "message", data: { n: n + 1 } });
        assert.equal(r.ok, true);
        n++;
      } catch (e) {
        errors.push(`publish ${n + 1}: ${e.message}`);
        return;
      }
      await sleep(100);
    }
  })();
  return {
    async stop(minRounds = 3) {
      running = false;
      await loop;
      await until(() => got.length >= n || errors.length > 0, 5000, "bob has every message");
      for (const s of [ann, bob]) s.off("disconnect").disconnect();
      assert.deepEqual(errors, [], "the good client saw no error");
      assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), "every message once, in order");
      assert.ok(n >= minRounds, `the good client kept exchanging (${n} rounds)`);
      return n;
    },
  };
}

// Run attack() while the good client exchanges; check the bounds meanwhile and after.
async function underAttack(name, attack, { rssMb = 150, fds = 100, good: goodTransports } = {}) {
  await until(() => usage().fds < 64, 15000, "the server is back to few descriptors before " + name);
  const base = usage();
  const good = await goodClient(goodTransports);
  let peak = { ...base };
  const meter = setInterval(() => {
    const u = usage();
    peak = { rssMb: Math.max(peak.rssMb, u.rssMb), fds: Math.max(peak.fds, u.fds) };
  }, 100);
  try {
    await attack();
    await sleep(1000); // the good client goes on a while after the attack, too
  } finally {
    clearInterval(meter);
  }
  const rounds = await good.stop();
  const end = usage();
  console.log(`# ${name}: rss ${base.rssMb.toFixed(0)} -> peak ${peak.rssMb.toFixed(0)} MB, fds ${base.fds} -> peak ${peak.fds}, good rounds ${rounds}`);
  assert.ok(peak.rssMb - base.rssMb < rssMb, `RSS grew by less than ${rssMb} MB (${(peak.rssMb - base.rssMb).toFixed(1)})`);
  assert.ok(peak.fds - base.fds <= fds, `at most ${fds} more descriptors (${peak.fds - base.fds})`);
  return { base, peak, end };
}

// A handshake on a connection of its own, as a flooding client makes it. fetch's pool reused
// keep-alive connections, and under load one sometimes sat idle past the server's 5 s
// idle_timeout_ms: the server closed it as fetch sent the next handshake on it ("fetch failed:
// UND_ERR_SOCKET other side closed", the keep-alive race every HTTP/1.1 client must retry).
async function handshake(transport = "polling", headers = {}) {
  const r = await handshakeFrom(srv.port, { transport, headers }).catch((e) => {
    throw new Error(`handshake: ${e.message}: ${e.code ?? ""}`);
  });
  assert.equal(r.status, 200, `handshake: ${r.status} ${r.body.slice(0, 100)}`);
  return JSON.parse(r.body.slice(r.body.indexOf("{"))).sid;
}

// A raw Engine.IO WebSocket session joined to the Socket.IO namespace "/".
async function rawSocket(opts = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`, opts);
  const msgs = [];
  ws.on("message", (d, bin) => msgs.push(bin ? d : d.toString()));
  ws.on("error", () => {});
  const closed = new Promise((r) => ws.on("close", (code) => r(code)));
  await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
  ws.send("40");
  await until(() => msgs.some((m) => typeof m === "string" && m.startsWith("40")), 5000, "CONNECT answered");
  return { ws, msgs, closed };
}

test("slowloris: heads and bodies a byte at a time are cut at the header timeout (408)", async () => {
  await underAttack("slowloris", async () => {
    const conns = [];
    for (let i = 0; i < 40; i++) {
      const c = await rawConnect(srv.port);
      const body = i % 2 === 1;
      c.write(body ? "POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n4" : "GET / HTTP/1.1\r\nHost: x\r\n");
      conns.push(c);
    }
    const t0 = Date.now();
    const drip = setInterval(() => {
      for (const c of conns) if (!c.ended) c.sock.write(c === conns[0] || conns.indexOf(c) % 2 === 0 ? "X" : "a");
    }, 500);
    try {
      await until(() => conns.every((c) => c.ended), 16000, "every slow connection closed");
    } finally {
      clearInterval(drip);
    }
    const took = Math.max(...conns.map((c) => c.endedAt)) - t0;
    assert.ok(took >= 8000 && took < 15000, `closed at the 10 s header timeout (${took} ms)`);
    for (const c of conns) assert.match(c.buf.toString(), /^HTTP\/1\.1 408 /, "each got 408");
  });
});

test("1000 half-open connections that never send: bounded, closed at the header timeout", async () => {
  await underAttack("half-open", async () => {
    const socks = [];
    for (let i = 0; i < 1000; i++) {
      const s = net.connect(srv.port, "127.0.0.1");
      s.on("error", () => {});
      s.ended = false;
      s.on("close", () => (s.ended = true));
      s.resume(); // read, so that the server's close is seen
      socks.push(s);
      if (i % 100 === 99) await sleep(20);
    }
    await until(() => usage().fds > 900, 10000, "the server holds the connections");
    await until(() => socks.every((s) => s.ended), 20000, "every idle connection closed by the server");
    await until(() => usage().fds < 80, 5000, "descriptors released");
  }, { fds: 1100 });
});

test("a flood of handshakes, pings and probes: sessions abandoned in a loop end by ping timeout", async () => {
  const { base } = await underAttack("handshake flood", async () => {
    // 600 polling handshakes, 50 at a time, each session abandoned.
    for (let i = 0; i < 600; i += 50)
      await Promise.all(Array.from({ length: 50 }, () => handshake()));
    // A WebSocket session that floods pongs, noops and probes as fast as it can.
    const { ws, closed } = await rawSocket();
    for (let i = 0; i < 20000; i++) ws.send(i % 3 === 0 ? "3" : i % 3 === 1 ? "6" : "2probe");
    // SSE and short-polling handshakes, abandoned too.
    for (let i = 0; i < 100; i++) {
      const c = await rawConnect(srv.port);
      c.write("GET /socket.io/?EIO=4&transport=sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
      await c.response().catch(() => {});
      c.destroy();
    }
    ws.terminate();
    await closed;
    // A session of the extensions that floods client pings ("2c<id>:<rx>") without reading:
    // at most one unsent answer is queued per session (docs/protocol.md section 7).
    const xs = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket&ferry=1`);
    xs.on("error", () => {});
    const xclosed = new Promise((r) => xs.on("close", (code) => r(code)));
    await new Promise((r, j) => (xs.once("open", r), xs.once("error", j)));
    xs._socket.pause();
    // In slices, so that this process (which hosts the good clients too) keeps answering pings.
    for (let i = 1; i <= 10000; i++) {
      xs.send(`2c${i}:0`);
      if (i % 500 === 0) await sleep(10);
    }
    await sleep(500);
    xs.terminate();
    await xclosed;
  }, { fds: 200 });
  // The abandoned sessions end by ping timeout (1.5 + 5 s): descriptors settle.
  await until(() => usage().fds <= base.fds + 5, 15000, `descriptors back to ${base.fds} + 5`);
});

test("sessions created and abandoned in a loop (WebSocket, polling, SSE, joined to a room): all end, nothing kept", async () => {
  const { base } = await underAttack("abandoned sessions", async () => {
    for (let i = 0; i < 100; i++) {
      // A WebSocket session that joins a room and is dropped without a close frame.
      const s = await rawSocket();
      s.ws.send(`420["join",{"room":"loop-${i % 10}"}]`);
      await until(() => s.msgs.some((m) => typeof m === "string" && m.startsWith("430")), 5000, "join answered");
      s.ws.terminate();
      // A polling session that connects to "/" and is never polled again.
      const sid = await handshake();
      await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "40" });
      // An SSE session whose stream is cut.
      if (i % 5 === 0) {
        const c = await rawConnect(srv.port);
        c.write("GET /socket.io/?EIO=4&transport=sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
        await until(() => c.buf.length > 0, 5000, "SSE stream opened");
        c.destroy();
      }
    }
  }, { fds: 200 });
  // Every abandoned session ends by ping timeout (1.5 + 1.5 s) or its closed connection.
  await until(() => usage().fds <= base.fds + 5, 10000, `descriptors back to about ${base.fds}`);
});

test("a client that never reads: its queue bound closes its session; the server stays bounded", async () => {
  // On a server of its own with the default pings (25 s + 20 s), so that the queue bound, not
  // the ping timeout of a client that cannot read pings, is what ends the session.
  const main = srv;
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish", "message"]);
  try {
    await underAttack("never reads", async () => {
      // A raw WebSocket client that joins a room and then stops reading.
      const { ws, msgs, closed } = await rawSocket();
      const sid = JSON.parse(msgs[0].slice(1)).sid;
      ws.send('420["join",{"room":"sink"}]');
      await sleep(300);
      ws._socket.pause();
      const pub = io(srv.url, { forceNew: true, reconnection: false, transports: ["websocket"] });
      await new Promise((r) => pub.once("connect", r));
      await pub.timeout(5000).emitWithAck("join", { room: "sink" });
      const big = "x".repeat(900000);
      // 20 publishes of 900 kB: 18 MB for the sink,
      // over its 8 MiB queue bound plus what the socket buffers hold.
      let acked = 0;
      for (let i = 0; i < 20; i++) {
        const r = await pub.timeout(5000).emitWithAck("publish", { room: "sink", event: "message", data: big }).catch((e) => ({ err: e.message }));
        if (r.ok) acked++;
        await sleep(25); // under the publish rate limit
      }
      pub.disconnect();
      assert.ok(acked >= 10, `publishes accepted (${acked})`);
      ws._socket.resume();
      const code = await Promise.race([closed, sleep(10000).then(() => "open")]);
      assert.notEqual(code, "open", "the sink's connection was closed by the server");
      // "send queue over its bound (N bytes queued): closing", N over 8388608 (the default).
      const m = new RegExp(`sid=${sid.slice(0, 6)}\\.\\.\\. send queue over its bound \\((\\d+) bytes queued\\): closing`).exec(srv.stderr());
      assert.ok(m && Number(m[1]) > 8388608, `closed for its queue (not its ping timeout), and logged: ${srv.stderr()}`);
      assert.ok(!srv.stderr().includes(sid), "the session id is not logged in full");
    }, { rssMb: 250 });
  } finally {
    assert.equal(await srv.stop(), 0);
    srv = main;
  }
});

test("oversized and deeply nested JSON in events: the sender's session ends, nobody else's", async () => {
  await underAttack("json bombs", async () => {
    // Nested 100000 deep: a parse error.
    const a = await rawSocket();
    a.ws.send('42["message",' + "[".repeat(100000) + "]".repeat(100000) + "]");
    const ca = await Promise.race([a.closed, sleep(5000).then(() => "open")]);
    assert.notEqual(ca, "open", "nested JSON closed the session");
    // Over max_payload (1 MB): WebSocket close 1009.
    const b = await rawSocket();
    b.ws.send('42["message","' + "y".repeat(1100000) + '"]');
    // 1009 Message Too Big. The server knows from the frame header while the client is still
    // sending the rest; its lingering close drops that rest, so the close frame arrives.
    const cb = await Promise.race([b.closed, sleep(5000).then(() => "open")]);
    assert.equal(cb, 1009, "closed by the server with 1009 Message Too Big");
    // The same over polling: a POST over max_payload gets 413.
    const sid = await handshake();
    const r = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "4" + "z".repeat(1100000) });
    assert.equal(r.status, 413);
  });
});

test("binary attachment bombs: placeholders without attachments, huge counts", async () => {
  await underAttack("attachment bombs", async () => {
    for (const pkt of ['4599999999-["message",{"_placeholder":true,"num":0}]', '4511-["message",1]',
      '451-["message",{"_placeholder":true,"num":7}]', '451-["message",{"_placeholder":true,"num":0}]']) {
      const s = await rawSocket();
      s.ws.send(pkt);
      // Attachments that never come, or more than max_attachments (10), or a placeholder
      // pointing past them: none may be held without bound. Send plenty of binary frames.
      for (let i = 0; i < 50; i++) s.ws.send(Buffer.alloc(1000));
      const code = await Promise.race([s.closed, sleep(4000).then(() => "open")]);
      console.log(`# attachment bomb ${pkt.slice(0, 14)}: ${code}, answers ${JSON.stringify(s.msgs.filter((m) => typeof m === "string" && m !== "2").slice(1))}`);
      // Each ends the sender's session (a close without a status, 1005), holding nothing.
      assert.notEqual(code, "open", `${pkt.slice(0, 14)}... closed the session`);
    }
  });
});

test("decompression bomb on permessage-deflate: refused (tools/ferry does not negotiate it)", async () => {
  // A raw frame with RSV1 set carrying 50 MB of zeros deflated: not agreed, so 1002. Built
  // before the attack and its good client start: deflating 50 MB blocks this process for
  // seconds on a loaded machine, past the ping deadline of every client in it.
  const z = zlib.deflateRawSync(Buffer.alloc(50e6), { level: 9 });
  await underAttack("deflate bomb", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: true });
    ws.on("error", () => {});
    const closed = new Promise((r) => ws.on("close", (code) => r(code)));
    await new Promise((r) => ws.once("open", r));
    assert.equal(ws.extensions, "", "no extension agreed");
    const payload = z.subarray(0, z.length);
    const mask = Buffer.from([1, 2, 3, 4]);
    const head = payload.length < 65536 ? Buffer.from([0xc1, 0x80 | 126, payload.length >> 8, payload.length & 255]) : null;
    assert.ok(head, `the bomb fits a short frame (${payload.length} bytes)`);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]));
    ws._socket.write(Buffer.concat([head, mask, masked]));
    assert.equal(await Promise.race([closed, sleep(5000).then(() => "open")]), 1002, "1002 protocol error");
  });
});

test("many namespaces and rooms on one socket: bounded by the allowlists and --max-rooms", async () => {
  await underAttack("namespaces and rooms", async () => {
    const s = await rawSocket();
    for (let i = 0; i < 2000; i++) s.ws.send(`40/ns${i},`);
    for (let i = 0; i < 2000; i++) s.ws.send(`42${i}["join",{"room":"r${i}"}]`);
    await until(() => s.msgs.filter((m) => typeof m === "string" && /^43\d+/.test(m)).length >= 2000 || s.ws.readyState !== 1, 20000, "joins answered");
    const answers = s.msgs.filter((m) => typeof m === "string" && /^43\d+/.test(m));
    const ok = answers.filter((m) => m.includes('"ok":true')).length;
    assert.ok(ok <= 16, `at most 16 rooms joined (${ok})`);
    const nsErr = s.msgs.filter((m) => typeof m === "string" && m.startsWith("44/ns")).length;
    assert.ok(nsErr > 0 || s.ws.readyState !== 1, "unknown namespaces refused");
    s.ws.terminate();
  });
});

test("a second poll or stream on one session: 400 and the session ends; the good client is untouched", async () => {
  await underAttack("second poll", async () => {
    const sid = await handshake();
    const url = `${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const first = fetch(url).then((r) => r.status);
    await sleep(200);
    const second = await fetch(url);
    assert.equal(second.status, 400, "the overlapping poll is refused");
    assert.equal(await first, 200, "the held poll is answered (close)");
    const after = await fetch(url);
    assert.equal(after.status, 400, "the session is gone");
    // SSE: a second stream without Last-Event-ID on a session whose stream is attached.
    const c = await rawConnect(srv.port);
    c.write("GET /socket.io/?EIO=4&transport=sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    await until(() => /"sid":"([^"]+)"/.test(c.buf.toString()), 5000, "SSE handshake");
    const ssid = /"sid":"([^"]+)"/.exec(c.buf.toString())[1];
    const r2 = await rawRequest(srv.port, `GET /socket.io/?EIO=4&transport=sse&sid=${ssid} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    assert.equal(r2.status, 400, "the second stream is refused");
    assert.ok(!c.ended, "the first stream goes on");
    c.destroy();
  });
});

test("requests on another session's sid from a different Origin: 403, the victim goes on", async () => {
  await underAttack("foreign origin", async () => {
    const victim = io(srv.url, { forceNew: true, reconnection: false, transports: ["polling"], extraHeaders: { origin: GOOD_ORIGIN } });
    const errs = [];
    victim.on("disconnect", (r) => errs.push(r));
    await new Promise((r) => victim.once("connect", r));
    const sid = victim.io.engine.id;
    const url = `${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const evil = { origin: "http://evil.example" };
    assert.equal((await fetch(url, { headers: evil })).status, 403, "GET poll from a foreign Origin");
    assert.equal((await fetch(url, { method: "POST", headers: evil, body: "1" })).status, 403, "POST from a foreign Origin");
    const r = await rawRequest(srv.port, `GET /socket.io/?EIO=4&transport=websocket&sid=${sid} HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    assert.equal(r.status, 403, "WebSocket upgrade from a foreign Origin");
    const s = await rawRequest(srv.port, `GET /socket.io/?EIO=4&transport=sse&sid=${sid} HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\nAccept: text/event-stream\r\n\r\n`);
    assert.equal(s.status, 403, "SSE stream from a foreign Origin");
    assert.equal((await victim.timeout(5000).emitWithAck("join", { room: "v" })).ok, true, "the victim still works");
    assert.deepEqual(errs, []);
    victim.disconnect();
  });
});

test("connections over max_connections (ulimit -n 128: 96) are closed at once; the server keeps its descriptors", async () => {
  // tools/ferry as a user starts it under a low descriptor limit: max_connections defaults to
  // that limit less 32. The good clients are on WebSocket: while the server is full, a polling
  // client's next new connection would be refused like any other.
  const main = srv;
  srv = await startServer("/bin/sh", ["-c", 'ulimit -n 128 && exec "$0" "$@"', bin("tools/ferry/ferry"),
    "--port", "0", "--allow-publish", "message"]);
  try {
    await underAttack("max connections", async () => {
      const socks = [];
      for (let i = 0; i < 300; i++) {
        const s = net.connect(srv.port, "127.0.0.1");
        s.on("error", () => {});
        s.got = "";
        s.ended = false;
        s.on("data", (d) => (s.got += d));
        s.on("close", () => (s.ended = true));
        s.write("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n");
        socks.push(s);
        if (i % 50 === 49) await sleep(50);
      }
      await until(() => socks.filter((s) => s.ended || s.got.includes("\r\n\r\n")).length === 300, 15000, "every connection answered or closed");
      const answered = socks.filter((s) => s.got.startsWith("HTTP/1.1 200")).length;
      const refused = socks.filter((s) => s.ended && s.got === "").length;
      console.log(`# max connections: ${answered} answered, ${refused} closed without an answer, server fds ${usage().fds}`);
      assert.ok(answered > 0 && answered <= 96, `at most max_connections served (${answered})`);
      assert.ok(refused >= 300 - 96, `the rest closed at once (${refused})`);
      assert.ok(usage().fds <= 128, "within the descriptor limit");
      for (const s of socks) s.destroy();
    }, { fds: 128, good: [["websocket"], ["websocket"]] });
  } finally {
    assert.equal(await srv.stop(), 0);
    srv = main;
  }
});

test("a deflate bomb with permessage-deflate on (examples/ws-echo --deflate): close 1009, memory bounded", async () => {
  const main = srv;
  srv = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0", "--deflate", "--max-message", "1000000"]);
  try {
    const base = usage();
    // A well-behaved compressed echo client on its own connection.
    const good = new WebSocket(`ws://127.0.0.1:${srv.port}/`, { perMessageDeflate: true });
    const echoes = [];
    const goodErr = [];
    good.on("message", (d) => echoes.push(d.toString()));
    good.on("close", (c) => goodErr.push(`closed ${c}`));
    good.on("error", (e) => goodErr.push(e.message));
    await new Promise((r) => good.once("open", r));
    assert.match(good.extensions, /permessage-deflate/);
    let sent = 0;
    const loop = setInterval(() => good.send(`hello ${++sent} ${"z".repeat(2000)}`), 50);
    let peak = base.rssMb;
    const meter = setInterval(() => (peak = Math.max(peak, usage().rssMb)), 50);
    try {
      for (const size of [50e6, 200e6]) {
        const bomb = new WebSocket(`ws://127.0.0.1:${srv.port}/`, { perMessageDeflate: true });
        bomb.on("error", () => {});
        const closed = new Promise((r) => bomb.on("close", (c) => r(c)));
        await new Promise((r) => bomb.once("open", r));
        assert.match(bomb.extensions, /permessage-deflate/);
        // ws compresses it: 50 MB (then 200 MB) of zeros in about 50 kB (200 kB) on the wire.
        bomb.send(Buffer.alloc(size));
        assert.equal(await Promise.race([closed, sleep(20000).then(() => "open")]), 1009, `the ${size / 1e6} MB bomb gets 1009`);
      }
      await sleep(500);
    } finally {
      clearInterval(loop);
      clearInterval(meter);
    }
    await until(() => echoes.length === sent, 5000, "every echo back");
    assert.deepEqual(goodErr, [], "the good client saw no error");
    echoes.forEach((e, i) => assert.ok(e.startsWith(`hello ${i + 1} `)));
    console.log(`# deflate bomb (extension on): rss ${base.rssMb.toFixed(0)} -> peak ${peak.toFixed(0)} MB, ${sent} echoes`);
    assert.ok(peak - base.rssMb < 60, `RSS grew by less than 60 MB (${(peak - base.rssMb).toFixed(1)})`);
    good.close();
  } finally {
    assert.equal(await srv.stop(), 0);
    srv = main;
  }
});

// An Engine.IO handshake over node:http, from a chosen source address (loopback is all of
// 127/8 on Linux, so 127.0.0.2 is a second client address): {status, headers, body}. An SSE
// stream is cut once its head is in (its body never ends).
function handshakeFrom(port, { localAddress = "127.0.0.1", transport = "polling", headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, localAddress, agent: false, headers,
      path: `/socket.io/?EIO=4&transport=${transport}` }, (res) => {
      if (res.headers["content-type"] === "text/event-stream") {
        resolve({ status: res.statusCode, headers: res.headers, body: "" });
        req.destroy();
        return;
      }
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.setTimeout(10000, () => req.destroy(new Error("handshake timed out")));
    req.on("error", reject);
  });
}

// n handshakes at once (all in flight together, so that at most one token refills meanwhile at
// 1/s): their statuses.
const batch = (n, f) => Promise.all(Array.from({ length: n }, (_, i) => f(i)));
const admitted = (statuses) => statuses.filter((s) => s === 200 || s === 101).length;

test("a flood of handshakes from one address under --new-session-rate: 429 past the bucket, other addresses and live sessions unaffected", async () => {
  const main = srv;
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--allow-publish", "message",
    "--ping-interval", "1500", "--ping-timeout", "1500", "--new-session-rate", "1/20"]);
  try {
    await underAttack("new-session rate", async () => {
      // The good pair took 2 of the 20 tokens of 127.0.0.1 (one more a second since).
      const t0 = Date.now();
      const results = [];
      for (let i = 0; i < 300; i += 50)
        results.push(...await batch(50, (k) => handshakeFrom(srv.port, { transport: k % 3 === 0 ? "sse" : "polling", headers: { accept: "text/event-stream" } })));
      const secs = (Date.now() - t0) / 1000;
      const ok = results.filter((r) => r.status === 200).length;
      const refused = results.filter((r) => r.status === 429);
      console.log(`# new-session rate: ${ok} of 300 handshakes admitted in ${secs.toFixed(1)} s, ${refused.length} refused 429`);
      assert.equal(ok + refused.length, 300, "each handshake admitted or refused 429");
      assert.ok(ok >= 10 && ok <= 20 + secs + 1, `at most the burst plus the refill admitted (${ok})`);
      for (const r of refused) {
        assert.equal(r.headers["retry-after"], "1");
        assert.equal(r.headers["content-type"], "application/json");
        assert.deepEqual(JSON.parse(r.body), { code: 4, message: "Too many new sessions" });
      }
      // WebSocket handshakes from the flooded address are refused the same way.
      const upgrade = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
      const wsStatus = await batch(5, () => rawRequest(srv.port, upgrade).then((r) => r.status));
      assert.ok(admitted(wsStatus) <= 1 && wsStatus.filter((s) => s === 429).length >= 4, `WebSocket handshakes over the rate: ${wsStatus}`);
      // X-Forwarded-For is not trusted by default: it does not open new buckets.
      const xff = await batch(5, (i) => handshakeFrom(srv.port, { headers: { "x-forwarded-for": `203.0.113.${i}` } }).then((r) => r.status));
      assert.ok(admitted(xff) <= 1, `X-Forwarded-For ignored: ${xff}`);
      // A second address has a bucket of its own.
      const other = await handshakeFrom(srv.port, { localAddress: "127.0.0.2" });
      assert.equal(other.status, 200, `127.0.0.2 is admitted: ${other.body}`);
      // An official client from the flooded address, while others keep taking its tokens:
      // refused at first, its reconnection backoff brings it in once they stop.
      let draining = true;
      const drainers = Array.from({ length: 8 }, async () => {
        while (draining) await handshakeFrom(srv.port).catch(() => {});
      });
      await sleep(200);
      const late = io(srv.url, { forceNew: true, transports: ["polling"], reconnectionDelay: 300, reconnectionDelayMax: 1000 });
      const errors = [];
      late.on("connect_error", (e) => errors.push(e.message));
      await sleep(1500);
      draining = false;
      await Promise.all(drainers);
      await until(() => late.connected, 15000, "the official client connects after backing off");
      console.log(`# new-session rate: the official client connected after ${errors.length} refusals (${errors[0]})`);
      assert.ok(errors.length >= 1, "the official client was refused while the address was over its rate");
      late.disconnect();
    }, { fds: 200 }); // 50 handshakes at a time plus 8 drainers: on a loaded machine closes lag
    // behind (103 seen at load 27); a leak of the 300 refused or admitted would pass 200.
    // The bucket refills: a little later the address may open a session again.
    await sleep(1500);
    assert.equal((await handshakeFrom(srv.port)).status, 200, "admitted again after the refill");
  } finally {
    assert.equal(await srv.stop(), 0);
    srv = main;
  }
});

test("--trust-forwarded-for: the rate counts the last X-Forwarded-For address, IPv6 by its /64", async () => {
  const main = srv;
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--new-session-rate", "1/3", "--trust-forwarded-for"]);
  try {
    const from = (xff) => handshakeFrom(srv.port, { headers: xff ? { "x-forwarded-for": xff } : {} }).then((r) => r.status);
    // The first entry is the client's to write; the last is the proxy's, and it counts.
    const a = await batch(10, (i) => from(`198.51.100.${i}, 203.0.113.1`));
    assert.ok(admitted(a) >= 3 && admitted(a) <= 4, `a burst of 3 for 203.0.113.1: ${a}`);
    assert.equal(await from("203.0.113.2"), 200, "another forwarded address has its own bucket");
    const v6 = await batch(10, (i) => from(`2001:db8:1:2:${i}::1`));
    assert.ok(admitted(v6) >= 3 && admitted(v6) <= 4, `an IPv6 /64 is one bucket: ${v6}`);
    assert.equal(await from("2001:db8:1:3::1"), 200, "another /64 has its own");
    assert.equal(await from("not an address"), 200, "an unreadable header counts the peer's address");
    const peer = await batch(10, () => from(""));
    assert.ok(admitted(peer) <= 3, `the peer's bucket (one taken above): ${peer}`);
  } finally {
    assert.equal(await srv.stop(), 0);
    srv = main;
  }
});
