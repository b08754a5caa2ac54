// tools/ferry's /metrics (issue 19), scraped on its own listener (--metrics-listen) while
// clients on each transport connect, upgrade, fall back through tools/ferry-proxy and leave:
// every scrape goes through a real Prometheus parser (metrics-scrape.mjs), and the counters must
// move by exactly what the clients did.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { spawnSync } from "node:child_process";
import { Socket } from "engine.io-client";
import WS from "ws";
import { startServer, bin } from "../lib/server.mjs";
import { startProxy } from "../lib/proxy.mjs";
import { ExtClient } from "../lib/ferry-ext-client.mjs";
import { scrape, scrapeRaw, scrapeUntil, get, sum, diff, httpGet, parseExposition } from "./metrics-scrape.mjs";

let srv, murl;
const TRANSPORTS = ["websocket", "sse", "polling", "short-polling"];

async function startFerry(args = [], env = {}) {
  const s = await startServer(bin("tools/ferry/ferry"), ["--port", "0", ...args], { env });
  // The metrics line follows the listening line in the same start-up output.
  const end = Date.now() + 10000;
  let m;
  while (!(m = /metrics at (http:\/\/\S+)/.exec(s.stdout())) && Date.now() < end)
    await new Promise((r) => setTimeout(r, 20));
  return { s, murl: m ? m[1] : null };
}

before(async () => {
  ({ s: srv, murl } = await startFerry(["--metrics-listen", "127.0.0.1:0", "--transports",
    "polling,websocket,sse,short-polling", "--ping-interval", "10000", "--ping-timeout", "10000"]));
  assert.ok(murl, `ferry printed where the metrics are:\n${srv.stdout()}`);
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry exits cleanly (no leak, no sanitizer report)");
});

const base = () => `${srv.url}/socket.io/`;

test("the exposition parses, names start with ferry_, counters end in _total, every family has help", async () => {
  const res = await scrapeRaw(murl);
  assert.match(res.headers["content-type"], /^text\/plain; version=0\.0\.4/);
  const samples = await parseExposition(res.body);
  assert.ok(samples.length > 50, `${samples.length} samples`);
  for (const s of samples) {
    assert.ok(s.name.startsWith("ferry_"), s.name);
    assert.ok(s.help.length > 10, `${s.family} has a HELP line`);
    if (s.type === "counter") assert.ok(s.name.endsWith("_total") || s.name.endsWith("_created"), s.name);
    for (const v of Object.values(s.labels)) assert.ok(v.length < 40, `bounded label value ${v}`);
  }
  // Every transport appears from the first scrape, zeros included.
  for (const t of TRANSPORTS) {
    const m = new Map(samples.map((s) => [`${s.name}|${JSON.stringify(s.labels)}`, s.value]));
    assert.ok(m.has(`ferry_sessions_open|${JSON.stringify({ transport: t })}`), `sessions_open{${t}}`);
  }
  for (const [f, type] of [["ferry_sessions_open", "gauge"], ["ferry_handshakes_total", "counter"],
    ["ferry_sessions_closed_total", "counter"], ["ferry_heartbeat_timeouts_total", "counter"],
    ["ferry_packets_received_total", "counter"], ["ferry_packets_sent_total", "counter"],
    ["ferry_sent_bytes_total", "counter"], ["ferry_received_bytes_total", "counter"],
    ["ferry_errors_total", "counter"], ["ferry_rejections_total", "counter"], ["ferry_queued_bytes", "gauge"],
    ["ferry_event_loop_lag_seconds", "histogram"], ["ferry_process_resident_memory_bytes", "gauge"],
    ["ferry_process_open_fds", "gauge"], ["ferry_upgrades_total", "counter"], ["ferry_downgrades_total", "counter"],
    ["ferry_client_transport_reports_total", "counter"], ["ferry_upgrade_failures_total", "counter"]])
    assert.ok(res.body.includes(`\n# TYPE ${f} ${type}\n`), `family ${f} (${type})`);
  const lag = samples.filter((s) => s.name === "ferry_event_loop_lag_seconds_count");
  assert.equal(lag.length, 1);
});

test("the metrics listener serves only /metrics, and the app's port does not serve it", async () => {
  assert.equal((await httpGet(murl.replace(/\/metrics$/, "/"))).status, 404);
  assert.equal((await httpGet(murl.replace(/\/metrics$/, "/socket.io/?EIO=4&transport=polling"))).status, 404);
  assert.equal((await httpGet(`${srv.url}/metrics`)).status, 404);
});

test("an official client: polling handshake, probe upgrade to websocket, close: each counter moves by one", async () => {
  const a = await scrape(murl);
  const s = new Socket(srv.url, { path: "/socket.io/", transports: ["polling", "websocket"] });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no upgrade in 10 s")), 10000);
    s.on("upgrade", () => (clearTimeout(t), resolve()));
  });
  const b = await scrapeUntil(murl, (m) => get(m, "ferry_sessions_open", { transport: "websocket" }) === get(a, "ferry_sessions_open", { transport: "websocket" }) + 1);
  const d = diff(a, b);
  assert.equal(d['ferry_handshakes_total{transport="polling"}'], 1);
  assert.equal(d['ferry_upgrades_total{from="polling",reason="probe",to="websocket"}'], 1);
  assert.equal(d['ferry_sessions_open{transport="polling"}'] ?? 0, 0);
  for (const t of ["websocket", "sse", "short-polling"]) assert.equal(d[`ferry_handshakes_total{transport="${t}"}`], undefined);
  assert.equal(sum(b, "ferry_downgrades_total") - sum(a, "ferry_downgrades_total"), 0);
  assert.ok(d['ferry_received_bytes_total{part="header",transport="websocket"}'] > 100, "the upgrade request's head");
  assert.ok(d['ferry_sent_bytes_total{part="header",transport="websocket"}'] > 100, "the 101");
  assert.ok(d['ferry_packets_received_total{transport="websocket"}'] >= 2, "2probe and 5");
  s.close();
  const c = await scrapeUntil(murl, (m) => get(m, "ferry_sessions_closed_total", { reason: "transport_close" }) === get(a, "ferry_sessions_closed_total", { reason: "transport_close" }) + 1);
  assert.equal(get(c, "ferry_sessions_open", { transport: "websocket" }), get(a, "ferry_sessions_open", { transport: "websocket" }));
});

test("a polling handshake's bytes: the request head, the response head and body, counted exactly", async () => {
  const a = await scrape(murl);
  const reqText = "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: metrics\r\n\r\n";
  const raw = await new Promise((resolve, reject) => {
    const c = net.connect(srv.port, "127.0.0.1", () => c.end(reqText));
    const chunks = [];
    c.on("data", (d) => chunks.push(d));
    c.on("end", () => resolve(Buffer.concat(chunks)));
    c.on("error", reject);
  });
  const headEnd = raw.indexOf("\r\n\r\n") + 4;
  assert.ok(headEnd > 4);
  const b = await scrapeUntil(murl, (m) => get(m, "ferry_handshakes_total", { transport: "polling" }) === get(a, "ferry_handshakes_total", { transport: "polling" }) + 1);
  const d = diff(a, b);
  assert.equal(d['ferry_received_bytes_total{part="header",transport="polling"}'], Buffer.byteLength(reqText));
  assert.equal(d['ferry_received_bytes_total{part="body",transport="polling"}'], undefined);
  assert.equal(d['ferry_sent_bytes_total{part="header",transport="polling"}'], headEnd);
  assert.equal(d['ferry_sent_bytes_total{part="body",transport="polling"}'], raw.length - headEnd);
  assert.equal(d['ferry_http_requests_by_transport_total{transport="polling"}'], 1);
  assert.equal(d['ferry_packets_sent_total{transport="polling"}'], 1, "the open packet");
});

for (const transport of ["sse", "short-polling", "websocket", "polling"]) {
  test(`a session opened on ${transport}: handshake, one message each way, close, on that transport's counters`, async () => {
    const a = await scrape(murl);
    const c = new ExtClient(base(), { transport });
    await c.open();
    const got = new Promise((resolve) => c.once("message", resolve));
    c.send("0"); // a Socket.IO CONNECT to "/": one message up, one answer down
    await got;
    const b = await scrapeUntil(murl, (m) => get(m, "ferry_messages_sent_total", { transport }) >= get(a, "ferry_messages_sent_total", { transport }) + 1);
    const d = diff(a, b);
    assert.equal(d[`ferry_handshakes_total{transport="${transport}"}`], 1);
    assert.equal(d[`ferry_sessions_open{transport="${transport}"}`], 1);
    assert.equal(d[`ferry_messages_received_total{transport="${transport}"}`], 1);
    assert.equal(d["ferry_sessions_extension{}"], 1, "ferry=1: a client of ferry's extensions");
    for (const t of TRANSPORTS.filter((x) => x !== transport))
      assert.equal(d[`ferry_handshakes_total{transport="${t}"}`], undefined, `nothing on ${t}`);
    const closed = sum(b, "ferry_sessions_closed_total");
    c.sendPacket("1"); // close
    c.close();
    const e = await scrapeUntil(murl, (m) => sum(m, "ferry_sessions_closed_total") === closed + 1);
    assert.equal(get(e, "ferry_sessions_open", { transport }), get(a, "ferry_sessions_open", { transport }));
    assert.equal(get(e, "ferry_sessions_closed_total", { reason: "transport_close" }) - get(b, "ferry_sessions_closed_total", { reason: "transport_close" }), 1);
  });
}

test("a client that never answers pings: one heartbeat timeout on its transport, one ping_timeout close", async () => {
  const { s: fast, murl: murl2 } = await startFerry(["--metrics-listen", "127.0.0.1:0", "--ping-interval", "500", "--ping-timeout", "500"]);
  try {
    await stalled(fast, murl2);
  } finally {
    assert.equal(await fast.stop(), 0);
  }
});

async function stalled(srv, murl) {
  const base = () => `${srv.url}/socket.io/`;
  const a = await scrape(murl);
  const c = new ExtClient(base(), { transport: "polling", stallPongs: true });
  await c.open();
  const b = await scrapeUntil(murl, (m) => get(m, "ferry_sessions_closed_total", { reason: "ping_timeout" }) === get(a, "ferry_sessions_closed_total", { reason: "ping_timeout" }) + 1, 20000);
  c.close();
  const d = diff(a, b);
  assert.equal(d['ferry_heartbeat_timeouts_total{transport="polling"}'], 1);
  assert.equal(sum(b, "ferry_heartbeat_timeouts_total") - sum(a, "ferry_heartbeat_timeouts_total"), 1);
}

test("rejected requests are counted by kind; a session id never becomes a label", async () => {
  const a = await scrape(murl);
  assert.equal((await httpGet(`${base()}?EIO=3&transport=polling`)).status, 400);
  assert.equal((await httpGet(`${base()}?EIO=4&transport=polling&sid=nosuchsession00000000`)).status, 400);
  assert.equal((await httpGet(`${base()}?EIO=4&transport=carrier-pigeon`)).status, 400);
  const b = await scrape(murl);
  const d = diff(a, b);
  assert.equal(d['ferry_rejections_total{kind="unsupported_protocol_version"}'], 1);
  assert.equal(d['ferry_rejections_total{kind="session_unknown"}'], 1);
  assert.equal(d['ferry_rejections_total{kind="transport_unknown"}'], 1);
  // Reports with a reason nobody knows count as "other": clients cannot grow the label set.
  const c = new ExtClient(base(), { transport: "polling" });
  const hs = await c.open();
  c.sendPacket('6{"from":"","to":"polling","reason":"made-up-reason-1","ms":5}');
  c.sendPacket('6{"from":"polling","to":"polling","reason":"made-up-reason-2"}');
  const e = await scrapeUntil(murl, (m) => sum(m, "ferry_client_transport_reports_total") === sum(b, "ferry_client_transport_reports_total") + 2);
  assert.equal(get(e, "ferry_client_transport_reports_total", { from: "none", to: "polling", reason: "other" }) -
    get(b, "ferry_client_transport_reports_total", { from: "none", to: "polling", reason: "other" }), 1);
  assert.ok(!e.text.includes(hs.sid), "the session id is nowhere in the metrics");
  assert.ok(!e.text.includes("made-up"), "nor the client's own words");
  c.close();
});

// ferry's client (client-js) in Node behind tools/ferry-proxy: its reports and the server's moves.
async function ferryClient(url, opts = {}) {
  const { io } = await import("../../client-js/src/index.mjs");
  const socket = io(url, { WebSocket: WS, storage: null, forceNew: true, reconnection: false, ...opts });
  const switches = [];
  socket.on("transport", (ev) => switches.push(ev));
  return { socket, switches };
}

async function until(check, ms, what) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("through a proxy that refuses WebSocket: ferry's client reports ws-refused, is promoted to SSE; the metrics say so", async () => {
  const proxy = await startProxy(srv.url, ["--websocket", "refuse", "--quiet"]);
  try {
    const a = await scrape(murl);
    const { socket, switches } = await ferryClient(proxy.url);
    await until(() => switches.some((s) => s.to === "sse" && s.reason === "promoted"), 20000, "a promotion to sse");
    const b = await scrapeUntil(murl, (m) =>
      get(m, "ferry_client_transport_reports_total", { from: "polling", to: "sse", reason: "promoted" }) >
      get(a, "ferry_client_transport_reports_total", { from: "polling", to: "sse", reason: "promoted" }));
    const d = diff(a, b);
    assert.equal(d['ferry_client_transport_reports_total{from="none",reason="start",to="polling"}'], 1, JSON.stringify(switches));
    assert.equal(d['ferry_client_transport_reports_total{from="polling",reason="ws-refused",to="polling"}'], 1);
    assert.equal(d['ferry_client_transport_reports_total{from="polling",reason="promoted",to="sse"}'], 1);
    assert.equal(d['ferry_upgrades_total{from="polling",reason="probe",to="sse"}'], 1);
    assert.equal(d['ferry_upgrades_total{from="polling",reason="probe",to="websocket"}'], undefined);
    assert.equal(d['ferry_handshakes_total{transport="polling"}'], 1);
    assert.equal(d['ferry_sessions_open{transport="sse"}'], 1);
    socket.disconnect();
    await scrapeUntil(murl, (m) => get(m, "ferry_sessions_open", { transport: "sse" }) === get(a, "ferry_sessions_open", { transport: "sse" }));
  } finally {
    await proxy.stop();
  }
});

test("through a proxy that closes WebSockets after 1.5 s: a downgrade websocket -> polling by attach, reported ws-closed", async () => {
  const proxy = await startProxy(srv.url, ["--ws-close-after", "1.5", "--quiet"]);
  try {
    const a = await scrape(murl);
    const { socket, switches } = await ferryClient(proxy.url, { transports: ["polling", "websocket"] });
    await until(() => switches.some((s) => s.from === "websocket" && s.reason === "ws-closed"), 20000, "the WebSocket to be left");
    const b = await scrapeUntil(murl, (m) => sum(m, "ferry_downgrades_total", { from: "websocket" }) > sum(a, "ferry_downgrades_total", { from: "websocket" }) &&
      sum(m, "ferry_client_transport_reports_total", { reason: "ws-closed" }) > sum(a, "ferry_client_transport_reports_total", { reason: "ws-closed" }));
    const d = diff(a, b);
    assert.equal(d['ferry_upgrades_total{from="polling",reason="probe",to="websocket"}'], 1, JSON.stringify(switches));
    assert.equal(d['ferry_downgrades_total{from="websocket",reason="attach",to="polling"}'], 1);
    assert.equal(d['ferry_client_transport_reports_total{from="websocket",reason="ws-closed",to="polling"}'], 1);
    socket.disconnect();
  } finally {
    await proxy.stop();
  }
});

test("--metrics-listen from FERRY_METRICS_LISTEN; bad values stop ferry with one clear line", async () => {
  const { s, murl: u } = await startFerry([], { FERRY_METRICS_LISTEN: "127.0.0.1:0" });
  try {
    assert.ok(u, s.stdout());
    const m = await scrape(u);
    assert.match(m.text, /\nferry_build_info\{version="\d+\.\d+\.\d+"\} 1\n/);
  } finally {
    assert.equal(await s.stop(), 0);
  }
  for (const bad of ["9464", "[::1", "127.0.0.1:99999", "::1:9464"]) {
    const r = spawnSync(bin("tools/ferry/ferry"), ["--port", "0", "--metrics-listen", bad], { encoding: "utf8", timeout: 10000 });
    assert.equal(r.status, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /invalid metrics listen address/);
  }
});

test("docs: observability.md lists every metric family, and the Grafana dashboard reads only metrics ferry exports", async () => {
  const fs = await import("node:fs");
  const path = await import("node:path");
  const { root } = await import("../lib/server.mjs");
  const res = await scrapeRaw(murl);
  const families = [...res.body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
  const doc = fs.readFileSync(path.join(root, "docs/observability.md"), "utf8");
  for (const f of families) assert.ok(doc.includes(`\`${f}\``), `docs/observability.md lists ${f}`);
  const dash = JSON.parse(fs.readFileSync(path.join(root, "docs/grafana-ferry.json"), "utf8"));
  const exprs = dash.panels.flatMap((p) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 12);
  const known = new Set(families.flatMap((f) => [f, `${f}_bucket`, `${f}_sum`, `${f}_count`]));
  for (const e of exprs)
    for (const name of e.match(/\bferry_[a-z_]+/g) ?? []) assert.ok(known.has(name), `${name} in "${e}" is a metric ferry exports`);
});
