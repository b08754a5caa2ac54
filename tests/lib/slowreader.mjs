// Raw Engine.IO v4 / Socket.IO v5 clients that read their downstream at a set rate (bytes a
// second), for tests of a slow consumer (issue 14: backpressure, heartbeats over the bound).
// They answer every server ping as soon as its bytes are read, so a session they lose to a
// "ping timeout" was lost because the ping reached them late, not because they did not answer.
//
//   const c = await slowWebSocket(port);          // a raw TCP socket: the kernel's buffers fill
//   const c = await slowPolling(port);            // raw long-polling GETs read at the rate
//   const c = await slowSse(port);                // a raw SSE stream (TCP socket) read at the rate
//   await c.connect("/");                         // Socket.IO CONNECT, then c.emitAck(...)
//   c.setRate(64 * 1024);                         // 0: not reading at all; Infinity: at once
//   c.events  [{name, data, at}]   c.pings [ms]   c.closed (a promise)   c.close()
import net from "node:net";
import { randomBytes } from "node:crypto";

const TICK_MS = 20;

// Reads a net.Socket in paused mode, at most `rate` bytes a second, handing chunks to onChunk.
class Throttle {
  constructor(sock, onChunk) {
    this.sock = sock;
    this.onChunk = onChunk;
    this.rate = Infinity;
    this.allow = 0;
    this.last = Date.now();
    sock.pause();
    this.timer = setInterval(() => this.pump(), TICK_MS);
    this.timer.unref(); // the socket keeps the process alive while it is open
    sock.on("readable", () => {
      if (this.rate === Infinity) this.pump();
    });
  }
  setRate(r) {
    this.rate = r;
    this.allow = 0;
    this.last = Date.now();
    this.pump();
  }
  pump() {
    const now = Date.now();
    if (this.rate === Infinity) this.allow = Infinity;
    // Up to a second's worth: a test process starved for CPU still reads at its rate on average.
    else this.allow = Math.min(this.allow + (this.rate * (now - this.last)) / 1000, Math.max(this.rate, 1));
    this.last = now;
    while (this.allow >= 1 && this.sock.readableLength > 0) {
      const n = Math.min(Math.floor(this.allow), this.sock.readableLength);
      const chunk = this.sock.read(n);
      if (chunk === null) break;
      if (this.allow !== Infinity) this.allow -= chunk.length;
      this.onChunk(chunk);
    }
    if (this.rate !== Infinity && this.sock.readableLength === 0) this.sock.read(0); // keep the kernel's data coming
  }
  stop() {
    clearInterval(this.timer);
  }
}

class Base {
  constructor() {
    this.events = []; // Socket.IO events: {name, data, at}
    this.packets = []; // every other Engine.IO packet's text, in order
    this.pings = []; // Date.now() of every server ping read
    this.acks = new Map();
    this.nextAck = 1;
    this.waiters = [];
    this.ended = false;
    this.closed = new Promise((r) => (this.onClosed = r));
  }
  packet(p) {
    if (p === "2") {
      this.pings.push(Date.now());
      this.send("3");
    } else if (p.startsWith("42")) {
      const [name, data] = JSON.parse(p.slice(2));
      this.events.push({ name, data, at: Date.now() });
    } else if (p.startsWith("43")) {
      const m = /^43(\d+)(.*)$/s.exec(p);
      this.acks.get(Number(m[1]))?.(JSON.parse(m[2])[0]);
      this.packets.push(p);
    } else {
      if (p === "1") this.end("close packet");
      this.packets.push(p);
    }
    for (const w of [...this.waiters]) w();
  }
  until(pred, ms = 10000, what = "the awaited packet") {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred()) {
          clearTimeout(t);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve();
        } else if (this.ended) {
          clearTimeout(t);
          reject(new Error(`${what}: the session ended (${this.endReason})`));
        }
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`${what} did not come in ${ms} ms`));
      }, ms);
      this.waiters.push(check);
      check();
    });
  }
  end(reason) {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason;
    this.onClosed(reason);
    for (const w of [...this.waiters]) w();
  }
  async connect(nsp = "/") {
    this.send(nsp === "/" ? "40" : `40${nsp},`);
    await this.until(() => this.packets.some((p) => p.startsWith("40") || p.startsWith("44")), 10000, "CONNECT");
    if (!this.packets.some((p) => p.startsWith("40"))) throw new Error(`CONNECT refused: ${this.packets.join(" ")}`);
  }
  emitAck(name, data, ms = 10000) {
    const id = this.nextAck++;
    const got = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ack for ${name} in ${ms} ms`)), ms);
      this.acks.set(id, (v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
    this.send(`42${id}${JSON.stringify([name, data])}`);
    return got;
  }
}

// ---- WebSocket: one raw TCP connection; frames parsed as the throttle lets bytes in.
class SlowWebSocket extends Base {
  constructor(sock) {
    super();
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.upgraded = false;
    this.throttle = new Throttle(sock, (c) => this.feed(c));
    sock.on("close", () => this.end("connection closed"));
    sock.on("error", () => this.end("connection error"));
  }
  setRate(r) {
    this.throttle.setRate(r);
  }
  feed(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (!this.upgraded) {
      const i = this.buf.indexOf("\r\n\r\n");
      if (i < 0) return;
      const head = this.buf.subarray(0, i).toString();
      this.buf = this.buf.subarray(i + 4);
      if (!/^HTTP\/1\.1 101/.test(head)) return this.end(`no upgrade: ${head.split("\r\n")[0]}`);
      this.upgraded = true;
    }
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (op === 1) this.packet(payload.toString());
      else if (op === 8) {
        this.closeCode = len >= 2 ? payload.readUInt16BE(0) : null;
        this.end(`close frame ${this.closeCode}`);
      } else if (op === 9) this.frame(10, payload);
    }
  }
  frame(op, payload) {
    if (this.sock.destroyed) return;
    const mask = randomBytes(4);
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | op, 0x80 | len]) : Buffer.from([0x80 | op, 0xfe, len >> 8, len & 255]);
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
    this.sock.write(Buffer.concat([head, mask, body]));
  }
  send(text) {
    this.frame(1, Buffer.from(text));
  }
  close() {
    this.throttle.stop();
    this.sock.destroy();
  }
}

export function slowWebSocket(port, query = "") {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("error", reject);
    sock.once("connect", () => {
      sock.off("error", reject);
      const c = new SlowWebSocket(sock);
      sock.write(`GET /socket.io/?EIO=4&transport=websocket${query} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
        `Sec-WebSocket-Version: 13\r\n\r\n`);
      c.until(() => c.packets.some((p) => p.startsWith("0{")), 10000, "the open packet").then(() => resolve(c), reject);
    });
  });
}

// ---- what long-polling and SSE share: a reading rate, and POSTs (pongs, emits) through
// fetch, one at a time, never throttled.
class HttpReader extends Base {
  constructor(port) {
    super();
    this.port = port;
    this.rate = Infinity;
  }
  setRate(r) {
    this.rate = r;
    this.throttle?.setRate(r);
  }
  send(text) {
    this.posting = (this.posting ?? Promise.resolve()).then(async () => {
      if (this.ended) return;
      try {
        const r = await fetch(`http://127.0.0.1:${this.port}${this.path}`, { method: "POST", body: text });
        await r.text();
        if (r.status !== 200) this.end(`POST answered ${r.status}`);
      } catch {
        this.end("POST failed");
      }
    });
  }
  close() {
    this.throttle?.stop();
    this.sock?.destroy();
  }
}

// ---- long-polling: GETs on one raw keep-alive connection, each body read at the rate and
// parsed as it comes (a ping at the start of a body is answered before the rest is read);
// POSTs (pongs, emits) through fetch, never throttled.
class SlowPolling extends HttpReader {
  constructor(port) {
    super(port);
    this.gets = 0;
  }
  async open() {
    const r = await fetch(`http://127.0.0.1:${this.port}/socket.io/?EIO=4&transport=polling`);
    const text = await r.text();
    this.sid = JSON.parse(text.slice(1)).sid;
    this.packets.push(text);
    this.path = `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(this.sid)}`;
    this.poll();
  }
  // Each GET on a connection of its own ("Connection: close"): a keep-alive connection whose
  // next request comes only after a slowly read answer would meet the server's idle timeout.
  poll() {
    if (this.ended) return;
    this.gets++;
    this.head = null;
    this.done = 0; // body bytes already parsed into packets
    this.buf = Buffer.alloc(0);
    this.throttle?.stop();
    const sock = net.connect(this.port, "127.0.0.1");
    this.sock = sock;
    sock.on("error", () => sock === this.sock && this.end("connection error"));
    sock.on("close", () => sock === this.sock && this.head !== "done" && this.end("connection closed"));
    this.throttle = new Throttle(sock, (c) => sock === this.sock && this.feed(c));
    this.throttle.setRate(this.rate);
    sock.write(`GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  }
  feed(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.head === "done") return;
      if (this.head === null) {
        const i = this.buf.indexOf("\r\n\r\n");
        if (i < 0) return;
        const head = this.buf.subarray(0, i).toString();
        this.buf = this.buf.subarray(i + 4);
        const status = Number(head.split(" ")[1]);
        const m = /content-length:\s*(\d+)/i.exec(head);
        this.head = { status, length: m ? Number(m[1]) : 0 };
        if (status !== 200) return this.end(`GET answered ${status}`);
      }
      // Complete packets so far (separated by \x1e), the last one when the body is whole.
      const whole = this.buf.length >= this.head.length;
      const body = this.buf.subarray(0, Math.min(this.buf.length, this.head.length));
      for (;;) {
        const j = body.indexOf(0x1e, this.done);
        if (j < 0) break;
        this.packet(body.subarray(this.done, j).toString());
        this.done = j + 1;
      }
      if (!whole) return;
      if (this.done < this.head.length) this.packet(body.subarray(this.done).toString());
      this.head = "done";
      this.sock.destroy();
      this.poll();
      return;
    }
  }
  // One POST at a time (Engine.IO refuses overlapping ones), in order.
}

export async function slowPolling(port) {
  const c = new SlowPolling(port);
  await c.open();
  return c;
}

// ---- SSE (ferry's extension, docs/protocol.md section 3): the event stream on a raw TCP
// connection, read at the rate and parsed as it comes (a ping is answered the moment its event
// is read); a stream the server ends (recycled after sse recycle_bytes) is followed at once by
// the next one with Last-Event-ID, as a client does (section 3.4). POSTs (pongs, emits) through
// fetch, one at a time, never throttled.
class SlowSse extends HttpReader {
  constructor(port) {
    super(port);
    this.lastId = null;
    this.streams = 0;
  }
  // Open a stream: the handshake (no sid) or a resumption after lastId.
  stream() {
    if (this.ended) return;
    this.streams++;
    this.head = null;
    this.buf = "";
    this.decoder = new TextDecoder();
    this.throttle?.stop();
    const sock = net.connect(this.port, "127.0.0.1");
    this.sock = sock;
    const gone = (why) => {
      if (sock !== this.sock || this.ended) return;
      // A stream that ended after its head while the session is open: the next one resumes.
      if (why === "stream closed" && this.head !== null && this.sid) this.stream();
      else this.end(why);
    };
    sock.on("close", () => gone("stream closed"));
    sock.on("error", () => gone("stream error"));
    this.throttle = new Throttle(sock, (c) => sock === this.sock && this.feed(c));
    this.throttle.setRate(this.rate);
    const resume = this.lastId !== null ? `Last-Event-ID: ${this.lastId}\r\n` : "";
    sock.write(`GET /socket.io/?EIO=4&transport=sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${resume}\r\n`);
  }
  feed(chunk) {
    this.buf += this.decoder.decode(chunk, { stream: true });
    if (this.head === null) {
      const i = this.buf.indexOf("\r\n\r\n");
      if (i < 0) return;
      const head = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 4);
      if (!/^HTTP\/1\.1 200/.test(head)) return this.end(`stream answered ${head.split("\r\n")[0]}`);
      this.head = head;
    }
    for (;;) {
      const j = this.buf.indexOf("\n\n");
      if (j < 0) return;
      const block = this.buf.slice(0, j);
      this.buf = this.buf.slice(j + 2);
      let data = null;
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) this.lastId = line.slice(4);
        else if (line.startsWith("data: ")) data = line.slice(6);
      }
      if (data === null) continue; // a comment (keep-alive) or the prelude's retry line
      if (!this.sid && data.startsWith("0{")) {
        this.sid = JSON.parse(data.slice(1)).sid;
        this.path = `/socket.io/?EIO=4&transport=sse&sid=${encodeURIComponent(this.sid)}`;
      }
      this.packet(data.startsWith("x") ? Buffer.from(data.slice(1), "base64").toString() : data);
    }
  }
  // One POST at a time (a second in flight closes the session), in order.
}

export async function slowSse(port) {
  const c = new SlowSse(port);
  c.stream();
  await c.until(() => c.sid !== undefined, 10000, "the open packet");
  return c;
}
