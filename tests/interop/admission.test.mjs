// The admission hook (Socket.IO's allowRequest) with the official clients and raw requests:
// tests/servers/ferry-test-handshake --admission decides each handshake by its query (admit=
// yes|no|later|later-no|hold, delay, msg) and prints what the hook saw and what each answer
// returned. Accepted, refused (the client's connect_error carries the message), delayed then
// accepted or refused, refused on every transport before anything else is written (no 101, no
// stream), the client gone while the app decides (the late answer returns -FERRY_ECLOSED and the
// server exits clean under LeakSanitizer), the decision timeout, the bound on handshakes
// pending, and a server closed while a decision is pending.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startHandshakeServer } from "../lib/handshake-server.mjs";
import { rawConnect } from "../lib/rawhttp.mjs";

function waitEvent(socket, name, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${name}`)), ms);
    socket.once(name, (...args) => {
      clearTimeout(t);
      // The XHR behind a polling error is aborted right after the event: read its body now.
      const ctx = args[0]?.context;
      if (ctx && typeof ctx.responseText === "string") args[0].body = ctx.responseText;
      resolve(args);
    });
  });
}

const ALL = ["polling", "websocket", "sse", "short-polling"];
const wsUpgrade = (port, query) =>
  `GET /socket.io/?EIO=4&transport=websocket&${query} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
  `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
// A handshake request of transport t with query, as raw bytes.
function handshakeBytes(port, t, query) {
  if (t === "websocket") return wsUpgrade(port, query);
  const accept = t === "sse" ? "Accept: text/event-stream\r\n" : "";
  return `GET /socket.io/?EIO=4&transport=${t}&${query} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${accept}\r\n`;
}

describe("admission hook", () => {
  let srv;
  before(async () => {
    srv = await startHandshakeServer(["--admission", "1", "--transports", ALL.join(",")]);
  });
  after(async () => {
    assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
  });

  for (const mode of ["polling", "websocket"]) {
    test(`admitted over ${mode}: the hook sees url, query, headers and address`, async () => {
      const socket = io(srv.url, {
        transports: [mode],
        forceNew: true,
        reconnection: false,
        query: { admit: "yes", token: `tok-${mode}` },
        extraHeaders: { "X-Token": "h1" },
      });
      try {
        await waitEvent(socket, "connect");
        const adm = await srv.next((e) => e.event === "admission" && e.token === `tok-${mode}`);
        assert.equal(adm.transport, mode);
        assert.match(adm.url, new RegExp(`^/socket\\.io/\\?.*transport=${mode}(&|$)`));
        assert.equal(adm.address, "127.0.0.1");
        assert.equal(adm.secure, false);
        assert.equal(adm.header_x_token, "h1");
        assert.ok(adm.query.some(([n, v]) => n === "token" && v === `tok-${mode}`));
        assert.ok(adm.headers.some(([n, v]) => n.toLowerCase() === "x-token" && v === "h1"));
        assert.ok(Math.abs(adm.time - Date.now()) < 60000);
        const ans = await srv.next((e) => e.event === "admission-answer" && e.url === adm.url);
        assert.deepEqual([ans.rc, ans.waiting], ["ok", true]);
        // Later requests of the session (the CONNECT's POST, polls) were not asked about.
        await srv.next((e) => e.event === "connect" && e.id === socket.id);
        const asked = srv.events.events.filter((e) => e.event === "admission" && e.token === `tok-${mode}`);
        assert.equal(asked.length, 1, "one admission per handshake, none for later requests");
      } finally {
        socket.disconnect();
      }
    });
  }

  test("refused over polling: connect_error carries the app's message in a 403", async () => {
    const msg = 'Not "welcome" here: é';
    const socket = io(srv.url, {
      transports: ["polling"],
      forceNew: true,
      reconnection: false,
      query: { admit: "no", msg },
    });
    try {
      const [err] = await waitEvent(socket, "connect_error");
      assert.equal(err.message, "xhr poll error");
      assert.equal(err.description, 403);
      assert.deepEqual(JSON.parse(err.body), { code: 4, message: msg });
      assert.equal(socket.connected, false);
    } finally {
      socket.disconnect();
    }
  });

  test("refused over websocket: connect_error, and a 403 before any 101", async () => {
    const socket = io(srv.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      query: { admit: "no", msg: "ws refused" },
    });
    try {
      const [err] = await waitEvent(socket, "connect_error");
      assert.equal(err.message, "websocket error");
      assert.match(String(err.description?.message ?? err.description), /403/);
    } finally {
      socket.disconnect();
    }
  });

  for (const t of ALL) {
    test(`refused over ${t}: 403 {"code":4,"message":...} and nothing else`, async () => {
      const c = await rawConnect(srv.port);
      try {
        c.write(handshakeBytes(srv.port, t, "admit=no&msg=" + encodeURIComponent(`no ${t}`)));
        const res = await c.response(10000);
        assert.equal(res.status, 403);
        assert.equal(res.headers["content-type"], "application/json");
        assert.deepEqual(JSON.parse(res.text), { code: 4, message: `no ${t}` });
        if (t === "websocket") await c.closed(10000); // no 101: the connection just ends
        assert.equal(c.buf.length, 0, "no 101, no stream, no open packet after the 403");
      } finally {
        c.destroy();
      }
    });
  }

  test("refused without a message: Engine.IO's own {code:4, message:'Forbidden'}", async () => {
    const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&admit=no`);
    assert.equal(res.status, 403);
    assert.deepEqual(await res.json(), { code: 4, message: "Forbidden" });
  });

  test("a message over 512 bytes: 'Forbidden' on the wire, -FERRY_EINVAL to the app", async () => {
    const long = "x".repeat(600);
    const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&admit=no&msg=${long}`);
    assert.equal(res.status, 403);
    assert.deepEqual(await res.json(), { code: 4, message: "Forbidden" });
    const ans = await srv.next((e) => e.event === "admission-answer" && e.url.includes(long));
    assert.equal(ans.rc, "inval");
  });

  for (const mode of ["polling", "websocket"]) {
    test(`delayed, then admitted over ${mode}`, async () => {
      const t0 = Date.now();
      const socket = io(srv.url, {
        transports: [mode],
        forceNew: true,
        reconnection: false,
        query: { admit: "later", delay: "300", token: `later-${mode}` },
      });
      try {
        await waitEvent(socket, "connect");
        assert.ok(Date.now() - t0 >= 250, "the handshake waited for the decision");
        const adm = await srv.next((e) => e.event === "admission" && e.token === `later-${mode}`);
        const ans = await srv.next((e) => e.event === "admission-answer" && e.url === adm.url);
        assert.deepEqual([ans.rc, ans.waiting], ["ok", true]);
        await srv.next((e) => e.event === "connect" && e.id === socket.id);
      } finally {
        socket.disconnect();
      }
    });
  }

  test("delayed, then refused: connect_error with the message", async () => {
    const socket = io(srv.url, {
      transports: ["polling"],
      forceNew: true,
      reconnection: false,
      query: { admit: "later-no", delay: "200", msg: "checked: no" },
    });
    try {
      const [err] = await waitEvent(socket, "connect_error");
      assert.deepEqual(JSON.parse(err.body), { code: 4, message: "checked: no" });
    } finally {
      socket.disconnect();
    }
  });

  for (const t of ALL) {
    test(`delayed, then admitted over ${t} (raw): the open packet follows the decision`, async () => {
      const c = await rawConnect(srv.port);
      try {
        c.write(handshakeBytes(srv.port, t, `admit=later&delay=200&token=raw-${t}`));
        const res = await c.response(10000);
        assert.equal(res.status, t === "websocket" ? 101 : 200);
        if (t === "polling" || t === "short-polling") assert.match(res.text, /^0\{"sid":"/);
      } finally {
        c.destroy();
      }
      const adm = await srv.next((e) => e.event === "admission" && e.token === `raw-${t}`);
      assert.equal(adm.transport, t);
    });
  }

  test("socket.io-client gives up over websocket while the app decides: the late answer returns ECLOSED", async () => {
    const socket = io(srv.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      query: { admit: "hold", delay: "500", token: "sio-gone" },
    });
    const adm = await srv.next((e) => e.event === "admission" && e.token === "sio-gone", 10000);
    // Closing a WebSocket that is still connecting aborts its request: the client hangs up.
    socket.disconnect();
    const ans = await srv.next((e) => e.event === "admission-answer" && e.url === adm.url, 10000);
    assert.deepEqual([ans.rc, ans.waiting], ["closed", false]);
    assert.equal(srv.events.events.filter((e) => e.event === "connect").some((e) => e.id === socket.id), false);
  });

  for (const t of ["polling", "websocket", "sse"]) {
    test(`client gone while the app decides (${t}): the late answer returns ECLOSED`, async () => {
      const c = await rawConnect(srv.port);
      c.write(handshakeBytes(srv.port, t, `admit=hold&delay=400&token=gone-${t}`));
      const adm = await srv.next((e) => e.event === "admission" && e.token === `gone-${t}`, 10000);
      c.destroy();
      const ans = await srv.next((e) => e.event === "admission-answer" && e.url === adm.url, 10000);
      assert.deepEqual([ans.rc, ans.waiting], ["closed", false]);
      // The server still serves.
      const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`);
      assert.equal(res.status, 200);
    });
  }
});

describe("admission limits", () => {
  test("timeout: an undecided handshake gets 403 'Admission timed out'; the late answer ETIMEDOUT", async () => {
    const srv = await startHandshakeServer(["--admission", "1", "--admission-timeout", "300"]);
    try {
      const t0 = Date.now();
      const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&admit=hold&delay=1200`);
      assert.equal(res.status, 403);
      assert.deepEqual(await res.json(), { code: 4, message: "Admission timed out" });
      assert.ok(Date.now() - t0 >= 250);
      const ans = await srv.next((e) => e.event === "admission-answer", 10000);
      assert.deepEqual([ans.rc, ans.waiting], ["timedout", false]);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  });

  test("bound: past max_pending_admissions a handshake gets 503 without asking the app", async () => {
    const srv = await startHandshakeServer(["--admission", "1", "--max-pending-admissions", "2"]);
    const conns = [];
    try {
      for (const n of [1, 2]) {
        const c = await rawConnect(srv.port);
        conns.push(c);
        c.write(handshakeBytes(srv.port, "polling", `admit=hold&delay=1500&token=p${n}`));
        await srv.next((e) => e.event === "admission" && e.token === `p${n}`, 10000);
      }
      const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&token=p3`);
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { code: 4, message: "Too many handshakes pending" });
      assert.equal(srv.events.events.filter((e) => e.event === "admission" && e.token === "p3").length, 0);
      // A client that hangs up frees its place at once.
      conns[0].destroy();
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        const r = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&token=p4`);
        status = r.status;
        await r.text();
        if (status !== 200) await new Promise((r2) => setTimeout(r2, 20));
      }
      assert.equal(status, 200, "the place of the client that left is free again");
      // The held ones are answered when the app decides.
      const res2 = await conns[1].response(10000);
      assert.equal(res2.status, 200);
    } finally {
      for (const c of conns) c.destroy();
      assert.equal(await srv.stop(), 0);
    }
  });

  test("server closed while a decision is pending: 503, the late answer ECLOSED, clean exit", async () => {
    const srv = await startHandshakeServer(["--admission", "1"]);
    const c = await rawConnect(srv.port);
    try {
      c.write(handshakeBytes(srv.port, "websocket", "admit=hold&delay=600&token=closing"));
      await srv.next((e) => e.event === "admission" && e.token === "closing", 10000);
      const code = srv.stop();
      const res = await c.response(10000);
      assert.equal(res.status, 503);
      assert.equal(await code, 0, "exits 0 under LeakSanitizer after the app's late answer");
      const ans = srv.events.events.find((e) => e.event === "admission-answer");
      assert.deepEqual([ans?.rc, ans?.waiting], ["closed", false]);
    } finally {
      c.destroy();
    }
  });
});
