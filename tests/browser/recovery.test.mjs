// Connection-state recovery with ferry's client in headless Chromium against tools/ferry as
// users run it (recovery on by default, issue 14): the page's Engine.IO session is lost on the
// client's side (the server has not noticed: its session waits for an attach), the page comes
// back on a new session, takes its socket over and gets the publishes it missed, once and in
// order, with socket.recovered === true and the same id, on each of the four transports.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, root } from "../lib/server.mjs";

const TOKEN = "recovery-browser";
let srv, browser, out;
before(async () => {
  out = mkdtempSync(path.join(tmpdir(), "ferry-recovery-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), out]);
  writeFileSync(path.join(out, "index.html"), '<!doctype html><meta charset="utf-8"><script src="/ferry.min.js"></script>\n');
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--static", out, "--publish-token", TOKEN]);
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak)");
  rmSync(out, { recursive: true, force: true });
});

const publish = (room, data) =>
  fetch(`${srv.url}/api/publish`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ room, event: "news", data }) }).then((r) => r.json());

for (const transport of ["websocket", "polling", "sse", "short-polling"]) {
  test(`Chromium, ${transport}: a lost session is recovered with its id, room and missed publishes`, async () => {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e));
    try {
      await page.goto(`${srv.url}/index.html`);
      const room = `br-${transport}`;
      const id = await page.evaluate(async ({ room, transport }) => {
        window.got = [];
        window.failed = [];
        const s = (window.s = ferry.io(location.origin, { transports: [transport], reconnection: false, auth: { name: "page" } }));
        s.on("news", (x) => got.push(x));
        s.on("recovery_failed", (e) => failed.push(e.reason));
        await new Promise((res, rej) => (s.once("connect", res), s.once("connect_error", rej)));
        const r = await s.timeout(5000).emitWithAck("join", { room });
        if (!r.ok) throw new Error(r.error);
        return s.id;
      }, { room, transport });
      assert.equal((await publish(room, "before")).recipients, 1);
      await page.waitForFunction(() => got.length === 1, null, { timeout: 10000 });
      // The client loses its session; the server's still waits for it.
      await page.evaluate(() => new Promise((res) => (s.once("disconnect", res), s.io.engine._close("transport close"))));
      await publish(room, "missed-1");
      await publish(room, "missed-2");
      const r = await page.evaluate(async () => {
        const back = new Promise((res) => s.once("connect", res));
        s.connect();
        await back;
        return { recovered: s.recovered, id: s.id };
      });
      assert.deepEqual(r, { recovered: true, id }, "socket.recovered, same id");
      assert.equal((await publish(room, "after")).recipients, 1, "still in its room");
      await page.waitForFunction(() => got.includes("after"), null, { timeout: 10000 });
      assert.deepEqual(await page.evaluate(() => got), ["before", "missed-1", "missed-2", "after"]);
      assert.deepEqual(await page.evaluate(() => failed), []);
      assert.deepEqual(errors, []);
    } finally {
      await page.evaluate(() => window.s?.disconnect()).catch(() => {});
      await page.close();
    }
  });
}
