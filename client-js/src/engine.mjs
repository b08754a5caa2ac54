// The Engine.IO v4 client: one session over polling, short-polling, SSE (fetch streaming) or
// WebSocket; probe upgrades; ferry's extensions (docs/protocol.md) when the server lists them:
// client pings for health, attach to switch transports without ending the session (messages
// numbered and resent), and reports of every decision. See docs/client.md for the ladder.
import { Emitter } from "./emitter.mjs";

const SEP = "\x1e";
// Better transports rank higher.
export const RANK = { "short-polling": 0, polling: 1, sse: 2, websocket: 3 };
const G = globalThis;
const now = () => Date.now();
const KEY = "ferry:transport:";
const CUTS = {};

const u8 = (d) => (d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
export const b64e = (d) => {
  const u = u8(d);
  let s = "";
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
  return btoa(s);
};
export const b64d = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0)).buffer;
const isText = (d) => d == null || typeof d === "string";
// "<type><data>" or "b<base64>" (the polling form) to {type, data}.
export const decodeText = (s) => (s[0] === "b" ? { type: 4, data: b64d(s.slice(1)) } : { type: +s[0], data: s.slice(1) });
export const encodeText = (p) => (isText(p.data) ? p.type + (p.data || "") : "b" + b64e(p.data));

class Transport {
  constructor(e, name, q) {
    this.e = e;
    this.name = name;
    this.q = q; // extra query: sid, rx
  }
  url(ws, x) {
    return this.e.url(this.name, { ...this.q, ...x }, ws);
  }
  // Text to packets, or the session ends with "parse error" (a body no server would send).
  dec(s) {
    try {
      return decodeText(s);
    } catch {
      this.e._close("parse error");
    }
  }
  // An app handler that throws is reported without stopping the transport's loop.
  pkt(p) {
    if (!this.dead && p)
      try {
        this.e._packet(this, p);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
  }
  opened() {
    // The attach request carried rx; later requests of this transport do not.
    if (!this.dead && !this.up) (this.up = 1), (this.q = {}), this.e._topen(this);
  }
  fail(reason, info = {}) {
    if (this.dead) return;
    this.stop();
    this.e._tdown(this, reason, info);
  }
  detach() {
    this.stop();
  }
}

// Long-polling, and short-polling (GETs answered at once, one every shortPollInterval).
class Polling extends Transport {
  open() {
    this.poll();
  }
  // One request, its body read within ms (a proxy may stall a response before its last byte):
  // resolves {status, body, headers}, or status 0 on a network error or the time limit.
  async fetch(url, o = {}, ms) {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), ms || this.e.hs?.pingInterval + 1e4 || 3e4);
    (this.acs ||= new Set()).add(ac);
    try {
      const r = await this.e.fetch(url, { cache: "no-store", credentials: this.e.o.withCredentials ? "include" : "same-origin", signal: ac.signal, ...o });
      return { status: r.status, headers: r.headers, body: await r.text() };
    } catch {
      return { status: 0 };
    } finally {
      clearTimeout(t);
      this.acs.delete(ac);
    }
  }
  async poll() {
    while (!this.dead && !this.paused) {
      const t0 = now();
      this.getting = 1;
      // got: what this client has (a browser may retry a GET whose answer was lost: docs/protocol.md 5.3).
      const r = await this.fetch(this.url(0, this.e.n("got", this.e.rx)), {}, this.name[0] === "s" || !this.up ? this.e.o.requestTimeout : 0);
      const body = r.body;
      this.getting = 0;
      if (this.dead) return;
      const held = now() - t0;
      if (r.status !== 200) return this.fail(this.name === "polling" ? "poll-cut" : "poll-error", { status: r.status, held, body, retry: r.headers?.get("retry-after") });
      this.opened();
      this.e._held(this, held);
      for (const s of body.split(SEP)) this.pkt(this.dec(s));
      this._idle();
      // Short-polling waits between GETs; so does long-polling answered by a bare noop: the
      // server is upgrading and answers every GET at once until the upgrade ends (also after
      // this client gave up a probe whose close has not reached the server yet).
      const ms = this.name[0] === "s" ? (body.length >= (this.e.hs?.maxPayload || 1e6) * 0.9 ? 0 : this.e.hs?.shortPollInterval || 1000) : body === "6" ? 250 : -1;
      if (ms >= 0 && !this.dead && !this.paused) await new Promise((f) => ((this.nap = setTimeout(f, ms)), (this.wake = f)));
    }
  }
  send(ps) {
    this.busy = 1;
    // A server that asks for it (docs/protocol.md section 12) gets the session's POST token.
    const headers = { "content-type": "text/plain;charset=UTF-8" };
    if (this.e.hs?.postToken) headers["x-ferry-post-token"] = this.e.hs.postToken;
    // tx: the messages before this body's, so that a retried POST is not taken twice (5.3).
    const m = ps.find((p) => p.n);
    this.fetch(this.url(0, this.e.n("tx", m ? m.n - 1 : this.e.tx)), { method: "POST", body: ps.map(encodeText).join(SEP), headers }, this.e.o.requestTimeout).then((r) =>
      r.status === 200 ? ((this.busy = 0), this._idle(), this.e._drain(this)) : this.fail("post-error", { status: r.status }),
    );
  }
  // Stop polling (an upgrade): cb once the held GET and the POST are done.
  pause(cb) {
    this.paused = 1;
    this.onIdle = cb;
    clearTimeout(this.nap);
    this.wake?.();
    this._idle();
  }
  _idle() {
    if (this.onIdle && !this.getting && !this.busy) this.onIdle(), (this.onIdle = null);
  }
  stop() {
    this.dead = 1;
    clearTimeout(this.nap);
    this.acs?.forEach((a) => a.abort());
  }
}

// Server-Sent Events read with fetch streaming (so a buffered stream is seen, and Node works);
// upstream is POST as in polling.
class SSE extends Polling {
  open() {
    this.stream();
  }
  poll() {} // the stream goes on while paused
  async stream() {
    const h = { accept: "text/event-stream" };
    if (this.last != null) h["last-event-id"] = this.last;
    let r;
    try {
      r = await this.e.fetch(this.url(), { cache: "no-store", credentials: this.e.o.withCredentials ? "include" : "same-origin", headers: h, signal: (this.sac = new AbortController()).signal });
    } catch {
      r = { status: 0 };
    }
    if (this.dead) return;
    if (r.status !== 200) return this.fail("sse-refused", { status: r.status });
    this.opened();
    const rd = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "",
      data = null,
      id = null;
    try {
      for (;;) {
        const { value, done } = await rd.read();
        if (done || this.dead) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          let l = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (l.endsWith("\r")) l = l.slice(0, -1);
          this.e._alive(this);
          if (l === "") {
            if (data != null) {
              if (id != null) this.last = id;
              let x = data;
              try {
                // Its own decoder: the stream's holds the state of a chunk cut mid-character.
                if (x[0] === "x") x = new TextDecoder().decode(b64d(x.slice(1)));
              } catch {
                return this.e._close("parse error");
              }
              this.pkt(this.dec(x));
            }
            data = id = null;
          } else if (l.startsWith("data:")) data = (data == null ? "" : data + "\n") + l.slice(l[5] === " " ? 6 : 5);
          else if (l.startsWith("id:")) id = l.slice(l[3] === " " ? 4 : 3);
        }
      }
    } catch {}
    // A recycled or broken stream: resume after the last id (docs/protocol.md 3.4).
    if (!this.dead) this.e._streamEnd(this);
  }
  stop() {
    super.stop();
    this.sac?.abort();
  }
}

class WS extends Transport {
  open() {
    const W = this.e.o.WebSocket || G.WebSocket;
    let ws;
    try {
      ws = this.ws = new W(this.url(1));
    } catch {
      return setTimeout(() => this.fail("ws-refused"), 0);
    }
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.opened();
    ws.onmessage = (m) => {
      this.e._alive(this);
      this.pkt(typeof m.data === "string" ? this.dec(m.data) : { type: 4, data: m.data });
    };
    ws.onclose = () => this.fail(this.up ? "ws-closed" : "ws-refused");
    ws.onerror = () => {};
  }
  send(ps) {
    for (const p of ps) this.ws.send(isText(p.data) ? p.type + (p.data || "") : p.data);
    setTimeout(() => this.e._drain(this), 0);
  }
  pause(cb) {
    cb();
  }
  stop() {
    this.detach();
    try {
      this.ws?.close();
    } catch {}
  }
  // Leave without a close frame: on an extension session a close frame ends the session
  // (docs/protocol.md 6.4), so an attach leaves the old WebSocket to the server to close.
  detach() {
    this.dead = 1;
    const ws = this.ws;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = null;
  }
}

const T = { polling: Polling, "short-polling": Polling, sse: SSE, websocket: WS };

// Options: path, query, transports (allowed, in the order tried at the start), upgrade, ext,
// WebSocket (a constructor, e.g. npm ws in Node), fetch, storage, withCredentials, remember
// (ms a winner is remembered; 0: never), rememberTimeout, probeTimeout, pingEvery, muteAfter,
// reprobe (first re-probe delay), cutsToShort.
export class Engine extends Emitter {
  constructor(uri, o = {}) {
    super();
    const d = {
      path: "/engine.io",
      transports: ["polling", "websocket", "sse", "short-polling"],
      upgrade: true,
      ext: true,
      remember: 864e5,
      rememberTimeout: 3000,
      probeTimeout: 3000,
      pingEvery: 2000,
      muteAfter: 4000,
      reprobe: 5000,
      cutsToShort: 2,
      requestTimeout: 1e4,
    };
    for (const k in o) if (o[k] !== undefined) d[k] = o[k];
    this.o = o = d;
    const u = new URL(uri, G.location?.href);
    let p = o.path.replace(/\/$/, "") + "/";
    this.base = u.origin + p;
    this.key = KEY + this.base;
    this.fetch = o.fetch || ((...a) => G.fetch(...a));
    this.store = o.storage !== undefined ? o.storage : G.localStorage;
    this.readyState = "opening";
    this.wq = []; // packets waiting for the transport
    this.sent = []; // messages sent and not yet acknowledged by a client-ping answer (ext)
    this.tx = this.rx = this.cut = 0; // cut: SSE streams lost in a row
    this.bad = {}; // transport -> {until, n}: a failed transport is re-probed after a backoff
    this.fails = 0;
    this.pid = 0;
    this.open();
  }

  // A query parameter of the "resume" extension, only on a session that has it.
  n(k, v) {
    return this.ext?.includes("resume") ? { [k]: v } : {};
  }
  url(name, q = {}, ws) {
    const s = new URLSearchParams({ ...this.o.query, EIO: 4, transport: name });
    if (this.sid) s.set("sid", this.sid);
    else if (this.o.ext) s.set("ferry", 1);
    for (const k in q) s.set(k, q[k]);
    return (ws ? this.base.replace(/^http/, "ws") : this.base) + "?" + s;
  }

  // ------------------------------------------------------------ the first transport
  open() {
    const a = this.o.transports;
    const m = this.recall();
    this.mem = a.length > 1 && m && a.includes(m.t) ? m : null;
    this.t0 = now();
    // Held polls were cut again and again (this page, any session): short-polling first.
    if (!this.mem && CUTS[this.key] >= this.o.cutsToShort && a.includes("short-polling")) return (this.mem = { t: "short-polling" }), this.go("short-polling", "poll-cut");
    this.go(this.mem ? m.t : a[0], this.mem ? m.why : this.o.why || (a.length === 1 ? "forced" : "start"));
  }
  go(name, why) {
    this.why = why;
    const t = (this.transport = this.mk(name));
    // A remembered transport that does not open in time: forget it, start over on polling.
    if (this.mem && name !== "polling") this.fb = setTimeout(() => this.fallback(t.up ? (name === "sse" ? "sse-buffered" : "ws-mute") : "probe-timeout"), this.o.rememberTimeout);
    t.open();
  }
  fallback(reason) {
    clearTimeout(this.fb);
    this.remember();
    this.mem = null;
    this.transport.stop();
    this.go(this.o.transports.includes("polling") ? "polling" : this.o.transports[0], reason);
  }
  mk(name, q) {
    return new T[name](this, name, q);
  }

  recall() {
    try {
      const m = JSON.parse(this.store?.getItem(this.key));
      return m && m.exp > now() ? m : null;
    } catch {}
  }
  // No transport: forget.
  remember(t, why) {
    try {
      t ? this.o.remember && this.store?.setItem(this.key, JSON.stringify({ t, why, exp: now() + this.o.remember })) : this.store?.removeItem(this.key);
    } catch {}
  }

  // ------------------------------------------------------------ packets in
  _packet(t, p) {
    if (this.readyState === "closed") return;
    if (t !== this.transport && t !== this.old) {
      if (t === this.probe && p.type === 3 && p.data === "probe") this._probed(t);
      return;
    }
    this._alive(t);
    switch (p.type) {
      case 0:
        if (this.hs) return; // one open per session
        try {
          return this._open(t, JSON.parse(p.data));
        } catch {
          return this._close("parse error");
        }
      case 1:
        return this._close("transport close");
      case 2:
        this.hb();
        return this.write({ type: 3, data: p.data });
      case 3:
        if (p.data[0] === "c") this._pong(p.data);
        return;
      case 4:
        this.rx++;
        return this.fire("message", p.data);
    }
  }

  _open(t, hs) {
    clearTimeout(this.fb);
    this.hs = hs;
    this.sid = hs.sid;
    this.ext = (this.o.ext && hs.ext) || [];
    this.readyState = "open";
    this.hb();
    this.fire("open", hs);
    this.switched("", t.name, this.why); // after a fallback: its reason
    this.flush();
    this.climb(10);
  }

  // Heartbeat: the session is lost after pingInterval + pingTimeout (+ the short-poll interval)
  // without a packet. A hidden tab's timers fire late: what counts is the time since the last
  // packet, checked again when the timer finally runs, with one grace period while hidden.
  hb() {
    const h = this.hs;
    if (!h) return;
    const lim = h.pingInterval + h.pingTimeout + (h.shortPollInterval || 0);
    clearTimeout(this.hbt);
    this.hbt = setTimeout(() => {
      const idle = now() - this.last;
      if (idle < lim) return this.hb();
      if (G.document?.hidden && !this.grace) return (this.grace = 1), this.ping(), this.hb();
      this._close("ping timeout");
    }, lim);
  }
  _alive(t) {
    if (t === this.transport || t === this.old) (this.last = now()), (this.grace = 0);
  }

  // ------------------------------------------------------------ packets out
  send(data) {
    this.write({ type: 4, data });
  }
  write(p) {
    if (this.readyState === "closed") return;
    if (typeof Blob !== "undefined" && p.data instanceof Blob) {
      const b = p.data;
      p.data = null;
      p.wait = b.arrayBuffer().then((d) => ((p.data = d), (p.wait = null), this.flush()));
    }
    this.wq.push(p);
    this.flush();
  }
  flush() {
    const t = this.transport;
    if (this.readyState !== "open" || !t.up || t.busy || t.paused || this.hold || !this.wq.length) return;
    let n = 0;
    while (n < this.wq.length && !this.wq[n].wait) n++;
    if (!n) return;
    const ps = this.wq.splice(0, n);
    for (const p of ps) if (p.type === 4 && this.ext.includes("resume")) this.sent.push(((p.n = ++this.tx), p));
    t.send(ps);
  }
  _drain(t) {
    if (t === this.transport) this.flush(), this.fire("drain");
  }

  // ------------------------------------------------------------ client pings (ext "ping")
  ping() {
    if (!this.ext.includes("ping") || this.pinging || this.readyState !== "open") return;
    this.pinging = { id: ++this.pid, at: now(), t: this.transport };
    this.write({ type: 2, data: "c" + this.pid + ":" + this.rx });
  }
  _pong(d) {
    const [id, srx] = d.slice(1).split(":").map(Number);
    const p = this.pinging;
    // One answer may stand for several pings (docs/protocol.md 7): an older id is stale.
    if (!p || id < p.id) return;
    this.pinging = null;
    // The transport worked: its next failure is a first one (backoff from reprobe, the stream's strike).
    this.bad[p.t.name] = this.cut = 0;
    const ms = now() - p.at;
    this.rtt = this.rtt ? (this.rtt * 3 + ms) / 4 : ms;
    this.sent = this.sent.filter((m) => m.n > srx);
    if (this.hold) {
      // After an attach: resend every message the server has not taken, then go on.
      this.hold = 0;
      const re = this.sent.map((m) => ({ type: 4, data: m.data }));
      this.sent = [];
      this.tx = srx;
      this.wq.unshift(...re);
      this.flush();
      this.climb(0);
    }
  }
  health() {
    clearTimeout(this.ht);
    if (!this.ext.includes("ping") || this.readyState !== "open") return;
    const t = this.transport;
    const p = this.pinging;
    // An answer overdue (muteAfter + 3 RTT, + the short-poll interval): leave the transport
    // (short-polling, the bottom, is attached again: that also asks the server for everything
    // it sent since rx).
    if (p && p.t === t && now() - p.at > this.o.muteAfter + 3 * (this.rtt || 0) + (t.name === "short-polling" ? this.hs.shortPollInterval || 1000 : 0))
      return this.attach(RANK[t.name] > 1 ? "polling" : "short-polling", t.name === "websocket" ? "ws-mute" : t.name === "sse" ? "sse-mute" : "poll-mute");
    if (!p || p.t !== t) this.pinging = null, this.ping();
    this.ht = setTimeout(() => this.health(), RANK[t.name] > 1 || this.hold ? this.o.pingEvery : 4 * this.o.pingEvery);
  }

  // ------------------------------------------------------------ switching
  switched(from, to, reason, ms = now() - this.t0) {
    this.t0 = now();
    const ev = { from, to, reason, ms };
    if (this.ext.includes("report")) this.write({ type: 6, data: JSON.stringify(ev) });
    this.fire("transport", ev);
    this.health();
  }

  // Attach (ext "resume"): move the session to another transport without a probe.
  attach(name, reason) {
    clearTimeout(this.ct2);
    const old = this.transport;
    // Only to a transport the app allows (`transports`); else the same one again.
    if (!this.o.transports.includes(name)) name = old.name;
    // One attach at a time: one still opening is closed at once (a WebSocket's handshake
    // aborted, no close frame), so that it cannot open later and take the session back; the
    // transport the session was on lingers until this one is answered (docs/protocol.md 6.4).
    if (old.attaching) old.stop();
    else old.detach(), (this.lingering = old), (this.from = old.name);
    // The server abandons a probe in progress on an attach (docs/protocol.md 6.2).
    const p = this.probe;
    if (p) clearTimeout(p.timer), p.stop(), (this.probe = null), this.climb(this.o.reprobe);
    this.backoff(old.name);
    if (!this.ext.includes("resume")) return this._close("transport error");
    this.t0 = now();
    // The unsent queue goes back in front of the messages to resend after the answer.
    this.hold = 1;
    this.pinging = null;
    const t = (this.transport = this.mk(name, { rx: this.rx }));
    t.attaching = reason;
    this.remember(name, reason);
    t.open();
    // A held attach GET shows nothing until the server has something to say: after a second
    // it has surely arrived, so the client ping may follow it.
    if (name === "polling") setTimeout(() => t.opened(), 1000);
  }
  _topen(t) {
    if (t === this.probe) return t.send([{ type: 2, data: "probe" }]);
    if (t !== this.transport) return;
    this.fails = 0;
    if (t.attaching) {
      this.lingering?.stop();
      this.lingering = null;
      // Nothing upstream but a client ping until its answer (docs/protocol.md, attach); one the
      // health check wrote while the attach opened waits in the queue: this one goes.
      const q = this.wq;
      this.wq = [];
      this.hold = 0;
      this.pinging = null;
      this.ping();
      this.hold = 1;
      this.wq.push(...q);
      const r = t.attaching;
      t.attaching = 0;
      return this.switched(this.from || "", t.name, r);
    }
    this.flush();
  }
  _held(t, ms) {
    if (t === this.transport && t.name === "polling" && this.hs && ms > this.hs.pingInterval / 2) CUTS[this.key] = 0;
  }
  _streamEnd(t) {
    // A probe's stream, or the first one ended before the open packet came whole (a proxy
    // killed it mid-event): the transport failed; the session does not wait for `timeout`.
    if (t === this.probe || !this.hs) return t.fail("sse-refused");
    if (t !== this.transport || this.readyState !== "open") return t === this.old ? (this.old = null) : 0;
    t.q = {}; // a recycled stream resumes by Last-Event-ID (docs/protocol.md 3.4)
    t.stream();
  }
  _tdown(t, reason, info) {
    if (t === this.probe) return this._probeFail(t, reason);
    if (t === this.old) return (this.old = null);
    if (t !== this.transport || this.readyState === "closed") return;
    if (this.readyState === "opening") {
      clearTimeout(this.fb);
      return this.mem ? this.fallback(reason) : this._close("transport error", info);
    }
    let to = t.name === "short-polling" ? t.name : "polling";
    // SSE stays: a failed POST is not the stream's failure (POSTs are the same on polling), and
    // a stream that could not be resumed, or an SSE attach lost on the way (no status), is
    // attached again once; a second time in a row (no client-ping answer on SSE between) demotes.
    if (t.name === "sse" && (t.up || !info.status) && (reason === "post-error" || !this.cut++)) to = "sse";
    // Held polls cut again and again (counted across sessions): short-polling from now on (the
    // attach remembers it).
    if (reason === "poll-cut" && (CUTS[this.key] = (CUTS[this.key] || 0) + 1) >= this.o.cutsToShort) to = "short-polling";
    // 400: the session is gone (unknown sid, attach refused); a transport that never came up
    // three times in a row: the network is down. Either way a new session, after the backoff.
    if (info.status === 400 || !this.ext.includes("resume") || (!t.up && ++this.fails > 2)) return this._close(reason === "ws-closed" ? "transport close" : "transport error", info);
    this.hold = 1;
    this.ct2 = setTimeout(() => this.attach(to, reason), t.up ? 0 : 500 * this.fails);
  }


  // ------------------------------------------------------------ probes and promotion
  // Doubles per failure in a row (a client-ping answer on the transport starts it over: _pong).
  backoff(name) {
    const b = (this.bad[name] ||= { n: 0 });
    b.until = now() + Math.min(this.o.reprobe * 2 ** b.n++, 3e5);
  }
  // Probe, one at a time (the server holds one probe per session), the better transports in
  // order, after `ms`.
  climb(ms) {
    clearTimeout(this.ct);
    if (!this.o.upgrade || this.readyState !== "open") return;
    const cur = this.transport;
    const ups = this.ext.length ? ["websocket", "sse"] : this.hs.upgrades || [];
    const next = ups.filter((n) => this.o.transports.includes(n) && RANK[n] > RANK[cur.name] && (this.ext.length || RANK[cur.name] < 2));
    if (!next.length) return;
    const ready = next.find((n) => !(this.bad[n]?.until > now()));
    if (!ready) return (this.ct = setTimeout(() => this.climb(0), Math.min(...next.map((n) => this.bad[n].until)) - now() + 10));
    this.ct = setTimeout(() => {
      if (this.probe || this.hold || cur !== this.transport) return this.climb(1000);
      const t = (this.probe = this.mk(ready, {}));
      t.started = now();
      // Unanswered in time: the probe fails. Answered, but the current transport's pause not
      // done (a poll or POST of it hangs): promoted by an attach to the probed transport (an
      // extension session: the server resends after rx, the client what the server lacks)
      // rather than wait for that request's own timeout.
      t.timer = setTimeout(() => (t.from && this.ext.length ? this.attach(ready, "promoted") : t.fail(t.up ? (ready === "sse" ? "sse-buffered" : "ws-mute") : "probe-timeout")), this.o.probeTimeout);
      t.open();
    }, ms);
  }
  _probeFail(t, reason) {
    clearTimeout(t.timer);
    this.probe = null;
    // Lost after "3probe" while the current transport paused for it (nothing went on the probe):
    // that one goes on at once with what was queued meanwhile (a GET still out goes on polling
    // when it ends; a paused loop has ended; SSE's stream never stopped).
    const f = t.from;
    if (f) (f.paused = f.onIdle = 0), f.getting || f.poll(), this.flush();
    if (reason === "post-error") reason = "sse-refused"; // an SSE probe's POST (a WebSocket has none)
    this.backoff(t.name);
    this.fire("probe", { to: t.name, ok: false, reason });
    if (this.ext.includes("report")) this.write({ type: 6, data: JSON.stringify({ from: this.transport.name, to: this.transport.name, reason, ms: now() - t.started }) });
    if (this.recall()?.t === t.name) this.remember();
    // A mute WebSocket probe's close may never reach the server (ferry-proxy --websocket mute):
    // it holds that probe until its upgrade timeout (10 s) and refuses the SSE probe meanwhile.
    // An attach to the current transport abandons it (docs/protocol.md 6.2); SSE follows.
    reason === "ws-mute" && RANK[this.transport.name] < 2 && this.ext.includes("resume") ? this.attach(this.transport.name, reason) : this.climb(0);
  }
  _probed(t) {
    const cur = (t.from = this.transport);
    cur.pause(() => {
      if (t.dead || this.transport !== cur) return;
      clearTimeout(t.timer);
      this.probe = null;
      this.bad[t.name] = null;
      // "5" heads the queue: the probe's own POST may still be out (its answer races 3probe),
      // and two POSTs at once may reach the server in either order (messages before "5" abort
      // the upgrade and are not taken).
      this.wq.unshift({ type: 5 });
      // Packets already on their way on the old transport are still taken until it ends.
      this.old = RANK[cur.name] > 1 ? cur : null;
      if (!this.old) cur.stop();
      else setTimeout(() => this.old === cur && (cur.stop(), (this.old = null)), 1e4);
      this.transport = t;
      this.t0 = t.started;
      this.remember(t.name, "remembered");
      this.switched(cur.name, t.name, "promoted");
      this.flush();
      this.climb(0);
    });
  }

  // ------------------------------------------------------------ closing
  close() {
    if (this.readyState === "closed") return;
    const t = this.transport;
    if (this.readyState === "open" && t.up) {
      this.wq.length = 0;
      try {
        t.send([{ type: 1 }]);
      } catch {}
    }
    this._close("forced close");
  }
  _close(reason, info) {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    // Transports take nothing more; the close packet's POST gets a moment to leave.
    for (const x of [this.transport, this.probe, this.old, this.lingering]) x && ((x.dead = 1), setTimeout(() => x.stop(), x === this.transport && reason === "forced close" ? 500 : 0));
    for (const k of ["fb", "hbt", "ht", "ct", "ct2"]) clearTimeout(this[k]);
    // Messages never handed to a transport were surely not taken: the layer above may send
    // them on its next session (those in flight may or may not have been).
    this.fire("close", reason, info, this.wq.filter((p) => p.type === 4 && p.data != null).map((p) => p.data));
  }
}
