// The POST token in a browser (docs/protocol.md section 12): ferry's client (the classic
// bundle ferry.min.js) on a page served by tools/ferry --require-post-token exchanges messages
// over polling, short-polling and SSE, sending X-Ferry-Post-Token itself; a form POST of
// another site into its session (the attack the token stops) is refused and the session goes on.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, root } from "../lib/server.mjs";

const WAIT = 20000;
let srv, browser, out;

before(async () => {
  out = mkdtempSync(path.join(tmpdir(), "ferry-post-token-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), out]);
  writeFileSync(path.join(out, "t.html"), '<!doctype html><meta charset="utf-8"><script src="/ferry.min.js"></script>\n');
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--static", out, "--require-post-token",
    "--transports", "polling,websocket,sse,short-polling", "--allow-publish", "message", "--publish-rate", "0"]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
  rmSync(out, { recursive: true, force: true });
});

for (const transport of ["polling", "short-polling", "sse"])
  test(`ferry's client in Chromium on ${transport}: the token goes with every POST; a forged one is refused`, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${srv.url}/t.html`);
    const res = await page.evaluate(async ({ transport, WAIT }) => {
      const mk = () => ferry.io(location.origin, { transports: [transport], forceNew: true, reconnection: false });
      const a = mk(), b = mk();
      const up = (s) => new Promise((res, rej) => (s.once("connect", res), s.once("connect_error", rej)));
      await Promise.all([up(a), up(b)]);
      const room = "pt";
      for (const s of [a, b]) if (!(await s.emitWithAck("join", { room })).ok) throw new Error("join");
      const got = [];
      b.on("message", (d) => got.push(d.n));
      for (let n = 1; n <= 10; n++) await a.emitWithAck("publish", { room, event: "message", data: { n } });
      const t0 = Date.now();
      while (got.length < 10 && Date.now() - t0 < WAIT) await new Promise((r) => setTimeout(r, 50));
      // What a cross-site form can send into a's session: a simple POST without the header.
      const sid = a.io.engine.sid ?? a.io.engine.id;
      const forged = await fetch(`/socket.io/?EIO=4&transport=${transport}&sid=${sid}`, { method: "POST", body: "41", headers: { "content-type": "text/plain" } });
      const forgedBody = await forged.text();
      // a's session goes on.
      await a.emitWithAck("publish", { room, event: "message", data: { n: 11 } });
      const t1 = Date.now();
      while (got.length < 11 && Date.now() - t1 < WAIT) await new Promise((r) => setTimeout(r, 50));
      const r = { got, forged: forged.status, forgedBody, transport: a.io.engine.transport.name, connected: a.connected && b.connected };
      a.disconnect();
      b.disconnect();
      return r;
    }, { transport, WAIT });
    assert.deepEqual(res.got, Array.from({ length: 11 }, (_, i) => i + 1), "every message once, in order");
    assert.equal(res.forged, 403);
    assert.deepEqual(JSON.parse(res.forgedBody), { code: 4, message: "Bad post token" });
    assert.equal(res.transport, transport);
    assert.ok(res.connected, "both stayed connected");
    assert.deepEqual(errors, []);
    await context.close();
  });
