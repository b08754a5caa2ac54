// Bad input over raw HTTP (node:net): every Engine.IO error code answered exactly, malformed
// payloads, oversized bodies, unknown sids, requests in flight twice, garbage bytes, slow
// headers, and the HTTP limits. The server must answer each clearly, keep serving, and exit
// clean under ASan/LSan (stop() === 0).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startEngine } from "../lib/events.mjs";
import { rawConnect, rawRequest, req } from "../lib/rawhttp.mjs";

const MAX_PAYLOAD = 1000;
let eng;
before(async () => {
  eng = await startEngine(["--max-payload", String(MAX_PAYLOAD)]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the server exits cleanly (no leak, no sanitizer report)");
});

const P = "/engine.io/";
const q = (s) => `${P}?${s}`;

// A session opened by a raw handshake; returns its sid.
async function handshake(port = eng.port) {
  const res = await rawRequest(port, req("GET", q("EIO=4&transport=polling")));
  assert.equal(res.status, 200);
  assert.equal(res.text[0], "0");
  const open = JSON.parse(res.text.slice(1));
  return open.sid;
}

// The server's counters (ferry-test-engine's GET /__stats; that request counts itself).
async function stats(port = eng.port) {
  const res = await rawRequest(port, req("GET", "/__stats"));
  return JSON.parse(res.text);
}

// Send a request that the server will hold (a long poll) and resolve once the server has
// taken it: its request counter moved past the stats requests made meanwhile. Bounded.
async function sendHeld(port, data) {
  const before = (await stats(port)).requests;
  const c = await rawConnect(port);
  c.write(data);
  for (let k = 1; k <= 200; k++) {
    if ((await stats(port)).requests >= before + k + 1) return c;
  }
  throw new Error("the server never took the held request");
}

function assertEioError(res, status, code, message) {
  assert.ok(res, "a response");
  assert.equal(res.status, status, `status for code ${code}`);
  assert.equal(res.headers["content-type"], "application/json");
  assert.equal(res.text, JSON.stringify({ code, message }));
}

describe("Engine.IO error codes, exactly", () => {
  const cases = [
    ["no transport", "GET", "EIO=4", 0, "Transport unknown"],
    ["unknown transport", "GET", "EIO=4&transport=abc", 0, "Transport unknown"],
    ["unknown sid on GET", "GET", "EIO=4&transport=polling&sid=nope", 1, "Session ID unknown"],
    ["unknown sid on POST", "POST", "EIO=4&transport=polling&sid=nope", 1, "Session ID unknown"],
    ["handshake by POST", "POST", "EIO=4&transport=polling", 2, "Bad handshake method"],
    ["handshake by PUT", "PUT", "EIO=4&transport=polling", 2, "Bad handshake method"],
    ["no EIO", "GET", "transport=polling", 5, "Unsupported protocol version"],
    ["EIO=3", "GET", "EIO=3&transport=polling", 5, "Unsupported protocol version"],
    ["EIO=abc", "GET", "EIO=abc&transport=polling", 5, "Unsupported protocol version"],
  ];
  for (const [name, method, query, code, message] of cases) {
    test(`code ${code}: ${name}`, async () => {
      const opens = eng.all("open").length;
      const body = method === "GET" ? undefined : "4x";
      const res = await rawRequest(eng.port, req(method, q(query), { body }));
      assertEioError(res, 400, code, message);
      assert.equal(eng.all("open").length, opens, "no session was opened");
    });
  }

  test("code 3: a method other than GET/POST on a session", async () => {
    const sid = await handshake();
    const res = await rawRequest(eng.port, req("PUT", q(`EIO=4&transport=polling&sid=${sid}`), { body: "4x" }));
    assertEioError(res, 400, 3, "Bad request");
  });

  test("code 4: an Origin outside the allowlist gets 403", async () => {
    const other = await startEngine(["--cors", "http://ok.example"]);
    try {
      const bad = await rawRequest(other.port, req("GET", q("EIO=4&transport=polling"), { headers: ["Origin: http://evil.example"] }));
      assertEioError(bad, 403, 4, "Forbidden");
      const good = await rawRequest(other.port, req("GET", q("EIO=4&transport=polling"), { headers: ["Origin: http://ok.example"] }));
      assert.equal(good.status, 200);
      assert.equal(good.headers["access-control-allow-origin"], "http://ok.example");
      // The preflight of an allowed origin: 204 with the methods and the asked headers.
      const pre = await rawRequest(other.port, req("OPTIONS", q("EIO=4&transport=polling"), {
        headers: ["Origin: http://ok.example", "Access-Control-Request-Method: POST",
          "Access-Control-Request-Headers: content-type"] }));
      assert.equal(pre.status, 204);
      assert.equal(pre.headers["access-control-allow-origin"], "http://ok.example");
      assert.match(pre.headers["access-control-allow-methods"], /POST/);
      assert.equal(pre.headers["access-control-allow-headers"], "content-type");
    } finally {
      assert.equal(await other.stop(), 0);
    }
  });
});

describe("polling responses", () => {
  test("the handshake holds exactly the five keys of the spec, with the configured values", async () => {
    const hs = await rawRequest(eng.port, req("GET", q("EIO=4&transport=polling")));
    assert.equal(hs.status, 200);
    const open = JSON.parse(hs.text.slice(1));
    assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
    assert.match(open.sid, /^[A-Za-z0-9_-]{22}$/, "128 random bits, base64url");
    assert.deepEqual(open.upgrades, ["websocket"]);
    assert.equal(open.pingInterval, 25000);
    assert.equal(open.pingTimeout, 20000);
    assert.equal(open.maxPayload, MAX_PAYLOAD);
    const again = JSON.parse((await rawRequest(eng.port, req("GET", q("EIO=4&transport=polling")))).text.slice(1));
    assert.notEqual(again.sid, open.sid);
  });

  test("are never cached: Cache-Control: no-store on handshake, poll and POST", async () => {
    const hs = await rawRequest(eng.port, req("GET", q("EIO=4&transport=polling")));
    assert.equal(hs.headers["cache-control"], "no-store");
    assert.equal(hs.headers["content-type"], "text/plain; charset=UTF-8");
    const sid = JSON.parse(hs.text.slice(1)).sid;
    const post = await rawRequest(eng.port, req("POST", q(`EIO=4&transport=polling&sid=${sid}`), { body: "4hi" }));
    assert.equal(post.status, 200);
    assert.equal(post.text, "ok");
    assert.equal(post.headers["cache-control"], "no-store");
    const poll = await rawRequest(eng.port, req("GET", q(`EIO=4&transport=polling&sid=${sid}`)));
    assert.equal(poll.text, "4hi", "the echo");
    assert.equal(poll.headers["cache-control"], "no-store");
  });
});

describe("malformed payloads close the session with 'parse error'", () => {
  const bodies = {
    "unknown packet type": "abc",
    "empty body": "",
    "trailing separator": "4hello\x1e",
    "bad base64": "b!!!",
    "lone separator": "\x1e",
    "type out of range": "9x",
    "binary garbage": Buffer.from([0xff, 0xfe, 0x00, 0x1e, 0x80]),
    "invalid UTF-8 in a text message": Buffer.from([0x34, 0x61, 0xff, 0xfe]),
    "a truncated UTF-8 sequence before a separator": Buffer.from([0x34, 0xe2, 0x9c, 0x1e, 0x34, 0x61]),
  };
  for (const [name, body] of Object.entries(bodies)) {
    test(name, async () => {
      const sid = await handshake();
      const res = await rawRequest(eng.port, req("POST", q(`EIO=4&transport=polling&sid=${sid}`), { body }));
      assertEioError(res, 400, 3, "Bad request");
      assert.equal((await eng.closeOf(sid)).reason, "parse error");
      const next = await rawRequest(eng.port, req("GET", q(`EIO=4&transport=polling&sid=${sid}`)));
      assertEioError(next, 400, 1, "Session ID unknown");
    });
  }

  test("a client ping (v4: only the server pings) closes the session", async () => {
    const sid = await handshake();
    await rawRequest(eng.port, req("POST", q(`EIO=4&transport=polling&sid=${sid}`), { body: "2" }));
    assert.equal((await eng.closeOf(sid)).reason, "transport error");
  });

  test("a binary POST body (application/octet-stream) is refused in v4", async () => {
    const sid = await handshake();
    const res = await rawRequest(eng.port, req("POST", q(`EIO=4&transport=polling&sid=${sid}`), {
      headers: ["Content-Type: application/octet-stream"], body: "4abc" }));
    assertEioError(res, 400, 3, "Bad request");
    await eng.closeOf(sid);
  });
});

describe("body size: maxPayload", () => {
  test("a body of exactly maxPayload bytes is taken", async () => {
    const sid = await handshake();
    const body = "4" + "x".repeat(MAX_PAYLOAD - 1);
    const res = await rawRequest(eng.port, req("POST", q(`EIO=4&transport=polling&sid=${sid}`), { body }));
    assert.equal(res.status, 200);
    assert.equal((await eng.messageOf(sid)).text.length, MAX_PAYLOAD - 1);
  });

  test("one byte over (Content-Length) is 413 and closes the session", async () => {
    const sid = await handshake();
    const c = await rawConnect(eng.port);
    c.write(req("POST", q(`EIO=4&transport=polling&sid=${sid}`), { body: "4" + "x".repeat(MAX_PAYLOAD) }));
    const res = await c.response();
    assert.equal(res.status, 413);
    assert.equal(res.headers.connection, "close");
    await c.closed();
    assert.equal((await eng.closeOf(sid)).reason, "transport error");
    const next = await rawRequest(eng.port, req("GET", q(`EIO=4&transport=polling&sid=${sid}`)));
    assertEioError(next, 400, 1, "Session ID unknown");
  });

  test("one byte over in chunks (no Content-Length) is 413 and closes the session", async () => {
    const sid = await handshake();
    const c = await rawConnect(eng.port);
    const chunk = "4" + "x".repeat(MAX_PAYLOAD);
    c.write(`POST ${q(`EIO=4&transport=polling&sid=${sid}`)} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`);
    const res = await c.response();
    assert.equal(res.status, 413);
    await c.closed();
    assert.equal((await eng.closeOf(sid)).reason, "transport error");
  });

  test("a chunked body of exactly maxPayload bytes is taken", async () => {
    const sid = await handshake();
    const c = await rawConnect(eng.port);
    const half = "4" + "y".repeat(MAX_PAYLOAD / 2 - 1);
    const rest = "y".repeat(MAX_PAYLOAD / 2);
    c.write(`POST ${q(`EIO=4&transport=polling&sid=${sid}`)} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${half.length.toString(16)}\r\n${half}\r\n${rest.length.toString(16)}\r\n${rest}\r\n0\r\n\r\n`);
    const res = await c.response();
    c.destroy();
    assert.equal(res.status, 200);
    assert.equal((await eng.messageOf(sid)).text.length, MAX_PAYLOAD - 1);
  });
});

describe("one GET and one POST in flight per session", () => {
  test("a second GET gets 400, the held one gets a close packet, the session closes", async () => {
    const sid = await handshake();
    // The first GET is held until something is queued; the second comes once the server has it.
    const held = await sendHeld(eng.port, req("GET", q(`EIO=4&transport=polling&sid=${sid}`)));
    const heldRes = held.response();
    const second = await rawRequest(eng.port, req("GET", q(`EIO=4&transport=polling&sid=${sid}`)));
    assert.equal(second.status, 400);
    const first = await heldRes;
    assert.equal(first.status, 200);
    assert.equal(first.text, "1", "the held poll ends with a close packet");
    held.destroy();
    assert.equal((await eng.closeOf(sid)).reason, "transport error");
  });

  test("a second POST while one is in flight closes the session", async () => {
    const sid = await handshake();
    const a = await rawConnect(eng.port);
    // Expect: 100-continue makes the server say when it has taken A's head.
    a.write(`POST ${q(`EIO=4&transport=polling&sid=${sid}`)} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n`);
    const cont = await a.response();
    assert.equal(cont.status, 100);
    const b = await rawRequest(eng.port, req("POST", q(`EIO=4&transport=polling&sid=${sid}`), { body: "4b" }));
    assert.equal(b.status, 400);
    assert.equal((await eng.closeOf(sid)).reason, "transport error");
    a.write("4abcde");
    const aRes = await a.response();
    a.destroy();
    assertEioError(aRes, 400, 1, "Session ID unknown");
    assert.equal(eng.all("message").filter((e) => e.sid === sid).length, 0, "nothing was delivered");
  });

  test("a held GET whose client goes away closes the session (transport error)", async () => {
    const sid = await handshake();
    const held = await sendHeld(eng.port, req("GET", q(`EIO=4&transport=polling&sid=${sid}`)));
    held.destroy();
    assert.equal((await eng.closeOf(sid)).reason, "transport error");
  });

  test("a server close while a GET is held answers it with a close packet", async () => {
    const sid = await handshake();
    const held = await sendHeld(eng.port, req("GET", q(`EIO=4&transport=polling&sid=${sid}`)));
    const res = held.response();
    await rawRequest(eng.port, req("POST", q(`EIO=4&transport=polling&sid=${sid}`), { body: "4cmd:close" }));
    const r = await res;
    held.destroy();
    assert.equal(r.text, "1");
    assert.equal((await eng.closeOf(sid)).reason, "forced close");
  });
});

describe("garbage never crashes the server", () => {
  const garbage = {
    "binary noise": Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 97 + 13) & 0xff)),
    "not HTTP": "HELLO THERE\r\n\r\n",
    "bad header line": "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    "bad chunk size": `POST ${P}?EIO=4&transport=polling HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`,
    "bad percent escape": `GET ${P}?EIO=4&transport=%zz HTTP/1.1\r\nHost: x\r\n\r\n`,
    "decoded NUL in the query": `GET ${P}?EIO=4%00&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n`,
    "absolute-form target": "GET http://evil/engine.io/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "two Content-Lengths": "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
  };
  for (const [name, data] of Object.entries(garbage)) {
    test(name, async () => {
      const c = await rawConnect(eng.port);
      c.write(data);
      const res = await c.response();
      assert.ok(res === null || res.status === 400, `400 or a closed connection, got ${res && res.status}`);
      await c.closed();
      // The server still serves.
      await handshake();
    });
  }
});

describe("HTTP limits", () => {
  let lim;
  const HEADER_MAX = 600, HEADER_TIMEOUT = 400, IDLE = 300;
  before(async () => {
    lim = await startEngine(["--max-header-bytes", String(HEADER_MAX), "--header-timeout", String(HEADER_TIMEOUT),
      "--idle-timeout", String(IDLE), "--max-connections", "3"]);
  });
  after(async () => {
    assert.equal(await lim.stop(), 0);
  });

  // A request head of exactly n bytes (request line, header lines and the blank line).
  function headOf(n) {
    const base = "GET /nothing HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n";
    return base.replace("X-Pad: ", "X-Pad: " + "p".repeat(n - base.length));
  }

  test(`a head of exactly max_header_bytes is served, one more byte is 431`, async () => {
    assert.equal(headOf(HEADER_MAX).length, HEADER_MAX);
    const ok = await rawRequest(lim.port, headOf(HEADER_MAX));
    assert.equal(ok.status, 404, "parsed and routed");
    const c = await rawConnect(lim.port);
    c.write(headOf(HEADER_MAX + 1));
    const over = await c.response();
    assert.equal(over.status, 431);
    await c.closed();
  });

  test("the head limit holds when the head arrives byte by byte", async () => {
    const c = await rawConnect(lim.port);
    const head = headOf(HEADER_MAX + 1);
    for (const ch of head) c.write(ch);
    const res = await c.response();
    assert.equal(res.status, 431);
  });

  test("slow headers (slowloris) are cut at the header timeout, trickling does not extend it", async () => {
    const c = await rawConnect(lim.port);
    const start = Date.now();
    c.write("GET /nothing HTTP/1.1\r\n");
    let n = 0;
    const trickle = setInterval(() => {
      if (n++ < 40) c.write(`X-${n}: y\r\n`);
    }, 50);
    const res = await c.response();
    const end = await c.closed();
    clearInterval(trickle);
    assert.equal(res.status, 408);
    assert.ok(end - start >= HEADER_TIMEOUT - 50, `not before the timeout (${end - start} ms)`);
    assert.ok(end - start < HEADER_TIMEOUT + 400, `closed ${end - start} ms after connecting`);
  });

  test("a connection that sends nothing is closed at the header timeout", async () => {
    const c = await rawConnect(lim.port);
    const start = Date.now();
    const end = await c.closed();
    assert.ok(end - start >= HEADER_TIMEOUT - 50 && end - start < HEADER_TIMEOUT + 400, `${end - start} ms`);
  });

  for (const trailer of ["", "\r\n"]) {
    test(`an idle keep-alive connection closes after idle_timeout${trailer ? " (trailing CRLF)" : ""}`, async () => {
      const c = await rawConnect(lim.port);
      c.write("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n" + trailer);
      const res = await c.response();
      const answered = Date.now();
      assert.equal(res.status, 404);
      assert.notEqual(res.headers.connection, "close");
      const end = await c.closed(3000);
      assert.ok(end - answered >= IDLE - 50 && end - answered < IDLE + 400, `closed ${end - answered} ms after the answer`);
    });
  }

  test("pipelined requests are answered in order", async () => {
    const c = await rawConnect(lim.port);
    c.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" +
      req("GET", q("EIO=4&transport=polling")));
    assert.equal((await c.response()).status, 404);
    assert.equal((await c.response()).status, 404);
    const hs = await c.response();
    assert.equal(hs.status, 200);
    assert.equal(hs.text[0], "0");
    c.destroy();
  });

  test("max_connections: connections beyond the limit are closed at once", async () => {
    const open = [];
    for (let i = 0; i < 3; i++) {
      const c = await rawConnect(lim.port);
      c.write("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await c.response()).status, 404, `connection ${i + 1} is served`);
      open.push(c);
    }
    const extra = await rawConnect(lim.port);
    extra.write("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(await extra.response(), null, "the 4th connection is closed without an answer");
    // Free one slot: a new connection is served once the server has seen the close. Each
    // attempt waits for its own outcome; the number of attempts is bounded.
    open.shift().destroy();
    let served = false;
    for (let i = 0; i < 50 && !served; i++) {
      const c = await rawConnect(lim.port);
      c.write("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
      const r = await c.response();
      served = r !== null && r.status === 404;
      c.destroy();
    }
    assert.ok(served, "a slot freed by a closed connection is reused");
    for (const c of open) c.destroy();
  });
});

describe("shutdown", () => {
  test("a held poll is answered with a close packet and Connection: close", async () => {
    const srv = await startEngine([]);
    const sid = await handshake(srv.port);
    const held = await sendHeld(srv.port, req("GET", q(`EIO=4&transport=polling&sid=${sid}`)));
    const res = held.response();
    const code = srv.stop();
    const r = await res;
    assert.equal(r.text, "1");
    assert.equal(r.headers.connection, "close");
    assert.equal(await code, 0, "clean exit with a session open");
    assert.equal((await srv.closeOf(sid)).reason, "server shutting down");
  });
});

describe("static files", () => {
  let st, dir;
  before(async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-static-"));
    dir = path.join(base, "www");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "index.html"), "<p>index</p>");
    fs.writeFileSync(path.join(dir, ".env"), "HIDDEN");
    fs.writeFileSync(path.join(base, "secret.txt"), "SECRET");
    st = await startEngine(["--static", dir]);
  });
  after(async () => {
    assert.equal(await st.stop(), 0);
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  });

  test("serves a file", async () => {
    const res = await rawRequest(st.port, req("GET", "/index.html"));
    assert.equal(res.status, 200);
    assert.equal(res.text, "<p>index</p>");
  });

  const attacks = ["/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/a/../../secret.txt",
    "/..%5csecret.txt", "/.env", "/%2eenv", "//secret.txt", "/www/%0d%0aSet-Cookie:%20x=1", "/%00index.html"];
  for (const a of attacks) {
    test(`refuses ${a}`, async () => {
      const res = await rawRequest(st.port, `GET ${a} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.ok(res, "an answer");
      assert.ok([400, 404].includes(res.status), `status ${res.status}`);
      assert.ok(!res.text.includes("SECRET") && !res.text.includes("HIDDEN"));
      assert.equal(res.headers["set-cookie"], undefined);
      assert.equal(res.headers.location, undefined);
    });
  }
});

// Last in this file (node:test runs top-level tests in order): after all of the above, the
// server holds no connection but the one asking. Each look is one request; bounded.
test("no connection is left behind after the bad input", async () => {
  let conns = -1;
  for (let i = 0; i < 100 && conns !== 1; i++) conns = (await stats()).connections;
  assert.equal(conns, 1);
});
