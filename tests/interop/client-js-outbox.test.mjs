// The outbox extension (docs/protocol.md section 13, issue 14): ferry's client numbers its
// emits and keeps them until the server confirms it took them; after a lost Engine.IO session it
// sends again what the server did not take, and the server drops what it already took. Checked
// on the wire (raw WebSocket sessions: the numbers, a duplicate dropped, an ack answer lost with
// its session given again once), with ferry's client (emits lost in flight sent again, acks run
// once, the window), and with the official socket.io-client, which sees nothing new.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WS from "ws";
import { io as officialIo } from "socket.io-client";
import { io } from "../../client-js/src/index.mjs";
import { startSio } from "../lib/sio.mjs";

let srv, plain;
before(async () => {
  srv = await startSio(["--recovery", "10000", "--transports", "polling,websocket,sse,short-polling"]);
  plain = await startSio([]); // recovery off: no extension
});
after(async () => {
  assert.equal(await srv.stop(), 0, "ferry-test-sio exits 0 (no leak)");
  assert.equal(await plain.stop(), 0, "ferry-test-sio (no recovery) exits 0 (no leak)");
});

const until = (emitter, event, ms = 10000) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...a) => (clearTimeout(t), resolve(a[0])));
  });

// A raw Engine.IO session over WebSocket: frames in a queue, pings answered.
async function raw(url) {
  const ws = new WS(url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket");
  const q = [];
  let wake = () => {};
  ws.on("message", (d) => {
    const s = d.toString();
    if (s === "2") return ws.send("3");
    q.push(s);
    wake();
  });
  const closed = new Promise((r) => ws.on("close", r));
  await until(ws, "open");
  const next = async (pred, ms = 10000) => {
    const end = Date.now() + ms;
    for (;;) {
      const i = q.findIndex(pred);
      if (i >= 0) return q.splice(i, 1)[0];
      if (Date.now() > end) throw new Error(`no frame matching ${pred} within ${ms} ms; have ${JSON.stringify(q)}`);
      await new Promise((r) => ((wake = r), setTimeout(r, 100)));
    }
  };
  await next((s) => s[0] === "0");
  return { ws, q, next, closed, send: (s) => ws.send(s) };
}
const connectAnswer = async (c) => JSON.parse((await c.next((s) => s.startsWith("40{"))).slice(2));
// A raw session with the outbox whose socket took emit 1 ("message" `first`): its CONNECT
// answer and the offset of the echo, to recover with.
async function outboxSocket(first) {
  const c = await raw(srv.url);
  c.send('40{"ferryOutbox":{}}');
  const a = await connectAnswer(c);
  c.send(`42["message","${first}",1]`);
  const back = await c.next((s) => s.startsWith(`42["message-back","${first}"`));
  return { c, a, offset: JSON.parse(back.slice(2)).pop() };
}
const eventsOf = (id) => srv.all("event").filter((e) => e.id === id).map((e) => [e.name, ...e.args]);
// The server's log (stderr) and its event lines (stdout) are two pipes: a log line written
// before an answer may be read after it. Wait for it, bounded.
async function logged(re, ms = 5000) {
  for (const end = Date.now() + ms; !re.test(srv.stderr()) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
  assert.match(srv.stderr(), re);
}
// The server prints an event before it answers: its line may reach us after the answer.
const printed = (id, first, server = srv) => server.next((e) => e.event === "event" && e.id === id && e.args[0] === first);

test("wire: the CONNECT answer carries ferryOutbox, the number is taken off, a duplicate is dropped", async () => {
  const c = await raw(srv.url);
  try {
    c.send('40{"ferryOutbox":{}}');
    const a = await connectAnswer(c);
    assert.equal(a.ferryOutbox, 0, "a new socket: nothing taken");
    assert.ok(a.sid && a.pid);
    c.send('42["message","d1",1]');
    c.send('42["message","d1",1]'); // sent again: dropped
    c.send('42["message","d2",{"n":2},2]');
    c.send('42["message","v",0]'); // not numbered (a volatile emit): passed on
    c.send('421["message-with-ack","sync",3]');
    assert.equal(await c.next((s) => s.startsWith("431")), '431["sync"]');
    await printed(a.sid, "sync");
    assert.deepEqual(eventsOf(a.sid), [["message", "d1"], ["message", "d2", { n: 2 }], ["message", "v"], ["message-with-ack", "sync"]]);
  } finally {
    c.ws.close();
  }
});

test("wire: an EVENT without a valid number closes the session", async () => {
  for (const bad of ['42["message","x"]', '42["message",-1]', '42["message",1.5]', '42["message"]']) {
    const c = await raw(srv.url);
    c.send('40{"ferryOutbox":{}}');
    await connectAnswer(c);
    c.send(bad);
    await Promise.race([c.closed, new Promise((_, j) => setTimeout(() => j(new Error(`${bad}: session not closed`)), 10000))]);
  }
});

test("wire: every 32 emits taken the server confirms with a CONNECT packet holding ferryOutbox only", async () => {
  const c = await raw(srv.url);
  try {
    c.send('40{"ferryOutbox":{}}');
    await connectAnswer(c);
    for (let i = 1; i <= 70; i++) c.send(`42["noop",${i}]`);
    assert.equal(await c.next((s) => s.startsWith("40{")), '40{"ferryOutbox":32}');
    assert.equal(await c.next((s) => s.startsWith("40{")), '40{"ferryOutbox":64}');
  } finally {
    c.ws.close();
  }
});

test("wire: after a lost session the recovered socket says what it took, drops it again, and gives a lost ack answer once", async () => {
  const c = await raw(srv.url);
  c.send('40{"ferryOutbox":{}}');
  const a = await connectAnswer(c);
  c.send('42["message","a1",1]');
  c.send('420["message-with-ack","a2",2]');
  await c.next((s) => s.startsWith("430")); // the answer arrives; the client pretends it did not
  const back = await c.next((s) => s.startsWith('42["message-back","a1"'));
  const offset = JSON.parse(back.slice(2)).pop();
  const gone = srv.disconnectOf(a.sid);
  c.ws.terminate(); // lost, not left: the socket is kept for recovery
  await gone;
  const d = await raw(srv.url);
  try {
    d.send(`40${JSON.stringify({ pid: a.pid, offset, ferryOutbox: { acks: [0] } })}`);
    const b = await connectAnswer(d);
    assert.equal(b.sid, a.sid, "recovered");
    assert.equal(b.ferryOutbox, 2, "the server took 2 emits");
    assert.equal(await d.next((s) => s.startsWith("430")), '430["a2"]', "the ack answer again");
    d.send('42["message","a1",1]'); // the client did not know: dropped
    d.send('420["message-with-ack","a2",2]'); // the same
    d.send('42["message","a3",3]');
    d.send('421["message-with-ack","sync",4]');
    await d.next((s) => s.startsWith("431"));
    await printed(a.sid, "sync");
    assert.deepEqual(eventsOf(a.sid), [["message", "a1"], ["message-with-ack", "a2"], ["message", "a3"], ["message-with-ack", "sync"]]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(d.q.filter((s) => s.startsWith("430")).length, 0, "no second answer to a2");
  } finally {
    d.ws.close();
  }
});

test("wire: a recovered socket gets again at most the last 128 ack answers it awaits; one over 64 KiB is not kept", async () => {
  const { c, a, offset } = await outboxSocket("m0");
  const N = 130;
  for (let i = 0; i < N; i++) c.send(`42${i}["message-with-ack","a${i}",${i + 2}]`);
  c.send(`42${N}["message-with-ack","${"x".repeat(70 * 1024)}",${N + 2}]`); // answered, too big to keep
  await c.next((s) => s.startsWith(`43${N}[`)); // every answer arrived; the client pretends not
  const gone = srv.disconnectOf(a.sid);
  c.ws.terminate();
  await gone;
  const d = await raw(srv.url);
  try {
    const all = Array.from({ length: N + 1 }, (_, i) => i);
    d.send(`40${JSON.stringify({ pid: a.pid, offset, ferryOutbox: { acks: all } })}`);
    const b = await connectAnswer(d);
    assert.equal(b.sid, a.sid, "recovered");
    assert.equal(b.ferryOutbox, N + 2, "the server took every emit");
    d.send('421000["message-with-ack","sync",0]'); // answered after the answers given again
    await d.next((s) => s.startsWith("431000["));
    const again = d.q.filter((s) => /^43\d+\[/.test(s)).map((s) => Number(/^43(\d+)/.exec(s)[1]));
    assert.deepEqual(again, Array.from({ length: 128 }, (_, i) => N - 128 + i), "the last 128 kept answers, once each, in order");
  } finally {
    d.ws.close();
  }
});

// ferry's client, its engine's transport muted (what it sends goes nowhere), then its session
// lost: the emits in flight are sent again on the next session, once.
for (const t of ["websocket", "polling", "sse", "short-polling"]) {
  test(`ferry's client (${t}): emits lost in flight with the session are sent again, once and in order; acks run once`, async () => {
    const s = io(srv.url, { WebSocket: WS, storage: null, forceNew: true, transports: [t], reconnectionDelay: 50, reconnectionDelayMax: 100 });
    try {
      await until(s, "connect");
      const id = s.id;
      const acks = [];
      s.emit("message", "m0");
      s.emit("message-with-ack", "k0", (x) => acks.push(x));
      await srv.next((e) => e.event === "event" && e.id === id && e.args[0] === "k0");
      // The transport takes packets and drops them: lost in flight.
      const tr = s.io.engine.transport;
      tr.send = () => {};
      s.emit("message", "m1");
      s.emit("message-with-ack", "k1", (x) => acks.push(x));
      s.emit("message", "m2");
      await new Promise((r) => setTimeout(r, 100));
      const back = until(s, "connect");
      s.io.engine._close("transport error");
      await back;
      assert.equal(s.recovered, true);
      assert.equal(s.id, id);
      await s.timeout(8000).emitWithAck("message-with-ack", "sync");
      await printed(id, "sync");
      assert.deepEqual(eventsOf(id).map((e) => e[1]), ["m0", "k0", "m1", "k1", "m2", "sync"]);
      assert.deepEqual(acks, ["k0", "k1"]);
    } finally {
      s.disconnect();
    }
  });
}

// Issue 14 (the chaos runs' "outbox: emit 301 after 201 (a gap)": 99 emits lost inside one
// session): a number above the next one is never skipped. The server refuses it and closes the
// session, so that the client recovers and sends again from the CONNECT answer's number; only
// the same gap again (the client no longer holds those emits) is taken, logged as lost.
test("wire: a gap in the numbers is refused: the session closes, the recovered socket gets the missing emits; the same gap again is taken and logged as lost", async () => {
  const { c, a, offset } = await outboxSocket("g1");
  const gone = srv.disconnectOf(a.sid);
  c.send('42["message","g3",3]'); // 2 never came
  c.send('42["message","g4",4]');
  await Promise.race([c.closed, new Promise((_, j) => setTimeout(() => j(new Error("the session was not closed on a gap")), 10000))]);
  assert.equal((await gone).reason, "transport error", "closed as a lost transport: the socket is kept for recovery");
  assert.deepEqual(eventsOf(a.sid), [["message", "g1"]], "nothing after the gap reached the app");
  await logged(/outbox: emit 3 after 1 \(a gap\): refused/);
  // The client recovers and sends again everything above the answer's number.
  const d = await raw(srv.url);
  d.send(`40${JSON.stringify({ pid: a.pid, offset, ferryOutbox: {} })}`);
  const b = await connectAnswer(d);
  assert.equal(b.sid, a.sid, "recovered");
  assert.equal(b.ferryOutbox, 1, "the server took 1: the gap was not taken");
  d.send('42["message","g2",2]');
  d.send('42["message","g3",3]');
  d.send('42["message","g4",4]');
  d.send('421["message-with-ack","sync",5]');
  await d.next((s) => s.startsWith("431"));
  await printed(a.sid, "sync");
  assert.deepEqual(eventsOf(a.sid).map((e) => e[1]), ["g1", "g2", "g3", "g4", "sync"], "every emit once, in order");
  // A client that no longer holds them (the same gap again after a recovery): taken, said lost.
  const gone2 = srv.disconnectOf(a.sid);
  d.send('42["message","g7",7]');
  await Promise.race([d.closed, new Promise((_, j) => setTimeout(() => j(new Error("the session was not closed on a gap")), 10000))]);
  await gone2;
  const e = await raw(srv.url);
  try {
    e.send(`40${JSON.stringify({ pid: a.pid, offset, ferryOutbox: {} })}`);
    const f = await connectAnswer(e);
    assert.equal(f.sid, a.sid, "recovered again");
    assert.equal(f.ferryOutbox, 5);
    e.send('42["message","g7",7]'); // 6 is gone for good
    e.send('421["message-with-ack","sync2",8]');
    await e.next((s) => s.startsWith("431"));
    await printed(a.sid, "sync2");
    assert.deepEqual(eventsOf(a.sid).map((x) => x[1]), ["g1", "g2", "g3", "g4", "sync", "g7", "sync2"]);
    await logged(/outbox: emit 7 after 5 \(a gap the client cannot fill\): 1 emits lost/);
  } finally {
    e.ws.close();
  }
});

test("ferry's client: emits the server took whose confirmation and ack answer were lost are not sent again; the ack runs once", async () => {
  const s = io(srv.url, { WebSocket: WS, storage: null, forceNew: true, transports: ["websocket"], reconnectionDelay: 50, reconnectionDelayMax: 100 });
  try {
    await until(s, "connect");
    const id = s.id;
    const acks = [];
    s.io.ondata = () => {}; // nothing reaches the client any more
    s.emit("message", "t1");
    s.emit("message-with-ack", "t2", (x) => acks.push(x));
    await srv.next((e) => e.event === "event" && e.id === id && e.args[0] === "t2");
    assert.equal(s.box.length, 2, "unconfirmed, kept");
    delete s.io.ondata;
    const back = until(s, "connect");
    s.io.engine._close("transport error");
    await back;
    assert.equal(s.recovered, true);
    await s.timeout(8000).emitWithAck("message-with-ack", "sync");
    await printed(id, "sync");
    assert.deepEqual(eventsOf(id).map((e) => e[1]), ["t1", "t2", "sync"]);
    assert.deepEqual(acks, ["t2"], "the lost answer came again, the callback ran once");
    assert.deepEqual(s.box.map((e) => e.p.data[1]), ["sync"], "t1 and t2 confirmed, gone from the outbox");
  } finally {
    s.disconnect();
  }
});

test("ferry's client: the outbox window (maxBuffer) refuses emits past it, never drops older ones", async () => {
  const s = io(srv.url, { WebSocket: WS, storage: null, forceNew: true, transports: ["websocket"], autoConnect: false, maxBuffer: 5 });
  try {
    const full = [];
    s.on("outbox_full", (e) => full.push(e));
    const errs = [];
    for (let i = 0; i < 5; i++) s.emit("message", `w${i}`);
    s.timeout(5000).emit("message-with-ack", "w5", (err) => errs.push(err?.message));
    s.emit("message", "w6");
    assert.deepEqual(full.map((e) => e.event), ["message-with-ack", "message"]);
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(errs, ["outbox full"]);
    s.connect();
    await until(s, "connect");
    // The server confirms at least twice per window (every 2 here): the outbox drains.
    for (const end = Date.now() + 10000; s.box.length > 1 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 20; i++) await s.timeout(8000).emitWithAck("message-with-ack", `s${i}`);
    assert.ok(s.box.length <= 2, `outbox drained (${s.box.length})`);
    assert.deepEqual(full.length, 2);
    await printed(s.id, "s19");
    assert.deepEqual(eventsOf(s.id).map((e) => e[1]), ["w0", "w1", "w2", "w3", "w4", ...Array.from({ length: 20 }, (_, i) => `s${i}`)]);
  } finally {
    s.disconnect();
  }
});

test("ferry's client with outbox: false: no ferryOutbox asked, emits not numbered, nothing kept", async () => {
  const s = io(srv.url, { WebSocket: WS, storage: null, forceNew: true, transports: ["websocket"], outbox: false });
  try {
    await until(s, "connect");
    const c = await srv.next((e) => e.event === "connect" && e.id === s.id);
    assert.equal(c.auth.ferryOutbox, undefined, "not asked");
    assert.ok(c.auth.pid === undefined, "a first connection");
    assert.equal(s.obOn, false);
    s.emit("message", "f1", 7); // its last argument is the app's, not a number taken off
    await s.timeout(8000).emitWithAck("message-with-ack", "sync");
    await printed(s.id, "sync");
    assert.deepEqual(eventsOf(s.id), [["message", "f1", 7], ["message-with-ack", "sync"]]);
    assert.equal(s.box.length, 0);
  } finally {
    s.disconnect();
  }
});

test("ferry's client: disconnect() empties the outbox (its emits went out ahead of the DISCONNECT); a later connect sends none again", async () => {
  const s = io(srv.url, { WebSocket: WS, storage: null, forceNew: true, transports: ["websocket"] });
  try {
    await until(s, "connect");
    const id = s.id;
    s.emit("message", "d1");
    s.emit("message", "d2");
    assert.ok(s.box.length >= 2, "kept until confirmed");
    const gone = srv.disconnectOf(id);
    s.disconnect();
    assert.equal(s.box.length, 0, "emptied");
    assert.equal((await gone).reason, "client namespace disconnect");
    assert.deepEqual(eventsOf(id).map((e) => e[1]), ["d1", "d2"], "both taken before the DISCONNECT");
    s.connect();
    await until(s, "connect");
    assert.equal(s.recovered, false, "left on purpose: a new socket");
    await s.timeout(8000).emitWithAck("message-with-ack", "sync");
    await printed(s.id, "sync");
    assert.deepEqual(eventsOf(s.id).map((e) => e[1]), ["sync"], "d1 and d2 not sent again");
  } finally {
    s.disconnect();
  }
});

test("ferry's client and a server without the extension (recovery off): plain emits, nothing kept", async () => {
  const s = io(plain.url, { WebSocket: WS, storage: null, forceNew: true, transports: ["websocket"] });
  try {
    s.emit("message", "early"); // before the CONNECT answer: kept, then sent plain
    await until(s, "connect");
    assert.equal(s.obOn, false);
    s.emit("message", "p1", 7);
    await s.timeout(8000).emitWithAck("message-with-ack", "sync");
    await printed(s.id, "sync", plain);
    const got = plain.all("event").filter((e) => e.id === s.id).map((e) => [e.name, ...e.args]);
    assert.deepEqual(got, [["message", "early"], ["message", "p1", 7], ["message-with-ack", "sync"]]);
    assert.equal(s.box.length, 0);
  } finally {
    s.disconnect();
  }
});

test("ferry's client with recovery off: an emit in flight on the lost session is lost (at most once), one made while disconnected goes out once", async () => {
  const s = io(plain.url, { WebSocket: WS, storage: null, forceNew: true, transports: ["websocket"], reconnectionDelay: 50, reconnectionDelayMax: 100 });
  try {
    await until(s, "connect");
    const id = s.id;
    s.io.engine.transport.send = () => {}; // handed to the transport, never delivered
    s.emit("message", "in-flight");
    const down = until(s, "disconnect");
    s.io.engine._close("transport error");
    await down;
    s.emit("message", "while-away"); // buffered until the next connect
    await until(s, "connect");
    assert.equal(s.recovered, false);
    assert.notEqual(s.id, id);
    await s.timeout(8000).emitWithAck("message-with-ack", "sync");
    await printed(s.id, "sync", plain);
    const of = (sid) => plain.all("event").filter((e) => e.id === sid).map((e) => e.args[0]);
    assert.deepEqual(of(id), [], "the emit in flight is lost");
    assert.deepEqual(of(s.id), ["while-away", "sync"], "the one made while disconnected, once");
  } finally {
    s.disconnect();
  }
});

test("the official socket.io-client is unchanged: no ferryOutbox in its CONNECT answer, its last argument kept", async () => {
  const s = officialIo(srv.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  try {
    const frames = [];
    s.io.on("packet", (p) => p.type === 0 && frames.push(p));
    await until(s, "connect");
    assert.equal(frames.length, 1);
    assert.equal(frames[0].data?.ferryOutbox, undefined);
    assert.ok(frames[0].data?.pid, "recovery is on for it");
    s.emit("message", "o1", 1);
    await s.timeout(8000).emitWithAck("message-with-ack", "sync", 2);
    await printed(s.id, "sync");
    assert.deepEqual(eventsOf(s.id), [["message", "o1", 1], ["message-with-ack", "sync", 2]]);
  } finally {
    s.disconnect();
  }
});
