// shareAcrossTabs (issue 20) in headless Chromium against tools/ferry as users run it: three
// tabs of one origin share one Engine.IO session (handshakes counted by a proxy in front of the
// server), each with its own socket id, rooms and acknowledgements, and talk in a room with each
// other and with a tab of a second browser context; a closed tab leaves its room on the server;
// closing the first tab and restarting the server lose no acknowledged message. Once with the
// SharedWorker hub, once with SharedWorker removed (the tab elected through Web Locks runs the
// hub, the others reach it by BroadcastChannel).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { Server } from "socket.io";
import { readFileSync } from "node:fs";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, root } from "../lib/server.mjs";

const ARGS = ["--port", "0", "--allow-publish", "say", "--history-events", "say", "--history", "100", "--ping-interval", "2000", "--ping-timeout", "2000"];
let srv, browser, out, proxy;

// An HTTP proxy in front of the server that counts Engine.IO handshakes the server answered
// (requests with EIO and no sid, WebSocket upgrades included): the sessions it opened.
function countingProxy() {
  const st = { handshakes: 0, target: null, socks: new Set() };
  const hs = (u) => /[?&]EIO=4/.test(u) && !/[?&]sid=/.test(u);
  const server = http.createServer((req, res) => {
    const up = http.request({ host: "127.0.0.1", port: st.target, method: req.method, path: req.url, headers: req.headers }, (r) => {
      if (hs(req.url) && r.statusCode === 200) st.handshakes++;
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    req.pipe(up);
  });
  server.on("upgrade", (req, sock, head) => {
    const up = net.connect(st.target, "127.0.0.1", () => {
      if (hs(req.url)) st.handshakes++;
      let h = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) h += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(h + "\r\n");
      up.write(head);
      sock.pipe(up).pipe(sock);
    });
    for (const s of [sock, up]) st.socks.add(s), s.on("error", () => {}), s.on("close", () => (sock.destroy(), up.destroy(), st.socks.delete(s)));
  });
  server.on("connection", (s) => (st.socks.add(s), s.on("close", () => st.socks.delete(s))));
  return new Promise((res) =>
    server.listen(0, "127.0.0.1", () =>
      res({ st, url: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((r) => (st.socks.forEach((s) => s.destroy()), server.close(r))) }),
    ),
  );
}

before(async () => {
  out = mkdtempSync(path.join(tmpdir(), "ferry-tabs-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), out]);
  writeFileSync(path.join(out, "index.html"), '<!doctype html><meta charset="utf-8"><script src="/ferry.min.js"></script>\n');
  srv = await startServer(bin("tools/ferry/ferry"), [...ARGS, "--static", out]);
  proxy = await countingProxy();
  proxy.st.target = srv.port;
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await proxy?.stop();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak)");
  rmSync(out, { recursive: true, force: true });
});

// In the page: connect (shared or not), join the room on every connection that did not recover
// it (the join answer's history fills the gap, as examples/chat does), collect "say" and
// presence; say() publishes until the server acknowledges it (a publish refused because the
// socket is not back in the room yet is sent again).
function setupPage({ name, room, share }) {
  window.got = [];
  window.left = [];
  const s = (window.s = ferry.io(location.origin, { shareAcrossTabs: share, auth: { name }, reconnectionDelayMax: 1000 }));
  s.on("say", (d) => got.push(d)); // twice would show: the check below counts
  s.on("connect", () => (window.back = Date.now()));
  s.on("presence", (p) => p.left && left.push(p.left.id));
  const add = (d) => got.includes(d) || got.push(d);
  s.on("connect", () => s.recovered || (window.joined = s.timeout(5000).emitWithAck("join", { room }).then((r) => r.history?.forEach((h) => h.from?.id !== s.id && add(h.data)), () => null)));
  window.say = async (data) => {
    for (let i = 0; i < 100; i++) {
      try {
        if ((await s.timeout(5000).emitWithAck("publish", { room, event: "say", data })).ok) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("not published: " + data);
  };
  return new Promise((res, rej) => (s.once("connect", () => window.joined.then(() => res(s.id))), s.once("connect_error", rej)));
}

const until = (page, fn, arg, ms = 15000) => page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
const gotAll = (page, list) => until(page, (l) => l.every((x) => got.includes(x)), list);

for (const mode of ["SharedWorker", "election"]) {
  test(`Chromium, ${mode}: three tabs share one connection, talk in a room, survive their first tab closing and a server restart`, { timeout: 120000 }, async () => {
    const ctx = await browser.newContext();
    const other = await browser.newContext();
    if (mode === "election") await ctx.addInitScript(() => Object.defineProperty(window, "SharedWorker", { value: undefined }));
    const errors = [];
    const room = `tabs-${mode}`;
    try {
      const tabs = [];
      const base = proxy.st.handshakes;
      for (let i = 0; i < 3; i++) {
        const p = await ctx.newPage();
        p.on("pageerror", (e) => errors.push(e));
        await p.goto(`${proxy.url}/index.html`);
        tabs.push(p);
      }
      const ids = [];
      for (const [i, p] of tabs.entries()) ids.push(await p.evaluate(setupPage, { name: `tab${i}`, room, share: true }));
      assert.equal(new Set(ids).size, 3, "each tab has its own socket id");
      assert.equal(proxy.st.handshakes - base, 1, "three tabs, one Engine.IO session");
      const eng = await Promise.all(tabs.map((p) => p.evaluate(() => ({ sid: s.io.engine.sid, t: s.io.engine.transport?.name }))));
      assert.equal(new Set(eng.map((e) => e.sid)).size, 1, "io.engine.sid: the same session in every tab");
      for (const e of eng) assert.match(e.t, /^(websocket|sse|polling|short-polling)$/, "io.engine.transport.name");

      const b = await other.newPage();
      b.on("pageerror", (e) => errors.push(e));
      await b.goto(`${proxy.url}/index.html`);
      await b.evaluate(setupPage, { name: "other", room, share: true });
      assert.equal(proxy.st.handshakes - base, 2, "the second context has its own session");

      // Everyone says something; the relay sends it to the room except its sender.
      const all = [...tabs, b];
      const said = [];
      for (const [i, p] of all.entries()) await p.evaluate((d) => say(d), `hello-${i}`), said.push(`hello-${i}`);
      for (const [i, p] of all.entries()) await gotAll(p, said.filter((x) => x !== `hello-${i}`));

      // The first tab (the elected one without SharedWorker) closes: it leaves its room on the
      // server, and the others keep every message the second context says meanwhile.
      const first = tabs.shift();
      const t0 = Date.now();
      const closing = first.close({ runBeforeUnload: false });
      const during = [];
      const fromTab = []; // a remaining tab speaks through the takeover too (the outbox resends)
      const tabSays = [];
      for (let i = 0; i < 10; i++) {
        tabSays.push(tabs[0].evaluate((d) => say(d), `tab-during-${i}`));
        fromTab.push(`tab-during-${i}`);
        await b.evaluate((d) => say(d), `during-${i}`);
        during.push(`during-${i}`);
        await new Promise((r) => setTimeout(r, 150));
      }
      await closing;
      await Promise.all(tabSays);
      for (const p of tabs) await gotAll(p, during);
      await gotAll(b, fromTab);
      await gotAll(tabs[1], fromTab);
      await until(b, (id) => left.includes(id), ids[0], 10000);
      console.log(`tabs ${mode}: the first tab left its room and the others had every message ${Date.now() - t0} ms after it closed; sessions ${proxy.st.handshakes - base}`);
      if (mode === "election") {
        // The next tab's hub took over: the others are back on it, their sockets recovered.
        for (const p of tabs) await until(p, (t0) => window.back > t0 && s.connected, t0);
        const back = await Promise.all(tabs.map((p) => p.evaluate(() => ({ at: window.back, recovered: s.recovered }))));
        const ms = Math.max(...back.map((x) => x.at)) - t0;
        console.log(`tabs election: both other tabs connected through the new leader ${ms} ms after the leader closed`);
        assert.ok(ms < 5000, `takeover in ${ms} ms`);
        assert.deepEqual(back.map((x) => x.recovered), [true, true], "recovered: same ids, rooms, missed events");
        assert.equal(proxy.st.handshakes - base, 3, "one new session for the two tabs");
      } else assert.equal(proxy.st.handshakes - base, 2, "the SharedWorker's session goes on");
      for (const p of tabs) await p.evaluate((d) => say(d), `after-close-${p === tabs[0] ? 1 : 2}`);
      await gotAll(b, ["after-close-1", "after-close-2"]);
      await gotAll(tabs[0], ["after-close-2"]);
      await gotAll(tabs[1], ["after-close-1"]);

      // The server restarts: everyone comes back (the two tabs on one new session), joins again,
      // and what they say while it is down arrives once it is back.
      const before = proxy.st.handshakes;
      assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak)");
      const downSay = tabs.map((p, i) => p.evaluate((d) => say(d), `down-${i}`));
      srv = await startServer(bin("tools/ferry/ferry"), [...ARGS, "--static", out]);
      proxy.st.target = srv.port;
      await Promise.all(downSay);
      await gotAll(b, ["down-0", "down-1"]);
      await gotAll(tabs[0], ["down-1"]);
      await gotAll(tabs[1], ["down-0"]);
      assert.equal(proxy.st.handshakes - before, 2, "after the restart: one session for the two tabs, one for the other context");
      for (const p of all.slice(1)) {
        const got = await p.evaluate(() => got);
        assert.equal(got.length, new Set(got).size, "no message twice");
      }
      assert.deepEqual(errors, []);
    } catch (e) {
      for (const p of [...ctx.pages(), ...other.pages()]) console.log("page state:", await p.evaluate(() => ({ id: s.id, connected: s.connected, got, shared: s.io.engine.constructor.name })).catch((x) => x.message));
      throw e;
    } finally {
      await ctx.close();
      await other.close();
    }
  });
}

for (const mode of ["SharedWorker", "election"]) {
  test(`Chromium, ${mode}: a crashed tab leaves its room on the server; the others go on`, { timeout: 90000 }, async () => {
    const ctx = await browser.newContext();
    const other = await browser.newContext();
    if (mode === "election") await ctx.addInitScript(() => Object.defineProperty(window, "SharedWorker", { value: undefined }));
    const room = `crash-${mode}`;
    try {
      const tabs = [];
      const ids = [];
      for (let i = 0; i < 3; i++) {
        const p = await ctx.newPage();
        await p.goto(`${proxy.url}/index.html`);
        ids.push(await p.evaluate(setupPage, { name: `tab${i}`, room, share: true }));
        tabs.push(p);
      }
      const b = await other.newPage();
      await b.goto(`${proxy.url}/index.html`);
      await b.evaluate(setupPage, { name: "other", room, share: false });
      // A tab that is not the elected one crashes: its Web Lock goes with it, the hub tells the
      // server at once.
      let t0 = Date.now();
      (await ctx.newCDPSession(tabs[2])).send("Page.crash").catch(() => {});
      await until(b, (id) => left.includes(id), ids[2], 10000);
      console.log(`tabs ${mode}: a crashed tab left its room ${Date.now() - t0} ms later`);
      // The first tab crashes (the elected one without SharedWorker: its session goes with it,
      // the server notices at its ping deadline, the last tab comes back through a new hub).
      t0 = Date.now();
      (await ctx.newCDPSession(tabs[0])).send("Page.crash").catch(() => {});
      await until(b, (id) => left.includes(id), ids[0], 15000);
      console.log(`tabs ${mode}: the first tab, crashed, left its room ${Date.now() - t0} ms later`);
      await b.evaluate((d) => say(d), "after-crash");
      await gotAll(tabs[1], ["after-crash"]);
      await tabs[1].evaluate((d) => say(d), "still-here");
      await gotAll(b, ["still-here"]);
    } finally {
      await ctx.close();
      await other.close();
    }
  });
}

test("Chromium: against a server without tabs (Node's socket.io) each tab keeps a session of its own", { timeout: 60000 }, async () => {
  const files = { "/index.html": ["text/html", readFileSync(path.join(out, "index.html"))], "/ferry.min.js": ["text/javascript", readFileSync(path.join(out, "ferry.min.js"))], "/ferry-shared.js": ["text/javascript", readFileSync(path.join(out, "ferry-shared.js"))] };
  const web = http.createServer((req, res) => {
    const f = files[req.url];
    if (!f) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": f[0] }).end(f[1]);
  });
  const io = new Server(web);
  let conns = 0;
  io.engine.on("connection", () => conns++);
  io.on("connection", (s) => s.on("echo", (x, ack) => ack(x)));
  await new Promise((r) => web.listen(0, "127.0.0.1", r));
  const ctx = await browser.newContext();
  try {
    for (let i = 0; i < 2; i++) {
      const p = await ctx.newPage();
      await p.goto(`http://127.0.0.1:${web.address().port}/index.html`);
      const r = await p.evaluate(async (i) => {
        const s = (window.s = ferry.io(location.origin, { shareAcrossTabs: true }));
        await new Promise((res, rej) => (s.once("connect", res), s.once("connect_error", rej)));
        return s.timeout(5000).emitWithAck("echo", i);
      }, i);
      assert.equal(r, i);
    }
    assert.equal(conns, 3, "the hub's session (closed at once) and one session per tab");
  } finally {
    await ctx.close();
    io.close();
    await new Promise((r) => web.close(r));
  }
});

test("Chromium: ferry.WebSocket with shareAcrossTabs shares its session as it is, every tab getting every message", { timeout: 60000 }, async () => {
  // examples/ws-echo's Engine.IO echo; the page and the scripts are put on its origin by the
  // browser context.
  const echo = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0"]);
  const ctx = await browser.newContext();
  try {
    for (const f of ["index.html", "ferry.min.js", "ferry-shared.js"])
      await ctx.route(`${echo.url}/${f}`, (r) => r.fulfill({ body: readFileSync(path.join(out, f)), contentType: f.endsWith("html") ? "text/html" : "text/javascript" }));
    const tabs = [];
    const sids = [];
    for (let i = 0; i < 2; i++) {
      const p = await ctx.newPage();
      await p.goto(`${echo.url}/index.html`);
      sids.push(
        await p.evaluate(
          () =>
            new Promise((res, rej) => {
              window.msgs = [];
              const ws = (window.ws = new ferry.WebSocket(location.origin + "/engine.io/", { shareAcrossTabs: true }));
              ws.onmessage = (e) => msgs.push(e.data);
              ws.onopen = () => res(ws._e.hs.sid);
              ws.onclose = rej;
            }),
        ),
      );
      tabs.push(p);
    }
    assert.equal(sids[0], sids[1], "two tabs, one session");
    await tabs[0].evaluate(() => ws.send("hello"));
    for (const p of tabs) await until(p, () => msgs.includes("hello"));
    await tabs[0].evaluate(() => ws.close());
    await tabs[1].evaluate(() => ws.send("still"));
    await until(tabs[1], () => msgs.includes("still"));
    assert.equal(await tabs[1].evaluate(() => ws._e.hs.sid), sids[0], "the other tab goes on on the same session");
  } finally {
    await ctx.close();
    assert.equal(await echo.stop(), 0, "ws-echo exits 0 on SIGTERM (no leak)");
  }
});
