// Scraping tools/ferry's /metrics for the tests: every scrape is parsed by a real Prometheus
// parser (Debian's python3-prometheus-client, text_string_to_metric_families), which throws on
// anything that is not the text exposition format, and the samples come back from it.
//
//   const m = await scrape(url);          // Map "name{a="x",b="y"}" -> value
//   get(m, "ferry_handshakes_total", { transport: "polling" })   // 0 when absent
import { spawn } from "node:child_process";
import http from "node:http";

const PARSER = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([fam.name, fam.type, fam.documentation, s.name, s.labels, s.value])
print(json.dumps(out))
`;

export function httpGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error(`GET ${url}: no answer in 10 s`)));
    req.on("error", reject);
  });
}

// Parse text with the python parser; resolves [{family, type, help, name, labels, value}].
// Asynchronous on purpose: a synchronous spawn blocked the test's event loop for seconds on a
// loaded machine, so the clients in the same process could not read pings or answer them while
// a scrape ran (their sessions then ended by ping timeout or reset, not as the test meant).
export function parseExposition(text) {
  return new Promise((resolve, reject) => {
    const py = spawn("/usr/bin/python3", ["-c", PARSER], { stdio: ["pipe", "pipe", "pipe"] });
    const out = [], err = [];
    const timer = setTimeout(() => py.kill("SIGKILL"), 30000);
    py.stdout.on("data", (d) => out.push(d));
    py.stderr.on("data", (d) => err.push(d));
    py.on("error", (e) => (clearTimeout(timer), reject(e)));
    py.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`prometheus_client could not parse the exposition (exit ${code}): ${Buffer.concat(err)}`));
      try {
        resolve(JSON.parse(Buffer.concat(out).toString("utf8")).map(([family, type, help, name, labels, value]) => ({ family, type, help, name, labels, value })));
      } catch (e) {
        reject(e);
      }
    });
    py.stdin.end(text);
  });
}

export const key = (name, labels = {}) =>
  `${name}{${Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(",")}}`;

export async function scrapeRaw(url) {
  const res = await httpGet(url);
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  return res;
}

export async function scrape(url) {
  const res = await scrapeRaw(url);
  const samples = await parseExposition(res.body);
  const m = new Map();
  for (const s of samples) m.set(key(s.name, s.labels), s.value);
  m.samples = samples;
  m.text = res.body;
  return m;
}

export const get = (m, name, labels = {}) => m.get(key(name, labels)) ?? 0;

// Sum of every sample of name whose labels include the given ones.
export function sum(m, name, labels = {}) {
  let t = 0;
  for (const s of m.samples)
    if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) t += s.value;
  return t;
}

// Scrape until check(m) is true (bounded: ms); returns the last scrape. Each scrape is an event
// (the server's answer), so this waits on the server, never on a timer standing in for it.
export async function scrapeUntil(url, check, ms = 15000, what = "the metrics to move") {
  const end = Date.now() + ms;
  let m, first;
  for (;;) {
    m = await scrape(url);
    first ??= m;
    if (check(m)) return m;
    if (Date.now() > end)
      throw new Error(`timed out after ${ms} ms waiting for ${what}; meanwhile: ${JSON.stringify(diff(first, m, "ferry_"))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// What moved between two scrapes: {key: delta} for every counter or gauge that changed.
export function diff(a, b, prefix = "ferry_") {
  const out = {};
  const keys = new Set([...a.keys(), ...b.keys()]);
  for (const k of keys) {
    if (!k.startsWith(prefix)) continue;
    const d = (b.get(k) ?? 0) - (a.get(k) ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}
