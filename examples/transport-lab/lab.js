// The transport lab's page: five sessions of ferry's client on the same server, four forced onto
// one transport each and one left to choose, each on its own route (direct, or through a
// tools/ferry-proxy fault that lab.mjs starts on demand). Every second each session asks the
// server for its counters ("stats"); the figures are differences of those counters over the
// last WINDOW_S seconds, so bytes per message are what the server really read and wrote.
const WINDOW_S = 10;     // figures over this window
const HISTORY_S = 120;   // the charts' span
const PING_MS = 200;     // round-trip probes
const STATS_MS = 1000;   // counter reads
const COLUMNS = [
  { id: "websocket", label: "WebSocket", transports: ["websocket"], color: "#1f77b4" },
  { id: "sse", label: "Server-Sent Events", transports: ["sse"], color: "#2ca02c" },
  { id: "polling", label: "long-polling", transports: ["polling"], color: "#d62728" },
  { id: "short-polling", label: "short polling", transports: ["short-polling"], color: "#9467bd" },
  { id: "auto", label: "automatic", transports: null, color: "#ff7f0e" },
];
const FIGURES = [
  ["rtt-p50", "round trip p50", "ms"],
  ["rtt-p99", "round trip p99", "ms"],
  ["msgs", "messages / s", ""],
  ["bytes-down", "wire bytes / msg ↓", "B"],
  ["bytes-up", "wire bytes / msg ↑", "B"],
  ["overhead-down", "overhead / msg ↓", "B"],
  ["overhead-up", "overhead / msg ↑", "B"],
  ["requests", "requests / min", ""],
  ["wire", "wire bytes / s", "B"],
];

const $ = (sel, el = document) => el.querySelector(sel);
let config;
const cols = [];

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = el("script", { src });
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// ---- one column: a session, its samples, its figures

function makeColumn(def) {
  const c = { ...def, socket: null, route: "direct", url: config.server, gen: 0,
    rtts: [], ticks: [], stats: [], series: [], transport: "", reason: "", changes: [],
    state: "connecting", figures: {} };
  const select = el("select", { class: "route", "aria-label": `route for ${def.label}` });
  for (const f of config.faults) select.append(el("option", { value: f.id }, f.label));
  select.onchange = () => reroute(c, select.value);
  const dl = el("dl");
  for (const [id, label] of FIGURES) {
    dl.append(el("dt", {}, label), el("dd", { "data-fig": id, "data-value": "" }, "–"));
  }
  c.node = el("section", { class: "col", "data-column": def.id, style: `--c:${def.color}` },
    el("h2", {}, def.label),
    el("div", { class: "live" }, def.transports ? `forced: ${def.transports[0]}` : "ferry's ladder"),
    select, dl, el("div", { class: "state" }, "connecting…"));
  c.select = select;
  $("#columns").append(c.node);
  return c;
}

function connect(c) {
  const gen = ++c.gen;
  const opts = { forceNew: true, storage: null, reconnectionDelayMax: 2000 };
  if (c.transports) opts.transports = c.transports;
  const socket = window.ferry.io(c.url, opts);
  c.socket = socket;
  c.rtts = [];
  c.ticks = [];
  c.stats = [];
  c.state = "connecting";
  socket.on("connect", () => { if (gen === c.gen) c.state = "connected"; });
  socket.on("disconnect", (why) => { if (gen === c.gen) c.state = `disconnected: ${why}`; });
  socket.on("connect_error", (e) => { if (gen === c.gen) c.state = `connect error: ${e.message}`; });
  socket.on("tick", () => { if (gen === c.gen) c.ticks.push(performance.now()); });
  socket.on("transport", (e) => {
    if (gen !== c.gen) return;
    c.reason = e.reason;
    c.changes.push({ at: new Date().toISOString(), from: e.from, to: e.to, reason: e.reason });
    if (c.changes.length > 50) c.changes.shift();
  });
}

async function reroute(c, fault) {
  c.select.disabled = true;
  try {
    const res = await fetch("/lab/route", { method: "POST", body: JSON.stringify({ column: c.id, fault }) });
    const answer = await res.json();
    if (!res.ok) throw new Error(answer.error);
    c.socket?.disconnect();
    c.route = fault;
    c.url = answer.url;
    c.series.push({ t: Date.now(), gap: true });
    connect(c);
  } catch (err) {
    c.state = `route failed: ${err.message}`;
  } finally {
    c.select.disabled = false;
  }
}

function ping(c) {
  const s = c.socket;
  if (!s?.connected) return;
  const gen = c.gen;
  const t0 = performance.now();
  s.timeout(10000).emit("ping", t0, (err, back) => {
    if (err || gen !== c.gen || back !== t0) return;
    c.rtts.push({ at: performance.now(), ms: performance.now() - t0 });
  });
}

function readStats(c) {
  const s = c.socket;
  if (!s?.connected) return;
  const gen = c.gen;
  s.timeout(10000).emit("stats", (err, st) => {
    if (err || gen !== c.gen || !st) return;
    const last = c.stats.at(-1);
    // A new session starts its counters at 0; a new transport starts its own figures (the
    // automatic column's polling start does not blur its WebSocket's bytes per message).
    if (last && (last.c.sid !== st.sid || last.c.transport !== st.transport)) {
      c.stats = [];
      c.rtts = [];
    }
    c.stats.push({ at: performance.now(), c: st });
    c.transport = st.transport;
  });
}

function compute(c, now) {
  const from = now - WINDOW_S * 1000;
  c.rtts = c.rtts.filter((r) => r.at >= from);
  c.ticks = c.ticks.filter((t) => t >= from);
  c.stats = c.stats.filter((s) => s.at >= from - STATS_MS);
  const sorted = c.rtts.map((r) => r.ms).sort((a, b) => a - b);
  const f = {
    "rtt-p50": percentile(sorted, 50),
    "rtt-p99": percentile(sorted, 99),
    "msgs": NaN, "bytes-down": NaN, "bytes-up": NaN, "overhead-down": NaN, "overhead-up": NaN,
    "requests": NaN, "wire": NaN,
  };
  if (c.ticks.length > 1) {
    const span = Math.max(now - Math.max(c.ticks[0] - 1000 / config.rate, from), 1000);
    f.msgs = (c.ticks.length * 1000) / span;
  }
  const a = c.stats[0];
  const b = c.stats.at(-1);
  if (a && b && b.at - a.at >= 1500) {
    const d = (k) => b.c[k] - a.c[k];
    const secs = (b.at - a.at) / 1000;
    if (d("messages_out") > 0) {
      f["bytes-down"] = d("bytes_out") / d("messages_out");
      f["overhead-down"] = (d("bytes_out") - d("message_bytes_out")) / d("messages_out");
    }
    if (d("messages_in") > 0) {
      f["bytes-up"] = d("bytes_in") / d("messages_in");
      f["overhead-up"] = (d("bytes_in") - d("message_bytes_in")) / d("messages_in");
    }
    f.requests = (d("requests") * 60) / secs;
    f.wire = (d("bytes_in") + d("bytes_out")) / secs;
  }
  c.figures = f;
  c.series.push({ t: Date.now(), rtt: f["rtt-p50"], wire: f.wire });
  while (c.series.length && c.series[0].t < Date.now() - HISTORY_S * 1000) c.series.shift();
}

function fmt(v, unit) {
  if (!Number.isFinite(v)) return "–";
  if (v === 0) return unit ? `0 ${unit}` : "0";
  const n = v >= 100 ? Math.round(v).toLocaleString("en-US") : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return unit ? `${n} ${unit}` : n;
}

function render(c) {
  for (const [id, , unit] of FIGURES) {
    const dd = $(`dd[data-fig="${id}"]`, c.node);
    const v = c.figures[id];
    dd.textContent = fmt(v, unit);
    dd.dataset.value = Number.isFinite(v) ? String(v) : "";
  }
  const live = $(".live", c.node);
  const mode = c.transports ? `forced: ${c.transports[0]}` : "ferry's ladder";
  live.replaceChildren(`${mode} · now `, el("b", { class: "transport" }, c.transport || "…"),
    c.transports || !c.reason ? "" : ` (${c.reason})`);
  const state = $(".state", c.node);
  state.textContent = `${c.state}${c.route === "direct" ? "" : ` · via proxy: ${c.route}`}`;
  state.classList.toggle("bad", c.state !== "connected");
}

// ---- the charts: inline SVG polylines, one per column

function chart(svg, key, unit) {
  const W = 600, H = 160, L = 44, B = 14;
  const now = Date.now();
  let max = 0;
  for (const c of cols) for (const p of c.series) if (Number.isFinite(p[key])) max = Math.max(max, p[key]);
  max = max > 0 ? max * 1.1 : 1;
  const x = (t) => L + ((t - (now - HISTORY_S * 1000)) / (HISTORY_S * 1000)) * (W - L - 4);
  const y = (v) => H - B - (v / max) * (H - B - 6);
  const parts = [
    `<line x1="${L}" y1="${H - B}" x2="${W}" y2="${H - B}" stroke="#ccd"/>`,
    `<line x1="${L}" y1="4" x2="${L}" y2="${H - B}" stroke="#ccd"/>`,
    `<text x="${L - 4}" y="12" text-anchor="end">${fmt(max, unit)}</text>`,
    `<text x="${L - 4}" y="${H - B}" text-anchor="end">0</text>`,
    `<text x="${L}" y="${H - 2}">−${HISTORY_S} s</text>`,
    `<text x="${W - 4}" y="${H - 2}" text-anchor="end">now</text>`,
  ];
  for (const c of cols) {
    let pts = [];
    const flush = () => {
      if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${c.color}" stroke-width="1.6" points="${pts.join(" ")}"/>`);
      pts = [];
    };
    for (const p of c.series) {
      if (p.gap || !Number.isFinite(p[key])) { flush(); continue; }
      pts.push(`${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`);
    }
    flush();
  }
  svg.innerHTML = parts.join("");
}

// ---- export

function exportFigures() {
  const round = (v) => (Number.isFinite(v) ? Math.round(v * 100) / 100 : null);
  const out = {
    lab: "ferry transport lab",
    exported: new Date().toISOString(),
    server: config.server,
    tick_rate_per_s: config.rate,
    window_s: WINDOW_S,
    columns: cols.map((c) => ({
      column: c.id,
      label: c.label,
      forced: c.transports ? c.transports[0] : null,
      transport: c.transport || null,
      route: c.route,
      url: c.url,
      state: c.state,
      rtt_ms: { p50: round(c.figures["rtt-p50"]), p99: round(c.figures["rtt-p99"]), samples: c.rtts.length },
      messages_per_s: round(c.figures.msgs),
      wire_bytes_per_message: { down: round(c.figures["bytes-down"]), up: round(c.figures["bytes-up"]) },
      overhead_bytes_per_message: { down: round(c.figures["overhead-down"]), up: round(c.figures["overhead-up"]) },
      requests_per_min: round(c.figures.requests),
      wire_bytes_per_s: round(c.figures.wire),
      counters: c.stats.at(-1)?.c ?? null,
      transport_changes: c.changes,
      series: c.series.filter((p) => !p.gap).map((p) => ({ t: new Date(p.t).toISOString(),
        rtt_p50_ms: round(p.rtt), wire_bytes_per_s: round(p.wire) })),
    })),
  };
  const text = JSON.stringify(out, null, 2);
  const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/json" })),
    download: "transport-lab.json" });
  document.body.append(a);
  a.click();
  a.remove();
  return out;
}

// ---- start

async function main() {
  config = await (await fetch("/lab/config")).json();
  await loadScript(`${config.server}/ferry/ferry.min.js`);
  for (const def of COLUMNS) cols.push(makeColumn(def));
  $("#legend").replaceChildren(...cols.map((c) => el("span", { style: `--c:${c.color}` }, el("i"), c.label)));
  for (const c of cols) connect(c);
  setInterval(() => cols.forEach(ping), PING_MS);
  setInterval(() => {
    cols.forEach(readStats);
    const now = performance.now();
    for (const c of cols) {
      compute(c, now);
      render(c);
    }
    chart($("#chart-rtt"), "rtt", "ms");
    chart($("#chart-bytes"), "wire", "B/s");
  }, STATS_MS);
  $("#status").textContent = `server ${config.server} · ${config.rate} ticks a second to every session · figures over the last ${WINDOW_S} s`;
  $("#export").disabled = false;
  $("#export").onclick = exportFigures;
}

main().catch((err) => {
  $("#status").textContent = `error: ${err.message}`;
  $("#status").classList.add("bad");
});
