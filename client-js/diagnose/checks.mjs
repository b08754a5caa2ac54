// The checks of ferry's diagnosis page (/ferry/diagnose) and of tools/ferry-diagnose.mjs: what
// the network path between this client and a ferry server does to each transport. Browser and
// Node alike: pass WebSocket (npm ws in Node) and fetch.
//
//   const report = await diagnose("https://example.org", { path: "/socket.io/", wait: 30 });
//   for (const line of explain(report)) console.log(line);
//
// Every check uses plain Engine.IO v4 requests against the server's own transports, plus one
// helper route of tools/ferry (/ferry/diagnose/seen) that tells a stripped upgrade from a
// refused one. `wait` (seconds) bounds the silent checks (held request, idle stream, idle
// WebSocket); the whole run takes about that long.
const now = () => (globalThis.performance ?? Date).now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ms = (x) => Math.round(x);

export async function diagnose(origin, o = {}) {
  const WS = o.WebSocket ?? globalThis.WebSocket;
  const fetch = o.fetch ?? globalThis.fetch.bind(globalThis);
  const path = (o.path ?? "/socket.io/").replace(/\/?$/, "/");
  const wait = (o.wait ?? 30) * 1000;
  const step = o.onStep ?? (() => {});
  const base = origin.replace(/\/$/, "") + path;
  const wsBase = base.replace(/^http/, "ws");
  const q = (t, extra = "") => `?EIO=4&transport=${t}${extra}`;
  const r = { origin, path, rtt: {}, notes: [] };

  // Polling handshake: the path works at all, and a first round trip.
  step("polling");
  let t0 = now();
  let hs = null;
  try {
    const res = await fetch(base + q("polling"));
    const body = await res.text();
    r.rtt.polling = ms(now() - t0);
    if (res.status === 200 && body[0] === "0") hs = JSON.parse(body.slice(1));
    else r.polling = { ok: false, status: res.status };
  } catch (e) {
    r.polling = { ok: false, error: String(e.message ?? e) };
  }
  if (!hs) {
    r.choice = { transport: null, why: "the server does not answer an Engine.IO handshake at this path" };
    return r;
  }
  r.polling = { ok: true };
  r.pingInterval = hs.pingInterval;
  const bound = Math.min(wait, hs.pingInterval + 2000);

  const [ws, stream, held, size] = await Promise.all([
    checkWebSocket(),
    checkStream(),
    checkHeld(hs.sid),
    checkSizes(),
  ]);
  Object.assign(r, { websocket: ws, stream, held, maxMessage: size });
  const cuts = [ws.idleCutMs, stream.idleCutMs, held.cutMs].filter((x) => x != null);
  r.idleCutMs = cuts.length ? Math.min(...cuts) : null;
  r.idleSurvivedMs = r.idleCutMs == null ? Math.max(ws.silentMs ?? 0, stream.silentMs ?? 0, held.survivedMs ?? 0) : null;
  r.choice = choose(r);
  return r;

  // ---------------------------------------------------------------- WebSocket
  async function checkWebSocket() {
    step("websocket");
    const out = await new Promise((resolve) => {
      const t = now();
      let sock;
      try {
        sock = new WS(wsBase + q("websocket"));
      } catch (e) {
        return resolve({ verdict: "refused", error: String(e.message ?? e) });
      }
      let opened = false, first = null, done = false;
      const finish = (v) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => finish(opened ? { verdict: "mute", sock } : { verdict: "refused", timeout: true }), 5000);
      sock.onopen = () => (opened = true);
      sock.onmessage = (ev) => {
        if (first !== null) return;
        first = ms(now() - t);
        if (String(ev.data)[0] === "0") finish({ verdict: "works", rttMs: first, sock, openedAt: now() });
      };
      sock.onclose = sock.onerror = () => finish(opened ? { verdict: "closed", afterMs: ms(now() - t) } : { verdict: "failed" });
    });
    if (out.verdict === "failed" || out.verdict === "refused") {
      // Which one: did the upgrade request reach the server, with or without its headers?
      const id = Math.random().toString(36).slice(2, 12);
      await new Promise((resolve) => {
        let s;
        try {
          s = new WS(`${origin.replace(/^http/, "ws").replace(/\/$/, "")}/ferry/diagnose/seen?id=${id}`);
        } catch {
          return resolve();
        }
        const t = setTimeout(resolve, 4000);
        s.onclose = s.onerror = () => (clearTimeout(t), resolve());
        s.onopen = () => (clearTimeout(t), s.close(), resolve());
      });
      try {
        const seen = await (await fetch(`${origin.replace(/\/$/, "")}/ferry/diagnose/seen?id=${id}&ask=1`)).json();
        if (seen.seen && !seen.upgrade) return { verdict: "stripped" };
        if (seen.seen) return { verdict: "refused", byServer: true };
        return { verdict: "refused" };
      } catch {
        return { verdict: out.verdict === "failed" ? "refused" : out.verdict, unknown: true };
      }
    }
    if (out.verdict === "mute") {
      try { out.sock.close(); } catch {}
      return { verdict: "mute" };
    }
    if (out.verdict !== "works") return out;
    r.rtt.websocket = out.rttMs;
    // Silent until the server's first ping: is a quiet WebSocket cut before that?
    const sock = out.sock;
    const silent = await new Promise((resolve) => {
      const t = setTimeout(() => resolve({ silentMs: ms(now() - out.openedAt) }), bound);
      sock.onmessage = () => (clearTimeout(t), resolve({ silentMs: ms(now() - out.openedAt) }));
      sock.onclose = () => (clearTimeout(t), resolve({ idleCutMs: ms(now() - out.openedAt) }));
    });
    try { sock.close(); } catch {}
    return { verdict: "works", rttMs: out.rttMs, ...silent };
  }

  // ---------------------------------------------------------------- SSE stream
  async function checkStream() {
    step("stream");
    const ctl = new AbortController();
    const t = now();
    let res;
    try {
      res = await fetch(base + q("sse"), { headers: { accept: "text/event-stream" }, signal: ctl.signal });
    } catch (e) {
      return { verdict: "refused", error: String(e.message ?? e) };
    }
    if (res.status !== 200) {
      ctl.abort();
      return { verdict: res.status === 400 ? "off" : "refused", status: res.status };
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let text = "", firstMs = null, last = now();
    const endAt = t + Math.max(bound, 6000);
    let cut = null;
    for (;;) {
      const left = endAt - now();
      if (left <= 0) break;
      const got = await Promise.race([reader.read().catch(() => ({ done: true, error: true })), sleep(left).then(() => null)]);
      if (got === null) break;
      if (got.done) {
        cut = ms(now() - last);
        break;
      }
      text += dec.decode(got.value, { stream: true });
      if (firstMs === null && text.includes("data: 0{")) {
        firstMs = ms(now() - t);
        last = now();
      } else if (firstMs !== null && /data: 2/.test(text.slice(text.lastIndexOf("data:")))) {
        break; // the server's ping: the stream lived through a whole silent interval
      }
    }
    ctl.abort();
    if (firstMs === null) return { verdict: "buffered", waitedMs: ms(now() - t), cutMs: cut };
    r.rtt.sse = firstMs;
    // Live: the first event came while the stream stayed open, and not much later than a plain
    // request's answer (the polling handshake, measured the same way). The bound follows that
    // round trip so that a slow or loaded path is not called buffering (1.6 s against a 0.5 s
    // handshake was, on a loaded CI machine); a buffering proxy gives the first event only with
    // the end of the response, or never.
    const flushedAtEnd = cut != null && cut < 100;
    const liveBound = Math.max(1500, 4 * (r.rtt.polling ?? 0));
    const base2 = { verdict: !flushedAtEnd && firstMs < liveBound ? "live" : "buffered", delayMs: firstMs };
    return cut != null ? { ...base2, idleCutMs: cut } : { ...base2, silentMs: ms(now() - last) };
  }

  // ---------------------------------------------------------------- a held long-poll
  async function checkHeld(sid) {
    step("held");
    const t = now();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), bound);
    try {
      const res = await fetch(base + q("polling", `&sid=${sid}`), { signal: ctl.signal });
      const body = await res.text();
      clearTimeout(timer);
      const took = ms(now() - t);
      if (res.status === 200 && body.startsWith("2")) return { survivedMs: took, full: true };
      return { cutMs: took, status: res.status };
    } catch (e) {
      clearTimeout(timer);
      const took = ms(now() - t);
      if (ctl.signal.aborted) return { survivedMs: took };
      return { cutMs: took, error: String(e.message ?? e) };
    }
  }

  // ---------------------------------------------------------------- message size
  async function checkSizes() {
    step("size");
    let largest = 0, refusedAt = null;
    for (const size of [1000, 10000, 100000, 500000, 1000000]) {
      try {
        const h = await fetch(base + q("polling"));
        const b = await h.text();
        if (h.status !== 200 || b[0] !== "0") break;
        const sid = JSON.parse(b.slice(1)).sid;
        // A noop packet padded to size: the server takes it and does nothing with it.
        const res = await fetch(base + q("polling", `&sid=${sid}`), { method: "POST",
          headers: { "content-type": "text/plain;charset=UTF-8" }, body: "6" + "x".repeat(size - 1) });
        await res.text();
        if (res.status !== 200) {
          refusedAt = { size, status: res.status };
          break;
        }
        largest = size;
      } catch (e) {
        refusedAt = { size, error: String(e.message ?? e) };
        break;
      }
    }
    return { largest, refusedAt };
  }
}

function choose(r) {
  const ws = r.websocket.verdict;
  const wsWords = { stripped: "the upgrade is stripped on the way", refused: "WebSocket is refused", mute: "WebSocket opens but stays mute",
    closed: "WebSocket closes right after opening", off: "WebSocket is off" }[ws] ?? `WebSocket: ${ws}`;
  if (ws === "works") return { transport: "websocket", why: "WebSocket opens and data flows both ways" };
  if (r.stream.verdict === "live") return { transport: "sse", why: `${wsWords}, and streams arrive live` };
  const held = r.held.cutMs == null || r.held.cutMs >= 10000;
  const sw = r.stream.verdict === "buffered" ? "streams are buffered" : "SSE is not available";
  if (held) return { transport: "polling", why: `${wsWords}, ${sw}, and held requests survive` };
  return { transport: "short-polling", why: `${wsWords}, ${sw}, and held requests are cut after ${sec(r.held.cutMs)}` };
}

const sec = (x) => (x < 1000 ? `${x} ms` : `${(x / 1000).toFixed(1)} s`);
const size = (n) => (n >= 1e6 ? `${n / 1e6} MB` : n >= 1000 ? `${n / 1000} kB` : `${n} bytes`);

// The report in plain words, one line per finding.
export function explain(r) {
  const L = [];
  if (!r.polling?.ok) {
    L.push(`The server does not answer at ${r.origin}${r.path} (${r.polling?.status ? `HTTP ${r.polling.status}` : r.polling?.error ?? "no answer"}).`);
    return L;
  }
  const w = r.websocket;
  L.push({
    works: `WebSocket works (first answer after ${sec(w.rttMs)}).`,
    refused: "WebSocket is refused: the upgrade request never reached the server (a proxy or firewall said no).",
    stripped: "WebSocket upgrade stripped: the request reached the server without its Upgrade header (a proxy that does not pass WebSocket on).",
    mute: "WebSocket is mute: the connection opens, then nothing arrives (a proxy that accepts and stalls it).",
    closed: `WebSocket closes right after opening (after ${sec(w.afterMs ?? 0)}).`,
  }[w.verdict] ?? `WebSocket: ${w.verdict}.`);
  const s = r.stream;
  L.push(s.verdict === "live" ? `Streams arrive live (first event after ${sec(s.delayMs)}).`
    : s.verdict === "buffered" ? (s.delayMs != null ? `Streams are buffered: the first event came only after ${sec(s.delayMs)}.`
      : `Streams are buffered: nothing arrived in ${sec(s.waitedMs)} (a proxy holds the response back).`)
      : s.verdict === "off" ? "Server-Sent Events are not enabled on this server." : `Streams are refused (${s.status ? `HTTP ${s.status}` : s.error}).`);
  const h = r.held;
  L.push(h.cutMs != null ? `Held requests are cut after ${sec(h.cutMs)}${h.status ? ` (HTTP ${h.status})` : ""}.`
    : `A held request survives at least ${sec(h.survivedMs)}${h.full ? " (a whole ping interval)" : ""}.`);
  L.push(r.idleCutMs != null ? `Silent connections are cut after about ${sec(r.idleCutMs)}.`
    : `Silent connections are not cut within ${sec(r.idleSurvivedMs)}.`);
  const m = r.maxMessage;
  L.push(m.refusedAt ? `The largest message that gets through: ${size(m.largest)} (${size(m.refusedAt.size)} was refused${m.refusedAt.status ? `, HTTP ${m.refusedAt.status}` : ""}).`
    : `Messages of ${size(m.largest)} get through.`);
  const rtt = Object.entries(r.rtt).map(([k, v]) => `${k} ${sec(v)}`).join(", ");
  L.push(`Round trip per transport: ${rtt}.`);
  L.push(`ferry's client will use ${r.choice.transport}: ${r.choice.why}.`);
  return L;
}
