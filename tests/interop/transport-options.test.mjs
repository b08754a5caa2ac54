// Transport options through the registry's names (ferry_server_transport_option()): the test
// servers' --transport-option TRANSPORT.OPTION=VALUE reaches the transport, and an unknown
// transport, option or value stops the server with a clear line instead of running on
// defaults.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn } from "node:child_process";
import { bin } from "../lib/server.mjs";
import { startEngine } from "../lib/events.mjs";

test("an option set by name reaches the transport: the SSE padding prelude", async () => {
  const PAD = 300;
  const srv = await startEngine(["--transports", "polling,sse", "--transport-option", `sse.padding_bytes=${PAD}`]);
  try {
    const body = await new Promise((resolve, reject) => {
      const req = http.get(`${srv.url}${srv.path}?EIO=4&transport=sse`, { headers: { Accept: "text/event-stream" }, agent: false }, (res) => {
        let b = "";
        res.on("data", (d) => {
          b += d;
          if (b.length >= PAD + 20) {
            res.destroy();
            resolve(b);
          }
        });
        res.on("end", () => resolve(b));
      });
      req.on("error", reject);
      req.setTimeout(10000, () => req.destroy(new Error("no stream within 10 s")));
    });
    assert.ok(body.startsWith(":" + " ".repeat(PAD) + "\nretry: 1000\n\n"), JSON.stringify(body.slice(0, 40)));
  } finally {
    assert.equal(await srv.stop(), 0, "the test server exits cleanly");
  }
});

function run(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(bin("tests/servers/ferry-test-engine"), ["--port", "0", ...args]);
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`still running after 20 s: ${args.join(" ")}`));
    }, 20000);
    p.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, err });
    });
  });
}

test("unknown transports, options and values out of range stop the server", async () => {
  for (const [args, code, re] of [
    [["--transport-option", "carrier-pigeon.keepalive_ms=1"], 1, /carrier-pigeon\.keepalive_ms=1: not found/],
    [["--transport-option", "sse.nope=1"], 1, /sse\.nope=1: not found/],
    [["--transport-option", "polling.keepalive_ms=1"], 1, /polling\.keepalive_ms=1: not found/],
    [["--transport-option", "sse.padding_bytes=65537"], 1, /sse\.padding_bytes=65537: invalid argument/],
    [["--transport-option", "websocket.per_message_deflate=2"], 1, /invalid argument/],
    [["--transport-option", "sse.padding_bytes"], 2, /bad transport option/],
    [["--transport-option", "sse.padding_bytes=x"], 2, /bad transport option/],
    [["--transports", "polling,carrier-pigeon"], 2, /unknown transport 'carrier-pigeon'/],
  ]) {
    const r = await run(args);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, re);
  }
});
