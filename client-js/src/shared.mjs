// shareAcrossTabs (docs/client.md): a tab's side of the one connection its origin shares. Each
// SharedEngine stands for one Engine.IO session as Manager and the WebSocket shim see it, and is
// one "tab" on the wire (docs/protocol.md section 11); the real session lives in a hub
// (shared-hub.mjs, the bundle ferry-shared.js beside this one): a SharedWorker, or where there
// is none a dedicated worker of the tab elected through Web Locks, reached by BroadcastChannel.
import { Emitter } from "./emitter.mjs";
import { Engine } from "./engine.mjs";

const G = globalThis;
const SCRIPT = G.document?.currentScript?.src || import.meta.url;
const rid = () => Math.random().toString(36).slice(2, 10) + Math.random().toString(36).slice(2, 10);
const CTX = rid(); // this browsing context: the hub learns it is gone when it gets its lock
const links = {};
let held;

// The tab's own lock, held for its life (granted before the hub is asked for anything).
const tabLock = () => (held ||= new Promise((res) => G.navigator.locks.request("ferry-tab:" + CTX, () => (res(), new Promise(() => {})))));

function link(key, url) {
  if (links[key]) return links[key];
  const l = (links[key] = { vs: new Map() });
  const deliver = (m) => m.h && (m.op === "hello" ? l.vs.forEach((v) => v.hello(m.hub)) : (m.hub && watch(m.hub), l.vs.get(m.v)?.on_(m)));
  // The hub holds a lock of its own for its life: ours is granted when it is gone (a crash takes
  // a SharedWorker with the process of the tab that started it), and its sessions with it.
  const watch = (hub) =>
    (l.hubs ||= {})[hub] ||
    (l.hubs[hub] = G.navigator.locks.request("ferry-hub:" + hub, () => {
      if (l.sw && links[key] === l) delete links[key];
      l.vs.forEach((v) => v.hub === hub && v._close("transport close", {}, [], 1));
    }));
  if (G.SharedWorker) {
    const w = new G.SharedWorker(url, { name: key });
    l.sw = 1;
    w.port.onmessage = (e) => deliver(e.data);
    l.post = (m) => w.port.postMessage(m);
  } else {
    const bc = new BroadcastChannel(key);
    bc.onmessage = (e) => deliver(e.data);
    l.post = (m) => bc.postMessage(m);
    // The tab holding the lock runs the hub in a worker of its own; when the tab goes, the lock
    // passes to the next tab waiting for it, at once.
    G.navigator.locks.request("ferry-lead:" + key, () => {
      const w = new Worker(url, { name: key });
      w.postMessage({ op: "lead", key });
      G.addEventListener("pagehide", () => w.postMessage({ op: "bye" }));
      return new Promise(() => {});
    });
  }
  return l;
}

const hubUrl = (o) => {
  try {
    return new URL(o.sharedWorker || "ferry-shared.js", SCRIPT || undefined).href;
  } catch {}
};

// The key names the hub's protocol version (ferry1): a page with a newer bundle never talks to
// an older hub still running for other tabs.
// The engine class for options o: SharedEngine when o.shareAcrossTabs asks for it and the
// browser can (Web Locks, and SharedWorker or BroadcastChannel + Worker), else Engine.
export const engineFor = (o) => (o.shareAcrossTabs && G.navigator?.locks && (G.SharedWorker || (G.BroadcastChannel && G.Worker)) && hubUrl(o) ? SharedEngine : Engine);

export class SharedEngine extends Emitter {
  constructor(uri, o) {
    super();
    this.readyState = "opening";
    this.wq = [];
    this.id = rid();
    const mux = !o.raw;
    const eo = JSON.parse(JSON.stringify({ ...o, storage: 0, Engine: 0, auth: 0 }));
    uri = new URL(uri, G.location?.href).origin;
    this.l = link("ferry1:" + JSON.stringify([uri, o.path, o.query, o.transports, mux]), hubUrl(o));
    this.l.vs.set(this.id, this);
    this.ask = () => this.l.post({ op: "open", v: this.id, ctx: CTX, uri, o: eo, mux });
    this.alone = () => {
      // The server cannot share: a session of our own, this object standing for it.
      const e = (this.e = new Engine(uri, o));
      for (const k of ["open", "message", "transport", "close"]) e.on(k, (...a) => (["readyState", "sid", "hs", "ext", "transport", "wq"].forEach((x) => (this[x] = e[x])), this.fire(k, ...a)));
      for (const k of ["send", "ping", "close", "_close"]) this[k] = (...a) => e[k](...a);
    };
    tabLock().then(() => this.readyState === "opening" && this.ask());
  }
  on_(m) {
    // sid, hs, ext and transport.name read as on Engine (they are the shared session's).
    if (m.op === "open" && this.readyState === "opening") (this.hub = m.hub), (this.readyState = "open"), (this.hs = m.hs), (this.sid = m.hs.sid), (this.ext = m.hs.ext), this.fire("open", m.hs);
    else if (m.op === "msg") this.readyState === "open" && this.fire("message", m.d);
    else if (m.op === "transport") (this.transport = { name: m.ev.to }), this.fire("transport", m.ev);
    else if (m.op === "close") this._close(m.r, m.info, m.left, 1);
    else if (m.op === "alone" && this.readyState === "opening") this.l.vs.delete(this.id), this.alone();
  }
  // A hub started: a session waiting asks it; one on an older hub was lost with it.
  hello(hub) {
    if (this.readyState === "opening") this.ask();
    else if (hub !== this.hub) this._close("transport close");
  }
  send(data) {
    if (this.readyState !== "open") return;
    // One message to the hub per tick: a packet and its attachments stay together.
    if (this.wq.push({ type: 4, data }) === 1) queueMicrotask(() => this.readyState === "open" && this.l.post({ op: "send", v: this.id, d: this.wq.splice(0).map((p) => p.data) }));
  }
  ping() {
    this.l.post({ op: "ping", v: this.id });
  }
  close() {
    this._close("forced close");
  }
  _close(r, info = {}, left = [], remote) {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.l.vs.delete(this.id);
    if (!remote) this.l.post({ op: "close", v: this.id });
    this.fire("close", r, info, [...left, ...this.wq.splice(0).map((p) => p.data)]);
  }
}
