// A tiny event emitter. `fire` dispatches locally (Socket uses `emit` for the wire).
export class Emitter {
  on(e, f) {
    ((this._l ||= {})[e] ||= []).push(f);
    return this;
  }
  once(e, f) {
    const g = (...a) => (this.off(e, g), f.apply(this, a));
    g.f = f;
    return this.on(e, g);
  }
  off(e, f) {
    const l = this._l || {};
    if (!e) this._l = {};
    else if (!f) delete l[e];
    else if (l[e]) l[e] = l[e].filter((g) => g !== f && g.f !== f);
    return this;
  }
  fire(e, ...a) {
    for (const f of (this._l || {})[e] || []) f.apply(this, a);
    return this;
  }
  listeners(e) {
    return ((this._l || {})[e] || []).slice();
  }
}
