// Headless Chromium over TLS (docs/tls.md): tools/ferry serves a page and ferry's own client
// (client-js, bundled by client-js/build.mjs) on https with a certificate from a throw-away CA.
// Chromium trusts that CA for this run only, through a temporary NSS database (certutil from
// Debian's libnss3-tools, in a HOME made for the run), so the certificate is really verified:
// nothing is ignored. Two sockets of the page exchange messages through a room on each
// transport: polling, websocket, sse and short-polling. A Chromium without the CA refuses the
// page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, root } from "../lib/server.mjs";
import { makePki } from "../lib/tls.mjs";

let pki, srv, browser, home, site;

function launch(homeDir) {
  return launchChromium({ env: { ...process.env, HOME: homeDir } });
}

before(async () => {
  pki = makePki();
  const { cert, key } = pki.issue("localhost", "DNS:localhost,IP:127.0.0.1");
  // The CA in an NSS database of a HOME of our own: Chromium reads $HOME/.pki/nssdb.
  home = fs.mkdtempSync(path.join(pki.dir, "home-"));
  const db = path.join(home, ".pki", "nssdb");
  fs.mkdirSync(db, { recursive: true });
  execFileSync("certutil", ["-d", `sql:${db}`, "-N", "--empty-password"]);
  execFileSync("certutil", ["-d", `sql:${db}`, "-A", "-t", "C,,", "-n", "ferry test CA", "-i", pki.ca]);
  // The page and ferry's client, served as static files.
  site = fs.mkdtempSync(path.join(pki.dir, "site-"));
  execFileSync("node", [path.join(root, "client-js", "build.mjs"), site], { cwd: root });
  fs.writeFileSync(path.join(site, "index.html"),
    '<!doctype html><meta charset="utf-8"><title>tls</title>\n' +
    '<script type="module">import { io } from "./ferry.mjs"; window.io = io;</script>\n');
  srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--tls-cert", cert,
    "--tls-key", key, "--static", site, "--allow-publish", "message",
    "--transports", "polling,websocket,sse,short-polling"]);
  browser = await launch(home);
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
  pki.cleanup();
});

for (const transport of ["polling", "websocket", "sse", "short-polling"]) {
  test(`Chromium, ferry's client over https: ${transport}`, async () => {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e));
    const res = await page.goto(`https://127.0.0.1:${srv.port}/`);
    assert.equal(res.status(), 200);
    assert.equal(await page.evaluate(() => window.isSecureContext && location.protocol), "https:");
    await page.waitForFunction(() => typeof window.io === "function", null, { timeout: 10000 });
    const out = await page.evaluate(async (t) => {
      const deadline = (p, what) => Promise.race([p, new Promise((_, rej) =>
        setTimeout(() => rej(new Error(`timeout: ${what}`)), 10000))]);
      const mk = (name) => new Promise((resolve, reject) => {
        const s = window.io(location.origin, { transports: [t], upgrade: false, forceNew: true,
          reconnection: false, auth: { name } });
        s.on("connect", () => resolve(s));
        s.on("connect_error", (e) => reject(e));
      });
      const [a, b] = await deadline(Promise.all([mk("a"), mk("b")]), "connect");
      const ack = (s, ev, arg) => deadline(s.emitWithAck(ev, arg), ev);
      const room = `tls-${t}`;
      await ack(a, "join", { room });
      await ack(b, "join", { room });
      const got = [];
      for (const [from, to, text] of [[a, b, "a→b ✓"], [b, a, "b→a ✓"]]) {
        const p = deadline(new Promise((r) => to.once("message", r)), `message ${text}`);
        got.push(await ack(from, "publish", { room, event: "message", data: text }));
        got.push(await p);
      }
      const names = [a.io.engine.transport.name, b.io.engine.transport.name];
      a.disconnect();
      b.disconnect();
      return { got, names };
    }, transport);
    assert.deepEqual(out.got.map((g) => g.ok ?? g), [true, "a→b ✓", true, "b→a ✓"]);
    assert.deepEqual(out.names, [transport, transport]);
    assert.deepEqual(errors, []);
    await page.close();
  });
}

test("a Chromium that does not trust the test CA refuses the page", async () => {
  const otherHome = fs.mkdtempSync(path.join(pki.dir, "untrusting-"));
  const b2 = await launch(otherHome);
  try {
    const page = await b2.newPage();
    await assert.rejects(page.goto(`https://127.0.0.1:${srv.port}/`), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await b2.close();
  }
});
