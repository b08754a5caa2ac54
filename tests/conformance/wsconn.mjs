// A raw WebSocket client connection for the conformance run: node:net, frames built by hand
// (any opcode, RSV bits, fragment or mask choice, TCP chops), server frames parsed and checked
// strictly, permessage-deflate (RFC 7692) implemented here with node:zlib. Everything the server
// does is turned into an ordered event queue the cases read with next():
//   { type: "message", data: Buffer, binary: bool }   a complete data message
//   { type: "pong", data }  { type: "ping", data }       control frames
//   { type: "close", code: number|null, reason: Buffer, payload: Buffer }
//   { type: "end" }                                      the server closed (or reset) TCP
//   { type: "violation", why }                           the server broke the protocol
import net from "node:net";
import crypto from "node:crypto";
import zlib from "node:zlib";

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

// ---------------------------------------------------------------- frames

// Encode one client frame. mask: true (random key), false (unmasked, a protocol violation), or a
// 4-byte Buffer. len64Msb sets the reserved top bit of a 64-bit length; declaredLength lies about
// the length (the payload given is still appended).
export function encodeFrame({ op, payload = Buffer.alloc(0), fin = true, rsv = 0, mask = true, declaredLength, forceLen64 = false }) {
  payload = Buffer.from(payload);
  const len = declaredLength ?? payload.length;
  const head = [((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (op & 0x0f))];
  const m = mask === false ? 0 : 0x80;
  let ext;
  if (len < 126 && !forceLen64) {
    head.push(m | len);
    ext = Buffer.alloc(0);
  } else if (len < 65536 && !forceLen64) {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(len);
  } else {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(BigInt(len));
  }
  if (mask === false) return Buffer.concat([Buffer.from(head), ext, payload]);
  const key = Buffer.isBuffer(mask) ? mask : crypto.randomBytes(4);
  const body = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

export function closePayload(code, reason = Buffer.alloc(0)) {
  if (code == null) return Buffer.alloc(0);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
}

// Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF.
export function isUtf8(buf) {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- permessage-deflate

// Parse a Sec-WebSocket-Extensions value into [{ name, params: [[k, v|true], ...] }].
export function parseExtensions(value) {
  const out = [];
  for (const part of value.split(",")) {
    const items = part.split(";").map((s) => s.trim());
    if (!items[0]) continue;
    const params = items.slice(1).filter(Boolean).map((p) => {
      const i = p.indexOf("=");
      if (i < 0) return [p.toLowerCase(), true];
      return [p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim().replace(/^"(.*)"$/, "$1")];
    });
    out.push({ name: items[0].toLowerCase(), params });
  }
  return out;
}

// Check the server's permessage-deflate response against the offers sent (RFC 7692 section 7)
// and return the negotiated parameters, or throw with the rule broken.
export function negotiateDeflate(offers, response) {
  const exts = parseExtensions(response);
  if (exts.length !== 1 || exts[0].name !== "permessage-deflate")
    throw new Error(`unexpected extensions in response: ${response}`);
  const seen = new Set();
  const r = { serverNoCtx: false, clientNoCtx: false, serverBits: 15, clientBits: 15, serverBitsSet: false, clientBitsSet: false };
  for (const [k, v] of exts[0].params) {
    if (seen.has(k)) throw new Error(`duplicate parameter ${k} in response`);
    seen.add(k);
    const bits = () => {
      if (v === true || !/^\d+$/.test(v) || Number(v) < 8 || Number(v) > 15) throw new Error(`invalid ${k} value ${v}`);
      return Number(v);
    };
    if (k === "server_no_context_takeover" && v === true) r.serverNoCtx = true;
    else if (k === "client_no_context_takeover" && v === true) r.clientNoCtx = true;
    else if (k === "server_max_window_bits") { r.serverBits = bits(); r.serverBitsSet = true; }
    else if (k === "client_max_window_bits") { r.clientBits = bits(); r.clientBitsSet = true; }
    else throw new Error(`unknown or malformed parameter ${k}${v === true ? "" : "=" + v} in response`);
  }
  // The response must fit at least one offer.
  const known = ["server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits"];
  const fits = offers.some((o) => {
    const p = new Map(parseExtensions(o)[0].params);
    if ([...p.keys()].some((k) => !known.includes(k))) return false; // must be declined
    if (p.has("server_no_context_takeover") && !r.serverNoCtx) return false;
    if (p.has("server_max_window_bits") && (!r.serverBitsSet || r.serverBits > Number(p.get("server_max_window_bits")))) return false;
    if (r.clientBitsSet && !p.has("client_max_window_bits")) return false;
    if (r.clientBitsSet && p.get("client_max_window_bits") !== true && r.clientBits > Number(p.get("client_max_window_bits"))) return false;
    return true;
  });
  if (!fits) throw new Error(`response "${response}" fits none of the offers ${JSON.stringify(offers)}`);
  return r;
}

// Compressor for the client's messages: one raw-deflate stream kept across messages unless
// client_no_context_takeover. compressParts() compresses a message given as parts, with a sync
// flush after each part, so each part's bytes can travel in their own frame; the final
// 00 00 ff ff is removed (RFC 7692 7.2.1).
class Deflater {
  constructor(bits, noCtx) {
    this.bits = Math.max(bits, 9); // zlib's raw deflate has no 8-bit window
    this.noCtx = noCtx;
    this.z = null;
  }
  stream() {
    if (!this.z) {
      this.z = zlib.createDeflateRaw({ windowBits: this.bits, memLevel: 8 });
      this.chunks = [];
      this.z.on("data", (d) => this.chunks.push(d));
    }
    return this.z;
  }
  async compressParts(parts) {
    const z = this.stream();
    const out = [];
    for (const p of parts) {
      this.chunks.length = 0;
      if (p.length) z.write(p);
      await new Promise((res) => z.flush(zlib.constants.Z_SYNC_FLUSH, res));
      out.push(Buffer.concat(this.chunks));
    }
    const last = out[out.length - 1];
    if (last.length >= 4 && last.subarray(-4).equals(TAIL)) out[out.length - 1] = last.subarray(0, -4);
    // An empty message on a byte-aligned stream is the single byte 0x00 (RFC 7692 7.2.3.6); an
    // empty payload would make the peer inflate 00 00 ff ff as a broken stored block.
    if (out.every((p) => p.length === 0)) out[out.length - 1] = Buffer.from([0x00]);
    if (this.noCtx) this.close();
    return out;
  }
  close() {
    if (this.z) this.z.close();
    this.z = null;
  }
}

class Inflater {
  constructor(noCtx) {
    this.noCtx = noCtx;
    this.z = null;
  }
  async inflate(data, limit) {
    if (!this.z) {
      this.z = zlib.createInflateRaw({ windowBits: 15 });
      this.chunks = [];
      this.size = 0;
      this.z.on("data", (d) => {
        this.size += d.length;
        if (this.size <= limit) this.chunks.push(d);
      });
    }
    const z = this.z;
    this.chunks = [];
    this.size = 0;
    const err = await new Promise((res) => {
      const onErr = (e) => res(e);
      z.once("error", onErr);
      z.write(data);
      z.write(TAIL);
      z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        z.off("error", onErr);
        res(null);
      });
    });
    if (err) {
      this.close();
      throw err;
    }
    if (this.size > limit) throw new Error(`inflated message over ${limit} bytes`);
    const out = Buffer.concat(this.chunks);
    if (this.noCtx) this.close();
    return out;
  }
  close() {
    if (this.z) this.z.close();
    this.z = null;
  }
}

// ---------------------------------------------------------------- connection

export class WsConn {
  // Open TCP, do the opening handshake, check the 101 strictly. opts: { host, port, path,
  // offers: [string] (permessage-deflate offers), headers: {}, timeoutMs }.
  static async open(opts) {
    const c = new WsConn(opts);
    await c.handshake();
    return c;
  }

  constructor({ host = "127.0.0.1", port, path = "/", offers = [], timeoutMs = 5000 }) {
    Object.assign(this, { host, port, path, offers, timeoutMs });
    this.events = [];
    this.waiters = [];
    this.rx = []; // unparsed chunks
    this.rxLen = 0;
    this.chain = Promise.resolve();
    this.frag = null; // { op, compressed, parts: [], size }
    this.closeSent = false;
    this.closeRecv = null;
    this.ended = false;
    this.deflate = null;
    this.maxMessage = 64 * 1024 * 1024;
  }

  handshake() {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString("base64");
      const sock = net.connect({ host: this.host, port: this.port });
      this.sock = sock;
      sock.setNoDelay(true);
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => fail(new Error("opening handshake timed out")), this.timeoutMs);
      const fail = (e) => {
        clearTimeout(timer);
        sock.destroy();
        reject(e);
      };
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) {
          if (head.length > 16384) fail(new Error("handshake response headers too long"));
          return;
        }
        clearTimeout(timer);
        sock.off("data", onData);
        sock.off("error", fail);
        sock.off("end", onEnd);
        try {
          this.checkResponse(head.subarray(0, end).toString("latin1"), key);
        } catch (e) {
          return fail(e);
        }
        this.attach(head.subarray(end + 4));
        resolve();
      };
      const onEnd = () => fail(new Error(`connection closed during handshake after ${JSON.stringify(head.toString("latin1"))}`));
      sock.on("data", onData);
      sock.on("error", fail);
      sock.on("end", onEnd);
      const lines = [
        `GET ${this.path} HTTP/1.1`,
        `Host: ${this.host}:${this.port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${key}`,
        "Sec-WebSocket-Version: 13",
      ];
      if (this.offers.length) lines.push(`Sec-WebSocket-Extensions: ${this.offers.join(", ")}`);
      sock.write(lines.join("\r\n") + "\r\n\r\n");
    });
  }

  checkResponse(text, key) {
    const [status, ...rest] = text.split("\r\n");
    if (!/^HTTP\/1\.1 101 /.test(status)) throw new Error(`handshake answered "${status}", not 101`);
    const h = {};
    for (const l of rest) {
      const i = l.indexOf(":");
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      h[k] = h[k] === undefined ? v : `${h[k]}, ${v}`;
    }
    const accept = crypto.createHash("sha1").update(key + GUID).digest("base64");
    if (h["sec-websocket-accept"] !== accept) throw new Error(`Sec-WebSocket-Accept is ${h["sec-websocket-accept"]}, expected ${accept}`);
    if ((h.upgrade ?? "").toLowerCase() !== "websocket") throw new Error(`Upgrade header is ${h.upgrade}`);
    if (!(h.connection ?? "").toLowerCase().split(/\s*,\s*/).includes("upgrade")) throw new Error(`Connection header is ${h.connection}`);
    this.headers = h;
    const ext = h["sec-websocket-extensions"];
    if (ext !== undefined) {
      if (!this.offers.length) throw new Error(`server answered extensions "${ext}" that were never offered`);
      const p = negotiateDeflate(this.offers, ext);
      this.deflate = p;
      this.deflater = new Deflater(p.clientBits, p.clientNoCtx);
      this.inflater = new Inflater(p.serverNoCtx);
    }
  }

  attach(rest) {
    const s = this.sock;
    s.on("data", (d) => this.onData(d));
    s.on("error", () => {}); // a reset is seen as "end"
    s.on("close", () => {
      // Parsing is chained; the end goes after what was already received.
      this.chain = this.chain.then(() => {
        this.ended = true;
        this.push({ type: "end" });
      });
    });
    if (rest.length) this.onData(rest);
  }

  // ------------------------------------------------------------ events

  push(ev) {
    const w = this.waiters.shift();
    if (w) w(ev);
    else this.events.push(ev);
  }

  // Next event, or { type: "timeout" } after ms.
  next(ms = this.timeoutMs) {
    if (this.events.length) return Promise.resolve(this.events.shift());
    return new Promise((resolve) => {
      const w = (ev) => {
        clearTimeout(t);
        resolve(ev);
      };
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve({ type: "timeout", ms });
      }, ms);
      this.waiters.push(w);
    });
  }

  // ------------------------------------------------------------ parsing server frames

  onData(d) {
    this.rx.push(d);
    this.rxLen += d.length;
    for (;;) {
      const f = this.parseOne();
      if (!f) break;
      this.chain = this.chain.then(() => this.onFrame(f));
    }
  }

  peek(n) {
    if (this.rx.length > 1 && this.rx[0].length < n) {
      const all = Buffer.concat(this.rx);
      this.rx = [all];
    }
    return this.rx[0];
  }

  take(n) {
    const out = [];
    let need = n;
    while (need > 0) {
      const c = this.rx[0];
      if (c.length <= need) {
        out.push(c);
        this.rx.shift();
        need -= c.length;
      } else {
        out.push(c.subarray(0, need));
        this.rx[0] = c.subarray(need);
        need = 0;
      }
    }
    this.rxLen -= n;
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  parseOne() {
    if (this.violated || this.rxLen < 2) return null;
    const b = this.peek(Math.min(this.rxLen, 14));
    const b0 = b[0];
    const b1 = b[1];
    let len = b1 & 0x7f;
    let hl = 2;
    if (len === 126) {
      if (this.rxLen < 4) return null;
      len = b.readUInt16BE(2);
      hl = 4;
    } else if (len === 127) {
      if (this.rxLen < 10) return null;
      const big = b.readBigUInt64BE(2);
      if (big > BigInt(this.maxMessage)) return this.violate(`server frame length ${big}`);
      len = Number(big);
      hl = 10;
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked) hl += 4;
    if (this.rxLen < hl + len) return null;
    const head = this.take(hl);
    const payload = len ? this.take(len) : Buffer.alloc(0);
    if (masked) return this.violate("server frame is masked (RFC 6455 5.1)");
    return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, op: b0 & 0x0f, payload: Buffer.from(payload), head };
  }

  violate(why) {
    this.violated = true;
    this.chain = this.chain.then(() => this.push({ type: "violation", why }));
    return null;
  }

  async onFrame(f) {
    if (this.violated) return;
    const { op, fin, rsv, payload } = f;
    const bad = (why) => {
      this.violated = true;
      this.push({ type: "violation", why });
    };
    if (this.closeRecv) return bad(`frame op ${op} after the server's close frame`);
    if (op >= 8) {
      if (!fin) return bad(`fragmented control frame op ${op}`);
      if (rsv) return bad(`RSV ${rsv} on control frame op ${op}`);
      if (payload.length > 125) return bad(`control frame with ${payload.length} bytes`);
      if (op === OP.PING) return this.push({ type: "ping", data: payload });
      if (op === OP.PONG) return this.push({ type: "pong", data: payload });
      if (op === OP.CLOSE) {
        if (payload.length === 1) return bad("close frame with a 1-byte payload");
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
        const reason = payload.subarray(2);
        if (!isUtf8(reason)) return bad("close reason is not UTF-8");
        this.closeRecv = { code, reason };
        return this.push({ type: "close", code, reason, payload });
      }
      return bad(`reserved control opcode ${op}`);
    }
    if (op !== OP.CONT && op !== OP.TEXT && op !== OP.BINARY) return bad(`reserved data opcode ${op}`);
    const rsv1 = (rsv & 4) !== 0;
    if (rsv & 3) return bad(`RSV ${rsv} on data frame`);
    if (op === OP.CONT) {
      if (!this.frag) return bad("continuation frame without a message to continue");
      if (rsv1) return bad("RSV1 on a continuation frame");
    } else {
      if (this.frag) return bad("new data frame inside a fragmented message");
      if (rsv1 && !this.deflate) return bad("RSV1 set without permessage-deflate");
      this.frag = { op, compressed: rsv1, parts: [], size: 0 };
    }
    this.frag.parts.push(payload);
    this.frag.size += payload.length;
    if (this.frag.size > this.maxMessage) return bad(`server message over ${this.maxMessage} bytes`);
    if (!fin) return;
    const m = this.frag;
    this.frag = null;
    let data = Buffer.concat(m.parts);
    if (m.compressed) {
      try {
        data = await this.inflater.inflate(data, this.maxMessage);
      } catch (e) {
        return bad(`cannot inflate server message: ${e.message}`);
      }
    }
    if (m.op === OP.TEXT && !isUtf8(data)) return bad("server sent a text message that is not UTF-8");
    this.push({ type: "message", data, binary: m.op === OP.BINARY, compressed: m.compressed });
  }

  // ------------------------------------------------------------ sending

  write(buf) {
    if (this.sock.destroyed || this.sock.writableEnded) return Promise.resolve();
    return new Promise((res) => {
      if (this.sock.write(buf)) res();
      else {
        const done = () => {
          this.sock.off("drain", done);
          this.sock.off("close", done);
          res();
        };
        this.sock.on("drain", done);
        this.sock.on("close", done);
      }
    });
  }

  // Write bytes in TCP chops of `size` (each its own write; Nagle is off), optionally pausing.
  async writeChopped(buf, size, pauseMs = 0) {
    for (let i = 0; i < buf.length; i += size) {
      if (this.sock.destroyed) return;
      await this.write(buf.subarray(i, i + size));
      if (pauseMs) await sleep(pauseMs);
      else if (size < 64) await new Promise((r) => setImmediate(r));
    }
  }

  frame(o) {
    return encodeFrame(o);
  }

  sendFrame(o) {
    if (o.op === OP.CLOSE) this.closeSent = true;
    return this.write(encodeFrame(o));
  }

  // Build the frames of one data message: payload split into the given parts (or fragSize
  // pieces), compressed when deflate is negotiated and compress isn't false.
  // frameSize splits the (compressed) bytes of a whole message into frames of that size.
  async messageFrames(payload, { binary = false, parts, fragSize, frameSize, compress = true } = {}) {
    payload = Buffer.from(payload);
    if (!parts) {
      parts = [];
      if (fragSize && payload.length > fragSize) for (let i = 0; i < payload.length; i += fragSize) parts.push(payload.subarray(i, i + fragSize));
      else parts.push(payload);
    }
    const z = this.deflate && compress;
    let bodies = z ? await this.deflater.compressParts(parts) : parts;
    if (frameSize) {
      const all = Buffer.concat(bodies);
      bodies = [];
      for (let i = 0; i < all.length || i === 0; i += frameSize) bodies.push(all.subarray(i, i + frameSize));
    }
    return bodies.map((p, i) =>
      encodeFrame({ op: i === 0 ? (binary ? OP.BINARY : OP.TEXT) : OP.CONT, fin: i === bodies.length - 1, rsv: z && i === 0 ? 4 : 0, payload: p }),
    );
  }

  async sendMessage(payload, opts = {}) {
    const frames = await this.messageFrames(payload, opts);
    if (opts.chop) return this.writeChopped(Buffer.concat(frames), opts.chop);
    return this.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }

  // Compressed bytes of a payload, when deflate is on (for cases that build frames themselves).
  async compress(payload) {
    return (await this.deflater.compressParts([Buffer.from(payload)]))[0];
  }

  destroy() {
    if (this.sock) this.sock.destroy();
    this.deflater?.close();
    this.inflater?.close();
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One raw HTTP request on a fresh connection; resolves with { status, headers, raw } of the
// response head, or { status: 0 } if the server closed without answering.
export function rawRequest({ host = "127.0.0.1", port, text, timeoutMs = 5000 }) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const done = (r) => {
      clearTimeout(t);
      sock.destroy();
      resolve(r);
    };
    const t = setTimeout(() => done({ status: -1, raw: buf.toString("latin1") }), timeoutMs);
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [status, ...rest] = buf.subarray(0, end).toString("latin1").split("\r\n");
      const headers = {};
      for (const l of rest) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      done({ status: Number(status.split(" ")[1]), statusLine: status, headers, raw: buf.toString("latin1") });
    });
    sock.on("error", () => done({ status: 0, raw: buf.toString("latin1") }));
    sock.on("end", () => done({ status: 0, raw: buf.toString("latin1") }));
    sock.write(text);
  });
}
