// A WebSocket-compatible object on one Engine.IO session: existing WebSocket code gets ferry's
// transport ladder without change. `new WebSocket(url, protocols, opts)`; url ws(s):// or
// http(s)://, its path is the Engine.IO path (default /engine.io/).
import { engineFor } from "./shared.mjs";

const S = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"];
const size = (d) => (typeof d === "string" ? new Blob([d]).size : d ? d.byteLength ?? d.size ?? 0 : 0);
const err = (m, n) => new DOMException(m, n);

export class WebSocket extends EventTarget {
  constructor(url, protocols, o = {}) {
    super();
    if (protocols?.constructor === Object) (o = protocols), (protocols = undefined);
    const u = new URL(url, globalThis.location?.href);
    if (!/^(ws|http)s?:$/.test(u.protocol) || u.hash) throw err("bad url " + url, "SyntaxError");
    this.url = u.href;
    this.protocol = this.extensions = "";
    this.binaryType = "blob";
    this.readyState = 0;
    u.protocol = u.protocol.replace("ws", "http");
    const e = (this._e = new (engineFor(o))(u.origin, { raw: 1, path: u.pathname === "/" ? "/engine.io/" : u.pathname, query: Object.fromEntries(u.searchParams), ...o }));
    e.on("open", () => this._ev("open", {}, 1));
    e.on("message", (d) => this.readyState === 1 && this._ev("message", { data: typeof d === "string" || this.binaryType !== "blob" ? d : new Blob([d]) }));
    e.on("close", (r) => {
      if (this.readyState > 1) return; // close() reports its own end
      const clean = r === "transport close";
      if (!clean) this._ev("error", {});
      this._ev("close", { code: clean ? 1000 : 1006, reason: "", wasClean: clean }, 3);
    });
  }
  _ev(type, props, state) {
    if (state) this.readyState = state;
    const ev = Object.assign(new Event(type), props);
    this.dispatchEvent(ev);
    this["on" + type]?.call(this, ev);
  }
  get bufferedAmount() {
    return this._e.wq.reduce((n, p) => n + (p.type === 4 ? size(p.data) : 0), 0);
  }
  send(d) {
    if (!this.readyState) throw err("still connecting", "InvalidStateError");
    if (this.readyState > 1) return;
    this._e.send(typeof d === "string" || d instanceof Blob ? d : ArrayBuffer.isView(d) ? d.slice?.().buffer ?? d : d.slice(0));
  }
  close(code, reason = "") {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) throw err("bad code", "InvalidAccessError");
    if (new Blob([reason]).size > 123) throw err("reason too long", "SyntaxError");
    if (this.readyState > 1) return;
    this.readyState = 2;
    this._e.close();
    // As a browser reports a server that answers the close frame with the code alone.
    setTimeout(() => this._ev("close", { code: code ?? 1005, reason: "", wasClean: true }, 3), 0);
  }
}
S.forEach((k, i) => (WebSocket[k] = WebSocket.prototype[k] = i));
for (const t of ["open", "message", "close", "error"]) WebSocket.prototype["on" + t] = null;
