// Start Debian's nginx for a test on 127.0.0.1 with a config from tests/e2e/nginx/NAME.conf.in
// (placeholders @DIR@ @PORT@ @UPSTREAM@), in a private temporary folder, on a free port.
// stop() ends it with SIGQUIT (graceful) and removes the folder; it resolves with the error
// log's text. The access log (one line per request, with status) is readable with accessLog().
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { root } from "./server.mjs";

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export async function waitListening(port, proc, ms = 5000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("nginx did not start listening");
}

// vars: more placeholders, { NAME: "text" } for @NAME@ (round-robin.conf.in's @NODES@).
export async function startNginx(name, upstream, { timeoutMs = 10000, vars = {} } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ferry-nginx-${name}-`));
  const port = await freePort();
  const conf = fs
    .readFileSync(path.join(root, "tests/e2e/nginx", `${name}.conf.in`), "utf8")
    .replaceAll("@DIR@", dir)
    .replaceAll("@PORT@", String(port))
    .replaceAll("@UPSTREAM@", upstream.replace(/\/$/, ""))
    .replace(/@([A-Z]+)@/g, (m, k) => vars[k] ?? m);
  fs.writeFileSync(path.join(dir, "nginx.conf"), conf);
  let stderr = "";
  const proc = spawn("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  proc.stderr.on("data", (d) => (stderr += d));
  await waitListening(port, proc, timeoutMs);
  const read = (f) => {
    try {
      return fs.readFileSync(path.join(dir, f), "utf8");
    } catch {
      return "";
    }
  };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    accessLog: () => read("access.log"),
    errorLog: () => read("error.log") + stderr,
    async stop() {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGQUIT");
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
      const log = read("error.log") + stderr;
      fs.rmSync(dir, { recursive: true, force: true });
      return log;
    },
  };
}
