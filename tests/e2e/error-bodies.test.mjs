// Error answers never echo input unescaped (issue 17): every error path of tools/ferry is fed
// with markup, quotes, control bytes and very long values, and every answer is checked: a
// fixed text or JSON that parses, bounded in length, never text/html, the input in no body and
// no header (except what the protocol itself carries: the allowed Origin in CORS headers, a
// namespace in a CONNECT_ERROR packet's framing, names inside JSON strings, escaped).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { startServer, bin } from "../lib/server.mjs";
import { rawConnect, rawRequest } from "../lib/rawhttp.mjs";

const GOOD = "http://good.example";
const SCRIPT = "<script>alert(1)</script>";
const QUOTES = `"'\`</x>`;
const CONTROL = "\x01\x07\x1b[31m\x7f";
const LONG = "A".repeat(6000) + SCRIPT;
const EVIL = [SCRIPT, QUOTES, CONTROL, LONG];
const enc = encodeURIComponent;
let srv, plain, dir;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-errors-"));
  fs.mkdirSync(path.join(dir, "sub"));
  fs.writeFileSync(path.join(dir, "index.html"), "<p>hi</p>");
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--static", dir, "--cors-origins", GOOD,
    "--transports", "polling,websocket,sse,short-polling", "--allow-publish", "message", "--client-token", "secret",
    "--log-level", "debug"]);
  plain = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--publish-token", "pt"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
  assert.equal(await plain.stop(), 0);
  fs.rmSync(dir, { recursive: true, force: true });
});

// The parts of the evil inputs that must never appear raw: the markup, the quote run, the
// control bytes, a long run of the long value.
const NEEDLES = ["<script", "</x>", "\x01", "\x07", "\x1b", "\x7f", "A".repeat(200)];

// Check one answer (rawhttp's {status, headers, head, text}); what says where it came from.
function check(r, what, { allowHead = [] } = {}) {
  assert.ok(r, `${what}: answered`);
  const ct = r.headers["content-type"] ?? "";
  assert.ok(!/html/i.test(ct), `${what}: no HTML (${ct})`);
  assert.ok(r.body.length <= 1024, `${what}: a bounded body (${r.body.length} bytes)`);
  for (const n of NEEDLES) {
    assert.ok(!r.text.includes(n), `${what}: the body does not echo ${JSON.stringify(n)}: ${JSON.stringify(r.text.slice(0, 200))}`);
    let head = r.head;
    for (const a of allowHead) head = head.split(a).join("");
    assert.ok(!head.includes(n), `${what}: the head does not echo ${JSON.stringify(n)}`);
  }
  if (/json/.test(ct)) assert.doesNotThrow(() => JSON.parse(r.text), `${what}: JSON that parses`);
  else if (r.body.length > 0) assert.match(ct, /^text\/plain/, `${what}: plain text`);
  return r;
}

const get = (port, target, headers = []) =>
  rawRequest(port, [`GET ${target} HTTP/1.1`, "Host: 127.0.0.1", ...headers, "", ""].join("\r\n"));

test("engine errors (400/403 with codes 0-5): fixed JSON whatever the query, headers and origin", async () => {
  for (const v of EVIL) {
    const e = enc(v);
    const cases = [
      [`/socket.io/?EIO=4&transport=${e}`, 400, 0],
      [`/socket.io/?EIO=4&transport=polling&sid=${e}`, 400, 1],
      [`/socket.io/?EIO=4&transport=websocket&sid=${e}`, 400, 1],
      [`/socket.io/?EIO=4&transport=sse&sid=${e}`, 400, 1],
      [`/socket.io/?EIO=${e}&transport=polling&token=secret`, 400, 5],
      [`/socket.io/?EIO=4&transport=polling&token=${e}`, 403, 4],
      // Markup in the query of a good handshake: admitted (the long value: 431, over 16 kB).
      [`/socket.io/?EIO=4&transport=polling&token=secret&${e}=${e}`, v === LONG ? 431 : 200, null],
    ];
    for (const [target, status, code] of cases) {
      const r = check(await get(srv.port, target, [`X-Evil: ${v.replace(/[\x00-\x1f\x7f]/g, "")}`]), `GET ${target.slice(0, 60)}`);
      assert.equal(r.status, status, target.slice(0, 80));
      if (code !== null) assert.equal(JSON.parse(r.text).code, code);
    }
    // A handshake by POST (code 2), and a foreign Origin (403, no CORS header for it).
    const post = await rawRequest(srv.port, `POST /socket.io/?EIO=4&transport=polling&x=${e} HTTP/1.1\r\nHost: x\r\nContent-Length: ${Buffer.byteLength(v)}\r\n\r\n${v}`);
    assert.equal(check(post, "POST handshake").status, 400);
    assert.equal(JSON.parse(post.text).code, 2);
    const origin = `http://${v.replace(/[\x00-\x1f\x7f]/g, "")}.example`;
    const fo = check(await get(srv.port, "/socket.io/?EIO=4&transport=polling&token=secret", [`Origin: ${origin}`]), "foreign Origin");
    assert.equal(fo.status, 403);
    assert.equal(fo.headers["access-control-allow-origin"], undefined);
  }
});

test("a session's errors: a bad POST body, an unknown packet, a second poll: fixed JSON", async () => {
  const hs = await get(srv.port, "/socket.io/?EIO=4&transport=polling&token=secret");
  const sid = JSON.parse(hs.text.slice(1)).sid;
  for (const v of EVIL) {
    for (const ct of ["text/plain", "application/octet-stream", `text/html; ${v.slice(0, 40).replace(/[\x00-\x1f\x7f]/g, "")}`]) {
      const body = `9${v}`;
      const r = await rawRequest(srv.port, `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\nContent-Type: ${ct}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      check(r, `POST ${ct.slice(0, 30)}`);
      assert.equal(r.status, 400);
    }
  }
});

test("404, other methods, 413, 431, a malformed head: fixed text, bounded", async () => {
  for (const srvx of [srv, plain]) {
    for (const v of EVIL) {
      const e = enc(v);
      const nf = check(await get(srvx.port, `/${e}`), `GET /${e.slice(0, 20)}`);
      assert.ok(nf.status === 404 || nf.status === 400, `404 or 400: ${nf.status}`);
      const nf2 = check(await get(srvx.port, `/sub/${e}/x?${e}`), "GET /sub/...");
      assert.ok(nf2.status === 404 || nf2.status === 400);
      for (const m of ["PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"]) {
        for (const target of [`/socket.io/?EIO=4&transport=polling&sid=${e}`, `/${e}`, "/api/publish"]) {
          const r = await rawRequest(srvx.port, `${m} ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
          check(r, `${m} ${target.slice(0, 30)}`);
          assert.ok(r.status >= 400 && r.status < 500, `${m} ${target.slice(0, 30)}: ${r.status}`);
        }
      }
    }
    // /api/publish with a bad token, bad JSON, a body full of markup: JSON errors.
    for (const [auth, body] of [["Bearer x", "{}"], ["Bearer pt", `${SCRIPT}${QUOTES}`], ["Bearer pt", JSON.stringify({ room: SCRIPT, event: QUOTES, data: LONG })]]) {
      const r = await rawRequest(srvx.port, `POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      check(r, `POST /api/publish ${auth}`);
    }
    // 413: a body over max_payload (1 MB) made of markup.
    const big = SCRIPT.repeat(Math.ceil(1100000 / SCRIPT.length));
    const c = await rawConnect(srvx.port);
    c.write(`POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\n\r\n`);
    c.write(big);
    const r413 = check(await c.response(10000), "413");
    assert.equal(r413.status, 413);
    c.destroy();
    // 431: a head over 16 kB of markup.
    const r431 = check(await get(srvx.port, "/socket.io/?EIO=4&transport=polling", [`X-Big: ${SCRIPT.repeat(700)}`]), "431");
    assert.equal(r431.status, 431);
    // Malformed heads: markup in the request line, control bytes in a header, junk.
    for (const raw of [`${SCRIPT} / HTTP/1.1\r\n\r\n`, `GET /${SCRIPT} HTTP/1.1\r\nHost: x\r\n\r\n`,
      `GET / HTTP/1.1\r\nHost: x\r\nX-C: a${CONTROL}b\r\n\r\n`, `GET / HTTP/9.${SCRIPT}\r\n\r\n`, `\x01\x02${QUOTES}\r\n\r\n`,
      `GET / HTTP/1.1\r\nHost: x\r\n${SCRIPT}\r\n\r\n`, `GET / HTTP/1.1\r\nContent-Length: ${SCRIPT}\r\n\r\n`]) {
      const r = await rawRequest(srvx.port, raw);
      if (r) check(r, `malformed ${JSON.stringify(raw.slice(0, 30))}`);
    }
  }
});

test("WebSocket handshake errors: fixed text", async () => {
  for (const v of EVIL) {
    const clean = v.replace(/[\x00-\x1f\x7f]/g, "");
    for (const bad of [[`Sec-WebSocket-Version: ${clean}`, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="],
      ["Sec-WebSocket-Version: 13", `Sec-WebSocket-Key: ${clean}`]]) {
      const r = await get(srv.port, "/socket.io/?EIO=4&transport=websocket&token=secret", ["Upgrade: websocket", "Connection: Upgrade", ...bad]);
      check(r, `upgrade ${bad.join(" ").slice(0, 40)}`);
      assert.equal(r.status, 400);
    }
  }
});

test("CONNECT_ERROR data and relay refusals: fixed messages, names only inside escaped JSON", async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket&token=secret`);
  const msgs = [];
  ws.on("message", (d) => msgs.push(d.toString()));
  await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
  ws.send("40");
  const until = async (cond, what) => {
    const end = Date.now() + 5000;
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.ok(cond(), what);
  };
  await until(() => msgs.some((m) => m.startsWith("40")), "CONNECT answered");
  // Unknown namespaces: the namespace is the packet's framing (as every Socket.IO server
  // sends it); the data is a fixed message.
  for (const v of [SCRIPT, QUOTES, CONTROL]) {
    ws.send(`40/${v},`);
    await until(() => msgs.some((m) => m.startsWith(`44/${v},`)), `CONNECT_ERROR for ${JSON.stringify(v)}`);
    const m = msgs.find((x) => x.startsWith(`44/${v},`));
    assert.deepEqual(JSON.parse(m.slice(4 + v.length)), { message: "Invalid namespace" });
  }
  // Relay refusals name the room or event inside a JSON string: escaped, control bytes too.
  let id = 10;
  for (const v of EVIL) {
    for (const ev of [`["join",{"room":${JSON.stringify(v)}}]`, `["publish",{"room":"r","event":${JSON.stringify(v)},"data":1}]`, `[${JSON.stringify(v.slice(0, 250))},1]`]) {
      const n = id++;
      ws.send(`42${n}${ev}`);
      await until(() => msgs.some((m) => m.startsWith(`43${n}[`)), `ack ${n}`);
      const m = msgs.find((x) => x.startsWith(`43${n}[`));
      // JSON escapes every C0 control byte (DEL, 0x7f, is no JSON control: it passes).
      for (const needle of ["\x01", "\x07", "\x1b"]) assert.ok(!m.includes(needle), `ack ${n}: control bytes escaped: ${JSON.stringify(m.slice(0, 120))}`);
      const [ans] = JSON.parse(m.slice(2 + String(n).length));
      // A room of any name may be joined (--allow-join *) unless it is too long; the rest is
      // refused, the name quoted inside a JSON string.
      if (!ans.ok) assert.ok(ans.error.length <= 512, `a bounded message (${ans.error.length})`);
      else assert.ok(ev.startsWith('["join"'), `only a join may succeed: ${m.slice(0, 80)}`);
    }
  }
  ws.close();
});

test("WebSocket close reasons: fixed, never the input", async () => {
  const cases = [
    (ws) => ws.send(`42["message",` + "[".repeat(100000) + SCRIPT), // a parse error
    (ws) => ws.send(`9${SCRIPT}${CONTROL}`), // an unknown packet type
    (ws) => ws.send(Buffer.from([0xff, 0xfe, ...Buffer.from(SCRIPT)]), { binary: false }), // bad UTF-8
    (ws) => ws.send(`4${SCRIPT}`.repeat(300000)), // over max_payload: 1009
  ];
  for (const act of cases) {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket&token=secret`);
    ws.on("error", () => {});
    await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
    const closed = new Promise((r) => ws.on("close", (code, reason) => r({ code, reason: reason.toString() })));
    act(ws);
    const { code, reason } = await Promise.race([closed, new Promise((r) => setTimeout(() => r({ code: "open", reason: "" }), 10000))]);
    assert.notEqual(code, "open", "the server closed it");
    assert.ok(reason.length <= 123, "a close reason fits its frame");
    for (const n of NEEDLES) assert.ok(!reason.includes(n), `close ${code}: the reason ${JSON.stringify(reason)} does not echo the input`);
  }
});

test("the log: no live session id in full, no raw control bytes from requests", async () => {
  const hs = await get(srv.port, "/socket.io/?EIO=4&transport=polling&token=secret");
  const sid = JSON.parse(hs.text.slice(1)).sid;
  // Bad requests on the live session: another transport without an upgrade, a bad method,
  // markup and control bytes in the query and the body.
  for (const target of [`/socket.io/?EIO=4&transport=websocket&sid=${sid}&x=${enc(CONTROL)}`,
    `/socket.io/?EIO=4&transport=sse&sid=${sid}&${enc(SCRIPT)}=1`, `/socket.io/?EIO=4&transport=polling&sid=${sid}&x=${enc(CONTROL)}`]) {
    if (!target.includes("transport=polling")) await get(srv.port, target); // a poll would be held
    await rawRequest(srv.port, `PUT ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
  }
  const body = `9${CONTROL}`;
  await rawRequest(srv.port, `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  await new Promise((r) => setTimeout(r, 300));
  const log = srv.stderr();
  assert.ok(log.includes(`sid=${sid.slice(0, 6)}...`), "the session is in the log, shortened");
  assert.ok(!log.includes(sid), "the whole session id is not");
  for (const c of ["\x01", "\x07", "\x1b", "\x7f"]) assert.ok(!log.includes(c), `no raw ${JSON.stringify(c)} in the log`);
});
