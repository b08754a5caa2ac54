// Raw HTTP/1.1 over node:net, for tests that must send exactly the bytes they mean (bad input,
// limits, pipelining) and see exactly what comes back.
//
//   const c = await rawConnect(port);
//   c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
//   const res = await c.response();   // {status, headers (lower-case names), body (Buffer), text}
//   await c.closed();                  // resolves when the server ends the connection
import net from "node:net";

export function rawConnect(port, host = "127.0.0.1") {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    sock.once("error", reject);
    sock.once("connect", () => {
      sock.off("error", reject);
      resolve(new RawConn(sock));
    });
  });
}

class RawConn {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.waiters = [];
    this.endWaiters = [];
    sock.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    const onEnd = () => {
      if (this.ended) return;
      this.ended = true;
      this.endedAt = Date.now();
      this.wake();
      for (const w of this.endWaiters) w();
      this.endWaiters = [];
    };
    sock.on("end", onEnd);
    sock.on("close", onEnd);
    sock.on("error", () => {}); // a reset is an end like any other here
  }

  write(data) {
    if (!this.sock.destroyed) this.sock.write(data);
  }

  destroy() {
    this.sock.destroy();
  }

  // Parse one complete response off the front of the buffer, or return null.
  take() {
    const end = this.buf.indexOf("\r\n\r\n");
    if (end < 0) return null;
    const head = this.buf.subarray(0, end).toString("latin1");
    const [statusLine, ...lines] = head.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(head.slice(0, 80))}`);
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    let len = headers["content-length"] !== undefined ? Number(headers["content-length"]) : 0;
    if (status === 100) len = 0;
    if (this.buf.length < end + 4 + len) return null;
    const body = this.buf.subarray(end + 4, end + 4 + len);
    this.buf = this.buf.subarray(end + 4 + len);
    return { status, statusLine, headers, body, text: body.toString("utf8"), head };
  }

  wake() {
    while (this.waiters.length) {
      let res;
      try {
        res = this.take();
      } catch (e) {
        this.waiters.shift().reject(e);
        continue;
      }
      if (res) {
        const w = this.waiters.shift();
        clearTimeout(w.timer);
        w.resolve(res);
      } else if (this.ended) {
        const w = this.waiters.shift();
        clearTimeout(w.timer);
        w.resolve(null); // closed without (another) complete response
      } else break;
    }
  }

  // The next complete response, or null if the connection ends first.
  response(ms = 5000) {
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no response within ${ms} ms; have ${JSON.stringify(this.buf.toString("latin1").slice(0, 200))}`));
      }, ms);
      this.waiters.push(w);
      this.wake();
    });
  }

  // Resolves (with the time it happened) when the server has ended the connection.
  closed(ms = 5000) {
    if (this.ended) return Promise.resolve(this.endedAt);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms);
      this.endWaiters.push(() => {
        clearTimeout(t);
        resolve(this.endedAt);
      });
    });
  }
}

// One request on a fresh connection: send bytes, return the first response (null if none).
export async function rawRequest(port, data, ms = 5000) {
  const c = await rawConnect(port);
  try {
    c.write(data);
    return await c.response(ms);
  } finally {
    c.destroy();
  }
}

// A request head with the given method, target and extra header lines, and an optional body
// (Content-Length is added for a body).
export function req(method, target, { headers = [], body } = {}) {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", ...headers];
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const head = lines.join("\r\n") + "\r\n\r\n";
  return body === undefined ? head : Buffer.concat([Buffer.from(head), Buffer.from(body)]);
}
