// Chromium resends a request by itself when the keep-alive connection it went out on dies before
// any byte of the answer came back, and tells the page nothing: a long-poll whose answer was
// lost on its way comes back to the server as a second, identical GET, and a POST whose "ok"
// was lost is taken a second time. The hostile-networks "drops" scenario lost a join's
// acknowledgement that way (stop 10: the page never started sending, "up: sent 0"). ferry's
// client says in every poll what it has (got=) and in every POST what came before it (tx=), so
// the server sends a lost answer again and takes a repeated POST once (docs/protocol.md 5.3).
//
// A proxy in the test drops exactly one answer, after the server gave it, by closing the
// client's connection without a byte; it checks that Chromium did retry (the request reached
// the server twice), so the test shows the case it is about.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { io as officialIo } from "socket.io-client";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, root } from "../lib/server.mjs";

let srv, browser, out;
before(async () => {
  out = mkdtempSync(path.join(tmpdir(), "ferry-chaos-retry-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), out]);
  writeFileSync(path.join(out, "index.html"), '<!doctype html><meta charset="utf-8"><script src="/ferry.min.js"></script>\n');
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--static", out, "--allow-publish", "seq", "--no-presence"]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak)");
  rmSync(out, { recursive: true, force: true });
});

// A pass-through proxy (keep-alive both sides) that drops the first answer drop(req, reqBody,
// resBody) picks: the client's connection is destroyed with no byte of it sent. seen lists
// every request as "METHOD query body".
async function dropProxy(drop) {
  const agent = new http.Agent({ keepAlive: true });
  const seen = [];
  let dropped = null;
  const server = http.createServer((req, res) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => {
      const body = Buffer.concat(parts).toString();
      seen.push(`${req.method} ${req.url.replace(/^.*\?/, "")} ${body}`);
      const up = http.request({ host: "127.0.0.1", port: srv.port, method: req.method, path: req.url, headers: req.headers, agent }, (ur) => {
        const got = [];
        ur.on("data", (c) => got.push(c));
        ur.on("end", () => {
          const answer = Buffer.concat(got);
          if (!dropped && drop(req, body, answer.toString())) {
            dropped = `${req.method} ${req.url.replace(/^.*\?/, "")} ${body} -> ${answer.toString().slice(0, 60)}`;
            return req.socket.destroy();
          }
          res.writeHead(ur.statusCode, ur.headers);
          res.end(answer);
        });
      });
      up.on("error", () => res.destroy());
      up.end(body);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    dropped: () => dropped,
    close: () => (server.closeAllConnections(), server.close(), agent.destroy()),
  };
}

async function observer(room) {
  const o = officialIo(srv.url, { transports: ["websocket"], reconnection: false });
  const got = [];
  o.on("seq", (d, meta) => meta?.from && got.push(d.n));
  await new Promise((res, rej) => (o.once("connect", res), o.once("connect_error", rej)));
  await o.emitWithAck("join", { room });
  return { got, close: () => o.disconnect() };
}

for (const transport of ["polling", "short-polling"]) {
  test(`Chromium, ${transport}: an answer lost after the server gave it comes again (a join's ack)`, async () => {
    // The answer holding the join's acknowledgement ("43<id>[...]") is the one lost.
    const proxy = await dropProxy((req, body, answer) => req.method === "GET" && /(^|\x1e)43\d*\[\{"ok"/.test(answer));
    const page = await browser.newPage();
    try {
      await page.goto(`${proxy.url}/index.html`);
      const r = await page.evaluate(async (transport) => {
        const s = (window.s = ferry.io(location.origin, { transports: [transport], upgrade: false, reconnection: false }));
        window.moves = [];
        s.on("transport", (e) => moves.push(`${e.from}->${e.to} ${e.reason}`));
        await new Promise((res, rej) => (s.once("connect", res), s.once("connect_error", rej)));
        const t = Date.now();
        const ack = await s.timeout(8000).emitWithAck("join", { room: "retry-get" }).catch((e) => ({ error: e.message }));
        return { ack, ms: Date.now() - t, moves, connected: s.connected };
      }, transport);
      assert.ok(proxy.dropped(), "the proxy dropped the answer holding the ack");
      assert.equal(r.ack?.ok, true, `the join's ack arrived (${JSON.stringify(r.ack)}; requests: ${proxy.seen.join(" | ")})`);
      assert.deepEqual(r.moves, [`->${transport} forced`], "no transport change: the loss was repaired within the session");
      assert.ok(r.connected);
      // Chromium's retry is what brought it: the very same GET reached the proxy twice.
      const gets = proxy.seen.filter((l) => l.startsWith("GET ") && /got=/.test(l));
      const key = proxy.dropped().split(" ").slice(0, 2).join(" ");
      assert.ok(gets.filter((l) => l.startsWith(key)).length >= 2, `Chromium retried the GET (${gets.join(" | ")})`);
    } finally {
      await page.close();
      proxy.close();
    }
  });

  test(`Chromium, ${transport}: a POST whose answer was lost is taken once (a volatile emit, outside the outbox)`, async () => {
    const room = `retry-post-${transport}`;
    const obs = await observer(room);
    const proxy = await dropProxy((req, body) => req.method === "POST" && body.includes('"n":1}'));
    const page = await browser.newPage();
    try {
      await page.goto(`${proxy.url}/index.html`);
      const r = await page.evaluate(async ({ transport, room }) => {
        const s = (window.s = ferry.io(location.origin, { transports: [transport], upgrade: false, reconnection: false }));
        window.moves = [];
        s.on("transport", (e) => moves.push(`${e.from}->${e.to} ${e.reason}`));
        await new Promise((res, rej) => (s.once("connect", res), s.once("connect_error", rej)));
        await s.timeout(8000).emitWithAck("join", { room });
        // Volatile: not numbered by the outbox, so only the engine can tell a repeat.
        s.volatile.emit("publish", { room, event: "seq", data: { n: 1 } });
        // A second one after it, acknowledged: once it is answered the first was taken.
        const ack = await s.timeout(8000).emitWithAck("publish", { room, event: "seq", data: { n: 2 } }).catch((e) => ({ error: e.message }));
        return { ack, moves };
      }, { transport, room });
      assert.ok(proxy.dropped(), "the proxy dropped the POST's answer");
      assert.equal(r.ack?.ok, true, JSON.stringify(r.ack));
      const posts = proxy.seen.filter((l) => l.startsWith("POST ") && l.includes('"n":1}'));
      assert.ok(posts.length >= 2, `Chromium sent the POST again (${posts.join(" | ")})`);
      const end = Date.now() + 10000;
      // A repeat of the first would reach the room before the second (one POST at a time).
      while (!obs.got.includes(2) && Date.now() < end) await new Promise((res) => setTimeout(res, 50));
      assert.deepEqual(obs.got, [1, 2], "each publish reached the room once, in order");
      assert.deepEqual(r.moves, [`->${transport} forced`]);
    } finally {
      obs.close();
      await page.close();
      proxy.close();
    }
  });
}
