// tools/ferry's HTTP side: flags and environment variables, the static folder, the
// socket.io-client bundle, POST /api/publish (token and body checks) and CORS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { startServer, bin, root } from "../lib/server.mjs";

const FERRY = bin("tools/ferry/ferry");
const TOKEN = "t0k3n-for-tests";
let srv;

before(async () => {
  srv = await startServer(FERRY, ["--host", "127.0.0.1", "--port", "0", "--static", "examples/chat",
    "--cors-origins", "http://allowed.example"], {
    env: { FERRY_PUBLISH_TOKEN: TOKEN },
  });
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

function publish(body, { token = TOKEN, headers = {} } = {}) {
  const h = { "content-type": "application/json", ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  return fetch(`${srv.url}/api/publish`, {
    method: "POST",
    headers: h,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

test("prints where it listens and serves the static folder", async () => {
  assert.match(srv.stdout(), /listening on http:\/\/127\.0\.0\.1:\d+/);
  const res = await fetch(`${srv.url}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /text\/html/);
  assert.match(await res.text(), /ferry chat/);
  const css = await fetch(`${srv.url}/chat.css`);
  assert.equal(css.status, 200);
  assert.match(css.headers.get("content-type"), /text\/css/);
  assert.equal((await fetch(`${srv.url}/nope.html`)).status, 404);
});

test("serves socket.io-client's browser bundle", async () => {
  const res = await fetch(`${srv.url}/vendor/socket.io.min.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /javascript/);
  const js = await res.text();
  assert.ok(js.length > 10000, "the whole bundle");
  assert.match(js, /Socket\.IO v4/);
  // Where Node's Socket.IO serves it, inside the engine's path: the same bundle.
  for (const name of ["socket.io.js", "socket.io.min.js"]) {
    const alt = await fetch(`${srv.url}/socket.io/${name}`);
    assert.equal(alt.status, 200, name);
    assert.equal(await alt.text(), js, name);
  }
  // The engine still owns the rest of its path.
  const eio = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(eio.status, 200);
  assert.match(await eio.text(), /^0\{"sid"/);
});

test("publish: good token and body is accepted", async () => {
  const res = await publish({ room: "lobby", event: "message", data: { text: "hi" } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true, recipients: 0 }, "nobody is in the room");
});

test("publish: missing or wrong token is 401", async () => {
  const body = { room: "lobby", event: "message", data: 1 };
  for (const token of [null, "wrong", TOKEN + "x", TOKEN.slice(0, -1), ""]) {
    const res = await publish(body, { token });
    assert.equal(res.status, 401, `token ${token}`);
    assert.equal((await res.json()).error, "unauthorized");
  }
  const basic = await publish(body, { token: null, headers: { authorization: `Basic ${TOKEN}` } });
  assert.equal(basic.status, 401);
});

test("publish: bad bodies are 400 with a clear JSON error", async () => {
  const cases = [
    ["", "bad_json"],
    ["{not json", "bad_json"],
    ["[1,2]", "bad_json"],
    ['"room"', "bad_json"],
    [{ event: "message", data: 1 }, "missing_field", /room/],
    [{ room: "lobby", data: 1 }, "missing_field", /event/],
    [{ room: "lobby", event: "message" }, "missing_field", /data/],
    [{ room: 5, event: "message", data: 1 }, "bad_field", /room/],
    [{ room: "lobby", event: ["x"], data: 1 }, "bad_field", /event/],
    [{ room: "", event: "message", data: 1 }, "bad_field", /empty/],
    [{ room: "x".repeat(129), event: "message", data: 1 }, "bad_field", /128/],
    [{ room: "a\nb", event: "message", data: 1 }, "bad_field", /control/],
    [{ room: "lobby", event: "disconnect", data: 1 }, "bad_field", /reserve/],
  ];
  for (const [body, code, msg] of cases) {
    const res = await publish(body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(res.headers.get("content-type"), /application\/json/);
    const j = await res.json();
    assert.equal(j.ok, false);
    assert.equal(j.error, code, JSON.stringify(body));
    if (msg) assert.match(j.message, msg);
  }
});

test("publish: only POST; an oversized body is refused", async () => {
  assert.equal((await fetch(`${srv.url}/api/publish`)).status, 404);
  const big = JSON.stringify({ room: "lobby", event: "message", data: "x".repeat(1_100_000) });
  // The server answers 413 from the headers, before the body; its lingering close drops the
  // rest of the body instead of resetting the connection, so the client reads the answer.
  const res = await publish(big);
  assert.equal(res.status, 413, "oversized publish refused with 413");
  assert.equal((await fetch(`${srv.url}/api/publish`)).status, 404, "the server still answers");
});

test("lingering close: a client still uploading reads its 413 and finishes sending without a reset", async () => {
  // Headers announcing 1.1 MB, then part of the body; the server answers 413 at once and
  // closes. The client reads the answer, then sends the rest: a server that closed with the
  // rest unread would have reset the connection (EPIPE/ECONNRESET here); a lingering close
  // drops the rest and ends with a FIN.
  const total = 1_100_000;
  const sock = net.connect(srv.port, "127.0.0.1");
  const errors = [];
  sock.on("error", (e) => errors.push(e.code));
  let answer = "";
  const gotAnswer = new Promise((resolve) => sock.on("data", (d) => {
    answer += d.toString("latin1");
    if (answer.includes("\r\n\r\n")) resolve();
  }));
  let ended = false;
  sock.on("end", () => { ended = true; });
  const closed = new Promise((resolve) => sock.on("close", resolve));
  await new Promise((r) => sock.once("connect", r));
  sock.write(`POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`);
  sock.write(Buffer.alloc(64 * 1024, 0x78));
  await gotAnswer;
  assert.match(answer, /^HTTP\/1\.1 413 /, answer);
  // The rest of the body, then our end; all of it must be accepted by the server's end.
  for (let sent = 64 * 1024; sent < total && errors.length === 0 && !sock.destroyed; sent += 64 * 1024) {
    await new Promise((r) => sock.write(Buffer.alloc(Math.min(64 * 1024, total - sent), 0x78), r));
  }
  sock.end();
  await closed;
  assert.deepEqual(errors, [], "no reset while the client finished its upload");
  assert.ok(ended, "the server ended the connection with a FIN");
});

test("CORS: allowed origin gets the header, others do not", async () => {
  const url = `${srv.url}/socket.io/?EIO=4&transport=polling`;
  const ok = await fetch(url, { headers: { origin: "http://allowed.example" } });
  assert.equal(ok.headers.get("access-control-allow-origin"), "http://allowed.example");
  await ok.text();
  const other = await fetch(url, { headers: { origin: "http://evil.example" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  await other.text();
  const pre = await fetch(`${srv.url}/api/publish`, {
    method: "OPTIONS",
    headers: {
      origin: "http://allowed.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type",
    },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "http://allowed.example");
});

// Runs the binary to completion (for flags that stop it before it listens).
function runFerry(args, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(FERRY, args, { env: { ...process.env, ...env }, cwd: root });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("exit", (code) => resolve({ code, out, err }));
  });
}

test("flags: --help lists every flag, bad values stop with one clear line", async () => {
  const help = await runFerry(["--help"]);
  assert.equal(help.code, 0);
  for (const f of ["--host", "--port", "--path", "--ping-interval", "--ping-timeout",
    "--cors-origins", "--static", "--publish-token", "--allow-publish", "--allow-join", "--suite",
    "--transports", "--max-payload", "--max-rooms", "--no-presence", "--client-js", "--log-level"])
    assert.ok(help.out.includes(f), f);
  // The transport names come from the library's registry, in the order of their bits.
  assert.match(help.out, /--transports LIST +polling,websocket,sse,short-polling \(FERRY_TRANSPORTS,/);
  for (const [args, env, re] of [
    [["--port", "70000"], {}, /invalid port '70000'/],
    [["--port", "12ab"], {}, /invalid port '12ab'/],
    [["--ping-interval", "-5"], {}, /invalid ping interval/],
    [["--path", "socket.io"], {}, /invalid path/],
    [["--bogus"], {}, /unknown flag '--bogus'/],
    [["--port"], {}, /missing value for '--port'/],
    [[], { FERRY_PORT: "x" }, /FERRY_PORT/],
    [["--log-level", "loud"], {}, /invalid log level/],
    [["--transports", "polling,carrier-pigeon"], {}, /invalid transport 'carrier-pigeon': use polling, websocket, sse or short-polling \(see ferry --help\)/],
    [[], { FERRY_TRANSPORTS: "websocket,Polling" }, /invalid transport 'Polling'[^]*FERRY_TRANSPORTS/],
    [["--transports", ","], {}, /invalid transports/],
    [["--max-payload", "10"], {}, /invalid max payload/],
    [["--static", "examples/no-such-folder"], {}, /invalid static folder 'examples\/no-such-folder': not a folder/],
    [["--static", "README.md"], {}, /not a folder/],
  ]) {
    const r = await runFerry(args, env);
    assert.equal(r.code, 2, `${args} ${JSON.stringify(env)}`);
    assert.match(r.err, re);
  }
});

test("cannot listen: a host name instead of an address, a port in use (exit 1, one line)", async () => {
  const name = await runFerry(["--host", "localhost", "--port", "0"]);
  assert.equal(name.code, 1);
  assert.match(name.err, /--host takes an IPv4 or IPv6 address/);
  const busy = await runFerry(["--port", String(srv.port)]);
  assert.equal(busy.code, 1);
  assert.match(busy.err, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${srv.port}: .*in use`, "i"));
});

test("flags and environment: env sets, a flag overrides it", async () => {
  const s = await startServer(FERRY, ["--port", "0", "--ping-interval", "1234",
    "--transports", "polling"], {
    env: { FERRY_PING_INTERVAL: "999", FERRY_PING_TIMEOUT: "4321", FERRY_PATH: "/rt/",
      FERRY_MAX_PAYLOAD: "5000", FERRY_TRANSPORTS: "websocket" },
  });
  try {
    const res = await fetch(`${s.url}/rt/?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    const open = JSON.parse((await res.text()).slice(1));
    assert.equal(open.pingInterval, 1234);
    assert.equal(open.pingTimeout, 4321);
    assert.equal(open.maxPayload, 5000);
    assert.deepEqual(open.upgrades, [], "--transports polling: no WebSocket offered");
    const ws = await fetch(`${s.url}/rt/?EIO=4&transport=websocket`);
    assert.equal(ws.status, 400);
    assert.deepEqual(await ws.json(), { code: 0, message: "Transport unknown" });
    // Without --publish-token the endpoint is off.
    const pub = await fetch(`${s.url}/api/publish`, { method: "POST", body: "{}" });
    assert.equal(pub.status, 403);
    assert.equal((await pub.json()).error, "disabled");
  } finally {
    assert.equal(await s.stop(), 0);
  }
});
