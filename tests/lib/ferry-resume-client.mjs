// A Node client of ferry's session-resume extensions (docs/protocol.md sections 5-9), written
// from that text: message numbering, client pings, attach (rx=) on any transport, reports.
// Each transport is a "leg"; the client uses one at a time and ignores whatever a leg it left
// still delivers (the server replays it on the new leg).
//
//   const c = new ResumeClient(`${srv.url}${srv.path}`, "polling");
//   await c.open();
//   c.on("message", (m) => ...);      // string, or Buffer for binary
//   c.send("hi");
//   await c.attach("websocket");       // rx = messages received so far; resends after srx
//   c.report({ from: "polling", to: "websocket", reason: "promoted", ms: 12 });
import { EventEmitter } from "node:events";
import http from "node:http";
import WebSocket from "ws";
import { EventStreamParser, decodePacket, decodeEventData, decodePayload, encodePacket } from "./ferry-ext-client.mjs";

const SEP = "\x1e";

function request(url, { method = "GET", headers = {}, body } = {}, onReq = () => {}) {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", () => resolve({ status: 0, body: "" }));
    });
    req.on("error", () => resolve({ status: 0, body: "" }));
    onReq(req);
    req.end(body);
  });
}

// One transport in use: polling / short-polling (GET loop + POSTs), sse (stream + POSTs) or
// websocket. deliver(p) gets each packet while the leg is the client's.
class Leg {
  constructor(client, kind, extra) {
    this.c = client;
    this.kind = kind;
    this.extra = extra; // query of the first request (rx= for an attach)
    this.dead = false;
    this.up = [];
    this.posting = false;
    this.reqs = new Set();
  }
  url(extra = {}) {
    return this.c.url(this.kind, extra);
  }
  deliver(p) {
    if (!this.dead && this.c.leg === this) this.c.onPacket(p, this);
  }
  fail(status) {
    if (this.dead || this.c.leg !== this) return;
    this.c.emit("leg-error", this.kind, status);
  }
  // Resolves with the status of the first answer (200, 101, 400...).
  start() {
    if (this.kind === "websocket") return this.startWs();
    if (this.kind === "sse") return this.startSse();
    return this.startPoll();
  }
  startPoll() {
    return new Promise((resolve) => {
      let first = true;
      const loop = async () => {
        while (!this.dead) {
          const res = await request(this.url(first ? this.extra : {}), {}, (r) => this.reqs.add(r));
          if (first) resolve(res.status);
          first = false;
          if (this.dead) return;
          if (res.status !== 200) return this.fail(res.status);
          for (const p of decodePayload(res.body)) this.deliver(p);
          if (this.kind === "short-polling" && !this.dead)
            await new Promise((r) => setTimeout(r, this.c.handshake?.shortPollInterval ?? 50));
        }
      };
      loop();
    });
  }
  startSse() {
    return new Promise((resolve) => {
      const req = http.get(this.url(this.extra), { headers: { Accept: "text/event-stream" }, agent: false }, (res) => {
        resolve(res.statusCode);
        if (res.statusCode !== 200) {
          res.resume();
          return this.fail(res.statusCode);
        }
        this.res = res;
        const parser = new EventStreamParser((ev) => this.deliver(decodeEventData(ev.data)));
        res.on("data", (d) => parser.push(d));
        res.on("error", () => {});
      });
      this.reqs.add(req);
      req.on("error", () => resolve(0));
    });
  }
  startWs() {
    return new Promise((resolve) => {
      const ws = new WebSocket(this.url(this.extra).replace(/^http/, "ws"));
      this.ws = ws;
      ws.on("message", (d, bin) => this.deliver(bin ? { type: 4, data: Buffer.from(d) } : decodePacket(d.toString("utf8"))));
      ws.on("open", () => resolve(101));
      ws.on("unexpected-response", (req, res) => {
        resolve(res.statusCode);
        res.resume();
      });
      ws.on("close", (code) => this.c.emit("ws-close", this, code));
      ws.on("error", () => resolve(0));
    });
  }
  // p: "<type><data>" or a Buffer (binary message).
  send(p) {
    if (this.dead) return;
    if (this.kind === "websocket") {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(p);
      return;
    }
    this.up.push(encodePacket(p));
    this.flushUp();
  }
  async flushUp() {
    if (this.posting || this.up.length === 0 || this.dead) return;
    this.posting = true;
    const body = this.up.join(SEP);
    this.up = [];
    const res = await request(this.url(), { method: "POST", headers: { "Content-Type": "text/plain;charset=UTF-8" }, body }, (r) => this.reqs.add(r));
    this.posting = false;
    if (res.status !== 200) return this.fail(res.status);
    this.flushUp();
  }
  // Leave the leg: nothing it delivers from now on counts. hard: cut its connections too.
  stop(hard = false) {
    this.dead = true;
    if (!hard) return;
    if (this.ws) this.ws.terminate();
    for (const r of this.reqs) r.destroy();
  }
}

export class ResumeClient extends EventEmitter {
  constructor(base, transport = "polling", { query = {} } = {}) {
    super();
    this.base = base;
    this.first = transport;
    this.query = { EIO: "4", ferry: "1", ...query };
    this.rx = 0; // server messages received
    this.sent = []; // every message sent, in order: sent[i] is message i + 1
    this.pingId = 0;
    this.pings = new Map(); // id -> resolve(srx)
    this.resending = false;
    this.state = "new";
  }

  url(transport, extra = {}) {
    const q = new URLSearchParams({ ...this.query, transport, ...(this.sid ? { sid: this.sid } : {}), ...extra });
    return `${this.base}?${q}`;
  }

  async open(ms = 10000) {
    const opened = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no open packet in ${ms} ms`)), ms);
      this.once("open", (hs) => (clearTimeout(t), resolve(hs)));
    });
    this.leg = new Leg(this, this.first, {});
    this.leg.start();
    return opened;
  }

  onPacket(p, leg) {
    if (this.state === "closed") return;
    switch (p.type) {
      case 0:
        this.handshake = JSON.parse(p.data);
        this.sid = this.handshake.sid;
        this.state = "open";
        this.emit("open", this.handshake);
        break;
      case 1:
        this.state = "closed";
        this.emit("close", "server close");
        break;
      case 2:
        leg.send("3" + p.data); // the server's heartbeat
        break;
      case 3: {
        const m = /^c(\d+):(\d+)$/.exec(p.data);
        if (!m) break;
        const id = Number(m[1]);
        // One answer may stand for every earlier unanswered ping (docs/protocol.md).
        for (const [k, resolve] of this.pings)
          if (k <= id) {
            this.pings.delete(k);
            resolve(Number(m[2]));
          }
        this.emit("pong", id, Number(m[2]));
        break;
      }
      case 4:
        this.rx++;
        this.emit("message", p.data);
        break;
    }
  }

  send(data) {
    const p = Buffer.isBuffer(data) ? data : "4" + data;
    this.sent.push(p);
    if (!this.resending) this.leg.send(p);
  }

  // A client ping; resolves with the server's count of our messages.
  ping(ms = 10000) {
    const id = ++this.pingId;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to client ping ${id} in ${ms} ms`)), ms);
      this.pings.set(id, (srx) => (clearTimeout(t), resolve(srx)));
      this.leg.send(`2c${id}:${this.rx}`);
    });
  }

  report(obj) {
    this.leg.send("6" + (typeof obj === "string" ? obj : JSON.stringify(obj)));
  }

  // Move to another transport without a probe. Resolves with {status, srx}; status 400 means
  // the session is gone. hard: cut the old leg's connections first (a network that died).
  async attach(kind, { hard = false, rx = this.rx } = {}) {
    this.leg.stop(hard);
    this.resending = true;
    const leg = new Leg(this, kind, { rx: String(rx) });
    this.leg = leg;
    const status = await leg.start();
    if (status !== 200 && status !== 101) {
      this.resending = false;
      return { status };
    }
    const srx = await this.ping();
    for (let i = srx; i < this.sent.length; i++) leg.send(this.sent[i]);
    this.resending = false;
    return { status, srx };
  }

  close() {
    if (this.leg && this.state !== "closed") this.leg.send("1");
    this.state = "closed";
    setTimeout(() => this.leg?.stop(true), 200);
  }
}
