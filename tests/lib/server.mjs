// Start a ferry binary for a test: on 127.0.0.1, on a port the binary picks (--port 0), read
// back from its first stdout line "...listening on http://127.0.0.1:PORT...". stop() sends
// SIGTERM and resolves with the exit code; under the sanitizer build a leak or a sanitizer
// report makes it non-zero, so tests assert stop() === 0.
import { spawn } from "node:child_process";
import path from "node:path";

export const root = process.env.FERRY_ROOT ?? path.resolve(import.meta.dirname, "../..");
export const buildDir = path.resolve(root, process.env.FERRY_BUILD_DIR ?? "build-test");

export function bin(rel) {
  return path.join(buildDir, rel);
}

export async function startServer(binary, args = [], { timeoutMs = 10000, env = {} } = {}) {
  const proc = spawn(binary, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let stderr = "";
  let stdout = "";
  proc.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => proc.on("exit", (code, sig) => resolve(code ?? 128)));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${binary} did not start: ${stderr}`)), timeoutMs);
    proc.stdout.on("data", (d) => {
      stdout += d;
      const m = /listening on https?:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${binary} exited with ${code}: ${stderr}`));
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    stderr: () => stderr,
    stdout: () => stdout,
    // Resolves with the exit code when the server ends on its own (no signal sent).
    exited: () => exited,
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const code = await exited;
      if (code !== 0) console.error(`--- ${path.basename(binary)} stderr ---\n${stderr}`);
      return code;
    },
  };
}

// Resolve when emitter fires event (once), or reject after ms.
export function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), ms);
    const on = emitter.once ? "once" : "on";
    emitter[on](event, (...args) => {
      clearTimeout(t);
      resolve(args.length > 1 ? args : args[0]);
    });
  });
}
