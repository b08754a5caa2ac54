// tools/ferry-diagnose.mjs, the diagnosis page's checks from the command line, against
// tools/ferry through tools/ferry-proxy: it names what the proxy does and exits 0; a URL where
// no server answers exits 1; bad arguments exit 2.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { startServer, bin, root } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";

const cli = path.join(root, "tools/ferry-diagnose.mjs");
const run = (args) => new Promise((resolve) => {
  execFile(process.execPath, [cli, ...args], { timeout: 60000 }, (err, stdout, stderr) =>
    resolve({ code: err ? err.code : 0, stdout, stderr }));
});

let srv;
before(async () => {
  srv = await startServer(bin("tools/ferry/ferry"), ["--host", "127.0.0.1", "--port", "0",
    "--transports", "polling,websocket,sse,short-polling"]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry exits 0 on SIGTERM (no leak, no sanitizer report)");
});

test("through a proxy that refuses WebSocket and limits bodies: the CLI names both and picks SSE", async () => {
  const proxy = await startProxy(srv.url, ["--websocket", "refuse", "--max-body", "20000", "--max-response-body", "0"]);
  const r = await run([proxy.url, "--wait", "4"]);
  await proxy.stop();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^WebSocket is refused: the upgrade request never reached the server/m);
  assert.match(r.stdout, /^The largest message that gets through: 10 kB \(100 kB was refused, HTTP 413\)/m);
  assert.match(r.stdout, /^ferry's client will use sse: WebSocket is refused, and streams arrive live\.$/m);
});

test("--json prints the whole report; a mute WebSocket is called mute", async () => {
  const proxy = await startProxy(srv.url, ["--websocket", "mute"]);
  const r = await run([proxy.url, "--wait", "3", "--json"]);
  await proxy.stop();
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.equal(rep.websocket.verdict, "mute");
  assert.equal(rep.stream.verdict, "live");
  assert.equal(rep.choice.transport, "sse");
});

test("no server at the URL: exit 1 and says so; bad arguments: exit 2", async () => {
  const r = await run(["http://127.0.0.1:1", "--wait", "2"]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /The server does not answer/);
  assert.equal((await run(["not a url"])).code, 2);
  assert.equal((await run(["http://127.0.0.1:1", "--wait", "0"])).code, 2);
});

test("the page's helper route: records whether an upgrade came with its headers; bad ids get 400", async () => {
  const ask = async (id) => (await fetch(`${srv.url}/ferry/diagnose/seen?id=${id}&ask=1`)).json();
  assert.deepEqual(await ask("never-sent"), { seen: false, upgrade: false });
  assert.equal((await fetch(`${srv.url}/ferry/diagnose/seen?id=plain-1`)).status, 200);
  assert.deepEqual(await ask("plain-1"), { seen: true, upgrade: false });
  for (const bad of ["", "a%20b", "x".repeat(41), "%00"])
    assert.equal((await fetch(`${srv.url}/ferry/diagnose/seen?id=${bad}`)).status, 400, `id "${bad}"`);
  const page = await fetch(`${srv.url}/ferry/diagnose`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /^text\/html/);
  assert.match(await page.text(), /What does the network between you and this server do\?/);
  const js = await fetch(`${srv.url}/ferry/diagnose/checks.mjs`);
  assert.match(js.headers.get("content-type"), /^text\/javascript/);
});
