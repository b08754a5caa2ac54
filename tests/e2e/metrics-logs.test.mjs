// tools/ferry's logs (issue 19): --log-format json writes JSON Lines on stderr (every line of the
// process one object: time, level, module, sid shortened, msg), one line per event worth one
// (a session opening, upgrading, closing with its reason; a refused request), and never a whole
// session id, a client token or a query string.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "engine.io-client";
import { startServer, bin } from "../lib/server.mjs";
import { httpGet } from "./metrics-scrape.mjs";

const TOKEN = "s3cret-client-token-0123456789";

async function session(srv) {
  const s = new Socket(srv.url, { path: "/socket.io/", transports: ["polling", "websocket"], query: { token: TOKEN } });
  const sid = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no upgrade in 10 s")), 10000);
    s.on("upgrade", () => (clearTimeout(t), resolve(s.id)));
    s.on("error", (e) => (clearTimeout(t), reject(e)));
  });
  s.close();
  return sid;
}

async function waitFor(srv, re, ms = 10000) {
  const end = Date.now() + ms;
  while (!re.test(srv.stderr())) {
    if (Date.now() > end) throw new Error(`no log line matching ${re} in ${ms} ms:\n${srv.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("--log-format json: JSON Lines, a line per session event, shortened ids, no token", async () => {
  const srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--log-format", "json", "--log-level", "info",
    "--client-token", TOKEN]);
  let sid;
  try {
    sid = await session(srv);
    // A refused handshake (wrong token) and a bad request with a token and a sid in its query.
    assert.equal((await httpGet(`${srv.url}/socket.io/?EIO=4&transport=polling&token=wrong-${TOKEN}`)).status, 403);
    assert.equal((await httpGet(`${srv.url}/socket.io/?EIO=3&transport=polling&token=${TOKEN}&sid=${sid}`)).status, 400);
    await waitFor(srv, /"msg":"closed on websocket after [0-9.]+ s: transport close/);
  } finally {
    assert.equal(await srv.stop(), 0, "ferry exits cleanly");
  }
  const lines = srv.stderr().split("\n").filter((l) => l.length > 0);
  const objs = lines.map((l) => {
    try { return JSON.parse(l); } catch { assert.fail(`not a JSON line: ${l}`); }
  });
  for (const o of objs) {
    assert.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(["error", "warn", "info", "debug"].includes(o.level), o.level);
    assert.equal(typeof o.module, "string");
    assert.equal(typeof o.msg, "string");
    if ("sid" in o) assert.equal(o.sid.length, 6, `a shortened id: ${o.sid}`);
  }
  const mine = objs.filter((o) => o.sid === sid.slice(0, 6));
  const msgs = mine.map((o) => o.msg);
  assert.ok(msgs.some((m) => /^open on polling from 127\.0\.0\.1$/.test(m)), msgs.join("\n"));
  assert.ok(msgs.some((m) => m === "upgraded polling -> websocket"), msgs.join("\n"));
  assert.equal(msgs.filter((m) => /^closed on websocket after [0-9.]+ s: transport close \(\d+ bytes in, \d+ out\)$/.test(m)).length, 1);
  assert.equal(msgs.length, 3, `one line per event: ${msgs.join(" | ")}`);
  assert.ok(objs.some((o) => /^bad request GET: code 1$/.test(o.msg)), "the refused request (its session is gone), without its URL");
  assert.ok(objs.some((o) => o.msg === "SIGTERM, closing" && o.module === "ferry"), "tools/ferry's own lines are JSON too");
  const all = srv.stderr();
  assert.ok(!all.includes(sid), "the whole session id is never written");
  assert.ok(!all.includes(TOKEN), "the client token is never written");
  assert.ok(!all.includes("?EIO="), "no query string is written");
});

test("text logs (the default format) shorten ids the same way; bad --log-format values stop ferry", async () => {
  const srv = await startServer(bin("tools/ferry/ferry"), ["--port", "0", "--log-level", "info"], { env: { FERRY_LOG_FORMAT: "text" } });
  let sid;
  try {
    sid = await session(srv);
    await waitFor(srv, new RegExp(`ferry info \\[engine\\] sid=${sid.slice(0, 6).replace(/[-]/g, "\\-")}\\.\\.\\. closed on websocket`));
  } finally {
    assert.equal(await srv.stop(), 0);
  }
  assert.ok(!srv.stderr().includes(sid));
  assert.match(srv.stderr(), /ferry: SIGTERM, closing/);
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", "--log-format", "yaml"], { encoding: "utf8", timeout: 10000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /invalid log format 'yaml': use text or json/);
});
