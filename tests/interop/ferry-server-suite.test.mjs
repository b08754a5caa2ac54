// tools/ferry --suite: the server the public socket.io-protocol test suite expects, checked
// here with the official socket.io-client (the suite itself is not part of the repository).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, bin, once } from "../lib/server.mjs";

// srv: exactly the suite's settings. relaxed: the same mode with slower heartbeats for the
// behaviour tests, which a 200 ms pong deadline turned flaky on a loaded 2-core machine.
let srv, relaxed;
before(async () => {
  srv = await startServer(bin("tools/ferry/ferry"), ["--suite", "--port", "0"]);
  relaxed = await startServer(bin("tools/ferry/ferry"), [
    "--suite", "--port", "0", "--ping-interval", "2000", "--ping-timeout", "5000",
  ]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
  assert.equal(await relaxed.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

test("suite settings: ping 300/200 in the handshake", async () => {
  assert.match(srv.stdout(), /test suite mode/);
  const res = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`);
  const open = JSON.parse((await res.text()).slice(1));
  assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
  assert.equal(open.pingInterval, 300);
  assert.equal(open.pingTimeout, 200);
  assert.equal(open.maxPayload, 1000000);
});

for (const nsp of ["/", "/custom"]) {
  test(`connect to ${nsp} emits auth with the CONNECT payload`, async () => {
    const a = io(relaxed.url + nsp, { forceNew: true, reconnection: false, auth: { token: "123" } });
    const [authA] = [await once(a, "auth")];
    assert.deepEqual(authA, { token: "123" });
    a.disconnect();
    const b = io(relaxed.url + nsp, { forceNew: true, reconnection: false });
    assert.deepEqual(await once(b, "auth"), {});
    b.disconnect();
  });
}

test("message comes back as message-back, binary included; message-with-ack is acked", async () => {
  const s = io(relaxed.url, { forceNew: true, reconnection: false });
  await once(s, "auth");
  const bin = Buffer.from([1, 2, 3]);
  s.emit("message", 1, "2", { 3: [true] }, bin);
  const back = await once(s, "message-back");
  assert.deepEqual(back.slice(0, 3), [1, "2", { 3: [true] }]);
  assert.deepEqual(Buffer.from(back[3]), bin);
  const acked = await new Promise((resolve, reject) =>
    s.timeout(5000).emit("message-with-ack", 1, "2", { 3: [false] }, bin, (err, ...args) =>
      err ? reject(err) : resolve(args)));
  assert.deepEqual(acked.slice(0, 3), [1, "2", { 3: [false] }]);
  assert.deepEqual(Buffer.from(acked[3]), bin);
  s.disconnect();
});

test("an unknown namespace is refused, a silent session closes after the connect timeout", async () => {
  const s = io(relaxed.url + "/random", { forceNew: true, reconnection: false });
  const err = await once(s, "connect_error");
  assert.equal(err.message, "Invalid namespace");
  s.disconnect();

  // A session that never sends CONNECT: polled (and ponged) until the server closes it.
  const url = `${relaxed.url}/socket.io/?EIO=4&transport=polling`;
  const sid = JSON.parse((await (await fetch(url)).text()).slice(1)).sid;
  const started = Date.now();
  let closed = false;
  for (let i = 0; i < 50 && !closed; i++) {
    const res = await fetch(`${url}&sid=${sid}`);
    const body = await res.text();
    if (res.status !== 200 || body.split("\x1e").includes("1")) closed = true;
    else if (body.split("\x1e").includes("2"))
      await (await fetch(`${url}&sid=${sid}`, { method: "POST", body: "3" })).text();
  }
  assert.ok(closed, "closed");
  const took = Date.now() - started;
  assert.ok(took >= 800 && took < 3000, `closed after ${took} ms (connect timeout 1000)`);
});
