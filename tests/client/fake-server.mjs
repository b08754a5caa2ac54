// An in-memory Engine.IO v4 server with ferry's extensions (docs/protocol.md and the
// session-resume extension: client pings, attach with rx, reports), reached through a fake
// fetch and a fake WebSocket class that the client takes as options. Faults can be switched on
// and off while a session runs, like tools/ferry-proxy's: WebSocket refused or mute (both
// directions, the client's close included), SSE buffered, held polls cut after N ms; WebSocket handshakes held until
// srv.releaseWs() (wsHold: a slow upgrade); POSTs failed (postFail: 502, not taken; postLost: taken,
// answer lost); held polls not answered at a probe (pollStuck); SSE streams reset (srv.cutSse(s)) and the next
// N SSE GETs dropped (sseDrop). srv.sockets lists every WebSocket the client made
// (.closed: the client closed it; .ended: the server did). Works under node:test's mock timers.
//
//   const srv = new FakeServer({ echo: true });
//   const e = new Engine("http://x/", { fetch: srv.fetch, WebSocket: srv.WebSocket, storage: null });
//   srv.f.wsMute = true;  srv.send(srv.last, "hi");  srv.last.got  srv.reports
import { mock } from "node:test";
import assert from "node:assert/strict";

// Under node:test's mock timers: advances the fake clock 10 ms at a time, letting promises and
// I/O callbacks run between steps, until cond() holds; fails after ms (fake) saying what.
const settle = () => new Promise((r) => setImmediate(r));
export async function fakeUntil(cond, ms, what) {
  for (let t = 0; t < ms && !cond(); t += 10) {
    mock.timers.tick(10);
    await settle();
    await settle();
  }
  assert.ok(cond(), `${what} within ${ms} ms (fake time)`);
}

const enc = (p) => (typeof p.data === "string" || p.data == null ? p.type + (p.data ?? "") : "b" + Buffer.from(p.data).toString("base64"));
const dec = (s) => (s[0] === "b" ? { type: 4, data: new Uint8Array(Buffer.from(s.slice(1), "base64")).buffer } : { type: +s[0], data: s.slice(1) });
const res = (status, body = "") => ({ status, text: async () => body, headers: { get: () => null } });
const abortErr = () => Object.assign(new Error("aborted"), { name: "AbortError" });

class Stream {
  constructor(srv, signal) {
    this.srv = srv;
    this.chunks = [];
    this.wait = null;
    this.ended = false;
    this.held = [];
    signal?.addEventListener("abort", () => {
      this.end(true);
      for (const s of srv.sessions.values()) if (s.probe?.stream === this) (s.probe = null), (s.upgrading = false), srv._flush(s);
    });
  }
  push(text) {
    if (this.ended) return;
    const c = new TextEncoder().encode(text);
    if (this.srv.f.sseBuffer) return void this.held.push(c); // a buffering proxy: never released
    this.chunks.push(c);
    this.kick();
  }
  end(abort) {
    this.ended = abort ? "abort" : true;
    this.kick();
  }
  kick() {
    if (!this.wait) return;
    const w = this.wait;
    if (this.chunks.length) (this.wait = null), w.resolve({ value: this.chunks.shift(), done: false });
    else if (this.ended) (this.wait = null), this.ended === "abort" ? w.reject(abortErr()) : w.resolve({ done: true });
  }
  response() {
    return {
      status: 200,
      headers: { get: () => "text/event-stream" },
      body: { getReader: () => ({ read: () => new Promise((resolve, reject) => ((this.wait = { resolve, reject }), this.kick())) }) },
    };
  }
}

export class FakeServer {
  constructor(o = {}) {
    this.o = { ext: true, echo: true, pingInterval: 25000, pingTimeout: 20000, spi: 1000, transports: ["polling", "websocket", "sse", "short-polling"], ...o };
    this.f = { wsRefuse: false, wsMute: false, sseBuffer: false, pollCutMs: 0, sseRefuse: false, wsHold: false, postFail: 0, postLost: 0, pollStuck: false, sseDrop: 0 };
    this.sessions = new Map();
    this.sockets = [];
    this.heldWs = [];
    this.reports = [];
    this.requests = [];
    this.n = 0;
    this.fetch = (url, init) => this._fetch(url, init);
    const srv = this;
    this.WebSocket = class FakeWS {
      constructor(url) {
        this.url = url;
        srv.sockets.push(this);
        // A handshake the client aborted (close() before open) never reaches the server.
        if (srv.f.wsHold) srv.heldWs.push(() => this.closed || srv._wsOpen(this, url));
        else srv._wsOpen(this, url);
      }
      send(d) {
        srv._wsIn(this, d);
      }
      close() {
        this.closed = true;
        const s = this.s;
        // Mute: the close frame never reaches the server, which keeps the probe (ferry's until
        // its upgrade timeout; this one until an attach abandons it).
        if (s?.probe?.ws === this && !srv.f.wsMute) (s.probe = null), (s.upgrading = false), srv._flush(s);
      }
    };
  }
  // Lets the held WebSocket handshakes through, the newest first when reversed.
  releaseWs(reversed) {
    const h = this.heldWs.splice(0);
    for (const go of reversed ? h.reverse() : h) go();
  }
  get last() {
    return [...this.sessions.values()].pop();
  }
  // Resets the session's SSE stream (a proxy cutting it: not a clean end).
  cutSse(s) {
    const st = s.chan?.stream;
    if (st) (s.chan = null), st.end(true);
  }
  send(s, data) {
    this._push(s, { type: 4, data });
  }
  close() {
    for (const s of this.sessions.values()) clearTimeout(s.pt);
  }

  // ------------------------------------------------------------ sessions
  _new(q, kind) {
    const ext = this.o.ext && (q.ferry === "1" || kind === "sse" || kind === "short-polling");
    const s = { sid: "s" + ++this.n, transport: kind, chan: null, out: [], replay: [], tx: 0, rx: 0, got: [], ext, probe: null, upgrading: false, attaches: [], open: true };
    this.sessions.set(s.sid, s);
    const hs = { sid: s.sid, upgrades: kind.endsWith("polling") ? this.o.transports.filter((t) => t === "websocket" || (ext && t === "sse")) : [], pingInterval: this.o.pingInterval, pingTimeout: this.o.pingTimeout, maxPayload: 1e6 };
    if (ext) Object.assign(hs, { shortPollInterval: this.o.spi, ext: ["resume", "ping", "report"] });
    s.out.push({ type: 0, data: JSON.stringify(hs) });
    this._pings(s);
    return s;
  }
  _pings(s) {
    clearTimeout(s.pt);
    s.pt = setTimeout(() => s.open && (this._push(s, { type: 2 }), this._pings(s)), this.o.pingInterval);
  }
  _push(s, p) {
    if (!s.open) return;
    if (p.type === 4 && s.ext) s.replay.push({ n: ++s.tx, p });
    else if (p.type === 4) s.tx++;
    s.out.push(p);
    this._flush(s);
  }
  _flush(s) {
    const c = s.chan;
    if (!c || s.upgrading || !s.out.length) return;
    if (c.kind === "polling" && c.held) {
      const h = c.held;
      c.held = null;
      h(res(200, s.out.splice(0).map(enc).join("\x1e")));
    } else if (c.kind === "websocket") {
      for (const p of s.out.splice(0)) if (!this.f.wsMute) queueMicrotask(() => c.ws.onmessage?.({ data: typeof p.data === "string" || p.data == null ? enc(p) : p.data }));
    } else if (c.kind === "sse") {
      for (const p of s.out.splice(0)) c.stream.push(`id: ${++c.id}\ndata: ${enc(p)}\n\n`);
    }
  }
  _endChan(s) {
    const c = s.chan;
    if (!c) return;
    if (c.held) c.held(res(200, "6")), (c.held = null);
    if (c.ws) (c.ws.ended = true), queueMicrotask(() => c.ws.onclose?.({ code: 1000 }));
    if (c.stream) c.stream.end();
    s.chan = null;
  }
  _closeSession(s) {
    if (!s.open) return;
    s.open = false;
    clearTimeout(s.pt);
    if (s.chan?.held) s.chan.held(res(200, "1")), (s.chan.held = null);
    this._endChan(s);
  }
  // Attach (session-resume extension): move the session to this transport, resend > rx.
  _attach(s, kind, rx, chan) {
    if (!s.ext || !(rx <= s.tx) || (s.replay.length && s.replay[0].n > rx + 1)) {
      this._closeSession(s);
      return false;
    }
    if (s.probe) s.probe = null;
    s.upgrading = false;
    this._endChan(s);
    s.replay = s.replay.filter((m) => m.n > rx);
    s.out = [...s.replay.map((m) => m.p), ...s.out.filter((p) => p.type !== 4)];
    s.transport = kind;
    s.chan = chan;
    s.attaches.push({ kind, rx });
    return true;
  }

  // ------------------------------------------------------------ packets from the client
  _in(s, p, via) {
    if (!s.open) return;
    if (s.probe && via === s.probe.kind && via !== s.transport) {
      if (p.type === 2 && p.data === "probe") {
        s.upgrading = true;
        if (s.chan?.held && !this.f.pollStuck) s.chan.held(res(200, "6")), (s.chan.held = null);
        if (via === "websocket") queueMicrotask(() => this.f.wsMute || s.probe?.ws.onmessage?.({ data: "3probe" }));
        else s.probe.stream.push("data: 3probe\n\n");
      } else if (p.type === 5 && s.upgrading) {
        s.upgrading = false;
        s.chan = s.probe;
        s.transport = via;
        s.probe = null;
        this._flush(s);
      } else s.probe = null;
      return;
    }
    if (p.type === 2 && p.data[0] === "c") {
      const m = /^c(\d{1,10}):(\d+)$/.exec(p.data);
      if (!m) return this._closeSession(s);
      s.replay = s.replay.filter((x) => x.n > +m[2]);
      this._push(s, { type: 3, data: `c${m[1]}:${s.rx}` });
    } else if (p.type === 4) {
      s.rx++;
      s.got.push(p.data);
      if (this.o.sio) this._sio(s, p.data);
      else if (this.o.echo) this._push(s, { type: 4, data: typeof p.data === "string" ? "echo:" + p.data : p.data });
    } else if (p.type === 6 && p.data) this.reports.push(JSON.parse(p.data));
    else if (p.type === 1) this._closeSession(s);
  }

  // A minimal Socket.IO server on "/": CONNECT answered, events with an ack id acked with their
  // arguments, events echoed as "echo" (text packets only), "disconnect-me" answered with a
  // DISCONNECT.
  _sio(s, d) {
    if (typeof d !== "string") return;
    const m = /^(\d)(\d*)(.*)$/.exec(d);
    if (m[1] === "0") return this._push(s, { type: 4, data: `0{"sid":"sock-${s.sid}"}` });
    if (m[1] !== "2") return;
    const args = JSON.parse(m[3]);
    if (args[0] === "disconnect-me") return this._push(s, { type: 4, data: "1" });
    if (m[2]) this._push(s, { type: 4, data: "3" + m[2] + JSON.stringify(args.slice(1)) });
    else this._push(s, { type: 4, data: "2" + JSON.stringify(["echo", ...args]) });
  }

  // ------------------------------------------------------------ HTTP
  async _fetch(url, init = {}) {
    const u = new URL(url);
    const q = Object.fromEntries(u.searchParams);
    const method = init.method || "GET";
    this.requests.push(`${method} ${q.transport}${q.rx !== undefined ? " rx=" + q.rx : ""}`);
    if (init.signal?.aborted) throw abortErr();
    if (this.f.down) throw new TypeError("fetch failed");
    if (!this.o.transports.includes(q.transport)) return res(400, '{"code":0,"message":"Transport unknown"}');
    const s = q.sid && this.sessions.get(q.sid);
    if (q.sid && (!s || !s.open)) return res(400, '{"code":1,"message":"Session ID unknown"}');
    if (method === "POST") {
      if (q.transport !== s.transport && q.transport !== s.probe?.kind) return res(400, '{"code":3,"message":"Bad request"}');
      // postFail: the next N POSTs answered 502 by a proxy, not taken; postLost: taken, answer lost.
      if (this.f.postFail && this.f.postFail--) return res(502, "proxy error");
      for (const x of init.body.split("\x1e")) this._in(s, dec(x), q.transport);
      if (this.f.postLost && this.f.postLost--) throw new TypeError("fetch failed");
      return res(200, "ok");
    }
    if (q.transport === "sse") {
      if (this.f.sseRefuse) return res(403, "no");
      if (this.f.sseDrop && this.f.sseDrop--) throw new TypeError("fetch failed");
      const stream = new Stream(this, init.signal);
      const chan = { kind: "sse", stream, id: 0 };
      if (!s) {
        const n = this._new(q, "sse");
        n.chan = chan;
        this._flush(n);
      } else if (q.rx !== undefined) {
        if (!this._attach(s, "sse", +q.rx, chan)) return res(400, '{"code":3,"message":"Bad request"}');
        this._flush(s);
      } else if (s.ext && s.transport !== "sse" && !s.probe) s.probe = chan;
      else return res(400, '{"code":3,"message":"Bad request"}');
      return stream.response();
    }
    // polling and short-polling
    if (!s) return res(200, this._new(q, q.transport).out.splice(0).map(enc).join("\x1e"));
    if (q.rx !== undefined) {
      if (!this._attach(s, q.transport, +q.rx, { kind: "polling" })) return res(400, '{"code":3,"message":"Bad request"}');
      if (q.transport === "short-polling") s.chan = null;
      // An attach GET is answered at once (noop when nothing is queued) unless holdAttach.
      else if (!this.o.holdAttach) return res(200, s.out.length ? s.out.splice(0).map(enc).join("\x1e") : "6");
    } else if (s.transport !== q.transport) return res(400, '{"code":3,"message":"Bad request"}');
    if (s.upgrading) return res(200, "6");
    if (q.transport === "short-polling" || s.out.length) return res(200, s.out.length ? s.out.splice(0).map(enc).join("\x1e") : "6");
    return new Promise((resolve, reject) => {
      const c = s.chan?.kind === "polling" ? s.chan : (s.chan = { kind: "polling" });
      let cut;
      c.held = (r) => (clearTimeout(cut), resolve(r));
      init.signal?.addEventListener("abort", () => (c.held = null, reject(abortErr())));
      if (this.f.pollCutMs)
        cut = setTimeout(() => {
          if (c.held) (c.held = null), resolve(res(504, "ferry-proxy: response took too long\n"));
        }, this.f.pollCutMs);
    });
  }

  // ------------------------------------------------------------ WebSocket
  _wsOpen(ws, url) {
    const q = Object.fromEntries(new URL(url).searchParams);
    this.requests.push(`WS${q.rx !== undefined ? " rx=" + q.rx : ""}`);
    if (this.f.down || this.f.wsRefuse || !this.o.transports.includes("websocket")) return queueMicrotask(() => ws.onclose?.({ code: 1006 }));
    const s = q.sid && this.sessions.get(q.sid);
    queueMicrotask(() => {
      if (q.sid && (!s || !s.open)) return ws.onclose?.({ code: 1006 });
      const chan = { kind: "websocket", ws };
      ws.s = s;
      if (!s) {
        const n = this._new(q, "websocket");
        ws.s = n;
        n.chan = chan;
        ws.onopen?.();
        this._flush(n);
      } else if (q.rx !== undefined) {
        if (!this._attach(s, "websocket", +q.rx, chan)) return ws.onclose?.({ code: 1006 });
        ws.onopen?.();
        this._flush(s);
      } else {
        if (s.probe) return ws.onclose?.({ code: 1006 });
        s.probe = chan;
        ws.onopen?.();
      }
    });
  }
  _wsIn(ws, d) {
    if (this.f.wsMute || ws.closed || !ws.s) return;
    const s = ws.s;
    const via = s.chan?.ws === ws ? s.transport : s.probe?.ws === ws ? "websocket" : null;
    if (!via) return;
    this._in(s, typeof d === "string" ? dec(d) : { type: 4, data: d }, "websocket");
  }
}
