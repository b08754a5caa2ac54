#!/usr/bin/env node
// ferry-diagnose: the checks of the /ferry/diagnose page from the command line, for a ferry
// server behind a proxy: WebSocket works / refused / upgrade stripped / mute, streams live or
// buffered, how long a held request survives, when a silent connection is cut, the largest
// message that gets through, the round trip per transport, and the transport ferry's client
// will use and why.
//
//   node tools/ferry-diagnose.mjs URL [--path /socket.io/] [--wait SECONDS] [--json]
//
// URL is the server's origin as the browser sees it (e.g. https://chat.example.org). --wait
// bounds the silent checks (default 30 s). Exit status: 0 when the server answered, 1 when it
// did not, 2 on bad arguments.
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { diagnose, explain } from "../client-js/diagnose/checks.mjs";

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: { path: { type: "string", default: "/socket.io/" }, wait: { type: "string", default: "30" },
      json: { type: "boolean", default: false } },
  });
} catch (e) {
  process.stderr.write(`ferry-diagnose: ${e.message.split("\n")[0]}\n`);
  process.exit(2);
}
const [url] = args.positionals;
const wait = Number(args.values.wait);
let origin;
try {
  origin = new URL(url).origin;
} catch {
  process.stderr.write("usage: node tools/ferry-diagnose.mjs URL [--path /socket.io/] [--wait SECONDS] [--json]\n");
  process.exit(2);
}
if (!(wait > 0 && wait <= 600)) {
  process.stderr.write("ferry-diagnose: --wait must be 1 to 600 seconds\n");
  process.exit(2);
}
const report = await diagnose(origin, {
  path: args.values.path, wait, WebSocket,
  onStep: (s) => args.values.json || process.stderr.write(`checking ${s}...\n`),
});
if (args.values.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
else for (const line of explain(report)) process.stdout.write(line + "\n");
process.exit(report.polling?.ok ? 0 : 1);
