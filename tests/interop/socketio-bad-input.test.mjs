// Socket.IO bad input over raw HTTP long-polling: every malformed packet closes the Engine.IO
// session (the spec: "the receiver MUST close the connection"), an unknown namespace gets
// CONNECT_ERROR "Invalid namespace" and the session stays, and a session that joins no
// namespace is closed after the connect timeout. Also the public suite's CONNECT exchange.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startSio } from "../lib/sio.mjs";

// Long enough that a loaded ASan build connects in time in the other tests of this file.
const CONNECT_TIMEOUT = 1500;
let srv;
before(async () => {
  srv = await startSio(["--connect-timeout", String(CONNECT_TIMEOUT), "--max-attachments", "3"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

class Raw {
  async open() {
    this.base = `${srv.url}/socket.io/?EIO=4&transport=polling`;
    const res = await fetch(this.base);
    const text = await res.text();
    this.sid = JSON.parse(text.slice(1)).sid;
    return this;
  }
  post(body) {
    return fetch(`${this.base}&sid=${this.sid}`, { method: "POST", body }).then(async (r) => [r.status, await r.text()]);
  }
  get() {
    return fetch(`${this.base}&sid=${this.sid}`).then(async (r) => [r.status, await r.text()]);
  }
  async connect(nsp = "") {
    await this.post(`40${nsp}`);
    const [st, body] = await this.get();
    assert.equal(st, 200);
    return body.split("\x1e");
  }
  // The session is closed: a held GET got the close packet, or the next request is refused.
  async assertClosed() {
    for (let i = 0; i < 3; i++) {
      const [st, body] = await this.get();
      if (st === 400) {
        assert.match(body, /"code":1/);
        return;
      }
      if (body.split("\x1e").includes("1")) continue; // the close packet; the next GET is refused
    }
    assert.fail("the session is still open");
  }
}

test("CONNECT: the reply holds only the socket id, then the suite's auth event", async () => {
  const r = await new Raw().open();
  const pkts = await r.connect();
  assert.match(pkts[0], /^40\{/);
  const hs = JSON.parse(pkts[0].slice(2));
  assert.deepEqual(Object.keys(hs), ["sid"]);
  assert.notEqual(hs.sid, r.sid);
  assert.equal(pkts[1], '42["auth",{}]');
  const pk2 = await (async () => {
    await r.post('40/custom,{"token":"abc"}');
    return (await r.get())[1].split("\x1e");
  })();
  assert.match(pk2[0], /^40\/custom,\{"sid":"[A-Za-z0-9_-]{20}"\}$/);
  assert.equal(pk2[1], '42/custom,["auth",{"token":"abc"}]');
});

test("an unknown namespace: CONNECT_ERROR Invalid namespace, the session stays", async () => {
  const r = await new Raw().open();
  await r.connect();
  await r.post("40/random");
  assert.deepEqual(await r.get(), [200, '44/random,{"message":"Invalid namespace"}']);
  await r.post('42["message","still"]');
  assert.deepEqual(await r.get(), [200, '42["message-back","still"]']);
});

// Each of these closes the session (4 = the Engine.IO message prefix).
const invalid = {
  "unknown packet type": "4abc",
  "type digit out of range": "47",
  "EVENT payload not an array": "42{}",
  "EVENT with an empty array": "42[]",
  "EVENT without payload": "42",
  "EVENT with a reserved name": '42["disconnect"]',
  "EVENT name neither string nor number": "42[{}]",
  "non-numeric ack id": '42abc["message-with-ack",1,"2",{"3":[false]}]',
  "ack id beyond 2^53-1": '429007199254740992["message"]',
  "trailing bytes after the JSON": '42["message"]x',
  "ACK without id": "43[]",
  "ACK payload not an array": "431{}",
  "DISCONNECT with a payload": "41{}",
  "CONNECT payload not an object": "40[]",
  "CONNECT for a namespace already joined": "40",
  "CONNECT_ERROR from a client": '44{"message":"x"}',
  "packet for a namespace not joined": '42/custom,["message"]',
  "binary packet without attachment count": '45["message",{"_placeholder":true,"num":0}]',
  "more attachments than max_attachments": '454-["message"]',
  "placeholder index out of range": '451-["message",{"_placeholder":true,"num":1}]',
  "duplicate placeholder": '452-["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]',
  "attachment with no packet waiting": "bAQID",
  "text while attachments are due": '451-["message",{"_placeholder":true,"num":0}]\x1e42["message"]',
};

for (const [what, body] of Object.entries(invalid)) {
  test(`closes the session: ${what}`, async () => {
    const r = await new Raw().open();
    await r.connect();
    const [st] = await r.post(body);
    assert.equal(st, 200);
    await r.assertClosed();
    const ev = await srv.next((e) => e.event === "disconnect" && e.reason === "parse error");
    assert.equal(ev.nsp, "/");
  });
}

test("a packet before any CONNECT closes the session", async () => {
  const r = await new Raw().open();
  await r.post('42["message"]');
  await r.assertClosed();
});

test("a session that joins no namespace is closed after the connect timeout", async () => {
  const r = await new Raw().open();
  const t0 = Date.now();
  const [st, body] = await r.get(); // held until the close
  const dt = Date.now() - t0;
  assert.equal(st, 200);
  assert.ok(body.split("\x1e").includes("1"), `close packet, got ${JSON.stringify(body)}`);
  assert.ok(dt >= CONNECT_TIMEOUT - 50 && dt < CONNECT_TIMEOUT + 1500, `closed after ${dt} ms`);
  assert.equal((await r.get())[0], 400);
});

test("a session that joined is not closed by the connect timeout", async () => {
  const r = await new Raw().open();
  await r.connect();
  await new Promise((res) => setTimeout(res, CONNECT_TIMEOUT + 100)); // past the deadline on purpose
  await r.post('42["message","alive"]');
  assert.deepEqual(await r.get(), [200, '42["message-back","alive"]']);
});

test("more than 1024 acks left unanswered close the session (flood)", async () => {
  const r = await new Raw().open();
  const [hs] = await r.connect();
  const id = JSON.parse(hs.slice(2)).sid;
  // "hold" reaches the catch-all, which never answers: each ack stays pending.
  const body = Array.from({ length: 1025 }, (_, i) => `42${i}["hold"]`).join("\x1e");
  assert.equal((await r.post(body))[0], 200);
  await r.assertClosed();
  assert.equal((await srv.disconnectOf(id)).reason, "transport error");
});

test("at most 256 namespaces per session; the 257th gets CONNECT_ERROR", async () => {
  const r = await new Raw().open();
  const body = Array.from({ length: 257 }, (_, i) => `40/dyn-n${i},`).join("\x1e");
  assert.equal((await r.post(body))[0], 200);
  const seen = [];
  while (!seen.some((p) => p.startsWith("44"))) {
    const [st, text] = await r.get();
    assert.equal(st, 200);
    seen.push(...text.split("\x1e"));
  }
  assert.equal(seen.filter((p) => /^40\/dyn-n\d+,\{"sid"/.test(p)).length, 256);
  assert.deepEqual(seen.filter((p) => p.startsWith("44")), ['44/dyn-n256,{"message":"Too many namespaces"}']);
  await r.post('42/dyn-n3,["message","ok"]');
  let back;
  while (!back) back = (await r.get())[1].split("\x1e").find((p) => p.includes("message-back"));
  assert.equal(back, '42/dyn-n3,["message-back","ok"]');
});

