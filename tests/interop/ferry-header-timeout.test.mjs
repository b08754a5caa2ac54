// tools/ferry --header-timeout MS (FERRY_HEADER_TIMEOUT): a connection that sends no request
// within MS gets 408 and is closed; a bad value is refused with one line.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { spawnSync } from "node:child_process";
import { bin, startServer } from "../lib/server.mjs";

const ferry = bin("tools/ferry/ferry");

function silentConnection(port) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let got = "";
    const c = net.connect(port, "127.0.0.1");
    c.on("data", (d) => (got += d));
    c.on("close", () => resolve({ got, ms: Date.now() - t0 }));
    c.on("error", reject);
    setTimeout(() => (c.destroy(), reject(new Error("not closed within 20 s"))), 20000);
  });
}

test("--header-timeout: a silent connection gets 408 after it; FERRY_HEADER_TIMEOUT too", async () => {
  for (const [args, env] of [[["--header-timeout", "400"], {}], [[], { FERRY_HEADER_TIMEOUT: "400" }]]) {
    const srv = await startServer(ferry, ["--port", "0", ...args], { env });
    try {
      const { got, ms } = await silentConnection(srv.port);
      assert.match(got, /^HTTP\/1\.1 408 /);
      assert.ok(ms >= 300 && ms < 5000, `closed after ${ms} ms`);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  }
});

test("--header-timeout: bad values are refused", () => {
  for (const v of ["5", "x", "3600001"]) {
    const r = spawnSync(ferry, ["--port", "0", "--header-timeout", v], { encoding: "utf8", timeout: 10000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /invalid header timeout/);
  }
});
