// Issue 14: a probe the client gave up, whose close never reached the server, must not hold the
// session's messages until the server's upgrade timeout (10 s). The client (raw HTTP and npm ws,
// as a client behind a proxy that cut the probe's connection on the client's side only) opens a
// probe from long-polling or short-polling, sends "2probe", reads "3probe", then gives the probe
// up without a word and goes on polling, as engine.io-client does after a failed probe and as
// ferry's client does after its probe timeout. It sends a message; ferry-test-engine echoes it.
// Checked: the echo comes on the old transport within BOUND_MS of the send (it came only at the
// upgrade timeout, about 10 s after the probe, before the fix: the server answered every poll
// with a noop until then), once, and the session is still open on its old transport once the
// probe has timed out. A poll during an upgrade takes what is queued, as the reference server's
// does (engine.io socket.ts flush() ignores the upgrade): the client reads a poll's answer
// whole before it sends "5", so a completed upgrade is unchanged (tests/interop
// transports-upgrade, engine-websocket, client-js-probe).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import WebSocket from "ws";
import { startServer, bin } from "../lib/server.mjs";

// Far below the 10 s upgrade timeout, generous for a loaded machine.
const BOUND_MS = 3000;
const SEP = "\x1e";

let srv;
before(async () => {
  srv = await startServer(bin("tests/servers/ferry-test-engine"), ["--port", "0", "--transports", "polling,short-polling,websocket,sse"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-engine exits 0 on SIGTERM (no leak)");
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A probe of session sid to `to`, up to "3probe"; resolves with a function that drops the
// probe's connection (the end of the test: the server then sees it go).
function probe(sid, to) {
  const q = `EIO=4&transport=${to}&sid=${encodeURIComponent(sid)}`;
  if (to === "websocket") {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/engine.io/?${q}`);
      ws.on("error", reject);
      ws.on("open", () => ws.send("2probe"));
      ws.on("message", (d) => String(d) === "3probe" && resolve(() => ws.terminate()));
    });
  }
  return new Promise((resolve, reject) => {
    const req = http.get(`${srv.url}/engine.io/?${q}`, { headers: { accept: "text/event-stream" }, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`probe stream answered ${res.statusCode}`));
      let buf = "";
      res.on("data", (d) => {
        buf += d;
        if (buf.includes("data: 3probe\n\n")) resolve(() => req.destroy());
      });
      res.on("error", () => {});
      fetch(`${srv.url}/engine.io/?${q}`, { method: "POST", body: "2probe" }).then((r) => r.text());
    });
    req.on("error", () => {});
  });
}

async function run(from, to) {
  const ext = from !== "polling" || to === "sse" ? "&ferry=1" : "";
  const hs = await (await fetch(`${srv.url}/engine.io/?EIO=4&transport=${from}${ext}`)).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const url = `${srv.url}/engine.io/?EIO=4&transport=${from}&sid=${encodeURIComponent(sid)}`;
  const probeStart = Date.now();
  const drop = await probe(sid, to);
  // Given up here; its close is lost: the probe's connection stays open and says nothing.
  const t0 = Date.now();
  const post = await fetch(url, { method: "POST", body: "4hello" });
  assert.equal(post.status, 200, await post.text());
  const got = [];
  let echoMs = null;
  // Polls as a client does (again after 100 ms when answered by a bare noop), until the echo
  // or past the upgrade timeout (bounded either way).
  const pollUntil = async (want, ms) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const r = await fetch(url);
      const body = await r.text();
      assert.equal(r.status, 200, `a poll of the old transport is answered (${body})`);
      let seen = false;
      for (const p of body.split(SEP)) {
        if (p.startsWith("4")) got.push(p);
        if (p === want) seen = true;
        if (p === "2") await fetch(url, { method: "POST", body: "3" }).then((x) => x.text());
        assert.notEqual(p, "1", "the session is not closed");
      }
      if (seen) return true;
      if (body === "6") await sleep(100);
    }
    return false;
  };
  if (await pollUntil("4hello", 15000)) echoMs = Date.now() - t0;
  // Past the server's upgrade timeout (10 s from the probe) the session goes on, on the
  // old transport.
  await sleep(Math.max(0, probeStart + 10500 - Date.now()));
  const again = await fetch(url, { method: "POST", body: "4again" });
  assert.equal(again.status, 200, await again.text());
  assert.ok(await pollUntil("4again", 10000), "the session goes on after the probe timed out");
  drop();
  return { echoMs, got, sid };
}

for (const [from, to] of [["polling", "websocket"], ["polling", "sse"], ["short-polling", "websocket"]]) {
  test(`${from} > ${to}: a probe given up after 3probe, its close lost: the next poll gets the session's messages`, { timeout: 60000 }, async (t) => {
    const { echoMs, got } = await run(from, to);
    t.diagnostic(`${from} > ${to}: echo after ${echoMs} ms (bound ${BOUND_MS} ms; the upgrade timeout is 10 s)`);
    assert.ok(echoMs !== null, "the echo came");
    assert.ok(echoMs < BOUND_MS, `the echo came ${echoMs} ms after the send, within ${BOUND_MS} ms, not at the upgrade timeout`);
    assert.deepEqual(got, ["4hello", "4again"], "each echo came once, in order, and nothing else");
  });
}

// From SSE (ferry's client climbs sse > websocket): the stream takes nothing while the server
// waits for "5" (the client cannot tell whether more of it is on its way when it sends "5"), and
// a paused client sends no POST; one POST may be one it sent before it saw "3probe", a second one
// shows the probe was given up: the server drops the probe and the stream carries the session's
// messages again (they waited for the 10 s upgrade timeout before). ferry's client POSTs a
// client ping at least every 2 s on SSE (its health check), so a given-up probe costs at most
// that.
test("sse > websocket: a probe given up after 3probe, its close lost: the stream carries the messages again at the client's second POST", { timeout: 60000 }, async (t) => {
  const events = [];
  let sid;
  const stream = http.get(`${srv.url}/engine.io/?EIO=4&transport=sse`, { headers: { accept: "text/event-stream" }, agent: false }, (res) => {
    let buf = "";
    res.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const m = /^data: (.*)$/m.exec(buf.slice(0, i));
        buf = buf.slice(i + 2);
        if (!m) continue;
        events.push({ at: Date.now(), data: m[1] });
        if (m[1].startsWith("0{")) sid = JSON.parse(m[1].slice(1)).sid;
      }
    });
    res.on("error", () => {});
  });
  stream.on("error", () => {});
  const until = async (pred, ms, what) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
      await sleep(20);
    }
  };
  try {
    await until(() => sid, 10000, "the open packet");
    const drop = await probe(sid, "websocket");
    const url = `${srv.url}/engine.io/?EIO=4&transport=sse&sid=${encodeURIComponent(sid)}`;
    const t0 = Date.now();
    for (const m of ["4hello", "4again"]) {
      const r = await fetch(url, { method: "POST", body: m });
      assert.equal(r.status, 200, await r.text());
    }
    await until(() => events.some((e) => e.data === "4again"), 15000, "the echoes");
    const ms = events.find((e) => e.data === "4hello").at - t0;
    t.diagnostic(`sse > websocket: echo after ${ms} ms (bound ${BOUND_MS} ms; the upgrade timeout is 10 s)`);
    assert.ok(ms < BOUND_MS, `the echo came ${ms} ms after the first POST, within ${BOUND_MS} ms, not at the upgrade timeout`);
    assert.deepEqual(events.filter((e) => e.data.startsWith("4")).map((e) => e.data), ["4hello", "4again"], "each echo once, in order");
    drop();
  } finally {
    stream.destroy();
  }
});
