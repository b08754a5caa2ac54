// client-js's WebSocket shim against the browser's native WebSocket in headless Chromium: one
// script runs against a ferry_ws_route echo (examples/ws-echo, ws://HOST/) with the native
// WebSocket and against the same program's Engine.IO echo (/engine.io/) with ferry.WebSocket,
// on the automatic ladder and on each transport forced; the sequences of events must be equal.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import { startServer, bin, root } from "../lib/server.mjs";

let srv, browser, page, bundle;

before(async () => {
  const out = mkdtempSync(path.join(tmpdir(), "ferry-client-"));
  execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), out]);
  bundle = readFileSync(path.join(out, "ferry.min.js"), "utf8");
  rmSync(out, { recursive: true, force: true });
  srv = await startServer(bin("examples/ws-echo/ferry-ws-echo"), ["--port", "0"]);
  browser = await launchChromium();
  page = await browser.newPage();
  // A document of the echo server's own origin (its 404 page will do), with the bundle added.
  await page.goto(`${srv.url}/shim-test`);
  await page.addScriptTag({ content: bundle });
});
after(async () => {
  await browser?.close();
  assert.equal(await srv.stop(), 0, "ws-echo exits 0 on SIGTERM (no leak)");
});

// The script: every event with what a WebSocket user looks at, in order.
function script({ shim, url, opts, binaryType }) {
  return new Promise((resolve) => {
    const WS = shim ? ferry.WebSocket : WebSocket;
    const log = [];
    const ws = shim ? new WS(url, undefined, opts) : new WS(url);
    log.push(`new ${ws.readyState} ${WS.CONNECTING}${WS.OPEN}${WS.CLOSING}${WS.CLOSED} ${ws.CLOSED} ${ws.binaryType} ${ws.protocol === ""} ${typeof ws.extensions}`);
    if (binaryType) ws.binaryType = binaryType;
    let n = 0;
    const show = async (d) => (typeof d === "string" ? `text ${d}` : d instanceof Blob ? `blob ${[...new Uint8Array(await d.arrayBuffer())]}` : `arraybuffer ${[...new Uint8Array(d)]}`);
    let pending = Promise.resolve(); // messages logged in arrival order (a Blob is read async)
    ws.onopen = (e) => {
      log.push(`open ${e.type} ${ws.readyState} ${ws.bufferedAmount}`);
      ws.send("hello");
      ws.send(new Uint8Array([1, 2, 3]));
      ws.send(new Blob(["blob"]));
      ws.send(new Uint16Array([258]).buffer);
      ws.send(new Uint8Array([9, 8, 7, 6]).subarray(1, 3));
      ws.send("ünïcödé ✓");
    };
    ws.addEventListener("message", (e) => {
      const d = e.data;
      pending = pending.then(() => show(d)).then((s) => log.push(`message ${s}`));
      if (++n === 6) ws.close(1000, "done");
    });
    ws.onerror = () => log.push("error");
    ws.addEventListener("close", async (e) => {
      await pending;
      log.push(`close ${e.code} ${e.reason} ${e.wasClean} ${ws.readyState}`);
      try {
        ws.send("late");
        log.push(`late send ok ${ws.readyState}`);
      } catch (err) {
        log.push(`late send throws ${err.name}`);
      }
      resolve(log);
    });
    try {
      ws.send("too early");
    } catch (err) {
      log.push(`early send throws ${err.name}`);
    }
  });
}

for (const binaryType of ["arraybuffer", "blob"])
  test(`the shim and the native WebSocket give the same events (binaryType ${binaryType}), on every transport`, async () => {
    const native = await page.evaluate(script, { shim: false, url: srv.url.replace("http", "ws") + "/", binaryType });
    assert.ok(native.includes("message text hello"), native.join("\n"));
    for (const transports of [undefined, ["polling"], ["short-polling"], ["sse"], ["websocket"]]) {
      const shim = await page.evaluate(script, { shim: true, url: srv.url.replace("http", "ws") + "/engine.io/", opts: { transports, storage: null }, binaryType });
      assert.deepEqual(shim, native, `shim on ${transports ?? "the ladder"}`);
    }
  });

test("bad arguments throw as the native constructor and close() do", async () => {
  const r = await page.evaluate(() => {
    const out = [];
    for (const W of [WebSocket, ferry.WebSocket]) {
      const row = [];
      try {
        new W("ftp://x/");
        row.push("ok");
      } catch (e) {
        row.push(e.name);
      }
      const ws = new W(location.origin.replace("http", "ws") + "/engine.io/");
      for (const args of [[999], [1000, "x".repeat(124)]])
        try {
          ws.close(...args);
          row.push("ok");
        } catch (e) {
          row.push(e.name);
        }
      ws.close();
      out.push(row);
    }
    return out;
  });
  assert.deepEqual(r[1], r[0]);
});
