// Start tools/ferry-proxy in front of a server for a test. stop() resolves with the proxy's
// counters (the JSON line it prints on SIGTERM).
import path from "node:path";
import { startServer, root } from "./server.mjs";

export async function startProxy(targetUrl, args = []) {
  const script = path.join(root, "tools/ferry-proxy/ferry-proxy.mjs");
  const p = await startServer(process.execPath, [script, "--target", targetUrl, ...args]);
  return {
    ...p,
    async stop() {
      const code = await p.stop();
      if (code !== 0) throw new Error(`ferry-proxy exited with ${code}`);
      const line = p.stdout().split("\n").find((l) => l.startsWith('{"stats"'));
      return JSON.parse(line).stats;
    },
  };
}
