// A small Node client of ferry's Engine.IO extensions (docs/protocol.md), written from that text
// alone: Server-Sent Events (raw HTTP, text/event-stream parsed here, not EventSource),
// short-polling, and for comparison long-polling and WebSocket (npm ws). It does the probe
// upgrade from polling to sse or websocket like engine.io-client does.
//
//   const c = new ExtClient(`${srv.url}/engine.io/`, { transport: "sse" });
//   const hs = await c.open();            // the handshake object
//   c.on("message", (m) => ...);          // string, or Buffer for binary
//   c.send("hi"); c.send(Buffer.from([1])); await c.upgrade("websocket");
//   c.on("close", (reason) => ...);       // "server close", "transport error", "client close"
//
// Options: transport ("polling" | "short-polling" | "sse" | "websocket"), stallPongs (never
// answer pings: a stalled client), query (extra query parameters), ca (PEM of the CA that
// signed an https server's certificate).
import { EventEmitter } from "node:events";
import http from "node:http";
import https from "node:https";
import { StringDecoder } from "node:string_decoder";
import WebSocket from "ws";

const SEP = "\x1e";

export function encodePacket(p) {
  if (Buffer.isBuffer(p)) return "b" + p.toString("base64");
  return p; // already "<type><data>"
}

// A polling payload into packets: {type, data} with data a string, or a Buffer (binary).
export function decodePayload(body) {
  return body.split(SEP).map(decodePacket);
}

export function decodePacket(s) {
  if (s[0] === "b") return { type: 4, data: Buffer.from(s.slice(1), "base64") };
  return { type: s.charCodeAt(0) - 48, data: s.slice(1) };
}

// The data of one SSE event into a packet (docs/protocol.md "Event data").
export function decodeEventData(d) {
  if (d[0] === "x") return decodePacket(Buffer.from(d.slice(1), "base64").toString("utf8"));
  return decodePacket(d);
}

// An incremental text/event-stream parser (the WHATWG event stream interpretation, minus the
// reconnection, which the client does itself). Calls onEvent({id, event, data}) per dispatched
// event and onComment(text) per comment line.
export class EventStreamParser {
  constructor(onEvent, onComment = () => {}) {
    this.dec = new StringDecoder("utf8");
    this.buf = "";
    this.data = [];
    this.event = "";
    this.id = null;
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.sawCR = false;
  }
  push(chunk) {
    this.buf += this.dec.write(chunk);
    let i;
    // Lines end with CRLF, LF or CR; a CR at the very end may be half of a CRLF.
    while ((i = this.buf.search(/\r\n|\n|\r(?=[^\n])/)) >= 0) {
      const line = this.buf.slice(0, i);
      const nl = this.buf[i] === "\r" && this.buf[i + 1] === "\n" ? 2 : 1;
      this.buf = this.buf.slice(i + nl);
      this.line(line);
    }
  }
  line(line) {
    if (line === "") {
      if (this.data.length > 0) this.onEvent({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      this.data = [];
      this.event = "";
      return;
    }
    if (line[0] === ":") return this.onComment(line.slice(1));
    const c = line.indexOf(":");
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? "" : line.slice(c + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

// http or https by the URL; ca is ignored on http.
const httpFor = (url) => (url.startsWith("https:") ? https : http);

function request(url, { method = "GET", headers = {}, body, ca } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpFor(url).request(url, { method, headers, agent: false, ca }, (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

export class ExtClient extends EventEmitter {
  constructor(base, { transport = "polling", stallPongs = false, query = {}, ca } = {}) {
    super();
    this.ca = ca;
    this.base = base;
    this.transport = transport;
    this.stallPongs = stallPongs;
    this.query = { EIO: "4", ferry: "1", ...query };
    this.state = "new";
    this.upQueue = []; // encoded packets waiting for the next POST
    this.posting = null; // the POST in flight (a promise)
    this.paused = false; // polling paused for an upgrade
    this.getting = null; // the GET in flight (a promise)
    this.lastEventId = null;
    this.stats = { pings: 0, comments: 0, streams: 0, events: 0 };
  }

  url(transport, extra = {}) {
    const q = new URLSearchParams({ ...this.query, transport, ...(this.sid ? { sid: this.sid } : {}), ...extra });
    return `${this.base}?${q}`;
  }

  open(ms = 10000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no open packet in ${ms} ms`)), ms);
      this.once("open", (hs) => (clearTimeout(t), resolve(hs)));
      this.once("close", (r) => reject(new Error(`closed before open: ${r}`)));
      this.state = "opening";
      if (this.transport === "sse") this.openStream(true);
      else if (this.transport === "websocket") this.openWs(false);
      else this.pollLoop();
    });
  }

  // ------------------------------------------------------------ packets in

  onPacket(p, from) {
    if (this.state === "closed") return;
    if (p.type === 0) {
      const hs = JSON.parse(p.data);
      this.handshake = hs;
      this.sid = hs.sid;
      this.state = "open";
      this.emit("open", hs);
    } else if (p.type === 4) {
      this.emit("message", p.data);
    } else if (p.type === 2) {
      this.stats.pings++;
      this.emit("ping");
      if (!this.stallPongs) this.sendPacket("3");
    } else if (p.type === 3 && p.data === "probe") {
      this.emit("probe", from);
    } else if (p.type === 1) {
      this.finish("server close");
    }
  }

  finish(reason) {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.stream) this.stream.destroy();
    if (this.ws) this.ws.terminate();
    this.emit("close", reason);
  }

  // ------------------------------------------------------------ polling (long and short)

  async pollLoop() {
    const name = this.transport;
    while (this.state !== "closed" && this.transport === name && !this.paused) {
      let res;
      this.getting = request(this.url(name), { ca: this.ca });
      try {
        res = await this.getting;
      } catch (e) {
        return this.finish("transport error");
      } finally {
        this.getting = null;
      }
      if (res.status !== 200) return this.finish("transport error");
      for (const p of decodePayload(res.body)) this.onPacket(p, name);
      if (name === "short-polling" && this.state === "open" && !this.paused)
        await new Promise((r) => setTimeout(r, this.handshake.shortPollInterval));
    }
  }

  // ------------------------------------------------------------ upstream

  send(data) {
    this.sendPacket(Buffer.isBuffer(data) ? data : "4" + data);
  }

  sendPacket(p) {
    if (this.state === "closed") return;
    if (this.transport === "websocket" && !this.paused) return this.ws.send(typeof p === "string" ? p : p);
    this.upQueue.push(encodePacket(p));
    this.flushUp();
  }

  async flushUp() {
    // After close() the queue still goes out: it ends with the close packet.
    if (this.posting || this.paused || this.upQueue.length === 0 || (this.state === "closed" && !this.closing)) return;
    // One POST carries at most maxPayload bytes (always at least one packet).
    const max = this.handshake?.maxPayload ?? 1e6;
    let n = 1;
    let bytes = Buffer.byteLength(this.upQueue[0]);
    while (n < this.upQueue.length && bytes + 1 + Buffer.byteLength(this.upQueue[n]) <= max)
      bytes += 1 + Buffer.byteLength(this.upQueue[n++]);
    const body = this.upQueue.slice(0, n).join(SEP);
    this.upQueue = this.upQueue.slice(n);
    this.posting = this.post(this.transport, body);
    const res = await this.posting;
    this.posting = null;
    if (res.status !== 200) return this.finish("transport error");
    this.flushUp();
  }

  async post(transport, body) {
    try {
      return await request(this.url(transport), { method: "POST", headers: { "Content-Type": "text/plain;charset=UTF-8" }, body, ca: this.ca });
    } catch {
      return { status: 0 };
    }
  }

  close() {
    if (this.state === "closed") return;
    if (this.transport === "websocket") this.ws.send("1");
    else {
      this.closing = true;
      this.upQueue.push("1");
      this.flushUp();
    }
    this.finish("client close");
  }

  // ------------------------------------------------------------ SSE

  // Open (or reopen, with Last-Event-ID) the event stream; resolves with the response status.
  openStream(handshake = false, onProbe = false) {
    const headers = { Accept: "text/event-stream" };
    if (this.lastEventId !== null && !onProbe) headers["Last-Event-ID"] = this.lastEventId;
    const url = handshake ? this.url("sse") : this.url("sse");
    return new Promise((resolve) => {
      const req = httpFor(url).get(url, { headers, agent: false, ca: this.ca }, (res) => {
        resolve(res.statusCode);
        if (res.statusCode !== 200) {
          res.resume();
          this.emit("stream-refused", res.statusCode);
          if (!onProbe) this.finish("transport error");
          return;
        }
        this.stream = res;
        this.stats.streams++;
        this.streamHeaders = res.headers;
        const parser = new EventStreamParser(
          (ev) => {
            this.stats.events++;
            if (ev.id !== null) this.lastEventId = ev.id;
            this.onPacket(decodeEventData(ev.data), "sse");
          },
          () => {
            this.stats.comments++;
            this.emit("comment");
          },
        );
        res.on("data", (d) => parser.push(d));
        res.on("end", () => {
          if (this.stream !== res) return;
          this.stream = null;
          // A recycled or broken stream: resume after the last id seen.
          if (this.state === "open" && this.transport === "sse") {
            this.emit("stream-end");
            this.openStream();
          }
        });
        res.on("error", () => {});
      });
      req.on("error", () => {
        resolve(0);
        if (!onProbe) this.finish("transport error");
      });
    });
  }

  // ------------------------------------------------------------ WebSocket

  openWs(probe) {
    const u = this.url("websocket").replace(/^http/, "ws");
    const ws = new WebSocket(u, this.ca ? { ca: this.ca } : undefined);
    this.ws = ws;
    ws.on("message", (d, isBinary) => {
      if (isBinary) this.onPacket({ type: 4, data: Buffer.from(d) }, "websocket");
      else this.onPacket(decodePacket(d.toString("utf8")), "websocket");
    });
    ws.on("close", () => {
      if (this.transport === "websocket") this.finish("transport close");
    });
    ws.on("error", () => {});
    return new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
  }

  // ------------------------------------------------------------ upgrade from polling

  async upgrade(to) {
    if (this.transport !== "polling" && this.transport !== "short-polling") throw new Error("upgrade from polling only");
    const gotProbe = new Promise((resolve) => {
      const on = (from) => {
        if (from !== to) return;
        this.off("probe", on);
        resolve();
      };
      this.on("probe", on);
    });
    if (to === "websocket") {
      await this.openWs(true);
      this.ws.send("2probe");
    } else {
      const st = await this.openStream(false, true);
      if (st !== 200) throw new Error(`probe stream refused: ${st}`);
      const res = await this.post("sse", "2probe");
      if (res.status !== 200) throw new Error(`2probe POST: ${res.status}`);
    }
    let timer;
    const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no 3probe on ${to}`)), 10000)));
    await Promise.race([gotProbe, timeout]);
    clearTimeout(timer);
    // Pause polling: the server ends the held GET with a noop; wait for it and for a POST.
    this.paused = true;
    if (this.getting) await this.getting.catch(() => {});
    if (this.posting) await this.posting;
    const from = this.transport;
    if (to === "websocket") {
      this.ws.send("5");
      this.transport = "websocket";
      this.paused = false;
      const q = this.upQueue;
      this.upQueue = [];
      for (const p of q) this.ws.send(p[0] === "b" ? Buffer.from(p.slice(1), "base64") : p);
    } else {
      this.transport = "sse";
      this.paused = false;
      this.upQueue.unshift("5");
      this.flushUp();
    }
    this.emit("upgrade", from, to);
  }
}
