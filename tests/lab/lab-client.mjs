// One client of the hostile-network lab, the same code in headless Chromium and in Node. It
// connects with a Socket.IO client library (the adapter: ferry's client-js `io`, or the official
// socket.io-client for comparison), joins its room on tools/ferry's relay and, once joined,
// publishes {n} as event "seq" every `everyMs` (n = 1, 2, ...), while recording every "seq" the
// backend publishes to the room, every transport switch (ferry's `transport` event) and every
// disconnect. stop() ends the sending; result() returns what it saw.
//
//   const c = startLabClient(io, url, { name: "browser", room: "lab-b", everyMs: 100, opts });
// official: the library is socket.io-client (no transport event; its upgrade counts as a switch).
//   ...; c.stop(); await drained; const r = c.result();
// Traffic comes in bursts: BURST_MS of messages, then QUIET_MS of silence in both directions,
// counted on the wall clock from an epoch the harness sets when the exchange starts (so the
// backend and every client fall silent together), long enough for idle and read timeouts to
// act. Before the epoch is set, a joined client sends without pause.
export const BURST_MS = 2000;
export const QUIET_MS = 3500;
export const quiet = (t, epoch) => epoch > 0 && (t - epoch) % (BURST_MS + QUIET_MS) >= BURST_MS;

export function startLabClient(io, url, { name, room, everyMs = 100, official = false, opts = {} }) {
  const now = () => (globalThis.performance ?? Date).now();
  const t0 = now();
  const r = {
    name,
    room,
    sent: 0, // messages published (n = 1..sent)
    got: [], // n of every backend message received, in arrival order
    firstMessageMs: null, // first backend message received
    connectMs: null, // first Socket.IO connect
    joinedMs: null,
    switches: [], // {from, to, reason, ms, atMs}
    disconnects: [], // {reason, atMs}
    connects: 0,
    transport: null,
    bestMs: null, // when the final transport was reached
    errors: [],
  };
  const socket = io(url, { auth: { name }, reconnectionDelay: 200, reconnectionDelayMax: 2000, ...opts });
  const engineName = () => socket.io?.engine?.transport?.name ?? null;
  socket.on("transport", (ev) => {
    r.switches.push({ from: ev.from, to: ev.to, reason: ev.reason, ms: ev.ms ?? null, atMs: Math.round(now() - t0) });
  });
  // The official client has no transport event: its upgrade is one switch.
  socket.io?.engine?.on?.("upgrade", (t) => {
    if (official) r.switches.push({ from: "polling", to: t?.name ?? "websocket", reason: "upgrade", ms: null, atMs: Math.round(now() - t0) });
  });
  socket.on("connect", () => {
    r.connects++;
    if (r.connectMs === null) r.connectMs = Math.round(now() - t0);
    socket.emit("join", { room }, (ack) => {
      if (!ack?.ok) return r.errors.push(`join: ${ack?.error}`);
      if (r.joinedMs === null) r.joinedMs = Math.round(now() - t0);
    });
  });
  socket.on("disconnect", (reason) => r.disconnects.push({ reason, atMs: Math.round(now() - t0) }));
  socket.on("connect_error", (e) => r.errors.push(`connect_error: ${e?.message ?? e}`));
  socket.on("seq", (data, meta) => {
    if (meta?.from) return; // another client's publish, not the backend's
    if (r.firstMessageMs === null) r.firstMessageMs = Math.round(now() - t0);
    r.got.push(data.n);
  });
  let sending = true;
  let epoch = 0;
  const tick = setInterval(() => {
    if (!sending || r.joinedMs === null || quiet(Date.now(), epoch)) return;
    r.sent++;
    socket.emit("publish", { room, event: "seq", data: { n: r.sent } });
  }, everyMs);
  return {
    socket,
    stats: r,
    setEpoch(t) {
      epoch = t;
    },
    stop() {
      sending = false;
      clearInterval(tick);
    },
    result() {
      r.transport = engineName();
      const last = [...r.switches].reverse().find((s) => s.to === r.transport);
      r.bestMs = last ? last.atMs : r.connectMs;
      return JSON.parse(JSON.stringify(r));
    },
    close() {
      socket.disconnect();
    },
  };
}
