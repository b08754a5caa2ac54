// client-js's bundles, built as users get them (client-js/build.mjs), minified + gzip -9: at
// most 10 KB each with all four transports and the WebSocket shim. Prints socket.io-client
// 4.8's bundles from node_modules for comparison (client-js/README.md quotes these lines).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { root } from "../lib/server.mjs";

const LIMIT = 10 * 1024;
const gz = (f) => gzipSync(readFileSync(f), { level: 9 }).length;

test("ferry.mjs and ferry.min.js are at most 10 KB minified + gzip -9", async () => {
  const out = mkdtempSync(path.join(tmpdir(), "ferry-client-"));
  try {
    execFileSync(process.execPath, [path.join(root, "client-js/build.mjs"), out], { stdio: "inherit" });
    const sio = path.join(root, "node_modules/socket.io-client/dist");
    const rows = [
      ["client-js ferry.mjs (ES module)", path.join(out, "ferry.mjs")],
      ["client-js ferry.min.js (classic)", path.join(out, "ferry.min.js")],
      ["socket.io-client 4.8 socket.io.esm.min.js", path.join(sio, "socket.io.esm.min.js")],
      ["socket.io-client 4.8 socket.io.min.js", path.join(sio, "socket.io.min.js")],
    ].map(([name, f]) => [name, readFileSync(f).length, gz(f)]);
    for (const [name, min, z] of rows) console.log(`size: ${name}: ${min} bytes minified, ${z} bytes gzip -9`);
    for (const [name, , z] of rows.slice(0, 2)) assert.ok(z <= LIMIT, `${name}: ${z} bytes gzipped, over ${LIMIT}`);
    // The classic bundle defines window.ferry with io and WebSocket.
    const g = {};
    new Function("window", "self", readFileSync(path.join(out, "ferry.min.js"), "utf8") + ";window.ferry=ferry")(g, g);
    assert.equal(typeof g.ferry.io, "function");
    assert.equal(typeof g.ferry.WebSocket, "function");
    const m = await import(path.join(out, "ferry.mjs"));
    assert.equal(typeof m.io, "function");
    assert.equal(typeof m.WebSocket, "function");
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
