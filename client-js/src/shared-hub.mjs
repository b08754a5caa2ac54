// The hub of shareAcrossTabs (bundled alone as ferry-shared.js): holds the one Engine.IO session
// of an origin's tabs and multiplexes their sessions (shared.mjs) over it. Run as a SharedWorker
// (tabs reach it by its port), or as the dedicated worker of the elected tab (tabs reach it by
// BroadcastChannel). On the wire each tab session is a tab of docs/protocol.md section 11:
// "t<n>:" before its Socket.IO packets, "x<n>" when it ends; a plain Engine.IO session (the
// WebSocket shim, mux false) is shared as it is, every message going to every tab.
import { Engine } from "./engine.mjs";

const G = globalThis;
const HUB = Math.random().toString(36).slice(2);
const vs = new Map(); // tab session id -> {id, post, ctx, n}
const byN = new Map(); // wire number -> tab session
const watched = new Set();
let eng = null,
  mux,
  n = 0,
  linger,
  last, // the session's last transport event: a tab that comes later gets it too
  alone, // the server has no "tabs": every tab its own session from now on
  pend = null,
  pendLeft = 0;

const send = (v, m) => v.post({ ...m, h: 1, v: v.id });
// Held for the hub's life: a tab waiting for it learns that the hub is gone (shared.mjs).
G.navigator.locks.request("ferry-hub:" + HUB, () => new Promise(() => {}));

function start(m) {
  mux = m.mux;
  const e = (eng = new Engine(m.uri, m.o));
  e.on("open", () => vs.forEach(up));
  e.on("message", route);
  e.on("transport", (ev) => ((last = ev), vs.forEach((v) => v.n && send(v, { op: "transport", ev }))));
  e.on("close", (r, info, left) => {
    if (e !== eng) return;
    eng = pend = last = null;
    // What never left goes back to its tab, without the prefix.
    const back = {};
    let to;
    for (const d of left) {
      const x = mux && typeof d === "string" ? /^t(\d+):/.exec(d) : null;
      if (typeof d === "string") to = x?.[1];
      if (!mux || to) (back[mux ? to : 0] ||= []).push(x ? d.slice(x[0].length) : d);
    }
    for (const v of vs.values()) send(v, { op: "close", r, info: { status: info?.status, retry: info?.retry }, left: back[mux ? v.n : 0] || [] });
    vs.clear();
    byN.clear();
  });
}

function up(v) {
  if (v.n) return;
  // A server without "tabs" (docs/protocol.md 11) cannot tell tabs apart: each its own session.
  if (mux && !eng.ext.includes("tabs")) return (alone = 1), drop(v), send(v, { op: "alone" });
  byN.set(String((v.n = ++n)), v);
  send(v, { op: "open", hub: HUB, hs: eng.hs });
  if (last) send(v, { op: "transport", ev: last });
}

function route(d) {
  if (!mux) return vs.forEach((v) => v.n && send(v, { op: "msg", d }));
  if (typeof d !== "string") {
    if (pend && pendLeft-- > 0) send(pend, { op: "msg", d });
    return;
  }
  const m = /^([tx])(\d+)(:?)/.exec(d);
  const v = m && byN.get(m[2]);
  pend = null;
  if (!v) return;
  if (m[1] === "x") return drop(v), send(v, { op: "close", r: "transport close", info: {} });
  const body = d.slice(m[0].length);
  const a = /^[56](\d+)-/.exec(body);
  if (a) (pend = v), (pendLeft = +a[1]);
  send(v, { op: "msg", d: body });
}

// A tab session left (tell: say so to the server).
function drop(v, tell) {
  vs.delete(v.id);
  if (v.n) byN.delete(String(v.n));
  if (tell && v.n && mux && eng?.readyState === "open") eng.send("x" + v.n);
  if (!vs.size && eng) linger = setTimeout(() => !vs.size && eng?.close(), 1000);
}

// A tab holds its lock for its life: ours is granted when it is closed or crashed.
function watch(ctx) {
  if (watched.has(ctx)) return;
  watched.add(ctx);
  G.navigator.locks.request("ferry-tab:" + ctx, () => {
    watched.delete(ctx);
    for (const v of [...vs.values()]) if (v.ctx === ctx) drop(v, 1);
  });
}

function onmsg(m, post) {
  if (!m || m.h) return;
  let v = vs.get(m.v);
  if (m.op === "open") {
    if (alone) return send({ id: m.v, post }, { op: "alone" });
    if (v) return;
    vs.set(m.v, (v = { id: m.v, post, ctx: m.ctx }));
    watch(m.ctx);
    clearTimeout(linger);
    if (!eng) start(m);
    else if (eng.readyState === "open") up(v);
  } else if (m.op === "send") {
    if (v?.n && eng) for (const d of m.d) eng.send(mux && typeof d === "string" ? "t" + v.n + ":" + d : d);
  } else if (m.op === "close") v && drop(v, 1);
  else if (m.op === "ping") eng?.ping();
  else if (m.op === "bye") eng?.close(); // the elected tab is going
}

if (G.SharedWorkerGlobalScope && G instanceof G.SharedWorkerGlobalScope)
  G.onconnect = (e) => {
    const p = e.ports[0];
    p.onmessage = (ev) => onmsg(ev.data, (m) => p.postMessage(m));
  };
else
  G.onmessage = (e) => {
    if (e.data?.op === "bye") return onmsg(e.data);
    if (e.data?.op !== "lead") return;
    const bc = new BroadcastChannel(e.data.key);
    const post = (m) => bc.postMessage(m);
    bc.onmessage = (ev) => onmsg(ev.data, post);
    post({ op: "hello", h: 1, hub: HUB });
  };
