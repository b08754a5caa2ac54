// The Socket.IO interop suite against ferry-test-sio, run once per transport mode by
// tests/interop/socketio-{polling,websocket,upgrade}.test.mjs with the official
// socket.io-client: events both ways, acks both ways with timeouts, namespaces over one
// session, auth accepted and refused (also by an asynchronous middleware), dynamic namespaces,
// binary arguments mixed with JSON, and disconnect reasons on both sides.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startSio, offersWebSocket, WS_ABSENT, MODES } from "./sio.mjs";

function waitEvent(socket, name, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${name}`)), ms);
    socket.once(name, (...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });
}

export function defineSuite(mode) {
  describe(`socket.io-client over ${mode}`, () => {
    let srv;
    let skip = false;
    const opened = [];
    before(async () => {
      srv = await startSio(["--ping-interval", "1000", "--ping-timeout", "1000"]);
      if (mode !== "polling") skip = !(await offersWebSocket(srv.url));
    });
    after(async () => {
      for (const s of opened) s.disconnect();
      assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
    });

    // A connected client socket, and the server's view of its connection.
    async function connect(t, nsp = "/", opts = {}) {
      if (skip) {
        t.skip(WS_ABSENT);
        return null;
      }
      const socket = io(srv.url + nsp, { ...MODES[mode], forceNew: true, reconnection: false, ...opts });
      opened.push(socket);
      const [auth] = await waitEvent(socket, "auth");
      const conn = await srv.next((e) => e.event === "connect" && e.id === socket.id);
      if (mode === "upgrade" && socket.io.engine.transport.name !== "websocket")
        await waitEvent(socket.io.engine, "upgrade");
      return { socket, auth, conn };
    }

    test("connects; the server sees the auth payload and the transport", async (t) => {
      const c = await connect(t, "/", { auth: { user: "ann", n: 1 } });
      if (!c) return;
      assert.deepEqual(c.auth, { user: "ann", n: 1 });
      assert.deepEqual(c.conn.auth, { user: "ann", n: 1 });
      assert.equal(c.conn.nsp, "/");
      assert.notEqual(c.conn.sid, c.socket.id, "the socket id is not the engine session id");
      const want = mode === "polling" ? "polling" : "websocket";
      assert.equal(c.socket.io.engine.transport.name, want);
    });

    test("events both ways, in order, JSON arguments intact", async (t) => {
      const c = await connect(t);
      if (!c) return;
      const got = [];
      const done = new Promise((resolve) =>
        c.socket.on("message-back", (...args) => {
          got.push(args);
          if (got.length === 20) resolve();
        }),
      );
      for (let i = 0; i < 20; i++) c.socket.emit("message", i, "two", { three: [true, null, 3.5] }, "é🙂");
      await done;
      for (let i = 0; i < 20; i++) assert.deepEqual(got[i], [i, "two", { three: [true, null, 3.5] }, "é🙂"]);
      const ev = await srv.next((e) => e.event === "event" && e.id === c.socket.id && e.name === "message");
      assert.deepEqual(ev.args, [0, "two", { three: [true, null, 3.5] }, "é🙂"]);
    });

    test("the client's ack request is answered with the server's arguments", async (t) => {
      const c = await connect(t);
      if (!c) return;
      const reply = await c.socket.timeout(3000).emitWithAck("message-with-ack", 1, "2", { 3: [false] });
      assert.equal(reply, 1);
      // emitWithAck resolves with the first argument; check all of them with a callback.
      const all = await new Promise((resolve) => c.socket.emit("message-with-ack", "a", { b: 2 }, (...a) => resolve(a)));
      assert.deepEqual(all, ["a", { b: 2 }]);
    });

    test("a client ack that never comes fails on the client after its timeout", async (t) => {
      const c = await connect(t);
      if (!c) return;
      // "nothing" has no server handler but the catch-all, which does not answer acks.
      await assert.rejects(c.socket.timeout(200).emitWithAck("nothing"), /operation has timed out/);
    });

    test("the server's ack request is answered by the client", async (t) => {
      const c = await connect(t);
      if (!c) return;
      c.socket.on("question", (x, cb) => cb("answer", x * 2));
      c.socket.emit("ask", "question", 3000, 21);
      const [result] = await waitEvent(c.socket, "ask-result");
      assert.deepEqual(result, { status: "ok", args: ["answer", 42] });
      const ev = await srv.next((e) => e.event === "server-ack" && e.id === c.socket.id);
      assert.equal(ev.status, "ok");
    });

    test("the server's ack request times out when the client does not answer", async (t) => {
      const c = await connect(t);
      if (!c) return;
      c.socket.on("question", () => {}); // no callback call
      const t0 = Date.now();
      c.socket.emit("ask", "question", 300, 1);
      const [result] = await waitEvent(c.socket, "ask-result");
      assert.deepEqual(result, { status: "timeout", args: null });
      assert.ok(Date.now() - t0 >= 250, "not before the timeout");
    });

    test("binary arguments mixed with JSON, both ways", async (t) => {
      const c = await connect(t);
      if (!c) return;
      c.socket.emit("binary");
      const args = await waitEvent(c.socket, "binary");
      assert.equal(args[0], "text");
      assert.deepEqual([...args[1]], [1, 2, 3]);
      assert.deepEqual([...args[2].nested], [0xff]);
      assert.equal(args[2].n, 1);
      const big = Buffer.alloc(70000, 7);
      const sent = ["x", Buffer.from([0, 1, 2, 255]), { deep: [Buffer.from("hi"), 5] }, big];
      c.socket.emit("message", ...sent);
      const back = await waitEvent(c.socket, "message-back");
      assert.equal(back[0], "x");
      assert.deepEqual([...back[1]], [0, 1, 2, 255]);
      assert.equal(Buffer.from(back[2].deep[0]).toString(), "hi");
      assert.equal(back[2].deep[1], 5);
      assert.ok(Buffer.from(back[3]).equals(big));
      const ack = await new Promise((resolve) => c.socket.emit("message-with-ack", Buffer.from([9]), "j", (...a) => resolve(a)));
      assert.deepEqual([...ack[0]], [9]);
      assert.equal(ack[1], "j");
    });

    test("volatile emits are dropped while the client is behind, never reordered", async (t) => {
      const c = await connect(t);
      if (!c) return;
      const got = [];
      c.socket.on("v", (i) => got.push(i));
      c.socket.emit("volatile", 50);
      await c.socket.timeout(3000).emitWithAck("message-with-ack", "sync");
      assert.ok(got.length >= 1 && got.length < 50, `received ${got.length} of 50`);
      assert.equal(got[0], 0, "the first one goes out");
      assert.deepEqual(got, [...got].sort((x, y) => x - y));
    });

    test("several namespaces share one engine session", async (t) => {
      if (skip) return t.skip(WS_ABSENT);
      const main = io(srv.url, { ...MODES[mode], forceNew: true, reconnection: false });
      const custom = main.io.socket("/custom", { auth: { token: "abc" } });
      opened.push(main, custom);
      const [[a1], [a2]] = await Promise.all([waitEvent(main, "auth"), waitEvent(custom, "auth")]);
      assert.deepEqual(a1, {});
      assert.deepEqual(a2, { token: "abc" });
      const c1 = await srv.next((e) => e.event === "connect" && e.id === main.id);
      const c2 = await srv.next((e) => e.event === "connect" && e.id === custom.id);
      assert.equal(c1.sid, c2.sid, "one engine session");
      assert.equal(c2.nsp, "/custom");
      const backs = [waitEvent(custom, "message-back"), waitEvent(main, "message-back")];
      custom.emit("message", "to custom");
      main.emit("message", "to main");
      assert.deepEqual(await backs[0], ["to custom"]);
      assert.deepEqual(await backs[1], ["to main"]);
      // Leaving one namespace leaves the other working.
      custom.disconnect();
      const d = await srv.disconnectOf(c2.id);
      assert.equal(d.reason, "client namespace disconnect");
      main.emit("message", "still here");
      assert.deepEqual(await waitEvent(main, "message-back"), ["still here"]);
    });

    test("an unknown namespace is refused with Invalid namespace; a dynamic one is created", async (t) => {
      if (skip) return t.skip(WS_ABSENT);
      const bad = io(srv.url + "/nowhere", { ...MODES[mode], forceNew: true, reconnection: false });
      opened.push(bad);
      const [err] = await waitEvent(bad, "connect_error");
      assert.equal(err.message, "Invalid namespace");
      const c = await connect(t, "/dyn-room42");
      assert.equal(c.conn.nsp, "/dyn-room42");
    });

    test("auth accepted and refused by a middleware, with CONNECT_ERROR data", async (t) => {
      if (skip) return t.skip(WS_ABSENT);
      const ok = await connect(t, "/admin", { auth: { token: "secret" } });
      assert.equal(ok.conn.nsp, "/admin");
      const no = io(srv.url + "/admin", { ...MODES[mode], forceNew: true, reconnection: false, auth: { token: "wrong" } });
      opened.push(no);
      const [err] = await waitEvent(no, "connect_error");
      assert.equal(err.message, "Not authorized");
      assert.deepEqual(err.data, { code: 401 });
      assert.equal(no.connected, false);
      await srv.next((e) => e.event === "refused" && e.nsp === "/admin");
    });

    test("an asynchronous middleware accepts later", async (t) => {
      const c = await connect(t, "/slow", { auth: { x: 1 } });
      if (!c) return;
      assert.equal(c.conn.nsp, "/slow");
      assert.equal(c.socket.connected, true);
    });

    test("disconnect reasons: client namespace disconnect, server namespace disconnect", async (t) => {
      const a = await connect(t);
      if (!a) return;
      a.socket.disconnect();
      assert.equal((await srv.disconnectOf(a.socket.id ?? a.conn.id)).reason, "client namespace disconnect");
      const b = await connect(t);
      const seen = waitEvent(b.socket, "disconnect");
      b.socket.emit("disconnect-me", false);
      assert.deepEqual((await seen)[0], "io server disconnect");
      assert.equal((await srv.disconnectOf(b.conn.id)).reason, "server namespace disconnect");
    });

    test("disconnect reasons: the server closes the whole session", async (t) => {
      const c = await connect(t);
      if (!c) return;
      const seen = waitEvent(c.socket, "disconnect");
      c.socket.emit("disconnect-me", true);
      assert.equal((await seen)[0], "io server disconnect");
      assert.equal((await srv.disconnectOf(c.conn.id)).reason, "forced server close");
    });

    test("disconnect reasons: the client closes its engine session", async (t) => {
      const c = await connect(t);
      if (!c) return;
      c.socket.io.engine.close();
      assert.equal((await srv.disconnectOf(c.conn.id)).reason, "transport close");
    });
  });
}
