// One client of the browser chaos run (tests/browser/chaos-browser.mjs), loaded by chaos.html
// in headless Chromium: ferry's client on the given transports joins its room on tools/ferry's
// relay and, once joined, publishes {n} (n = 0, 1, ...) as event "seq", at most `window` ahead
// of the echoes ("echo" {n}, sent back by the run's echo bot) it has received. It records every
// echo in arrival order, when it sent each number, every transport change (when, after how many
// sent) and every (re)connection (those not recovered with their new socket id).
export function startChaos(io, url, { name, room, count, window = 100, transports }) {
  const r = { name, sent: 0, sentAt: [], down: [], joined: false, switches: [], sessions: 0, recoveries: 0, failedRecoveries: 0, errors: [], notRecovered: [], transport: null };
  const t0 = Date.now();
  const seen = new Set();
  const s = io(url, { transports, auth: { name }, reconnectionDelay: 100, reconnectionDelayMax: 1000, requestTimeout: 5000, storage: null });
  s.on("transport", (e) => r.switches.push({ from: e.from, to: e.to, reason: e.reason, at: Date.now() - t0, sent: r.sent }));
  const when = () => `at ${((Date.now() - t0) / 1000).toFixed(1)} s, ${r.sent} sent`;
  s.on("recovery_failed", (e) => (r.failedRecoveries++, r.errors.push(`recovery failed: ${e.reason}${e.unconfirmed ? `, ${e.unconfirmed} unconfirmed` : ""} (${when()})`)));
  s.on("disconnect", (reason) => r.errors.length < 20 && r.errors.push(`disconnect: ${reason} (${when()})`));
  s.on("outbox_full", () => r.errors.push("outbox full"));
  s.on("connect_error", (e) => r.errors.length < 20 && r.errors.push(`connect_error: ${e.message}`));
  s.on("connect", () => {
    r.sessions++;
    if (s.recovered) r.recoveries++;
    // A reconnection not recovered: its new socket id, by which tools/ferry's log says why.
    else if (r.sessions > 1 && r.notRecovered.length < 20) r.notRecovered.push({ id: s.id, text: when() });
    // A recovered socket is still in its room; a new one joins (again).
    if (!s.recovered)
      s.emit("join", { room }, (ack) => {
        if (!ack?.ok) return r.errors.push(`join: ${ack?.error}`);
        if (!r.joined) (r.joined = true), pump();
      });
  });
  s.on("echo", (d, meta) => {
    if (!meta?.from || typeof d?.n !== "number") return;
    r.down.push(d.n);
    seen.add(d.n);
  });
  let stopped = false;
  const sleep = (ms) => new Promise((f) => setTimeout(f, ms));
  async function pump() {
    while (r.sent < count && !stopped) {
      if (r.sent - seen.size >= window) {
        await sleep(5);
        continue;
      }
      r.sentAt[r.sent] = Date.now() - t0;
      s.emit("publish", { room, event: "seq", data: { n: r.sent++ } });
      if (r.sent % 20 === 0) await sleep(0);
    }
  }
  return {
    stop() {
      stopped = true;
    },
    close() {
      s.disconnect();
    },
    result() {
      r.transport = s.io?.engine?.transport?.name ?? null;
      r.echoed = seen.size;
      return JSON.parse(JSON.stringify(r));
    },
    // What the client is doing (for a client that stopped making progress): the engine's
    // state as far as it shows it, read defensively (the fields are internal).
    state() {
      return engineState(s);
    },
    // Cheap progress (no arrays): sent, distinct echoes, joined.
    progress() {
      return { sent: r.sent, echoed: seen.size, joined: r.joined };
    },
  };
}

// The engine's state of ferry's client `s` in one line (internal fields, for diagnosis only).
export function engineState(s) {
  try {
    const e = s.io?.engine;
    if (!e) return `no engine (socket ${s.connected ? "connected" : "disconnected"})`;
    const t = (x) => (x ? `${x.name}${x.up ? " up" : ""}${x.busy ? " busy" : ""}${x.paused ? " paused" : ""}${x.dead ? " dead" : ""}${x.attaching ? ` attaching(${x.attaching})` : ""}` : "-");
    const ago = (ms) => (ms ? `${Date.now() - ms} ms ago` : "-");
    return `socket ${s.connected ? "connected" : "disconnected"}, engine ${e.readyState}, transport ${t(e.transport)}, probe ${t(e.probe)}, old ${t(e.old)}, ` +
      `lingering ${t(e.lingering)}, hold ${e.hold ? 1 : 0}, wq ${e.wq?.length}, unacked ${e.sent?.length}, tx ${e.tx}, rx ${e.rx}, ` +
      `pinging ${e.pinging ? `#${e.pinging.id} on ${e.pinging.t?.name} ${ago(e.pinging.at)}` : "-"}, fails ${e.fails}`;
  } catch (err) {
    return `state: ${err.message}`;
  }
}
