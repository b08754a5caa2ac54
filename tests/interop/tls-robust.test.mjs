// TLS under bad input and over time (docs/tls.md): garbage and truncated handshakes never
// crash or leak (the ASan build's exit code after SIGTERM says so), the handshake timeout and
// the cap on handshakes in flight hold, a certificate reload on SIGHUP keeps open sessions
// exchanging messages while new connections get the new certificate, and bad TLS settings
// stop tools/ferry with one clear line.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { spawnSync } from "node:child_process";
import { io } from "socket.io-client";
import { startServer, bin, once } from "../lib/server.mjs";
import { makePki, peek } from "../lib/tls.mjs";

const FERRY = bin("tools/ferry/ferry");
let pki, main, other;

before(() => {
  pki = makePki();
  main = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1");
  other = pki.issue("other.test", "DNS:other.test");
});
after(() => pki.cleanup());

// A real ClientHello, as Node sends it, captured from a plain TCP server.
function captureClientHello() {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      s.once("data", (d) => {
        resolve(d);
        s.destroy();
        srv.close();
      });
    });
    srv.listen(0, "127.0.0.1", () => {
      const c = tls.connect({ port: srv.address().port, host: "127.0.0.1", servername: "localhost" });
      c.on("error", () => {});
    });
  });
}

// Send bytes, optionally end or hang; resolve with { data, closedAfterMs } once the server
// closes the connection.
function poke(port, bytes, { end = true, ms = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s = net.connect(port, "127.0.0.1", () => {
      if (bytes.length) s.write(bytes);
      if (end) s.end();
    });
    const chunks = [];
    s.on("data", (d) => chunks.push(d));
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks), closedAfterMs: Date.now() - t0 });
    });
    const t = setTimeout(() => (s.destroy(), reject(new Error("the server never closed"))), ms);
  });
}

async function roundTrip(port) {
  const s = io(`https://localhost:${port}`, { forceNew: true, reconnection: false,
    transports: ["websocket"], ca: pki.caPem });
  await once(s, "connect", 10000);
  const r = await s.timeout(10000).emitWithAck("join", { room: "probe" });
  s.disconnect();
  return r.ok;
}

test("garbage, truncated and cut handshakes: closed by the server, no crash, no leak", async () => {
  const srv = await startServer(FERRY, ["--port", "0", "--tls-cert", main.cert, "--tls-key",
    main.key, "--tls-handshake-timeout", "1500"]);
  try {
    const hello = await captureClientHello();
    assert.equal(hello[0], 0x16, "a TLS handshake record");
    const rnd = (n) => crypto.randomBytes(n);
    const cases = [
      ["random bytes", Buffer.concat([Buffer.from([0x01]), rnd(300)])],
      ["a handshake record of garbage", Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00]), rnd(256)])],
      ["an oversized record length", Buffer.concat([Buffer.from([0x16, 0x03, 0x03, 0xff, 0xff]), rnd(64)])],
      ["an alert record", Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])],
      ["half a ClientHello, then EOF", hello.subarray(0, hello.length >> 1)],
      ["a ClientHello, then EOF", hello],
      ["a ClientHello with a flipped byte", Buffer.from(hello).fill(0x42, 60, 70)],
      ["nothing, then EOF", Buffer.alloc(0)],
    ];
    for (const [name, bytes] of cases) {
      const r = await poke(srv.port, bytes);
      assert.ok(r.closedAfterMs < 5000, `${name}: closed by the server (${r.closedAfterMs} ms)`);
    }
    // Many at once, with every split point of the ClientHello's first bytes.
    const all = [];
    for (let i = 1; i < 120; i++) all.push(poke(srv.port, hello.subarray(0, i * 3 % hello.length)));
    for (let i = 0; i < 40; i++) all.push(poke(srv.port, rnd(1 + i * 37)));
    await Promise.all(all);
    // A client that stops mid-handshake is cut at the handshake timeout.
    const hung = await poke(srv.port, hello.subarray(0, 40), { end: false });
    assert.ok(hung.closedAfterMs >= 1300 && hung.closedAfterMs < 6000,
      `cut after the 1500 ms handshake timeout, not ${hung.closedAfterMs} ms`);
    // A completed handshake cut before any request.
    await new Promise((resolve, reject) => {
      const c = tls.connect({ port: srv.port, host: "127.0.0.1", ca: pki.caPem, servername: "localhost" },
        () => (c.destroy(), resolve()));
      c.on("error", reject);
    });
    assert.equal(await roundTrip(srv.port), true, "the server still serves");
  } finally {
    assert.equal(await srv.stop(), 0, "exits 0: no crash, no leak (LeakSanitizer)");
  }
});

test("--tls-max-handshakes: one more handshake is refused at once; idle connections do not count", async () => {
  const srv = await startServer(FERRY, ["--port", "0", "--tls-cert", main.cert, "--tls-key",
    main.key, "--tls-max-handshakes", "3", "--tls-handshake-timeout", "20000"]);
  try {
    const hello = await captureClientHello();
    // Idle TCP connections: not handshaking, so not counted.
    const idle = [];
    for (let i = 0; i < 5; i++) {
      const s = net.connect(srv.port, "127.0.0.1");
      s.on("error", () => {});
      await once(s, "connect");
      idle.push(s);
    }
    assert.ok((await peek(srv.port, { ca: pki.caPem, servername: "localhost" })).cn,
      "idle connections do not keep a real client out");
    // Three handshakes started and left hanging (half a ClientHello each): the limit.
    const slow = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect(srv.port, "127.0.0.1", () => s.write(hello.subarray(0, 40)));
      s.on("error", () => {});
      await once(s, "connect");
      slow.push(s);
    }
    // The server reads them in order before this one's bytes (one loop, accept order):
    // wait until a fourth is refused, bounded.
    let refused = false;
    for (let i = 0; i < 50 && !refused; i++) {
      const r = await poke(srv.port, hello.subarray(0, 40), { end: false, ms: 5000 }).catch(() => null);
      refused = r !== null && r.closedAfterMs < 3000;
    }
    assert.ok(refused, "a handshake over the limit is closed at once");
    for (const s of slow) s.destroy();
    // Room again: handshakes are admitted.
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++)
      ok = await peek(srv.port, { ca: pki.caPem, servername: "localhost" }).then(() => true, () => false);
    assert.ok(ok, "a handshake succeeds once the slow ones are gone");
    for (const s of idle) s.destroy();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

function waitFor(getText, re, ms = 15000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      const m = re.exec(getText());
      if (m) return resolve(m);
      if (Date.now() - t0 > ms) return reject(new Error(`timeout waiting for ${re}: ${getText()}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

test("SIGHUP reloads the certificates: open sessions go on, new connections get the new one", async () => {
  const dir = fs.mkdtempSync(`${pki.dir}/reload-`);
  const cert = `${dir}/server.pem`;
  const key = `${dir}/server.key`;
  fs.copyFileSync(main.cert, cert);
  fs.copyFileSync(main.key, key);
  const srv = await startServer(FERRY, ["--port", "0", "--tls-cert", cert, "--tls-key", key,
    "--allow-publish", "message", "--transports", "polling,websocket"]);
  const url = `https://localhost:${srv.port}`;
  const clients = [];
  try {
    const before = await peek(srv.port, { ca: pki.caPem, servername: "localhost" });
    const mk = async (transports) => {
      const s = io(url, { forceNew: true, reconnection: false, transports, ca: pki.caPem });
      clients.push(s);
      await once(s, "connect", 10000);
      assert.equal((await s.timeout(10000).emitWithAck("join", { room: "hup" })).ok, true);
      return s;
    };
    const [ws, poll] = [await mk(["websocket"]), await mk(["polling"])];
    let disconnects = 0;
    for (const s of [ws, poll]) s.on("disconnect", () => disconnects++);
    const exchange = async (tag) => {
      for (const [from, to] of [[ws, poll], [poll, ws]]) {
        const got = once(to, "message", 10000);
        const ack = await from.timeout(10000).emitWithAck("publish",
          { room: "hup", event: "message", data: tag });
        assert.equal(ack.ok, true);
        const v = await got;
        assert.equal(Array.isArray(v) ? v[0] : v, tag);
      }
    };
    await exchange("before");

    // A new certificate for the same name, over the same files.
    const fresh = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1", "fresh");
    fs.copyFileSync(fresh.cert, cert);
    fs.copyFileSync(fresh.key, key);
    srv.proc.kill("SIGHUP");
    await waitFor(srv.stderr, /certificates reloaded/);
    const afterHup = await peek(srv.port, { ca: pki.caPem, servername: "localhost" });
    assert.notEqual(afterHup.fingerprint, before.fingerprint, "new connections: new certificate");
    await exchange("after");
    assert.equal(disconnects, 0, "no session dropped");

    // A broken key: the reload fails with a clear line and the certificate in use stays.
    fs.writeFileSync(key, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
    srv.proc.kill("SIGHUP");
    await waitFor(srv.stderr, /reload failed/);
    assert.equal((await peek(srv.port, { ca: pki.caPem, servername: "localhost" })).fingerprint,
      afterHup.fingerprint);
    await exchange("still");
    assert.equal(disconnects, 0);
  } finally {
    for (const s of clients) s.disconnect();
    assert.equal(await srv.stop(), 0);
  }
});

test("without TLS, SIGHUP is ignored (one line), not the end of the server", async () => {
  const srv = await startServer(FERRY, ["--port", "0"]);
  try {
    srv.proc.kill("SIGHUP");
    await waitFor(srv.stderr, /SIGHUP: nothing to reload/);
    const res = await fetch(`http://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 200, "still serving");
    await res.text();
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test("FERRY_TLS_CERT / FERRY_TLS_KEY, with commas for SNI certificates", async () => {
  const srv = await startServer(FERRY, ["--port", "0"], {
    env: { FERRY_TLS_CERT: `${main.cert},${other.cert}`, FERRY_TLS_KEY: `${main.key},${other.key}` } });
  try {
    assert.match(srv.stdout(), /listening on https:\/\//);
    assert.equal((await peek(srv.port, { ca: pki.caPem, servername: "other.test" })).cn, "other.test");
    assert.equal((await peek(srv.port, { ca: pki.caPem, servername: "localhost" })).cn, "localhost");
  } finally {
    assert.equal(await srv.stop(), 0);
  }
});

test("bad TLS settings stop tools/ferry with one clear line", () => {
  const run = (args) => spawnSync(FERRY, ["--port", "0", ...args], { encoding: "utf8", timeout: 15000 });
  const cases = [
    [["--tls-cert", main.cert], 2, /1 TLS certificate\(s\) but 0 key\(s\)/],
    [["--http-port", "0"], 2, /--http-port .* give --tls-cert/],
    [["--tls-cert", main.cert, "--tls-key", main.key, "--tls-min-version", "1.1"], 2, /use 1\.2 or 1\.3/],
    [["--tls-cert", main.cert, "--tls-key", main.key, "--http-mode", "maybe"], 2, /redirect or serve/],
    [["--tls-cert", main.cert, "--tls-key", other.key], 1, /cannot use the certificate .* key/],
    [["--tls-cert", "/nonexistent.pem", "--tls-key", main.key], 1, /cannot use the certificate/],
    [["--tls-cert", main.cert, "--tls-key", main.key, "--tls-ciphers", "NOPE-NOTHING"], 1, /cannot set up TLS/],
  ];
  for (const [args, code, re] of cases) {
    const r = run(args);
    assert.equal(r.status, code, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(" "));
  }
});

test("SIGTERM with handshakes in flight and TLS sessions open: clients told, exit 0", async () => {
  const srv = await startServer(FERRY, ["--port", "0", "--tls-cert", main.cert, "--tls-key",
    main.key]);
  const hello = await captureClientHello();
  const idle = [];
  for (const bytes of [Buffer.alloc(0), hello.subarray(0, 30)]) {
    const s = net.connect(srv.port, "127.0.0.1", () => bytes.length && s.write(bytes));
    s.on("error", () => {});
    idle.push(once(s, "close", 15000));
  }
  const clients = [];
  for (const transports of [["websocket"], ["polling"]]) {
    const s = io(`https://localhost:${srv.port}`, { forceNew: true, reconnection: false,
      transports, ca: pki.caPem });
    await once(s, "connect", 10000);
    clients.push([s, once(s, "disconnect", 15000)]);
  }
  assert.equal(await srv.stop(), 0, "exits 0: no leak with TLS state in every phase");
  await Promise.all(idle);
  // Each client hears the end (polling's reason is "transport error" on a plain server too).
  for (const [s, gone] of clients) {
    assert.match(String(await gone), /transport (close|error)/);
    s.disconnect();
  }
});
