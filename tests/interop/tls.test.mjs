// TLS in front of every transport (docs/tls.md): tools/ferry with --tls-cert/--tls-key and a
// throw-away CA made with the openssl command. The official socket.io-client (Node) over wss
// and https polling, ferry's SSE and short-polling through the extension client, the plain
// WebSocket route (examples/ws-echo) over wss; protocol versions and ALPN with openssl
// s_client; SNI; plain HTTP on the TLS port; the http port beside it (redirect or serve).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import https from "node:https";
import http from "node:http";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { startServer, bin, once } from "../lib/server.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";
import { makePki, peek, sClient } from "../lib/tls.mjs";

let pki, main, other, srv;
const sockets = [];

before(async () => {
  pki = makePki();
  main = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1");
  other = pki.issue("other.test", "DNS:other.test,DNS:*.other.test");
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--tls-cert", main.cert,
    "--tls-key", main.key, "--tls-cert", other.cert, "--tls-key", other.key,
    "--http-port", "0", "--transports", "polling,websocket,sse,short-polling",
    "--allow-publish", "message", "--allow-join", "*"]);
  srv.url = `https://localhost:${srv.port}`;
  srv.httpPort = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(srv.stdout())[1]);
});
after(async () => {
  for (const s of sockets) s.disconnect();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
  pki.cleanup();
});

async function client(name, opts) {
  const s = io(srv.url, { forceNew: true, reconnection: false, auth: { name }, ca: pki.caPem,
    ...opts });
  sockets.push(s);
  await once(s, "connect", 10000);
  return s;
}
const call = (s, event, arg) => s.timeout(10000).emitWithAck(event, arg);

for (const [mode, opts] of [["websocket (wss)", { transports: ["websocket"] }],
  ["https polling", { transports: ["polling"] }],
  ["polling upgraded to wss", { transports: ["polling", "websocket"] }]]) {
  test(`socket.io-client over ${mode}: messages both ways through a room`, async () => {
    const room = `r-${mode.replace(/\W/g, "")}`;
    const [a, b] = [await client("ann", opts), await client("bob", opts)];
    if (opts.transports.length === 2 && a.io.engine.transport.name !== "websocket")
      await once(a.io.engine, "upgrade", 10000);
    assert.deepEqual((await call(a, "join", { room })).ok, true);
    assert.deepEqual((await call(b, "join", { room })).ok, true);
    for (const [from, to, n] of [[a, b, 1], [b, a, 2]]) {
      const got = once(to, "message", 10000);
      // Large enough for several TLS records, with multi-byte UTF-8.
      const data = { n, text: "héllo ✓ ".repeat(5000) };
      assert.equal((await call(from, "publish", { room, event: "message", data })).ok, true);
      assert.deepEqual((await got)[0] ?? (await got), data);
    }
    assert.equal(a.io.engine.transport.name, opts.transports.at(-1));
    a.disconnect();
    b.disconnect();
  });
}

for (const transport of ["sse", "short-polling"]) {
  test(`${transport} over https: Socket.IO packets both ways`, async () => {
    const peer = await client("peer", { transports: ["websocket"] });
    const room = `x-${transport}`;
    assert.equal((await call(peer, "join", { room })).ok, true);
    const c = new ExtClient(`${srv.url}/socket.io/`, { transport, ca: pki.caPem });
    const inbox = [];
    const waiters = [];
    c.on("message", (m) => {
      inbox.push(m);
      for (const w of waiters.splice(0)) w();
    });
    const next = async (pred, ms = 10000) => {
      const end = Date.now() + ms;
      for (;;) {
        const i = inbox.findIndex(pred);
        if (i >= 0) return inbox.splice(i, 1)[0];
        if (Date.now() > end) throw new Error(`timeout; inbox ${JSON.stringify(inbox)}`);
        await new Promise((r) => (waiters.push(r), setTimeout(r, 200)));
      }
    };
    await c.open();
    c.send('0{"name":"ext"}');
    await next((m) => m.startsWith("0{"));
    c.send(`21["join",{"room":"${room}"}]`);
    assert.match(await next((m) => m.startsWith("31")), /"ok":true/);
    // ext -> peer
    const got = once(peer, "message", 10000);
    c.send(`22["publish",{"room":"${room}","event":"message","data":"from ${transport}"}]`);
    assert.match(await next((m) => m.startsWith("32")), /"ok":true/);
    assert.equal(await got.then((v) => (Array.isArray(v) ? v[0] : v)), `from ${transport}`);
    // peer -> ext
    assert.equal((await call(peer, "publish", { room, event: "message", data: "to ext" })).ok, true);
    assert.match(await next((m) => m.startsWith('2["message"')), /"to ext"/);
    c.close();
    peer.disconnect();
  });
}

test("openssl s_client: TLS 1.1 refused, 1.2 and 1.3 accepted with ALPN http/1.1", async () => {
  const old = await sClient(srv.port, ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
  assert.match(old, /alert protocol version|no protocols available|wrong version/, old);
  assert.match(old, /Cipher is \(NONE\)/, old);
  for (const [flag, name] of [["-tls1_2", "TLSv1.2"], ["-tls1_3", "TLSv1.3"]]) {
    const out = await sClient(srv.port, [flag, "-alpn", "http/1.1", "-CAfile", pki.ca,
      "-servername", "localhost"]);
    assert.match(out, new RegExp(`New, ${name.replace(".", "\\.")}, Cipher is`), out);
    assert.match(out, /ALPN protocol: http\/1\.1/, out);
    assert.match(out, /Verify return code: 0 \(ok\)/, out);
  }
  // TLS 1.2 offers only forward-secret AEAD suites by default.
  const cbc = await sClient(srv.port, ["-tls1_2", "-cipher", "AES128-SHA"]);
  assert.match(cbc, /Cipher is \(NONE\)/, cbc);
  // ALPN without http/1.1: refused (RFC 7301), not silently spoken to.
  const h2 = await sClient(srv.port, ["-alpn", "h2"]);
  assert.match(h2, /no application protocol/, h2);
});

test("SNI picks the certificate; no SNI or an unknown name gets the default", async () => {
  const ca = pki.caPem;
  assert.equal((await peek(srv.port, { ca, servername: "other.test" })).cn, "other.test");
  assert.equal((await peek(srv.port, { ca, servername: "a.other.test" })).cn, "other.test");
  const def = await peek(srv.port, { ca, servername: "localhost", ALPNProtocols: ["http/1.1"] });
  assert.equal(def.cn, "localhost");
  assert.equal(def.alpn, "http/1.1");
  assert.equal(def.protocol, "TLSv1.3", "TLS 1.3 is preferred");
  assert.equal((await peek(srv.port, { ca, servername: "" })).cn, "localhost");
  await assert.rejects(peek(srv.port, { ca, servername: "nobody.test" }), /altnames|Hostname/);
});

function rawHttp(port, text) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(text));
    let out = "";
    s.on("data", (d) => (out += d));
    s.on("close", () => resolve(out));
    s.on("error", (e) => (e.code === "ECONNRESET" ? resolve(out) : reject(e)));
    s.setTimeout(10000, () => (s.destroy(), reject(new Error(`no close; got ${out}`))));
  });
}

test("plain HTTP on the TLS port: sent to the same URL over https, or told; then closed", async () => {
  const target = "/socket.io/?EIO=4&transport=polling";
  const out = await rawHttp(srv.port, `GET ${target} HTTP/1.1\r\nHost: localhost:${srv.port}\r\n\r\n`);
  assert.match(out, /^HTTP\/1\.1 308 Permanent Redirect\r\n/);
  assert.ok(out.includes(`\r\nLocation: https://localhost:${srv.port}${target}\r\n`), out);
  const noHost = await rawHttp(srv.port, "GET / HTTP/1.0\r\n\r\n");
  assert.match(noHost, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(noHost, /use https:\/\//);
});

test("the http port redirects to https (308, same host and target)", async () => {
  const out = await rawHttp(srv.httpPort,
    "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost:1234\r\nConnection: close\r\n\r\n");
  assert.match(out, /^HTTP\/1\.1 308 Permanent Redirect\r\n/);
  assert.match(out, new RegExp(`\\r\\nLocation: https://localhost:${srv.port}/socket\\.io/\\?EIO=4&transport=polling\\r\\n`));
  const bad = await rawHttp(srv.httpPort, "GET / HTTP/1.1\r\nHost: a\"b\r\nConnection: close\r\n\r\n");
  assert.match(bad, /^HTTP\/1\.1 400 /, "a Host that is not a host name is not echoed");
  // Followed, the redirect reaches the engine over TLS.
  const loc = /Location: (\S+)/.exec(out)[1];
  const body = await new Promise((resolve, reject) => {
    https.get(loc, { ca: pki.caPem }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => resolve(b));
    }).on("error", reject);
  });
  assert.match(body, /^0\{"sid":/);
});

test("--http-mode serve: the http port serves as the TLS port does", async () => {
  const s2 = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--tls-cert", main.cert,
    "--tls-key", main.key, "--http-port", "0", "--http-mode", "serve"]);
  try {
    assert.match(s2.stdout(), /listening on https:\/\/127\.0\.0\.1:\d+/);
    const hp = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(s2.stdout())[1]);
    const s = io(`http://127.0.0.1:${hp}`, { forceNew: true, reconnection: false,
      transports: ["websocket"] });
    await once(s, "connect", 10000);
    assert.equal((await call(s, "join", { room: "plain" })).ok, true);
    s.disconnect();
  } finally {
    assert.equal(await s2.stop(), 0);
  }
});

test("a plain WebSocket route (examples/ws-echo) over wss: text, binary, 1 MB, a 12 MB burst", async () => {
  const echo = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0",
    "--tls-cert", main.cert, "--tls-key", main.key]);
  try {
    const ws = new WebSocket(`wss://localhost:${echo.port}/`, { ca: pki.caPem });
    await once(ws, "open", 10000);
    const big = Buffer.alloc(1 << 20, 7);
    big[12345] = 1;
    for (const [msg, binary] of [["héllo", false], [Buffer.from([0, 1, 2, 255]), true],
      [big, true], ["x".repeat(70000), false]]) {
      const got = once(ws, "message", 10000);
      ws.send(msg, { binary });
      const [data, isBinary] = await got;
      assert.equal(isBinary, binary);
      assert.ok(Buffer.from(msg).equals(data), "echoed unchanged");
    }
    // A burst larger than the server's read and write bounds, sent before any echo is read:
    // reading pauses and resumes under TLS too, and every byte comes back in order.
    const N = 60;
    const burst = Array.from({ length: N }, (_, i) => {
      const b = Buffer.alloc(200000, i);
      b.writeUInt32BE(i, 0);
      return b;
    });
    let n = 0;
    let bad = 0;
    const all = new Promise((resolve) => ws.on("message", (d) => {
      if (!d.equals(burst[n])) bad++;
      if (++n === N) resolve();
    }));
    for (const b of burst) ws.send(b);
    let timer;
    await Promise.race([all, new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${n} of ${N} echoed`)), 60000);
    })]).finally(() => clearTimeout(timer));
    assert.equal(bad, 0, "echoed unchanged and in order");
    ws.close(1000);
    assert.equal((await once(ws, "close", 10000))[0], 1000);
  } finally {
    assert.equal(await echo.stop(), 0);
  }
});

test("--tls-min-version 1.3 refuses TLS 1.2; --tls-ciphers narrows the TLS 1.2 list", async () => {
  const s13 = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--tls-cert", main.cert,
    "--tls-key", main.key, "--tls-min-version", "1.3"]);
  try {
    const old = await sClient(s13.port, ["-tls1_2"]);
    assert.match(old, /Cipher is \(NONE\)/, old);
    const ok = await sClient(s13.port, ["-tls1_3", "-CAfile", pki.ca, "-servername", "localhost"]);
    assert.match(ok, /New, TLSv1\.3, Cipher is/, ok);
  } finally {
    assert.equal(await s13.stop(), 0);
  }
  const one = "ECDHE-ECDSA-CHACHA20-POLY1305";
  const sc = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--tls-cert", main.cert,
    "--tls-key", main.key, "--tls-ciphers", one]);
  try {
    const got = await sClient(sc.port, ["-tls1_2", "-CAfile", pki.ca]);
    assert.match(got, new RegExp(`Cipher is ${one}`), got);
    const other = await sClient(sc.port, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert.match(other, /Cipher is \(NONE\)/, other);
  } finally {
    assert.equal(await sc.stop(), 0);
  }
});

test("a broadcast over TLS: 60 clients (wss and https polling) get every publish whole and in order", async () => {
  const clients = [];
  try {
    for (let i = 0; i < 60; i++)
      clients.push(io(srv.url, { forceNew: true, reconnection: false, ca: pki.caPem,
        transports: i % 5 === 0 ? ["polling"] : ["websocket"] }));
    sockets.push(...clients);
    await Promise.all(clients.map((s) => once(s, "connect", 30000)));
    for (const s of clients) assert.equal((await call(s, "join", { room: "bcast" })).ok, true);
    const N = 20;
    const big = "é".repeat(6000); // each publish spans records: encrypted per session
    const got = clients.map(() => []);
    const all = new Promise((resolve) => clients.forEach((s, i) => s.on("message", (d) => {
      got[i].push(d.n);
      if (got.every((g, k) => k === 0 || g.length === N)) resolve();
    })));
    for (let n = 0; n < N; n++)
      assert.equal((await call(clients[0], "publish", { room: "bcast", event: "message",
        data: { n, big } })).ok, true);
    let timer;
    await Promise.race([all, new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`got ${got.map((g) => g.length)}`)), 60000);
    })]).finally(() => clearTimeout(timer));
    const want = Array.from({ length: N }, (_, k) => k);
    for (let i = 1; i < clients.length; i++) assert.deepEqual(got[i], want, `client ${i}`);
  } finally {
    for (const s of clients) s.disconnect();
  }
});
