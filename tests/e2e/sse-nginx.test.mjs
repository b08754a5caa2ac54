// SSE through Debian's nginx as a plain reverse proxy (its default proxy_buffering on): every
// event arrives within a small bound, because ferry's X-Accel-Buffering: no turns nginx's
// buffering off for the stream. A control location that ignores that header shows what the
// header prevents: the same events then wait in nginx.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { startEngine } from "../lib/events.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";
import { freePort, waitListening } from "../lib/nginx.mjs";

const BOUND_MS = 250; // per event, proxy included, on a loaded 2-core machine

let eng, nginx, dir, port, nginxErr = "";
before(async () => {
  eng = await startEngine(["--transports", "polling,sse"]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-nginx-"));
  port = await freePort();
  const up = `http://127.0.0.1:${eng.port}`;
  fs.writeFileSync(
    path.join(dir, "nginx.conf"),
    `worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass ${up}; }
    location /control/ { proxy_pass ${up}/; proxy_ignore_headers X-Accel-Buffering; }
  }
}
`,
  );
  nginx = spawn("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  nginx.stderr.on("data", (d) => (nginxErr += d));
  await waitListening(port, nginx);
});

after(async () => {
  if (nginx && nginx.exitCode === null) {
    const gone = new Promise((r) => nginx.once("exit", r));
    nginx.kill("SIGQUIT");
    await gone;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(await eng.stop(), 0, "the test server exits cleanly (no leak, no sanitizer report)");
});

async function echoTimes(base, n) {
  const c = new ExtClient(base, { transport: "sse" });
  await c.open();
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = Date.now();
    const got = new Promise((resolve) => c.once("message", resolve));
    c.send(`through nginx ${i}`);
    const m = await Promise.race([got, new Promise((r) => setTimeout(() => r(null), 2000))]);
    if (m === null) {
      times.push(Infinity);
      break;
    }
    assert.equal(m, `through nginx ${i}`);
    times.push(Date.now() - t0);
  }
  return { c, times };
}

test("SSE through nginx: the response keeps ferry's headers and every event arrives at once", async () => {
  const { c, times } = await echoTimes(`http://127.0.0.1:${port}${eng.path}`, 30);
  assert.equal(c.streamHeaders["content-type"], "text/event-stream");
  assert.equal(c.streamHeaders["cache-control"], "no-cache, no-transform");
  const worst = Math.max(...times);
  assert.ok(worst <= BOUND_MS, `every echo within ${BOUND_MS} ms through nginx (worst ${worst} ms: ${times})`);
  // A server-initiated burst: every event, in order.
  const got = [];
  const all = new Promise((resolve) => c.on("message", (m) => (got.push(m), got.length === 100 && resolve())));
  c.send("cmd:burst 100");
  await all;
  assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => `burst ${i}`));
  c.close();
  await eng.closeOf(c.sid);
  assert.equal(nginxErr.includes("[emerg]"), false, nginxErr);
});

test("control: with the header ignored, nginx holds the same events back", async () => {
  // The open packet is the stream's first event: through the control location it does not
  // come within the bound that the real location met for every event.
  const url = `http://127.0.0.1:${port}/control${eng.path}?EIO=4&transport=sse`;
  const seen = await new Promise((resolve, reject) => {
    let body = "";
    const req = http.get(url, { headers: { Accept: "text/event-stream" }, agent: false }, (res) => {
      res.on("data", (d) => {
        body += d;
        if (body.includes("data: 0{")) {
          clearTimeout(t);
          req.destroy();
          resolve(body);
        }
      });
    });
    // nginx holds even the response head back while it buffers.
    const t = setTimeout(() => (req.destroy(), resolve(body)), 4 * BOUND_MS);
    req.on("error", () => {});
  });
  assert.equal(seen.includes("data: 0{"), false, "the open event waited in nginx's buffer");
});
