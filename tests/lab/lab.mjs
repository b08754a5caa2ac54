#!/usr/bin/env node
// make lab: runs every scenario of tests/lab/harness.mjs at full length and writes the table to
// docs/hostile-networks.md (generated: edit tests/lab/, never the doc). Exits 1 when any
// scenario lost, duplicated or reordered a message.
//
//   node tests/lab/lab.mjs [--seconds N] [--only id,id] [--out FILE] [--lib ferry|official] [--compare]
//   node tests/lab/lab.mjs --repeat N [--seconds 5.5] [--drain 20000] [--only id,id]
//
// --repeat N runs the chosen scenarios N times over, as make test does (--seconds 5.5 --drain
// 20000; a scenario with endsOnBest must end on its best transport), stops at the first failure
// (its description printed), and writes no doc: it counts consecutive passes, to show that a
// rare failure is gone.
// --compare also runs every scenario with the official socket.io-client and adds its table to
// the doc, for comparison (its failures do not change the exit status).
// FERRY_LAB_TRACE=<dir> writes one timeline per run (server info log, ferry-proxy's lines, every
// request, answer and frame of both clients): see tests/lab/harness.mjs.
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { launchChromium } from "../lib/browser.mjs";
import { root } from "../lib/server.mjs";
import { SCENARIOS, buildStatic, runScenario, describeFailure, endsWrong } from "./harness.mjs";
import { renderDoc } from "./doc.mjs";

const { values: opt } = parseArgs({
  options: {
    seconds: { type: "string", default: "16.5" },
    only: { type: "string" },
    out: { type: "string", default: path.join(root, "docs/hostile-networks.md") },
    lib: { type: "string", default: process.env.FERRY_LAB_LIB || "ferry" },
    compare: { type: "boolean", default: false },
    repeat: { type: "string" },
    drain: { type: "string", default: "8000" },
  },
});
const only = opt.only ? new Set(opt.only.split(",")) : null;
const list = SCENARIOS.filter((s) => !only || only.has(s.id));
const staticDir = buildStatic();
const browser = await launchChromium();
if (opt.repeat) {
  let passes = 0, failure = null;
  try {
    for (let i = 1; i <= Number(opt.repeat) && !failure; i++)
      for (const sc of list) {
        const { rows, notes } = await runScenario(sc, { browser, staticDir, seconds: Number(opt.seconds),
          drainMs: Number(opt.drain), bestMs: 15000, lib: opt.lib, log: (l) => process.stdout.write(`lab: round ${i}: ${l}\n`) });
        const bad = [...rows.filter((r) => !r.ok).map((r) => describeFailure(sc, r)), ...endsWrong(sc, rows)];
        if (rows.length !== 2 || bad.length || notes.length) {
          failure = `${sc.id} in round ${i}: ${[...bad, ...notes].join("; ") || "a client did not run"}`;
          break;
        }
        passes++;
      }
  } finally {
    await browser.close();
    fs.rmSync(staticDir, { recursive: true, force: true });
  }
  process.stdout.write(`lab: ${passes} consecutive scenario runs passed (${list.map((s) => s.id).join(", ")})` +
    `${failure ? `; then FAILED: ${failure}` : ""}\n`);
  process.exit(failure ? 1 : 0);
}
const results = [];
const comparison = [];
const started = Date.now();
// One scenario that throws is recorded as failed (no rows, the error in its notes); the run goes on.
async function run(sc, lib, tag) {
  try {
    return await runScenario(sc, { browser, staticDir, seconds: Number(opt.seconds), drainMs: Number(opt.drain), lib,
      log: (l) => process.stdout.write(`${tag}: ${l}\n`) });
  } catch (e) {
    process.stdout.write(`${tag}: ${sc.id}: FAIL (${e.message.split("\n")[0]})\n`);
    return { scenario: sc, rows: [], notes: [e.message.split("\n")[0]], acted: [] };
  }
}
try {
  for (const sc of list) results.push(await run(sc, opt.lib, "lab"));
  if (opt.compare) for (const sc of list) comparison.push(await run(sc, "official", "lab (socket.io-client)"));
} finally {
  await browser.close();
  fs.rmSync(staticDir, { recursive: true, force: true });
}
const doc = renderDoc(results, { seconds: Number(opt.seconds), lib: opt.lib, ms: Date.now() - started, comparison });
fs.writeFileSync(opt.out, doc);
const bad = results.flatMap((r) => (r.rows.length ? r.rows.filter((x) => !x.ok).map((x) => `${r.scenario.id}/${x.client}`) : [r.scenario.id]));
process.stdout.write(`lab: wrote ${path.relative(process.cwd(), opt.out)}; ${results.length} scenarios, ` +
  `${bad.length ? `FAILED: ${bad.join(", ")}` : "all with nothing lost, duplicated or reordered"}\n`);
process.exit(bad.length ? 1 : 0);
