// The transport lab (examples/transport-lab) in headless Chromium, started the way its README
// says (node examples/transport-lab/lab.mjs): the five columns show live figures from the
// server's counters, plausible ones (WebSocket's bytes per message far below long-polling's),
// the route control puts a column behind a tools/ferry-proxy fault (100 ms latency: the round
// trip follows; WebSocket refused: the automatic choice settles on SSE), and the export is well-formed JSON with the same figures. It also takes the
// screenshot of examples/transport-lab/README.md: into the build folder, or over the committed
// one with FERRY_SCREENSHOTS=1 (make screenshots, which first lets the charts fill for 30 s),
// after checking what the page shows.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { launchChromium } from "../lib/browser.mjs";
import { root, buildDir } from "../lib/server.mjs";

const COLUMNS = ["websocket", "sse", "polling", "short-polling", "auto"];
const SHOT = process.env.FERRY_SCREENSHOTS === "1"
  ? path.join(root, "examples/transport-lab/screenshot.png")
  : path.join(buildDir, "screenshots", "transport-lab.png");
let lab, browser;

// Start the lab as a user does; resolves once it prints the address to open.
function startLab() {
  const proc = spawn(process.execPath, [path.join(root, "examples/transport-lab/lab.mjs"),
    "--build", buildDir, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stderr.on("data", (d) => (err += d));
  const exited = new Promise((resolve) => proc.on("exit", (code) => resolve(code ?? 128)));
  const url = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the lab did not start: ${err}`)), 20000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /transport-lab: open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`the lab exited with ${code}: ${err}`));
    });
  });
  return { proc, url, exited, stderr: () => err };
}

before(async () => {
  lab = startLab();
  await lab.url;
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  if (lab.proc.exitCode === null) lab.proc.kill("SIGTERM");
  const code = await lab.exited;
  if (code !== 0) console.error(lab.stderr());
  assert.equal(code, 0, "the lab and its server exit 0 on SIGTERM (no leak, no sanitizer report)");
});

// The figures of every column as numbers (NaN where the page shows none yet).
function figures(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll(".col")].map((c) => [
    c.dataset.column,
    {
      ...Object.fromEntries([...c.querySelectorAll("dd")].map((d) =>
        [d.dataset.fig, d.dataset.value === "" ? NaN : Number(d.dataset.value)])),
      transport: c.querySelector(".transport")?.textContent,
      state: c.querySelector(".state").textContent,
    },
  ])));
}

// Wait until every column shows the figures the test reads (bounded: a loaded machine).
async function waitFigures(page, columns) {
  await page.waitForFunction((cols) => cols.every((id) => {
    const c = document.querySelector(`.col[data-column="${id}"]`);
    return ["rtt-p50", "rtt-p99", "msgs", "bytes-down", "bytes-up", "requests", "wire"]
      .every((f) => c.querySelector(`dd[data-fig="${f}"]`).dataset.value !== "");
  }), columns, { timeout: 60000, polling: 250 });
}

// What the figures must say: every column live and plausible, WebSocket's bytes per message
// far below long-polling's.
async function checkFigures(page) {
  const f = await figures(page);
  for (const id of COLUMNS) {
    const c = f[id];
    assert.equal(c.state, "connected", `${id} is connected`);
    assert.ok(c["rtt-p50"] > 0 && c["rtt-p50"] < 5000, `${id} round trip p50 ${c["rtt-p50"]}`);
    assert.ok(c["rtt-p99"] >= c["rtt-p50"], `${id} p99 >= p50`);
    assert.ok(c.msgs > 5 && c.msgs < 40, `${id} receives the 20-a-second stream: ${c.msgs}/s`);
    assert.ok(c["bytes-down"] > 0 && c["bytes-up"] > 0, `${id} bytes per message both ways`);
    assert.ok(c["overhead-down"] >= 0 && c["overhead-down"] < c["bytes-down"], `${id} overhead down`);
    assert.ok(c.wire > 0, `${id} wire bytes per second`);
  }
  for (const id of COLUMNS.slice(0, 4)) assert.equal(f[id].transport, id, `${id} is forced`);
  const ws = f.websocket, lp = f.polling;
  // WebSocket frames against HTTP requests with their heads: far fewer bytes per message.
  assert.ok(ws["bytes-down"] * 3 < lp["bytes-down"], `down: ws ${ws["bytes-down"]} vs polling ${lp["bytes-down"]}`);
  assert.ok(ws["bytes-up"] * 10 < lp["bytes-up"], `up: ws ${ws["bytes-up"]} vs polling ${lp["bytes-up"]}`);
  assert.ok(ws["overhead-down"] < 16, `a WebSocket frame costs a few bytes: ${ws["overhead-down"]}`);
  assert.ok(lp.requests > 300, `long-polling makes requests: ${lp.requests}/min`);
  assert.ok(ws.requests < 60, `an open WebSocket makes none: ${ws.requests}/min`);
  assert.ok(f["short-polling"]["rtt-p50"] > ws["rtt-p50"], "short polling waits for its next poll");
  assert.ok(f.auto["bytes-down"] * 3 < lp["bytes-down"], "the automatic choice costs what WebSocket does");
}

// The README's table of the screenshot's figures, between its two markers.
function writeReadmeFigures(f) {
  const file = path.join(root, "examples/transport-lab/README.md");
  const text = fs.readFileSync(file, "utf8");
  const begin = "<!-- figures: written by make screenshots -->\n";
  const end = "<!-- /figures -->";
  const i = text.indexOf(begin), j = text.indexOf(end);
  assert.ok(i >= 0 && j > i, "the README has the figures markers");
  const n = (v) => (v >= 100 ? Math.round(v).toLocaleString("en-US") : v >= 10 ? v.toFixed(1)
    : v === 0 ? "0" : v.toFixed(2));
  const rows = [["wire bytes down", "bytes-down"], ["wire bytes up", "bytes-up"],
    ["overhead down", "overhead-down"], ["overhead up", "overhead-up"],
    ["requests / min", "requests"], ["round trip p50 (ms)", "rtt-p50"]];
  const table = [
    "| per message | WebSocket | SSE | long-polling | short polling | automatic (WebSocket) |",
    "|---|---|---|---|---|---|",
    ...rows.map(([label, k]) => `| ${label} | ${COLUMNS.map((c) => n(f[c][k])).join(" | ")} |`),
  ].join("\n");
  fs.writeFileSync(file, text.slice(0, i + begin.length) + table + "\n" + text.slice(j));
}

test("five columns show live figures from the server's counters, the route control and the export work", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1360, height: 700 }, acceptDownloads: true });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(await lab.url);
  await page.locator("#export:not([disabled])").waitFor({ timeout: 20000 });
  assert.deepEqual(await page.$$eval(".col", (cs) => cs.map((c) => c.dataset.column)), COLUMNS);
  // Wait for the automatic choice to have climbed to WebSocket too.
  await waitFigures(page, COLUMNS);
  await page.waitForFunction(() =>
    document.querySelector('.col[data-column="auto"] .transport')?.textContent === "websocket",
  null, { timeout: 30000 });
  await waitFigures(page, ["auto"]);

  await checkFigures(page);
  if (process.env.FERRY_SCREENSHOTS === "1") {
    // For the README: let the charts fill for half a minute, then check the figures again.
    await page.waitForTimeout(30000);
    await checkFigures(page);
  }
  const text = await page.textContent("body");
  for (const s of ["ferry transport lab", "WebSocket", "Server-Sent Events", "long-polling",
    "short polling", "automatic", "wire bytes / msg", "round trip p50", "requests / min"])
    assert.ok(text.includes(s), `the page shows "${s}"`);
  assert.deepEqual(errors, [], "no script errors");
  fs.mkdirSync(path.dirname(SHOT), { recursive: true });
  const shown = await figures(page);
  await page.screenshot({ path: SHOT, fullPage: true });
  if (process.env.FERRY_SCREENSHOTS === "1") writeReadmeFigures(shown);

  // Behind ferry-proxy's 100 ms latency each way, the WebSocket column's round trip follows.
  await page.selectOption('.col[data-column="websocket"] select', "latency");
  await page.waitForFunction(() => {
    const c = document.querySelector('.col[data-column="websocket"]');
    const p50 = c.querySelector('dd[data-fig="rtt-p50"]').dataset.value;
    return c.querySelector(".state").textContent.includes("via proxy: latency") && p50 !== "" &&
      Number(p50) >= 190 && c.querySelector('dd[data-fig="bytes-down"]').dataset.value !== "";
  }, null, { timeout: 60000, polling: 250 });

  // Behind a proxy that refuses WebSocket, the automatic choice settles on SSE and says why.
  await page.selectOption('.col[data-column="auto"] select', "ws-refused");
  await page.waitForFunction(() => {
    const c = document.querySelector('.col[data-column="auto"]');
    return c.querySelector(".state").textContent.includes("via proxy: ws-refused") &&
      c.querySelector(".transport")?.textContent === "sse" &&
      c.querySelector('dd[data-fig="bytes-down"]').dataset.value !== "";
  }, null, { timeout: 60000, polling: 250 });

  // Export: a download of well-formed JSON holding the figures of every column.
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 10000 }),
    page.click("#export")]);
  assert.equal(download.suggestedFilename(), "transport-lab.json");
  const exported = JSON.parse(fs.readFileSync(await download.path(), "utf8"));
  assert.equal(exported.lab, "ferry transport lab");
  assert.deepEqual(exported.columns.map((c) => c.column), COLUMNS);
  for (const c of exported.columns) {
    assert.ok(c.rtt_ms.p50 > 0, `${c.column} p50 exported`);
    assert.ok(c.wire_bytes_per_message.down > 0 && c.wire_bytes_per_message.up > 0);
    assert.ok(c.counters.bytes_out > 0 && c.counters.messages_out > 0, `${c.column} counters`);
    assert.ok(Array.isArray(c.series) && c.series.length > 0);
  }
  const wsx = exported.columns[0];
  assert.equal(wsx.route, "latency");
  assert.ok(wsx.rtt_ms.p50 >= 190, `exported p50 behind latency: ${wsx.rtt_ms.p50}`);
  assert.equal(exported.columns[4].route, "ws-refused");
  assert.equal(exported.columns[4].transport, "sse");
  assert.ok(exported.columns[4].transport_changes.some((t) => t.to === "sse"),
    "the automatic column's transport changes are exported with their reasons");
  // The browser reports the refused WebSocket on the console: expected behind that proxy.
  assert.deepEqual(errors.filter((e) => !/WebSocket connection to .* 403/.test(e)), [],
    "no script errors");
  await ctx.close();
});

// Run a program to its end; resolves with its exit code and stderr.
function run(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => p.kill("SIGKILL"), 20000);
    p.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, err });
    });
  });
}

test("bad input: the lab's route endpoint and both programs' flags refuse it clearly", async () => {
  const base = await lab.url;
  const post = (body) => fetch(`${base}lab/route`, { method: "POST", body });
  for (const body of [JSON.stringify({ column: "nope", fault: "direct" }),
    JSON.stringify({ column: "websocket", fault: "nope" }), "not json", "x".repeat(5000)]) {
    const res = await post(body);
    assert.equal(res.status, 400, `refused: ${body.slice(0, 40)}`);
    assert.ok(typeof (await res.json()).error === "string");
  }
  for (const p of ["/../README.md", "/lab.mjs", "/lab-server.c", "/lab/nothing"])
    assert.equal((await fetch(base + p.slice(1))).status, 404, `only the page's files: ${p}`);
  // Two changes of one column at once: both answered in order, the first proxy stopped.
  const [ra, rb] = await Promise.all(["latency", "slow"].map((fault) =>
    post(JSON.stringify({ column: "short-polling", fault }))));
  assert.equal(ra.status, 200);
  assert.equal(rb.status, 200);
  const [ua, ub] = [(await ra.json()).url, (await rb.json()).url];
  assert.notEqual(ua, ub);
  await assert.rejects(fetch(`${ua}/socket.io/?EIO=4&transport=polling`), "the first proxy is gone");
  assert.equal((await fetch(`${ub}/socket.io/?EIO=4&transport=polling`)).status, 200);
  const back = await post(JSON.stringify({ column: "short-polling", fault: "direct" }));
  assert.equal(back.status, 200);
  await assert.rejects(fetch(`${ub}/socket.io/?EIO=4&transport=polling`), "back to direct: no proxy");
  const config = await (await fetch(`${base}lab/config`)).json();
  assert.deepEqual(config.columns, COLUMNS);
  assert.ok(config.faults.some((f) => f.id === "latency" && f.flags.includes("--latency")));

  const labMjs = path.join(root, "examples/transport-lab/lab.mjs");
  let r = await run(process.execPath, [labMjs, "--build", buildDir, "--rate", "0"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--rate must be 1 to 200/);
  r = await run(process.execPath, [labMjs, "--build", path.join(buildDir, "no-such-build")]);
  assert.equal(r.code, 2);
  assert.match(r.err, /is not built: run make transport-lab/);
  const server = path.join(buildDir, "examples/transport-lab/ferry-transport-lab");
  for (const args of [["--rate", "0"], ["--port", "70000"], ["--bogus", "1"], ["--port"]]) {
    r = await run(server, args);
    assert.equal(r.code, 2, `ferry-transport-lab ${args.join(" ")}`);
    assert.match(r.err, /usage: ferry-transport-lab/);
  }
});
