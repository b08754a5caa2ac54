// socket.handshake in C: the official socket.io-client sends a query, extra headers and an
// auth payload; tests/servers/ferry-test-handshake prints every field ferry.h gives for the
// socket (url, query and headers by iteration and by name, address, time, auth, secure) and
// for its Engine.IO session, and the test checks each against what the client sent; over TLS,
// secure is true for the admission hook, the session and the socket.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { MODES } from "../lib/sio.mjs";
import { startHandshakeServer } from "../lib/handshake-server.mjs";
import { makePki } from "../lib/tls.mjs";

function waitEvent(socket, name, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${name}`)), ms);
    socket.once(name, (...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });
}

const pairValue = (pairs, name) => pairs.filter(([n]) => n === name).map(([, v]) => v);
const headerValue = (pairs, name) =>
  pairs.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

describe("socket.handshake through ferry.h", () => {
  let srv;
  before(async () => {
    srv = await startHandshakeServer();
  });
  after(async () => {
    assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
  });

  for (const mode of ["polling", "websocket"]) {
    test(`every field over ${mode}`, async () => {
      const before = Date.now();
      const socket = io(srv.url, {
        ...MODES[mode],
        forceNew: true,
        reconnection: false,
        query: { a: "1", A: "2", "sp ace": "x y&z=é" },
        extraHeaders: { "X-Custom": "v1", "X-Other": "two words" },
        auth: { token: "abc", n: 2, nested: { ok: true } },
      });
      try {
        await waitEvent(socket, "connect");
        const after = Date.now();
        const ev = await srv.next((e) => e.event === "connect" && e.id === socket.id, 10000);
        const hs = ev.handshake;

        // url: the raw request target of the Engine.IO handshake, not decoded.
        assert.ok(hs.url.startsWith(`/socket.io/?`), hs.url);
        assert.match(hs.url, new RegExp(`[?&]transport=${mode}(&|$)`));
        assert.match(hs.url, /[?&]EIO=4(&|$)/);
        assert.match(hs.url, /[?&]sp%20ace=x%20y%26z%3D%C3%A9(&|$)/, "the url is not decoded");

        // query: every pair, decoded, in order; names case-sensitive.
        assert.deepEqual(pairValue(hs.query, "EIO"), ["4"]);
        assert.deepEqual(pairValue(hs.query, "transport"), [mode]);
        assert.deepEqual(pairValue(hs.query, "a"), ["1"]);
        assert.deepEqual(pairValue(hs.query, "A"), ["2"]);
        assert.deepEqual(pairValue(hs.query, "sp ace"), ["x y&z=é"]);
        const names = hs.query.map(([n]) => n);
        assert.ok(names.indexOf("a") < names.indexOf("A"), "in the order of the URL");
        assert.equal(hs.query_a, "1", "lookup of 'a' finds a, not A");
        assert.equal(hs.query_A, "2", "lookup of 'A' finds A, not a");

        // headers: every one, by iteration and by a name in any case.
        assert.deepEqual(headerValue(hs.headers, "x-custom"), ["v1"]);
        assert.deepEqual(headerValue(hs.headers, "x-other"), ["two words"]);
        assert.equal(headerValue(hs.headers, "host")[0], `127.0.0.1:${srv.port}`);
        assert.equal(hs.header_x_custom, "v1", "header lookup ignores case");

        assert.equal(hs.address, "127.0.0.1");
        assert.equal(hs.secure, false, "plain HTTP: handshake.secure is false");
        assert.ok(hs.time >= before - 1000 && hs.time <= after + 1000, `time ${hs.time} in [${before}, ${after}]`);
        assert.deepEqual(hs.auth, { token: "abc", n: 2, nested: { ok: true } });

        // The Engine.IO session gives the same request.
        const es = hs.session;
        assert.equal(es.url, hs.url);
        assert.deepEqual(es.query, hs.query);
        assert.deepEqual(es.headers, hs.headers);
        assert.equal(es.address, hs.address);
        assert.equal(es.secure, false);
        assert.equal(es.query_a, "1");
        assert.equal(es.query_A, "2");
        assert.equal(es.header_x_custom, "v1");
        assert.ok(es.time <= hs.time && es.time >= before - 1000, "the session's handshake came first");
      } finally {
        socket.disconnect();
      }
    });
  }

  test("no query, no extra header, no auth: auth is {} and lookups are null", async () => {
    const socket = io(srv.url, { transports: ["polling"], forceNew: true, reconnection: false });
    try {
      await waitEvent(socket, "connect");
      const ev = await srv.next((e) => e.event === "connect" && e.id === socket.id, 10000);
      assert.deepEqual(ev.handshake.auth, {});
      assert.equal(ev.handshake.query_a, null);
      assert.equal(ev.handshake.header_x_custom, null);
      assert.deepEqual(pairValue(ev.handshake.query, "transport"), ["polling"]);
    } finally {
      socket.disconnect();
    }
  });
});

describe("handshake.secure over TLS", () => {
  let srv;
  let pki;
  before(async () => {
    pki = makePki();
    const { cert, key } = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1");
    srv = await startHandshakeServer(["--tls-cert", cert, "--tls-key", key, "--admission", "1"]);
  });
  after(async () => {
    assert.equal(await srv.stop(), 0, "the TLS test server exits cleanly");
    pki.cleanup();
  });

  for (const mode of ["polling", "websocket"]) {
    test(`secure is true for the admission, the session and the socket over ${mode}`, async () => {
      const socket = io(`https://127.0.0.1:${srv.port}`, {
        ...MODES[mode],
        ca: pki.caPem,
        forceNew: true,
        reconnection: false,
        query: { token: `tls-${mode}` },
      });
      try {
        await waitEvent(socket, "connect");
        const adm = await srv.next((e) => e.event === "admission" && e.token === `tls-${mode}`);
        assert.equal(adm.secure, true, "ferry_admission_secure()");
        const ev = await srv.next((e) => e.event === "connect" && e.id === socket.id, 10000);
        assert.equal(ev.handshake.secure, true, "ferry_socket_secure()");
        assert.equal(ev.handshake.session.secure, true, "ferry_session_secure()");
        assert.deepEqual(pairValue(ev.handshake.query, "token"), [`tls-${mode}`]);
      } finally {
        socket.disconnect();
      }
    });
  }
});
