// Start tests/servers/ferry-test-engine and await the JSON-lines events it prints on stdout
// ({"event":"open"|"message"|"close", sid, ...}), so that tests wait for what the server saw
// instead of sleeping.
//
//   const eng = await startEngine(["--ping-interval", "300"]);
//   const open = await eng.next((e) => e.event === "open");
//   const closed = await eng.closeOf(open.sid);        // {event:"close", sid, reason}
//   assert.equal(await eng.stop(), 0);                  // clean exit, no leak under LSan
import { startServer, bin } from "./server.mjs";

export class EventLog {
  constructor(stream, initial = "") {
    this.events = []; // every event seen, in order
    this.taken = new Set(); // indexes already returned by next()
    this.waiters = [];
    this.buf = "";
    this.feed(initial);
    stream.on("data", (d) => this.feed(String(d)));
  }

  feed(text) {
    this.buf += text;
    let nl;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (!line.startsWith("{")) continue;
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        continue;
      }
      this.events.push(ev);
      this.wake();
    }
  }

  wake() {
    for (const w of [...this.waiters]) {
      const i = this.find(w.pred);
      if (i >= 0) {
        this.taken.add(i);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(this.events[i]);
      }
    }
  }

  find(pred) {
    return this.events.findIndex((e, i) => !this.taken.has(i) && pred(e));
  }

  // The first event matching pred that no earlier next() returned, now or when it comes.
  next(pred = () => true, ms = 5000) {
    const i = this.find(pred);
    if (i >= 0) {
      this.taken.add(i);
      return Promise.resolve(this.events[i]);
    }
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timeout (${ms} ms) waiting for a server event; seen: ${JSON.stringify(this.events.slice(-5))}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  open(ms) {
    return this.next((e) => e.event === "open", ms);
  }
  messageOf(sid, ms) {
    return this.next((e) => e.event === "message" && e.sid === sid, ms);
  }
  closeOf(sid, ms) {
    return this.next((e) => e.event === "close" && e.sid === sid, ms);
  }
  // All events of kind seen so far (without taking them).
  all(kind) {
    return this.events.filter((e) => e.event === kind);
  }
}

export async function startEngine(args = [], opts = {}) {
  const srv = await startServer(bin("tests/servers/ferry-test-engine"), ["--port", "0", ...args], opts);
  srv.events = new EventLog(srv.proc.stdout, srv.stdout());
  for (const k of ["next", "open", "messageOf", "closeOf", "all"]) srv[k] = srv.events[k].bind(srv.events);
  srv.path = "/engine.io/";
  const pi = args.indexOf("--path");
  if (pi >= 0) srv.path = args[pi + 1];
  return srv;
}
