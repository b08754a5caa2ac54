// The probe of client-js's engine against the in-memory server (fake-server.mjs), under mock
// timers: a WebSocket probe that the server cuts right after its "3probe", while the paused
// long-polling still waits for its poll, must not hold the session back. The messages queued
// meanwhile go out on polling at once (before the fix they waited for the re-probe, 5 s later,
// or the health check), once each. tests/interop/client-js-probe.test.mjs does every moment of
// the probe against ferry's server.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../client-js/src/engine.mjs";
import { FakeServer, fakeUntil } from "./fake-server.mjs";

let n = 0;
beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1e12 }));
afterEach(() => mock.timers.reset());

const until = fakeUntil;

for (const from of ["polling", "short-polling"])
  test(`${from}: a WebSocket probe cut by the server right after 3probe, the pause still waiting for a poll: ${from} goes on at once`, async () => {
    const srv = new FakeServer();
    const got = [];
    let moment = null; // fake time of the cut, and what the pause was waiting for then
    let e;
    // Once the probe opens, the next poll answer is held (the poll stays out) until the cut.
    let gate = null;
    const fetch = async (url, o = {}) => {
      const r = await srv.fetch(url, o);
      if (gate && !gate.held && !o.method && /transport=(short-)?polling/.test(url)) {
        gate.held = true;
        gate.onHeld?.();
        await new Promise((res) => (gate.release = res));
      }
      return r;
    };
    // The server's WebSocket: its "3probe" handed over once a poll is out, then the connection
    // is cut (both ends).
    class CutAfter3probe extends srv.WebSocket {
      constructor(url) {
        super(url);
        gate = {};
      }
      set onmessage(f) {
        this.h = f;
      }
      get onmessage() {
        return (m) => {
          if (m.data !== "3probe" || moment) return this.h?.(m);
          const go = () => {
            this.h?.(m);
            const cur = e.transport;
            moment = { at: Date.now(), paused: !!cur.paused, getting: !!cur.getting };
            e.send("during");
            this.close(); // the server drops the probe (its upgrade fails, polling takes packets again)
            queueMicrotask(() => (this.onclose?.({ code: 1006 }), gate.release()));
          };
          if (gate.held) go();
          else gate.onHeld = go;
        };
      }
    }
    e = new Engine(`http://probe${++n}.test/`, { fetch, WebSocket: CutAfter3probe, storage: null, transports: [from, "websocket"] });
    const switches = [];
    const probes = [];
    e.on("transport", (ev) => switches.push(`${ev.from || "-"}>${ev.to}:${ev.reason}`));
    e.on("probe", (p) => probes.push(p.reason));
    e.on("message", (m) => got.push({ m, at: Date.now() }));
    await until(() => moment, 10000, "the probe's 3probe");
    assert.deepEqual([moment.paused, moment.getting], [true, true], "the cut came while the pause waited for a poll");
    await until(() => got.some((x) => x.m === "echo:during"), 10000, "the echo of the message sent at the cut");
    const ms = got.find((x) => x.m === "echo:during").at - moment.at;
    // Short-polling asks every second (shortPollInterval); long-polling after the noop its poll
    // was answered with during the upgrade (250 ms).
    assert.ok(ms <= (from === "polling" ? 300 : 1100), `echo ${ms} ms after the cut (switches ${switches.join(", ")}; probes ${probes.join(", ")})`);
    assert.deepEqual(probes, ["ws-closed"]);
    assert.equal(e.transport.name, from, `still on ${from}`);
    e.send("after");
    await until(() => got.some((x) => x.m === "echo:after"), 5000, "the echo of one more");
    assert.deepEqual(srv.last.got, ["during", "after"], "the server took each message once, in order");
    assert.deepEqual(got.map((x) => x.m), ["echo:during", "echo:after"], "each echo once, in order");
    assert.equal(srv.sessions.size, 1, "one session");
    e.close();
    srv.close();
  });
