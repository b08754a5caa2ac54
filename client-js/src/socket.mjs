// The Socket.IO v5 client on the engine: packets (with binary attachments), namespaces,
// acknowledgements, reconnection with backoff, connection-state recovery, offline buffer.
import { Emitter } from "./emitter.mjs";
import { Engine } from "./engine.mjs";

const G = globalThis;
const RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener", "transport", "recovery_failed", "outbox_full"]);
const isBin = (d) => d instanceof ArrayBuffer || ArrayBuffer.isView(d) || (typeof Blob !== "undefined" && d instanceof Blob);
const isObj = (d) => d && typeof d === "object";

// Binary values out of the data, in order, as {_placeholder, num} (Socket.IO v5).
function cut(d, bufs) {
  if (isBin(d)) return { _placeholder: true, num: bufs.push(d) - 1 };
  if (Array.isArray(d)) return d.map((x) => cut(x, bufs));
  if (isObj(d) && !(d.toJSON instanceof Function)) {
    const o = Object.create(null); // a "__proto__" key stays a key
    for (const k in d) if (Object.hasOwn(d, k)) o[k] = cut(d[k], bufs);
    return o;
  }
  return d;
}
function paste(d, bufs) {
  if (isObj(d)) {
    if (d._placeholder === true) {
      if (!(d.num in bufs)) throw 0;
      return bufs[d.num];
    }
    for (const k in d) {
      const v = paste(d[k], bufs);
      if (v !== d[k]) d[k] = v;
    }
  }
  return d;
}

export function encode(p) {
  const bufs = [];
  const data = p.data === undefined ? undefined : cut(p.data, bufs);
  let s = "" + (p.type + (bufs.length && p.type > 1 ? 3 : 0));
  if (bufs.length) s += bufs.length + "-";
  if (p.nsp && p.nsp !== "/") s += p.nsp + ",";
  if (p.id != null) s += p.id;
  if (data !== undefined) s += JSON.stringify(data);
  return [s, ...bufs];
}

export function decode(s) {
  const m = /^([0-6])(?:(\d+)-)?(?:(\/[^,]*),?)?(\d+)?([\s\S]*)$/.exec(s);
  if (!m || !m[2] !== (m[1] < 5)) throw new Error("parse error");
  const p = { type: +m[1], nsp: m[3] || "/", att: +m[2] || 0 };
  if (m[4]) p.id = +m[4];
  if (m[5]) p.data = JSON.parse(m[5]);
  const t = p.type;
  const ok = t === 0 || t === 4 ? p.data === undefined || (isObj(p.data) && !Array.isArray(p.data)) : t === 1 ? p.data === undefined : Array.isArray(p.data) && (t === 3 || t === 6 || p.data.length > 0);
  if (!ok) throw new Error("parse error");
  return p;
}

export class Manager extends Emitter {
  constructor(uri, o = {}) {
    super();
    this.uri = uri;
    this.o = o = { path: "/socket.io", reconnection: true, reconnectionAttempts: Infinity, reconnectionDelay: 1000, reconnectionDelayMax: 5000, timeout: 20000, ...o };
    this.nsps = {};
    this.subs = {};
    this.attempts = 0;
    this.state = "closed";
    const on = (w, e, f) => w?.addEventListener?.(e, f);
    on(G, "online", () => this.rt && (clearTimeout(this.rt), (this.rt = 0), this.open("network-online")));
    on(G.document, "visibilitychange", () => G.document.hidden || this.engine?.ping());
    if (o.autoConnect !== false) this.open();
  }
  open(why) {
    if (this.state !== "closed") return;
    this.skip = 0;
    this.state = "opening";
    this.pend = null;
    const e = (this.engine = new (this.o.Engine || Engine)(this.uri, { ...this.o, why }));
    e.on("open", () => {
      clearTimeout(this.ot);
      this.state = "open";
      if (this.attempts) this.fire("reconnect", this.attempts);
      this.attempts = 0;
      this.fire("open");
      for (const n in this.nsps) this.nsps[n].active && this.nsps[n].onopen();
    });
    e.on("message", (d) => this.ondata(d));
    e.on("close", (r, info, left) => e === this.engine && this.onclose(r, info, left));
    e.on("transport", (ev) => {
      this.fire("transport", ev);
      for (const n in this.nsps) this.nsps[n].fire("transport", ev);
    });
    if (this.o.timeout !== false)
      this.ot = setTimeout(() => {
        if (this.state === "opening") e._close("timeout");
      }, this.o.timeout);
    this.fire("open_attempt");
    return this;
  }
  connect(fn) {
    return this.open(), this;
  }
  ondata(d) {
    try {
      if (this.pend) {
        if (typeof d === "string") throw 0;
        const p = this.pend;
        p.bufs.push(d);
        if (p.bufs.length < p.att) return;
        this.pend = null;
        p.data = paste(p.data, p.bufs);
        return this.nsps[p.nsp]?.onpacket(p);
      }
      if (typeof d !== "string") throw 0;
      const p = decode(d);
      if (p.att) return (p.bufs = []), (this.pend = p);
      this.nsps[p.nsp]?.onpacket(p);
    } catch {
      this.engine._close("parse error");
    }
  }
  packet(p) {
    for (const x of encode(p)) this.engine.send(x);
  }
  onclose(reason, info = {}, left = []) {
    clearTimeout(this.ot);
    this.state = "closed";
    // Events the dead session never sent go out first on the next one (acks and the rest
    // belong to the old session). A head is followed by its binary attachments.
    for (let i = 0; i < left.length; i++) {
      let p;
      try {
        p = decode(left[i]);
      } catch {
        continue;
      }
      const raw = left.slice(i, i + 1 + p.att);
      i += p.att;
      // A socket with the outbox extension sends its unconfirmed emits again from its outbox
      // (an emit's last argument is its number: never handed to a transport, so surely not
      // taken; an ack answer's arguments are no such number).
      const s = this.nsps[p.nsp];
      if ((p.type === 2 || p.type === 5) && s) s.obOn ? s.unsent(p.data[p.data.length - 1]) : s.sendBuffer.push({ raw });
    }
    for (const n in this.nsps) {
      const s = this.nsps[n];
      if (s.connected) s.onclose(reason);
      // Not connected yet (the handshake or the CONNECT unanswered): that attempt failed.
      else if (s.active && !this.skip) s.fire("connect_error", Object.assign(new Error(reason === "timeout" ? "timeout" : this.o.transports?.[0] === "websocket" ? "websocket error" : "xhr poll error"), { description: info.status, type: "TransportError" }));
    }
    this.fire("close", reason);
    if (this.skip || !this.o.reconnection) return;
    if (this.attempts >= this.o.reconnectionAttempts) return this.fire("reconnect_failed");
    // Full jitter: a random delay up to the exponential bound; a server's Retry-After wins.
    let d = Math.random() * Math.min(this.o.reconnectionDelayMax, this.o.reconnectionDelay * 2 ** this.attempts);
    if (info.retry > 0) d = Math.max(d, info.retry * 1000);
    this.attempts++;
    this.rt = setTimeout(() => {
      this.rt = 0;
      this.fire("reconnect_attempt", this.attempts);
      this.open("reconnect");
    }, G.navigator?.onLine === false ? Math.max(d, 30000) : d);
  }
  socket(nsp, o) {
    return this.nsps[nsp] || new Socket(this, nsp, o);
  }
  close() {
    this.skip = 1;
    clearTimeout(this.rt);
    this.rt = 0;
    if (this.engine && this.state !== "closed") this.engine.close();
    else this.state = "closed";
  }
  disconnect() {
    this.close();
  }
}

export class Socket extends Emitter {
  constructor(io, nsp, o = {}) {
    super();
    this.io = io;
    this.nsp = nsp;
    this.auth = o.auth;
    this.max = o.maxBuffer ?? 1000; // emits kept while disconnected, and the outbox's window
    // The outbox extension (docs/protocol.md 13): emits numbered and kept until the server
    // confirms it took them, sent again after a lost session; on only if the server offers it.
    this.ob = o.outbox !== false;
    this.box = []; // {n, p}: emits not confirmed yet, in order
    this.seq = 0; // the last number given
    this.obOn = undefined; // the last connection had the extension (undefined: none yet)
    this.ids = 0;
    this.acks = {};
    this.sendBuffer = [];
    this.recvBuffer = [];
    this.any = [];
    this.flags = {};
    this.connected = false;
    this.recovered = false;
    if (io.o.autoConnect !== false) this.connect();
  }
  get disconnected() {
    return !this.connected;
  }
  get active() {
    return this.io.nsps[this.nsp] === this;
  }
  connect() {
    if (this.connected) return this;
    this.io.nsps[this.nsp] = this;
    if (this.io.state === "open") this.onopen();
    else this.io.open();
    return this;
  }
  open() {
    return this.connect();
  }
  onopen() {
    const send = (a) => {
      let d = this._pid ? { pid: this._pid, offset: this._off, ...a } : a;
      // Ask for the outbox, with the ack ids still awaited (answers lost with a session).
      if (this.ob) d = { ...d, ferryOutbox: { acks: Object.keys(this.acks).slice(-1000).map(Number), window: this.max } };
      this.packet({ type: 0, data: d });
    };
    typeof this.auth === "function" ? this.auth(send) : send(this.auth);
  }
  packet(p) {
    p.nsp = this.nsp;
    if (p.raw) for (const x of p.raw) this.io.engine.send(x);
    else this.io.packet(p);
  }
  send(...a) {
    return this.emit("message", ...a);
  }
  emit(ev, ...args) {
    if (RESERVED.has(ev)) throw new Error(`"${ev}" is a reserved event name`);
    const f = this.flags;
    this.flags = {};
    const p = { type: 2, data: [ev, ...args] };
    // Into the outbox (unless the last server did not offer it: then the sendBuffer as before):
    // past its window the emit is refused, never an older one dropped (docs/reliability.md).
    const boxed = this.ob && !f.volatile && this.obOn !== false;
    if (boxed && this.box.length >= this.max) {
      const cb = typeof args[args.length - 1] === "function" ? args[args.length - 1] : null;
      const err = new Error("outbox full");
      if (cb && (f.timeout ?? this.io.o.ackTimeout) !== undefined) setTimeout(() => cb.call(this, err), 0);
      this.fire("outbox_full", { event: ev, size: this.box.length });
      return this;
    }
    if (typeof args[args.length - 1] === "function") {
      const id = (p.id = this.ids++);
      const cb = p.data.pop();
      const ms = f.timeout ?? this.io.o.ackTimeout;
      if (ms === undefined) this.acks[id] = cb;
      else {
        const t = setTimeout(() => {
          delete this.acks[id];
          this.sendBuffer = this.sendBuffer.filter((q) => q !== p);
          cb.call(this, new Error("operation has timed out"));
        }, ms);
        this.acks[id] = (...a) => (clearTimeout(t), cb.call(this, null, ...a));
      }
    }
    if (boxed) {
      const e = { n: ++this.seq, p, sent: this.connected };
      this.box.push(e);
      if (this.connected) this.packet(this.num(p, e.n));
    } else if (this.connected) this.packet(this.obOn ? this.num(p, 0) : p);
    else if (!f.volatile) {
      this.sendBuffer.push(p);
      if (this.sendBuffer.length > this.max) this.sendBuffer.shift();
    }
    return this;
  }
  // The packet with its outbox number as last argument (0: not numbered).
  num(p, n) {
    return { ...p, data: [...p.data, n] };
  }
  // Emit n never left (the engine's queue of a dead session).
  unsent(n) {
    const e = this.box.find((x) => x.n === n);
    if (e) e.sent = false;
  }
  // The server took every emit up to n: forget them.
  trim(n) {
    let i = 0;
    while (i < this.box.length && this.box[i].n <= n) i++;
    this.box.splice(0, i);
  }
  emitWithAck(ev, ...args) {
    const e = this.flags.timeout !== undefined || this.io.o.ackTimeout !== undefined;
    return new Promise((res, rej) => this.emit(ev, ...args, e ? (err, r) => (err ? rej(err) : res(r)) : res));
  }
  timeout(ms) {
    this.flags.timeout = ms;
    return this;
  }
  get volatile() {
    this.flags.volatile = true;
    return this;
  }
  onAny(f) {
    this.any.push(f);
    return this;
  }
  prependAny(f) {
    this.any.unshift(f);
    return this;
  }
  offAny(f) {
    this.any = f ? this.any.filter((g) => g !== f) : [];
    return this;
  }
  listenersAny() {
    return this.any.slice();
  }
  onpacket(p) {
    switch (p.type) {
      case 0:
        if (p.data?.sid) return this.onconnect(p.data.sid, p.data.pid, p.data.notRecovered, p.data.ferryOutbox);
        // An outbox confirmation (docs/protocol.md 13).
        if (this.obOn && typeof p.data?.ferryOutbox === "number") return this.trim(p.data.ferryOutbox);
        return this.fire("connect_error", new Error("It seems you are trying to reach a Socket.IO server in v2.x with a v3.x client, but they are not compatible"));
      case 2:
      case 5: {
        const a = p.data;
        if (p.id != null) {
          let done = 0;
          a.push((...r) => done++ || this.packet({ type: 3, id: p.id, data: r }));
        }
        return this.connected ? this.event(a) : this.recvBuffer.push(a);
      }
      case 3:
      case 6: {
        const f = this.acks[p.id];
        if (f) delete this.acks[p.id], f.apply(this, p.data);
        return;
      }
      case 1:
        this.destroy();
        return this.onclose("io server disconnect");
      case 4:
        this.destroy();
        return this.fire("connect_error", Object.assign(new Error(p.data?.message), { data: p.data?.data }));
    }
  }
  event(a) {
    for (const f of this.any.slice()) f.apply(this, a);
    this.fire(...a);
    if (this._pid && typeof a[a.length - 1] === "string") this._off = a[a.length - 1];
  }
  onconnect(id, pid, why, taken) {
    this.id = id;
    const tried = !!this._pid;
    this.recovered = !!pid && this._pid === pid;
    this._pid = pid;
    // A reconnection that asked to recover and did not: the app must resync (docs/client.md).
    // A new socket: the server knows nothing of the lost one's emits. Those it may have taken
    // (sent on a transport, unconfirmed) are dropped (at most once, counted for the app), the
    // emits that never left go, numbered afresh.
    let unconfirmed = 0;
    if (tried && !this.recovered && this.ob) {
      unconfirmed = this.box.filter((e) => e.sent).length;
      this.box = this.box.filter((e) => !e.sent);
      this.seq = 0;
      for (const e of this.box) e.n = ++this.seq;
    }
    if (tried && !this.recovered) this.fire("recovery_failed", { reason: typeof why === "string" ? why : pid ? "unknown" : "off", ...(unconfirmed && { unconfirmed }) });
    this.connected = true;
    this.obOn = this.ob && typeof taken === "number";
    for (const a of this.recvBuffer.splice(0)) this.event(a);
    // Buffered without the extension: not numbered (a raw event gets its 0 before its "]").
    for (const p of this.sendBuffer.splice(0)) this.packet(!this.obOn ? p : p.raw ? { raw: [p.raw[0].slice(0, -1) + ",0]", ...p.raw.slice(1)] } : this.num(p, 0));
    if (this.obOn) {
      // The same socket: what the server took is done, the rest goes again.
      this.trim(taken);
      for (const e of this.box) (e.sent = true), this.packet(this.num(e.p, e.n));
    } else for (const e of this.box.splice(0)) this.packet(e.p); // a server without it
    this.fire("connect");
  }
  onclose(reason) {
    if (!this.connected) return;
    this.connected = false;
    delete this.id;
    this.fire("disconnect", reason);
  }
  destroy() {
    if (this.active) delete this.io.nsps[this.nsp];
    if (!Object.keys(this.io.nsps).length) this.io.close();
  }
  disconnect() {
    if (this.connected) this.packet({ type: 1 });
    const was = this.connected;
    // Every emit in the outbox went out on this session, ahead of the DISCONNECT.
    if (was) (this.box = []), (this.seq = 0);
    this.destroy();
    if (was) this.onclose("io client disconnect");
    return this;
  }
  close() {
    return this.disconnect();
  }
}
