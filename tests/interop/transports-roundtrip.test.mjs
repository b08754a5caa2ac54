// One message sequence, both ways, over every transport: text with CR/LF/NUL/emoji, binary, a
// message near maxPayload, many small ones. The client sends it, the server (ferry-test-engine,
// which echoes) must see exactly that sequence, and the client must get exactly it back.
// Heartbeats keep each transport alive, and a client that stops answering pings is closed on
// time on each. A transport is one row of TRANSPORTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startEngine } from "../lib/events.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";
import { messages } from "../lib/client.mjs";

const TRANSPORTS = ["polling", "short-polling", "sse", "websocket"];
const PING_INTERVAL = 300;
// Room for a loaded machine (ASan, 2 cores, other suites): at 400 ms a session sending the
// 100 kB message over polling was lost to its ping timeout under load 25.
const PING_TIMEOUT = 1500;
const SHORT_POLL = 100;
const MAX_PAYLOAD = 100000;

let eng;
before(async () => {
  eng = await startEngine([
    "--transports", "polling,websocket,sse,short-polling",
    "--ping-interval", String(PING_INTERVAL),
    "--ping-timeout", String(PING_TIMEOUT),
    "--short-poll-interval", String(SHORT_POLL),
    "--max-payload", String(MAX_PAYLOAD),
  ]);
});
after(async () => {
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

const SEQUENCE = [
  "plain",
  "cr\rlf\ncrlf\r\nnul\0end",
  "\r",
  "\n",
  "\0",
  "",
  "data: not a field\n\nid: 7\n",
  ": not a comment",
  "emoji 😀🚢 ünïcödé \u2028 \ufeff bom",
  Buffer.from([0, 1, 2, 13, 10, 255]),
  Buffer.from("binary that looks like text\n"),
  "L".repeat(MAX_PAYLOAD - 64),
  Buffer.alloc(30000, 0xab),
  ...Array.from({ length: 200 }, (_, i) => `m${i}`),
];

// What ferry-test-engine prints for a message: {text} or {binary: base64}.
const serverForm = (m) => (Buffer.isBuffer(m) ? { binary: m.toString("base64") } : { text: m });
const show = (m) => (Buffer.isBuffer(m) ? `<bin ${m.length}>` : JSON.stringify(m.length > 40 ? m.slice(0, 40) + `...(${m.length})` : m));

async function open(transport, opts = {}) {
  const c = new ExtClient(`${eng.url}${eng.path}`, { transport, ...opts });
  const hs = await c.open();
  const ev = await eng.next((e) => e.event === "open" && e.sid === hs.sid);
  assert.equal(ev.transport, transport);
  return c;
}

const collect = (c, n, ms = 15000) => messages(c, n, ms);

for (const transport of TRANSPORTS) {
  test(`${transport}: the same sequence arrives exactly, both ways`, async () => {
    const c = await open(transport);
    const back = collect(c, SEQUENCE.length);
    for (const m of SEQUENCE) c.send(m);
    const seen = [];
    for (let i = 0; i < SEQUENCE.length; i++) {
      const e = await eng.messageOf(c.sid, 10000);
      seen.push(e.binary !== undefined ? { binary: e.binary } : { text: e.text });
    }
    assert.deepEqual(seen, SEQUENCE.map(serverForm), "the server got the sequence in order");
    const got = await back;
    assert.equal(got.length, SEQUENCE.length);
    for (let i = 0; i < SEQUENCE.length; i++)
      assert.deepEqual(got[i], SEQUENCE[i], `message ${i} came back as sent (${show(SEQUENCE[i])})`);
    c.close();
    assert.equal((await eng.closeOf(c.sid)).reason, "transport close");
  });

  test(`${transport}: heartbeats keep an idle session alive`, async () => {
    const c = await open(transport);
    // Eight ping rounds (2.4 s): past pingInterval + pingTimeout, so only the pongs kept it.
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${c.stats.pings} pings in 15 s`)), 15000);
      c.on("ping", () => c.stats.pings >= 8 && (clearTimeout(t), resolve()));
      c.on("close", (why) => (clearTimeout(t), reject(new Error(`closed: ${why}`))));
    });
    assert.equal(c.state, "open");
    assert.equal(eng.all("close").filter((e) => e.sid === c.sid).length, 0, "the server did not close it");
    const echo = collect(c, 1);
    c.send("still here");
    assert.deepEqual(await echo, ["still here"]);
    c.close();
    await eng.closeOf(c.sid);
  });

  test(`${transport}: a client that stops answering pings is closed on time`, async () => {
    const t0 = Date.now();
    const c = await open(transport, { stallPongs: true });
    const closed = await eng.closeOf(c.sid, 10000);
    const elapsed = Date.now() - t0;
    assert.equal(closed.reason, "ping timeout");
    // The deadline is pingInterval + pingTimeout, plus the poll interval for short-polling.
    const due = PING_INTERVAL + PING_TIMEOUT + (transport === "short-polling" ? SHORT_POLL : 0);
    assert.ok(elapsed >= due - 50, `not before the deadline (${elapsed} ms, due ${due})`);
    assert.ok(elapsed <= due + 1500, `on time (${elapsed} ms, due ${due})`);
    c.finish("test over");
  });
}
