// The SSE transport's own behaviours (docs/protocol.md "transport=sse"): response headers,
// keep-alive comments, the padding prelude, stream recycling with resumption, Last-Event-ID
// after a broken stream, and every kind of bad input with its answer.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startEngine } from "../lib/events.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";
import { messages } from "../lib/client.mjs";

const KEEPALIVE = 150;
const PADDING = 2048;
const RECYCLE = 4000;
const QUEUE_BYTES = 3000; // also bounds the replay ring

let eng; // keep-alive and padding on
let small; // recycling and a small replay ring
before(async () => {
  const common = ["--transports", "polling,sse", "--ping-interval", "10000", "--ping-timeout", "5000"];
  eng = await startEngine([...common, "--sse-keepalive", String(KEEPALIVE), "--sse-padding", String(PADDING), "--cors", "http://app.example"]);
  small = await startEngine([...common, "--sse-recycle", String(RECYCLE), "--queue-bytes", String(QUEUE_BYTES)]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
  assert.equal(await small.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

async function open(srv, opts = {}) {
  const c = new ExtClient(`${srv.url}${srv.path}`, { transport: "sse", ...opts });
  const hs = await c.open();
  await srv.next((e) => e.event === "open" && e.sid === hs.sid && e.transport === "sse");
  return c;
}

const collect = (c, n, ms = 10000) => messages(c, n, ms);

// A raw stream request: resolves with {status, headers, first bytes of the body (as text)}.
// Reads until wantBytes bytes came, or until want(body) holds when want is a function.
function rawStream(srv, query, headers = {}, want = 1) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${srv.url}${srv.path}?${new URLSearchParams(query)}`, { headers, agent: false }, (res) => {
      let body = "";
      const done = () => {
        res.destroy();
        resolve({ status: res.statusCode, headers: res.headers, body });
      };
      res.on("data", (d) => {
        body += d;
        if (typeof want === "function" ? want(body) : body.length >= want) done();
      });
      res.on("end", done);
    });
    req.on("error", reject);
  });
}

const sseGet = (srv, extra, headers = { Accept: "text/event-stream" }) =>
  rawStream(srv, { EIO: "4", transport: "sse", ...extra }, headers);

test("headers that stop buffering, the padding prelude, then the open packet as event 1", async () => {
  const r = await rawStream(eng, { EIO: "4", transport: "sse" }, { Accept: "text/event-stream" },
    (body) => /data: 0\{"sid":"[\w-]{22}"/.test(body));
  assert.equal(r.status, 200);
  assert.equal(r.headers["content-type"], "text/event-stream");
  assert.equal(r.headers["cache-control"], "no-cache, no-transform");
  assert.equal(r.headers["x-accel-buffering"], "no");
  const prelude = ":" + " ".repeat(PADDING) + "\nretry: 1000\n\n";
  assert.ok(r.body.startsWith(prelude), "a comment of PADDING spaces, the retry delay, a blank line");
  // Opened without a sid: the ids name the session ("<sid>:<n>"). A keep-alive comment may
  // come first when a loaded machine runs the stream's timer before the open packet's flush;
  // EventSource ignores comments, so only the order of events matters.
  const m = /^(?::\n\n)*id: ([\w-]{22}):1\ndata: 0\{"sid":"([\w-]{22})"/.exec(r.body.slice(prelude.length));
  assert.ok(m, r.body.slice(prelude.length, prelude.length + 80));
  assert.equal(m[1], m[2]);
});

test("keep-alive comments arrive at the configured interval on an idle stream", async () => {
  const c = await open(eng);
  const t0 = Date.now();
  const base = c.stats.comments; // the padding prelude is a comment too
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${c.stats.comments - base} comments in 5 s`)), 5000);
    c.on("comment", () => c.stats.comments >= base + 3 && (clearTimeout(t), resolve()));
  });
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 2 * KEEPALIVE, `three comments take at least two intervals (${elapsed} ms)`);
  assert.ok(elapsed <= 3 * KEEPALIVE + 500, `and not much more than three (${elapsed} ms)`);
  c.close();
  await eng.closeOf(c.sid);
});

test("streams are recycled after the configured bytes; the client resumes and loses nothing", async () => {
  const c = await open(small);
  const n = 60;
  const msgs = [];
  // One at a time: the echoes of a whole batch at once would pass QUEUE_BYTES.
  for (let i = 0; i < n; i++) {
    const got = collect(c, 1);
    c.send(`recycled message ${i} ${"r".repeat(100)}`);
    msgs.push(...(await got));
  }
  assert.deepEqual(msgs, Array.from({ length: n }, (_, i) => `recycled message ${i} ${"r".repeat(100)}`));
  assert.ok(c.stats.streams >= 2, `the stream was recycled (${c.stats.streams} streams)`);
  c.close();
  await small.closeOf(c.sid);
});

test("a broken stream resumes from Last-Event-ID: what was sent meanwhile arrives once", async () => {
  const c = await open(eng);
  const first = collect(c, 1);
  c.send("before");
  assert.deepEqual(await first, ["before"]);
  const lastId = c.lastEventId;
  // Break the stream; the server sends while the client is away (upstream still works).
  const s = c.stream;
  c.stream = null;
  s.destroy();
  c.send("cmd:burst 20");
  await eng.next((e) => e.event === "message" && e.sid === c.sid && e.text === "cmd:burst 20");
  const rest = collect(c, 20);
  assert.equal(await c.openStream(), 200);
  assert.deepEqual(await rest, Array.from({ length: 20 }, (_, i) => `burst ${i}`));
  const num = (id) => Number(id.split(":").pop());
  assert.ok(num(c.lastEventId) > num(lastId), "ids go on across streams");
  c.close();
  await eng.closeOf(c.sid);
});

test("bad input: a POST with a bad payload closes the session with parse error", async () => {
  const c = await open(eng);
  const closed = new Promise((r) => c.once("close", r));
  const res = await fetch(`${eng.url}${eng.path}?EIO=4&transport=sse&sid=${c.sid}`, { method: "POST", body: "abc" });
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 3, message: "Bad request" });
  assert.equal(await closed, "server close", "the stream ended with a close packet");
  assert.equal((await eng.closeOf(c.sid)).reason, "parse error");
  const again = await sseGet(eng, { sid: c.sid });
  assert.equal(again.status, 400, "the sid is gone");
});

test("bad input: a second stream for one sid is refused; the first goes on", async () => {
  const c = await open(eng);
  const r = await sseGet(eng, { sid: c.sid });
  assert.equal(r.status, 400);
  assert.equal(r.body, JSON.stringify({ code: 3, message: "Bad request" }));
  const echo = collect(c, 1);
  c.send("first stream still works");
  assert.deepEqual(await echo, ["first stream still works"]);
  c.close();
  await eng.closeOf(c.sid);
});

test("bad input: a garbage or future Last-Event-ID is refused; the session goes on", async () => {
  const c = await open(eng);
  for (const id of ["abc", "-1", "1e3", "99999999999999999999999", "999999"]) {
    const r = await sseGet(eng, { sid: c.sid }, { Accept: "text/event-stream", "Last-Event-ID": id });
    assert.equal(r.status, 400, `Last-Event-ID ${id}`);
    assert.equal(r.body, JSON.stringify({ code: 3, message: "Bad request" }));
  }
  const echo = collect(c, 1);
  c.send("still open");
  assert.deepEqual(await echo, ["still open"]);
  c.close();
  await eng.closeOf(c.sid);
});

test("bad input: a Last-Event-ID older than what the session holds closes the session", async () => {
  const c = await open(small);
  // More than QUEUE_BYTES of events: the oldest leave the replay ring.
  for (let i = 0; i < 10; i++) {
    const got = collect(c, 1);
    c.send(`old ${i} ${"o".repeat(500)}`);
    await got;
  }
  const r = await sseGet(small, { sid: c.sid }, { Accept: "text/event-stream", "Last-Event-ID": "1" });
  assert.equal(r.status, 400);
  assert.equal(r.body, JSON.stringify({ code: 3, message: "Bad request" }));
  assert.equal((await small.closeOf(c.sid)).reason, "transport error");
  c.finish("test over");
});

test("bad input: a stream without Accept: text/event-stream is refused", async () => {
  const r = await sseGet(eng, {}, {});
  assert.equal(r.status, 400);
  assert.equal(r.body, JSON.stringify({ code: 3, message: "Bad request" }));
});

test("on the wire: CR, LF and NUL text goes as x+base64, other text and binary as in polling", async () => {
  const texts = ["4a\nb", "4c\rd", "4nul\0", "4plain ✓"];
  const want = ["xNGEKYg==", `x${Buffer.from("4c\rd").toString("base64")}`, `x${Buffer.from("4nul\0").toString("base64")}`, "4plain ✓", "bAQIDBA=="];
  const body = await new Promise((resolve, reject) => {
    let got = "";
    const req = http.get(`${eng.url}${eng.path}?EIO=4&transport=sse`, { headers: { Accept: "text/event-stream" }, agent: false }, (res) => {
      res.setEncoding("utf8");
      res.on("data", async (d) => {
        const first = got === "" || !got.includes('"sid"');
        got += d;
        const m = /"sid":"([^"]+)"/.exec(got);
        if (first && m) {
          const post = (b) => fetch(`${eng.url}${eng.path}?EIO=4&transport=sse&sid=${m[1]}`, { method: "POST", body: b });
          await post(texts.join("\x1e") + "\x1ebAQIDBA==");
        }
        if (want.every((w) => got.includes(`data: ${w}\n`))) {
          req.destroy();
          resolve(got);
        }
      });
    });
    req.on("error", () => {});
    setTimeout(() => reject(new Error(`not all forms seen: ${JSON.stringify(got.slice(-300))}`)), 5000).unref();
  });
  // Each came as one event with an id, in the order sent.
  const ids = [...body.matchAll(/id: [\w-]{22}:(\d+)\ndata: ([^\n]*)/g)].map((m) => [Number(m[1]), m[2]]);
  const echoes = ids.filter(([, d]) => want.includes(d));
  assert.deepEqual(echoes.map(([, d]) => d), want);
  for (let i = 1; i < echoes.length; i++) assert.equal(echoes[i][0], echoes[i - 1][0] + 1, "consecutive ids");
});

test("an EventSource-style reconnect to the first URL resumes by the Last-Event-ID's sid", async () => {
  const c = await open(eng);
  const first = collect(c, 1);
  c.send("one");
  assert.deepEqual(await first, ["one"]);
  assert.match(c.lastEventId, new RegExp(`^${c.sid}:\\d+$`));
  // Break the stream, queue a message, then reconnect on the handshake URL (no sid).
  const s = c.stream;
  c.stream = null;
  s.destroy();
  c.send("cmd:burst 3");
  await eng.next((e) => e.event === "message" && e.sid === c.sid && e.text === "cmd:burst 3");
  const r = await new Promise((resolve, reject) => {
    let body = "";
    const req = http.get(`${eng.url}${eng.path}?EIO=4&transport=sse`, { headers: { Accept: "text/event-stream", "Last-Event-ID": c.lastEventId }, agent: false }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (d) => {
        body += d;
        if (body.includes("burst 2")) (req.destroy(), resolve({ status: res.statusCode, body }));
      });
    });
    req.on("error", () => {});
    setTimeout(() => reject(new Error(`no resume: ${body}`)), 5000).unref();
  });
  assert.equal(r.status, 200);
  const events = [...r.body.matchAll(/id: ([\w-]+):(\d+)\ndata: 4(burst \d)/g)].map((m) => [m[1], m[3]]);
  assert.deepEqual(events, [0, 1, 2].map((i) => [c.sid, `burst ${i}`]), "the rest, once, with qualified ids");
  c.finish("test over");
  // A Last-Event-ID naming no live session: the session is unknown.
  const gone = await sseGet(eng, {}, { Accept: "text/event-stream", "Last-Event-ID": "AAAAAAAAAAAAAAAAAAAAAA:5" });
  assert.equal(gone.status, 400);
  assert.equal(gone.body, JSON.stringify({ code: 1, message: "Session ID unknown" }));
  // A Last-Event-ID of another session on this sid's URL is garbage.
  const other = await sseGet(eng, { sid: c.sid }, { Accept: "text/event-stream", "Last-Event-ID": "AAAAAAAAAAAAAAAAAAAAAA:1" });
  assert.equal(other.status, 400);
  assert.equal(other.body, JSON.stringify({ code: 3, message: "Bad request" }));
});

test("CORS: an allowed Origin gets its headers on the stream; another Origin is refused", async () => {
  const ok = await rawStream(eng, { EIO: "4", transport: "sse" }, { Accept: "text/event-stream", Origin: "http://app.example" }, PADDING + 40);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers["access-control-allow-origin"], "http://app.example");
  assert.equal(ok.headers["content-type"], "text/event-stream");
  const bad = await sseGet(eng, {}, { Accept: "text/event-stream", Origin: "http://evil.example" });
  assert.equal(bad.status, 403);
  assert.equal(bad.body, JSON.stringify({ code: 4, message: "Forbidden" }));
});
