// The Socket.IO wire as the public socket.io-protocol test suite checks it, over a raw
// WebSocket (npm ws) against ferry-test-sio with the suite's settings (ping 300/200, connect
// timeout 1000): the CONNECT reply holds only the socket id, the "auth" event follows, an
// unknown namespace gets CONNECT_ERROR, binary attachments are echoed as binary frames in
// order, acks carry the same id, and malformed packets close the connection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { startSio, offersWebSocket, WS_ABSENT } from "../lib/sio.mjs";

let srv;
let hasWs = false;
before(async () => {
  srv = await startSio(["--ping-interval", "300", "--ping-timeout", "200", "--connect-timeout", "1000"]);
  hasWs = await offersWebSocket(srv.url);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "the test server exits cleanly");
});

// A raw client: every frame that is not a ping is queued; pings are answered so that the
// 300/200 heartbeat does not end the tests.
class Raw {
  constructor() {
    this.ws = new WebSocket(`${srv.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
    this.frames = [];
    this.waiters = [];
    this.closed = new Promise((r) => this.ws.on("close", r));
    this.ws.on("message", (data, isBinary) => {
      const f = isBinary ? [...data] : String(data);
      if (f === "2") return this.ws.send("3");
      this.frames.push(f);
      this.waiters.shift()?.();
    });
  }
  async next(ms = 3000) {
    while (this.frames.length === 0)
      await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("no frame")), ms);
        this.waiters.push(() => (clearTimeout(t), resolve()));
      });
    return this.frames.shift();
  }
  send(x) {
    this.ws.send(x);
  }
  async open() {
    const hs = await this.next();
    assert.match(hs, /^0\{/);
    return this;
  }
  async connect(pkt = "40") {
    this.send(pkt);
    const reply = await this.next();
    const auth = await this.next();
    return [reply, auth];
  }
}

function wsTest(name, fn) {
  test(name, async (t) => {
    if (!hasWs) return t.skip(WS_ABSENT);
    await fn();
  });
}

wsTest("CONNECT to the main namespace: only the sid, then auth {}", async () => {
  const r = await new Raw().open();
  const [reply, auth] = await r.connect("40");
  assert.match(reply, /^40\{/);
  assert.deepEqual(Object.keys(JSON.parse(reply.slice(2))), ["sid"]);
  assert.equal(auth, '42["auth",{}]');
  r.ws.close();
});

wsTest("CONNECT with a payload, to a custom namespace with and without the comma", async () => {
  const r = await new Raw().open();
  assert.equal((await r.connect('40{"token":"123"}'))[1], '42["auth",{"token":"123"}]');
  const [reply, auth] = await r.connect('40/custom,{"token":"abc"}');
  assert.match(reply, /^40\/custom,\{"sid":"[^"]+"\}$/);
  assert.equal(auth, '42/custom,["auth",{"token":"abc"}]');
  r.send("41/custom");
  r.send('42["message","message to main namespace"]');
  assert.equal(await r.next(), '42["message-back","message to main namespace"]');
  r.ws.close();
});

wsTest("an unknown namespace is refused", async () => {
  const r = await new Raw().open();
  r.send("40/random");
  assert.equal(await r.next(), '44/random,{"message":"Invalid namespace"}');
  r.ws.close();
});

wsTest("plain, binary, acked and binary acked messages", async () => {
  const r = await new Raw().open();
  await r.connect();
  r.send('42["message",1,"2",{"3":[true]}]');
  assert.equal(await r.next(), '42["message-back",1,"2",{"3":[true]}]');
  r.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  r.send(Uint8Array.from([1, 2, 3]));
  r.send(Uint8Array.from([4, 5, 6]));
  assert.equal(await r.next(), '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  assert.deepEqual(await r.next(), [1, 2, 3]);
  assert.deepEqual(await r.next(), [4, 5, 6]);
  r.send('42456["message-with-ack",1,"2",{"3":[false]}]');
  assert.equal(await r.next(), '43456[1,"2",{"3":[false]}]');
  r.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  r.send(Uint8Array.from([1, 2, 3]));
  r.send(Uint8Array.from([4, 5, 6]));
  assert.equal(await r.next(), '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  assert.deepEqual(await r.next(), [1, 2, 3]);
  assert.deepEqual(await r.next(), [4, 5, 6]);
  r.ws.close();
});

for (const bad of ["4abc", "42{}", '42abc["message-with-ack",1,"2",{"3":[false]}]']) {
  wsTest(`closes the connection on ${JSON.stringify(bad)}`, async () => {
    const r = await new Raw().open();
    await r.connect();
    r.send(bad);
    await r.closed;
  });
}

wsTest("an invalid handshake closes the connection", async () => {
  const r = await new Raw().open();
  r.send("4abc");
  await r.closed;
});

wsTest("no CONNECT within the connect timeout closes the connection", async () => {
  const r = await new Raw().open();
  const t0 = Date.now();
  await r.closed;
  const dt = Date.now() - t0;
  assert.ok(dt >= 900 && dt < 3000, `closed after ${dt} ms`);
});
